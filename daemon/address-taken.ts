// What the daemon does when its cluster store reports that the address of a local overlay
// endpoint went to another endpoint while this host's lease was gone (cut off from etcd for longer
// than --lease-ttl, its addresses freed with `tsnet cluster forget` or, with Docker's own IPAM,
// overlapping --ip-range, and given out again): the store keeps the other holder's announcement
// (store/cluster/etcd-store.ts onAddressTaken), and here the local container stops using the
// address, its host-side link taken down, so the overlay never has two holders of one address.
// Only the runtime can give the container a new address (disconnect and connect it), so the log
// says that.
//
// The cut-off is remembered in the state directory (cut-off.json), so it outlives the daemon: the
// drivers' restore (at start-up, and in a drift repair) puts every port up, and keepCutOff() then
// takes these links down again before anything is served; the store never announces them again
// (isCutOff), and `tsnet doctor` lists them. An endpoint the runtime removed leaves the list.
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressTaken } from '../store/cluster/etcd-store.js';
import type { EndpointAnnouncement } from '../store/cluster/cluster-store.js';
import type { OverlayConfig } from '../drivers/overlay/plan.js';
import { addressesOf } from '../drivers/overlay/peers.js';
import { describeHolder } from '../store/cluster/reclaim.js';
import type { NetworkRepo } from '../store/network-repo.js';
import { Netlink } from '../native/netlink/netlink.js';
import { errorText } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { shortId } from '../core/text.js';

type Links = Pick<Netlink, 'getLink' | 'setLink'>;

/** One cut-off endpoint, as cut-off.json keeps it. */
export interface CutOffRecord extends AddressTaken {
  /** ISO 8601 */
  since: string;
}

export function cutOffPath(stateDir: string): string {
  return join(stateDir, 'cut-off.json');
}

/** The cut-off endpoints a daemon recorded in stateDir (none when it recorded none). */
export function readCutOffs(stateDir: string): CutOffRecord[] {
  try {
    return JSON.parse(readFileSync(cutOffPath(stateDir), 'utf8')) as CutOffRecord[];
  } catch {
    return [];
  }
}

/** The cut-off endpoints of this daemon, kept in a file written whole (temporary file, rename). */
export class CutOffs {
  private records: CutOffRecord[];

  constructor(private readonly stateDir: string) {
    this.records = readCutOffs(stateDir);
  }

  has(endpointId: string): boolean {
    return this.records.some((r) => r.endpointId === endpointId);
  }

  list(): readonly CutOffRecord[] {
    return this.records;
  }

  add(t: AddressTaken): void {
    this.records = [...this.records.filter((r) => r.endpointId !== t.endpointId || r.ip !== t.ip), { ...t, since: new Date().toISOString() }];
    this.save();
  }

  /** Forgets the endpoints that are gone (the runtime disconnected them). */
  prune(exists: (endpointId: string) => boolean): void {
    const kept = this.records.filter((r) => exists(r.endpointId));
    if (kept.length === this.records.length) return;
    this.records = kept;
    this.save();
  }

  private save(): void {
    const path = cutOffPath(this.stateDir);
    writeFileSync(`${path}.tmp`, JSON.stringify(this.records, null, 2));
    renameSync(`${path}.tmp`, path);
  }
}

export interface AddressTakenDeps {
  repo: Pick<NetworkRepo, 'getEndpoint'>;
  /** the host's namespace */
  netlink: Links;
  /**
   * The named namespaces (`ip netns`) to look in when the link is not in the host's: an overlay
   * network may keep its ports in a namespace of its own. Default: every one in /run/netns.
   */
  namedNetns?: () => { path: string; open: () => Links & { close(): void } }[];
  /** where the cut-offs are remembered; none in unit tests that do not need it */
  cutOffs?: CutOffs;
  log: Logger;
}

function namedNetnsOfHost(): { path: string; open: () => Netlink }[] {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    // none
  }
  return names.map((n) => ({ path: join('/run/netns', n), open: () => Netlink.openInNetns(join('/run/netns', n)) }));
}

