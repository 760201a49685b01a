// What the daemon does when its cluster store reports that the address of a local overlay
// endpoint went to another endpoint while this host's lease was gone (cut off from etcd for longer
// than --lease-ttl, its addresses freed with `tsnet cluster forget` or, with Docker's own IPAM,
// overlapping --ip-range, and given out again): the store keeps the other holder's announcement
// (store/cluster/etcd-store.ts onAddressTaken), and here the local container stops using the
// address, its host-side link taken down, so the overlay never has two holders of one address.
// Only the runtime can give the container a new address (disconnect and connect it), so the log
// says that. A restart of the daemon puts the link up again (the bridge restore) and then fails
// to announce it, logged.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressTaken } from '../store/cluster/etcd-store.js';
import type { NetworkRepo } from '../store/network-repo.js';
import { Netlink } from '../native/netlink/netlink.js';
import { errorText } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { shortId } from '../core/text.js';

type Links = Pick<Netlink, 'getLink' | 'setLink'>;

export interface AddressTakenDeps {
  repo: Pick<NetworkRepo, 'getEndpoint'>;
  /** the host's namespace */
  netlink: Links;
  /**
   * The named namespaces (`ip netns`) to look in when the link is not in the host's: an overlay
   * network may keep its ports in a namespace of its own. Default: every one in /run/netns.
   */
  namedNetns?: () => { path: string; open: () => Links & { close(): void } }[];
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
    try {
      if (!takeDown(d, link)) throw new Error(`link ${link} is in no namespace`);
    } catch (err) {
      d.log.error({ ...where, err: errorText(err) }, 'could not take down the link of an endpoint whose address another host holds now');
      return;
    }
    d.log.error(
      where,
      `endpoint ${shortId(t.endpointId)} is cut off: its address ${t.ip} on overlay '${t.overlay}' went to endpoint ${shortId(t.holder.endpointId)} on host ${t.holder.host} ` +
        "while this host was away from the cluster store; disconnect and connect the container (or restart it) to give it a new address",
    );
  };
}
