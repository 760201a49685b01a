// The overlay's control plane on this host: which containers of the cluster each VXLAN device
// knows. overlay-driver.ts makes the networks and endpoints and calls in here; this file talks to
// the cluster store (store/cluster/) and programs the kernel's entries:
//  - announce / withdraw: this host's endpoints, under its lease, once their links exist and
//    before they go;
//  - watch: every host's announcements, kept here by overlay and IP as the watch delivers them;
//  - program: a new remote container gets its static entries (peer-entries.ts says which) at once;
//  - reconcile: after a snapshot (start, reconnect), a removal or a moved address, the VXLAN
//    device's entries are brought to exactly what the store announces.
// Nothing is learned from the wire (the VXLAN device and its bridge port have learning off), so a
// container the store withdraws leaves no entry behind on any host.
import type { AnnouncementListener, ClusterStore, EndpointAnnouncement } from '../../store/cluster/cluster-store.js';
import type { EndpointRecord, NetworkRecord, NetworkRepo } from '../../store/network-repo.js';
import type { Netlink } from '../../native/netlink/netlink.js';
import type { BridgeNetworkConfig } from '../bridge/plan.js';
import type { OverlayConfig } from './plan.js';
import { changeCounts, diffEntries, kernelEntries, remoteEntries, type EntryChanges, type KernelEntries } from './peer-entries.js';
import type { Logger } from '../../core/log.js';
import { bareIp } from '../../core/text.js';
import { formatIp, parseIp } from '../../native/netlink/ip.js';

/** a VXLAN device with no remote entries: diffing against it gives only additions */
const NO_ENTRIES: KernelEntries = { fdb: [], bridge: [], neighbours: [] };

export type OverlayNetwork = NetworkRecord<BridgeNetworkConfig & OverlayConfig>;

export interface OverlayPeersDeps {
  repo: Pick<NetworkRepo, 'listNetworks' | 'listEndpoints'>;
  /** netlink where the network's VXLAN device is (its own namespace, netns-layout.ts) */
  netlinkOf: (net: OverlayNetwork) => Pick<Netlink, 'listFdb' | 'listNeighbours' | 'replaceFdb' | 'deleteFdb' | 'replaceNeighbour' | 'deleteNeighbour'>;
  /** undefined: single-host overlays only, nothing to announce or program */
  cluster?: ClusterStore;
  log: Logger;
}

export class OverlayPeers {
  /** every announcement in the cluster, by overlay and IP, as the watch delivered them */
  private readonly announced = new Map<string, Map<string, EndpointAnnouncement>>();

  constructor(private readonly d: OverlayPeersDeps) {}

  /**
   * Tells the other hosts about a local endpoint whose links exist: one announcement per address
   * (IPv4, and IPv6 on a dual-stack overlay), the same MAC. When the second is refused (another
   * endpoint holds that address), the first is withdrawn again: all or nothing.
   */
  async announce(net: OverlayNetwork, ep: Pick<EndpointRecord, 'id' | 'address' | 'addressIpv6' | 'mac'>): Promise<void> {
    const cluster = this.d.cluster;
    const overlay = net.config.overlay.name;
    if (!overlay || !cluster) return;
    const done: string[] = [];
    try {
      for (const ip of addressesOf(ep)) {
        await cluster.announce({ overlay, ip, mac: ep.mac, endpointId: ep.id });
        done.push(ip);
      }
    } catch (err) {
      for (const ip of done) await cluster.withdraw(overlay, ip, ep.id).catch((e: unknown) => this.d.log.warn({ err: e, ip }, 'could not withdraw a half-made announcement'));
      throw err;
    }
  }

  /** The other hosts forget a local endpoint (each of its addresses); called before its links go. */
  async withdraw(net: OverlayNetwork, ep: Pick<EndpointRecord, 'id' | 'address' | 'addressIpv6'>): Promise<void> {
    const overlay = net.config.overlay.name;
    if (!overlay || !this.d.cluster) return;
    for (const ip of addressesOf(ep)) await this.d.cluster.withdraw(overlay, ip, ep.id);
  }

  /**
   * After the drivers' restore: announces this host's endpoints again (a new lease), withdraws
   * announcements of this host that no endpoint backs any more (a crash between the two steps of
   * a delete), and starts the watch, whose first snapshot brings every VXLAN device in line.
   */
  async start(): Promise<void> {
    const cluster = this.d.cluster;
    if (!cluster) return;
    const backed = new Set<string>();
    for (const net of this.localNetworks()) {
      if (!net.config.overlay.name || net.state !== 'ready') continue;
      for (const ep of this.d.repo.listEndpoints(net.id)) {
        if (ep.state !== 'ready' || !ep.address) continue;
        backed.add(`${net.config.overlay.name} ${ep.id}`);
        try {
          await this.announce(net, ep);
        } catch (err) {
          this.d.log.error({ err, endpoint: ep.id }, 'could not announce an endpoint again; other hosts will not reach it');
        }
      }
    }
    for (const a of await cluster.listAnnouncements()) {
      if (a.host === cluster.host && !backed.has(`${a.overlay} ${a.endpointId}`)) await cluster.withdraw(a.overlay, a.ip, a.endpointId);
    }
    // every overlay this host has a network of counts it as a member (older tsnet kept no
    // members). Memberships without a network are not left here: one may be a create in flight
    // (its pool claimed, its network not made yet), and leaving would remove the pool under it
    for (const net of this.localNetworks()) if (net.config.overlay.name) await cluster.joinOverlay(net.config.overlay.name);
    await cluster.watchAnnouncements(this.listener());
  }