/** Takes link down where it is: the host's namespace, else the first named one holding it; false when none does. */
function takeDown(d: AddressTakenDeps, link: string): boolean {
  if (d.netlink.getLink(link)) {
    d.netlink.setLink(link, { up: false });
    return true;
  }
  for (const ns of (d.namedNetns ?? namedNetnsOfHost)()) {
    const nl = ns.open();
    try {
      if (!nl.getLink(link)) continue;
      nl.setLink(link, { up: false });
      return true;
    } finally {
      nl.close();
    }
  }
  return false;
}

/** The store's onAddressTaken: takes the local endpoint's host-side link down and says why. */
export function cutOffTakenEndpoint(d: AddressTakenDeps): (taken: AddressTaken) => void {
  return (t) => {
    const link = d.repo.getEndpoint<{ hostIf?: string }>(t.endpointId)?.config.hostIf;
    const where = { overlay: t.overlay, ip: t.ip, endpoint: t.endpointId, holder: t.holder, link };
    if (!link) {
      d.log.warn(where, 'an address this host announced went to another endpoint, and no local endpoint uses it any more');
      return;
    }
    // remembered first: whatever happens to the link now, a restart keeps the endpoint cut off
    d.cutOffs?.add(t);
    try {
      if (!takeDown(d, link)) throw new Error(`link ${link} is in no namespace`);
    } catch (err) {
      d.log.error({ ...where, err: errorText(err) }, 'could not take down the link of an endpoint whose address another host holds now');
      return;
    }
    d.log.error(where, cutOffMessage(t));
  };
}

function cutOffMessage(t: AddressTaken): string {
  return (
    `endpoint ${shortId(t.endpointId)} is cut off: its address ${t.ip} on overlay '${t.overlay}' went to ${describeHolder(t.holder)} ` +
    'while this host was away from the cluster store; disconnect and connect the container (or restart it) to give it a new address'
  );
}

/**
 * After the drivers' restore (which puts every container port up): takes the links of the
 * remembered cut-off endpoints down again, and forgets those the runtime removed meanwhile.
 */
export function keepCutOff(d: AddressTakenDeps & { cutOffs: CutOffs }): void {
  d.cutOffs.prune((id) => d.repo.getEndpoint(id) !== undefined);
  for (const t of d.cutOffs.list()) {
    const link = d.repo.getEndpoint<{ hostIf?: string }>(t.endpointId)?.config.hostIf;
    try {
      if (link && takeDown(d, link)) continue;
      d.log.warn({ endpoint: t.endpointId, link }, 'a cut-off endpoint has no link to keep down');
    } catch (err) {
      d.log.error({ endpoint: t.endpointId, link, err: errorText(err) }, 'could not keep the link of a cut-off endpoint down');
    }
  }
  if (d.cutOffs.list().length > 0) d.log.warn({ endpoints: d.cutOffs.list().map((t) => t.endpointId) }, `${d.cutOffs.list().length} endpoint(s) stay cut off: their addresses went to other containers (tsnet doctor lists them)`);
}

/** The controller as drift repair sees it: each restore is followed by keepCutOff. */
export function keepingCutOff<C extends { restore(): unknown }>(controller: C, d: AddressTakenDeps & { cutOffs: CutOffs }): C {
  return new Proxy(controller, {
    get: (target, prop) => {
      if (prop === 'restore') {
        return () => {
          const done = target.restore();
          keepCutOff(d);
          return done;
        };
      }
      const v: unknown = Reflect.get(target, prop);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * This host's overlay endpoints as the store announces them (one per address), for the store's
 * start: it claims them again before anything else, as after a lost lease (etcd-store.ts).
 */
export function localAnnouncements(repo: Pick<NetworkRepo, 'listNetworks' | 'listEndpoints'>): Omit<EndpointAnnouncement, 'host' | 'vtep'>[] {
  const out: Omit<EndpointAnnouncement, 'host' | 'vtep'>[] = [];
  for (const net of repo.listNetworks<OverlayConfig>('overlay')) {
    const overlay = net.config.overlay.name;
    if (!overlay || net.state !== 'ready') continue;
    for (const ep of repo.listEndpoints(net.id)) {
      if (ep.state === 'ready') for (const ip of addressesOf(ep)) out.push({ overlay, ip, mac: ep.mac, endpointId: ep.id });
    }
  }
  return out;
}
