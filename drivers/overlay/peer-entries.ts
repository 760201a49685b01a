// The entries a host holds for the remote containers of one overlay, as data, and the changes
// that make the kernel hold exactly what the cluster store announces. Pure: peers.ts reads the
// kernel, calls these and applies the result.
//
// Each remote container is three static entries, all from the store:
//  - in the VXLAN device's own table: its MAC -> its host's VTEP (where to tunnel a frame);
//  - in the bridge's table, on the VXLAN port: its MAC (so the bridge sends frames for it to that
//    port alone instead of flooding them to every local container);
//  - a neighbour of the VXLAN device per address: its IPv4 (and on a dual-stack overlay its IPv6)
//    address -> its MAC (answered by the device's ARP and neighbour-discovery proxy).
// A dual-stack container is two announcements with one MAC: one forwarding entry, two neighbours.
// An entry the store does not announce is removed, learned ones included: the VXLAN port must
// not learn, and one learned before that was switched off (an older tsnet) goes too.
import type { EndpointAnnouncement } from '../../store/cluster/cluster-store.js';
import type { FdbInfo, NeighbourInfo } from '../../native/netlink/neighbours.js';

/** One remote container as this host wants it on an overlay's VXLAN device. */
export interface RemoteEntry {
  ip: string;
  mac: string;
  vtep: string;
}

export interface KernelEntries {
  /** the VXLAN device's own table: MAC -> remote VTEP */
  fdb: { mac: string; dst: string }[];
  /** the bridge's table, entries on the VXLAN port; learned: not programmed by tsnet */
  bridge: { mac: string; learned: boolean }[];
  /** neighbours of the VXLAN device: IP (either family) -> MAC */
  neighbours: { ip: string; mac: string }[];
}

export interface EntryChanges {
  addFdb: { mac: string; dst: string }[];
  removeFdb: { mac: string; dst: string }[];
  /** MACs to hold statically on the VXLAN port (a learned entry becomes static) */
  addBridge: string[];
  removeBridge: string[];
  addNeighbours: { ip: string; mac: string }[];
  removeNeighbours: { ip: string; mac: string }[];
}

const ALL_ZERO_MAC = '00:00:00:00:00:00';

/** The remote entries a host wants for one overlay: everyone's announcements but its own. */
export function remoteEntries(announcements: Iterable<EndpointAnnouncement>, overlay: string, self: string): RemoteEntry[] {
  const out: RemoteEntry[] = [];
  for (const a of announcements) if (a.overlay === overlay && a.host !== self) out.push({ ip: a.ip, mac: a.mac, vtep: a.vtep });
  return out;
}

/**
 * What the kernel lists for a VXLAN device (`bridge fdb show dev X`, `ip neigh show dev X`),
 * reduced to the entries of remote containers. Left out: the all-zero flood entries, the bridge's
 * permanent entries for the port's own address, incomplete neighbours, and the device's own IPv6
 * link-local neighbours (fe80::/10, which no container is announced with).
 */
export function kernelEntries(fdb: FdbInfo[], neighbours: NeighbourInfo[]): KernelEntries {
  return {
    fdb: fdb.filter((e) => e.self && e.dst && e.mac !== ALL_ZERO_MAC).map((e) => ({ mac: e.mac, dst: e.dst! })),
    bridge: fdb
      .filter((e) => e.master && !e.state.includes('permanent'))
      // static entries are NUD_NOARP; learned ones are reachable or stale
      .map((e) => ({ mac: e.mac, learned: !e.state.includes('noarp') })),
    neighbours: neighbours.filter((n) => n.mac && (n.family === 4 || !isLinkLocal6(n.ip))).map((n) => ({ ip: n.ip, mac: n.mac! })),
  };
}

/** What to change so the kernel holds exactly `wanted`. */
export function diffEntries(wanted: RemoteEntry[], kernel: KernelEntries): EntryChanges {
  const fdbKey = (e: { mac: string; dst: string }) => `${e.mac.toLowerCase()} ${e.dst}`;
  const neighKey = (e: { ip: string; mac: string }) => `${e.ip} ${e.mac.toLowerCase()}`;
  const wantFdb = new Map(wanted.map((w) => [fdbKey({ mac: w.mac, dst: w.vtep }), { mac: w.mac, dst: w.vtep }]));
  const wantBridge = new Set(wanted.map((w) => w.mac.toLowerCase()));
  const wantNeigh = new Map(wanted.map((w) => [neighKey(w), { ip: w.ip, mac: w.mac }]));
  const haveFdb = new Map(kernel.fdb.map((e) => [fdbKey(e), e]));
  const staticBridge = new Set(kernel.bridge.filter((e) => !e.learned).map((e) => e.mac.toLowerCase()));
  const haveNeigh = new Map(kernel.neighbours.map((e) => [neighKey(e), e]));
  return {
    addFdb: [...wantFdb].filter(([k]) => !haveFdb.has(k)).map(([, v]) => v),
    removeFdb: [...haveFdb].filter(([k]) => !wantFdb.has(k)).map(([, v]) => v),
    addBridge: [...wantBridge].filter((mac) => !staticBridge.has(mac)),
    removeBridge: [...new Set(kernel.bridge.map((e) => e.mac.toLowerCase()))].filter((mac) => !wantBridge.has(mac)),
    addNeighbours: [...wantNeigh].filter(([k]) => !haveNeigh.has(k)).map(([, v]) => v),
    // a neighbour whose IP is still wanted with another MAC is replaced by the add
    removeNeighbours: [...haveNeigh].filter(([k, v]) => !wantNeigh.has(k) && !wanted.some((w) => w.ip === v.ip)).map(([, v]) => v),
  };
}

/** For the log: how many entries of each kind a reconcile changed. */
export function changeCounts(ch: EntryChanges): Record<keyof EntryChanges, number> {
  return {
    addFdb: ch.addFdb.length,
    removeFdb: ch.removeFdb.length,
    addBridge: ch.addBridge.length,
    removeBridge: ch.removeBridge.length,
    addNeighbours: ch.addNeighbours.length,
    removeNeighbours: ch.removeNeighbours.length,
  };
}

function isLinkLocal6(ip: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(ip);
}