  /** Makes the overlay's VXLAN device hold exactly the remote containers the cluster announces. */
  reconcile(overlay: string): void {
    const net = this.networkOf(overlay);
    if (!net || !this.d.cluster) return;
    const vxlan = net.config.overlay.vxlan;
    try {
      const nl = this.d.netlinkOf(net);
      const wanted = remoteEntries(this.announced.get(overlay)?.values() ?? [], overlay, this.d.cluster.host);
      const ch = diffEntries(wanted, kernelEntries(nl.listFdb(vxlan), nl.listNeighbours(vxlan)));
      this.apply(net, ch);
      const counts = changeCounts(ch);
      if (Object.values(counts).some((n) => n > 0)) this.d.log.info({ overlay, ...counts }, 'remote endpoints reconciled');
    } catch (err) {
      this.d.log.error({ err, overlay }, 'could not reconcile the remote endpoints of an overlay');
    }
  }

  private listener(): AnnouncementListener {
    return {
      reset: (all) => {
        this.announced.clear();
        for (const a of all) this.remember(a);
        for (const net of this.localNetworks()) if (net.config.overlay.name) this.reconcile(net.config.overlay.name);
      },
      put: (a) => {
        const before = this.announced.get(a.overlay)?.get(a.ip);
        this.remember(a);
        if (before && (before.mac !== a.mac || before.vtep !== a.vtep)) this.reconcile(a.overlay);
        else this.program(a);
      },
      delete: (a) => {
        this.announced.get(a.overlay)?.delete(a.ip);
        this.reconcile(a.overlay);
      },
    };
  }

  private remember(a: EndpointAnnouncement): void {
    let byIp = this.announced.get(a.overlay);
    if (!byIp) this.announced.set(a.overlay, (byIp = new Map()));
    byIp.set(a.ip, a);
  }

  /** One new remote container: its entries, without listing the device's tables. */
  private program(a: EndpointAnnouncement): void {
    if (a.host === this.d.cluster?.host) return;
    const net = this.networkOf(a.overlay);
    if (!net) return;
    try {
      this.apply(net, diffEntries([{ ip: a.ip, mac: a.mac, vtep: a.vtep }], NO_ENTRIES));
      this.d.log.info({ overlay: a.overlay, ip: a.ip, host: a.host }, 'remote endpoint programmed');
    } catch (err) {
      this.d.log.error({ err, announcement: a }, 'could not program a remote endpoint');
    }
  }

  /** Applies a diff: removals first, then additions. */
  private apply(net: OverlayNetwork, ch: EntryChanges): void {
    const nl = this.d.netlinkOf(net);
    const vxlan = net.config.overlay.vxlan;
    for (const e of ch.removeFdb) nl.deleteFdb({ dev: vxlan, mac: e.mac, dst: e.dst, self: true }, { ignoreMissing: true });
    for (const mac of ch.removeBridge) nl.deleteFdb({ dev: vxlan, mac, master: true }, { ignoreMissing: true });
    for (const e of ch.removeNeighbours) nl.deleteNeighbour(vxlan, e.ip, { ignoreMissing: true });
    for (const e of ch.addFdb) nl.replaceFdb({ dev: vxlan, mac: e.mac, dst: e.dst, self: true, permanent: true });
    // static (not permanent: on a bridge that would mean the bridge's own address)
    for (const mac of ch.addBridge) nl.replaceFdb({ dev: vxlan, mac, master: true });
    for (const e of ch.addNeighbours) nl.replaceNeighbour({ dev: vxlan, ip: e.ip, mac: e.mac });
  }

  private networkOf(overlay: string): OverlayNetwork | undefined {
    return this.localNetworks().find((n) => n.config.overlay.name === overlay && n.state === 'ready');
  }

  private localNetworks(): OverlayNetwork[] {
    return this.d.repo.listNetworks<BridgeNetworkConfig & OverlayConfig>('overlay');
  }
}

/**
 * An endpoint's bare addresses as the cluster announces them: IPv4, then IPv6 when it has one, in
 * the kernel's text form (RFC 5952), so the entries compare equal to what the kernel lists.
 */
export function addressesOf(ep: Pick<EndpointRecord, 'address' | 'addressIpv6'>): string[] {
  return [ep.address, ep.addressIpv6].filter((a): a is string => Boolean(a)).map((a) => formatIp(parseIp(bareIp(a))));
}
