// What the daemon does when its cluster store reports that the address of a local overlay
// endpoint went to another endpoint while this host's lease was gone (cut off from etcd for longer
// than --lease-ttl, its addresses freed with `tsnet cluster forget` or, with Docker's own IPAM,
// overlapping --ip-range, and given out again): the store keeps the other holder's announcement
// (store/cluster/etcd-store.ts onAddressTaken), and here the local container stops using the
// address, its host-side link taken down, so the overlay never has two holders of one address.
// Only the runtime can give the container a new address (disconnect and connect it), so the log
// says that. A restart of the daemon puts the link up again (the bridge restore) and then fails
// to announce it, logged.
import type { AddressTaken } from '../store/cluster/etcd-store.js';
import type { NetworkRepo } from '../store/network-repo.js';
import type { Netlink } from '../native/netlink/netlink.js';
import { errorText } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { shortId } from '../core/text.js';

export interface AddressTakenDeps {
  repo: Pick<NetworkRepo, 'getEndpoint'>;
  netlink: Pick<Netlink, 'setLink'>;
  log: Logger;
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
      d.netlink.setLink(link, { up: false });
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
