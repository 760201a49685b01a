// What a host does with one of its announcements when it registers again after losing its lease
// (cut off from etcd longer than --lease-ttl, a partition healed): the announcement went with the
// lease, and `tsnet cluster forget` may have freed its address in the overlay's cluster pool
// meanwhile. The host puts both back (the announcement under its new lease, the address claim if
// the overlay has a cluster pool), so the cluster records again that the address is its
// container's. Where another endpoint or host took either one meanwhile, the returning host's
// container is the one that gives the address up: nothing is written and the holder is named
// (etcd-store.ts tells the daemon, daemon/address-taken.ts cuts the container off).
// A claim put back keeps the kind it had: an address given with --ip stays 'static' (the host
// remembers the kind of each claim it made or saw as its own; a daemon started after the claim
// was freed no longer knows, and claims it as 'dynamic').
// Pure, so each case is unit-tested; etcd-store.ts reads the three keys and writes the plan in
// one transaction guarded by what it read.
import { shortId } from '../../core/text.js';
import type { AddressKind } from './cluster-store.js';

/** Who holds an address in the cluster; endpointId '' when only its claim in the pool is known. */
export interface AddressHolder {
  endpointId: string;
  host: string;
}

/** The three keys of one of this host's announcements as etcd holds them now (undefined: absent). */
export interface ReclaimView {
  /** this host and the local endpoint that had the address */
  host: string;
  endpointId: string;
  /** endpoints/<overlay>/<ip> */
  announcement?: { endpointId: string; host: string };
  /** addresses/<overlay>/<ip> */
  claim?: { kind: string; host: string };
  /** the overlay has a cluster pool of the address's family (cluster IPAM) */
  pooled: boolean;
  /** how this host claimed the address, when it knows ('dynamic' is assumed otherwise) */
  claimedAs?: ContainerAddressKind;
}

/** The kinds of a container's address (the gateway is every host's, never reclaimed). */
export type ContainerAddressKind = Exclude<AddressKind, 'gateway'>;

/** Who holds it, or whether to claim it again and as what (false: the claim stands, or there is no pool). */
export type ReclaimPlan = { taken: AddressHolder } | { taken?: undefined; claim: ContainerAddressKind | false };

export function reclaimPlan(v: ReclaimView): ReclaimPlan {
  if (v.announcement && v.announcement.endpointId !== v.endpointId) return { taken: { endpointId: v.announcement.endpointId, host: v.announcement.host } };
  // claimed by another host (its container may not be announced yet), or the shared gateway
  if (v.claim && (v.claim.host !== v.host || v.claim.kind === 'gateway')) return { taken: { endpointId: '', host: v.claim.host } };
  return { claim: v.pooled && !v.claim ? (v.claimedAs ?? 'dynamic') : false };
}

/** "endpoint abababababab on host h2", or "host h2" when only the claim is known. */
export function describeHolder(h: AddressHolder): string {
  return h.endpointId ? `endpoint ${shortId(h.endpointId)} on host ${h.host}` : `host ${h.host}`;
}
