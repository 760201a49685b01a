// Cluster-wide IPAM for overlay networks: a pool requested with `--ipam-opt overlay=NAME` lives in
// the cluster store, shared by every host that creates overlay NAME, and each address in it is
// claimed there by a transaction, so two hosts never hand out the same address. A dual-stack
// overlay (--ipv6) has an IPv6 pool beside its IPv4 one, claimed and allocated the same way. Every other pool
// stays with the host's own allocator (ipam.ts); withClusterPools() routes between the two.
//
// The gateway is the one address every host shares (each host's overlay bridge answers on it), so
// it is set once in the pool and never released by a host. The pool and its addresses go when the
// last host that has overlay NAME leaves it (store/cluster/, leaveOverlay).
import type { ClusterStore, PoolFamily } from '../store/cluster/cluster-store.js';
import { formatCidr, isNetworkAddress, parseCidr, parseIp, toNetwork, type Cidr } from './address.js';
import { PoolAllocator } from './allocator.js';
import {
  GATEWAY_REQUEST,
  REQUEST_ADDRESS_TYPE,
  type AddressSpaces,
  type IpamService,
  type RequestAddressRequest,
  type RequestAddressResult,
  type RequestPoolRequest,
  type RequestPoolResult,
} from './types.js';
import { UserError } from '../core/errors.js';

/** `--ipam-opt overlay=NAME`: the pool of overlay NAME, shared across the cluster. */
export const OVERLAY_POOL_OPTION = 'overlay';
/** Pool IDs Docker keeps for an overlay's two pools: `overlay/NAME` (IPv4) and `overlay6/NAME` (IPv6). */
const POOL_ID_PREFIX = { 4: 'overlay/', 6: 'overlay6/' } as const;
const MAX_ATTEMPTS = 20;

/** Names of overlays as they appear in store keys and options. */
export const OVERLAY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function checkOverlayName(name: string, what: string): void {
  if (!OVERLAY_NAME.test(name)) {
    throw new UserError(`${what} '${name}' is not a valid overlay name: use 1-63 letters, digits, '_', '.', '-', starting with a letter or digit`);
  }
}

export class ClusterIpam {
  /** the last address this host handed out per overlay, so freed addresses are not reused at once */
  private readonly cursors = new Map<string, bigint>();

  /**
   * `hasNetwork(name)`: this host has a network of overlay NAME (then a released pool keeps this
   * host a member: Docker releases the pool of a create that failed, e.g. a second network of it).
   */
  constructor(
    private readonly store: ClusterStore | undefined,
    private readonly hasNetwork: (overlay: string) => boolean = () => false,
  ) {}

  async requestPool(req: RequestPoolRequest): Promise<RequestPoolResult> {
    const name = req.options[OVERLAY_POOL_OPTION];
    checkOverlayName(name, `--ipam-opt ${OVERLAY_POOL_OPTION}`);
    const family: PoolFamily = req.v6 ? 6 : 4;
    const store = this.requireStore(name);
    const subnet = req.pool ? canonicalNetwork(req.pool, 'subnet', family) : '';
    const subPool = req.subPool ? canonicalNetwork(req.subPool, 'ip-range', family) : '';
    if (subPool && !subnet) throw new UserError(`ip-range ${subPool} was given without a subnet: give --subnet together with --ip-range`);
    if (subnet) new PoolAllocator(parseCidr(subnet), subPool ? parseCidr(subPool) : undefined); // validates the range
    // a member first: a last member leaving elsewhere cannot remove the pool under us
    await store.joinOverlay(name);
    const pool = await store.claimPool(name, { subnet, subPool }, family);
    return { poolId: POOL_ID_PREFIX[family] + name, pool: pool.subnet, data: {} };
  }

  /** This host leaves the overlay unless it has a network of it; the last host to leave removes the pool. */
  async releasePool(poolId: string): Promise<void> {
    const { name } = parsePoolId(poolId);
    if (!this.store || this.hasNetwork(name)) return;
    await this.store.leaveOverlay(name);
  }

  async requestAddress(req: RequestAddressRequest): Promise<RequestAddressResult> {
    const { name, family } = parsePoolId(req.poolId);
    const store = this.requireStore(name);
    const options = req.options ?? {};
    const gateway = options[REQUEST_ADDRESS_TYPE] === GATEWAY_REQUEST;
    const cursorKey = `${family} ${name}`;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const pool = await store.getPool(name, family);
      if (!pool) throw new UserError(`unknown IPAM pool ID '${req.poolId}': overlay '${name}' has no ${family === 6 ? 'IPv6 ' : ''}pool in the cluster`);
      // the overlay's addresses of both families are listed together
      const taken = (await store.listAddresses(name)).filter((a) => parseIp(a.address).family === family);
      const cidr = parseCidr(pool.subnet);
      const alloc = new PoolAllocator(cidr, pool.subPool ? parseCidr(pool.subPool) : undefined, {
        // the gateway is never a container's, also while its own claim is still on its way
        allocated: [...taken.map((a) => parseIp(a.address).value), ...(pool.gateway ? [parseIp(pool.gateway).value] : [])],
        cursor: this.cursors.get(cursorKey),
      });
      if (gateway) {
        // every host shares the gateway: the first one to ask sets it
        const wanted = req.address ? formatBare(alloc, req.address, pool.gateway) : pool.gateway || alloc.format(alloc.lowestFree());
        const gw = await store.setGateway(name, wanted, family);
        if (req.address && gw !== wanted) {
          throw new UserError(`overlay '${name}' has gateway ${gw} in the cluster, not ${wanted}: give the same --gateway on every host, or none`);
        }
        if (!(await store.claimAddress(name, gw, 'gateway'))) {
          // held already: by the gateway (another host's claim), or by a container that took it
          // between our listing and setGateway, which the cluster cannot take back
          const holder = (await store.listAddresses(name)).find((a) => a.address === gw);
          if (holder && holder.kind !== 'gateway') {
            throw new UserError(`overlay '${name}': its gateway ${gw} is held by a container on host ${holder.host}; remove that container and create the network again`, 'conflict');
          }
        }
        return { address: `${gw}/${cidr.prefix}`, data: {} };
      }
      if (req.address) {
        const v = alloc.checkExact(parseIp(bare(req.address)));
        if (await store.claimAddress(name, alloc.format(v), 'static')) return { address: alloc.formatWithPrefix(v), data: {} };
        continue; // taken meanwhile: the next round reports it as in use
      }
      const v = alloc.nextFree();
      if (await store.claimAddress(name, alloc.format(v), 'dynamic')) {
        this.cursors.set(cursorKey, v);
        return { address: alloc.formatWithPrefix(v), data: {} };
      }
    }
    throw new Error(`could not allocate an address on overlay '${name}': other hosts kept taking the chosen ones`);
  }

  async releaseAddress(poolId: string, address: string): Promise<void> {
    if (!address || !this.store) return;
    await this.store.releaseAddress(parsePoolId(poolId).name, bare(address));
  }

  private requireStore(name: string): ClusterStore {
    if (!this.store) {
      throw new UserError(
        `the pool of overlay '${name}' is shared across hosts and needs the cluster store: start tsnet with --store etcd://HOST:2379 (or TSNET_STORE), or leave out --ipam-opt overlay`,
      );
    }
    return this.store;
  }
}

export function isClusterPool(poolId: string): boolean {
  return poolId.startsWith(POOL_ID_PREFIX[4]) || poolId.startsWith(POOL_ID_PREFIX[6]);
}

function parsePoolId(poolId: string): { name: string; family: PoolFamily } {
  const family: PoolFamily = poolId.startsWith(POOL_ID_PREFIX[6]) ? 6 : 4;
  return { name: poolId.slice(POOL_ID_PREFIX[family].length), family };
}

/** The IPAM service Docker talks to: overlay pools go to the cluster, everything else stays local. */
export function withClusterPools(local: IpamService, cluster: ClusterIpam): IpamService {
  return {
    getDefaultAddressSpaces: (): AddressSpaces => local.getDefaultAddressSpaces(),
    requestPool: (req) => (req.options?.[OVERLAY_POOL_OPTION] !== undefined ? cluster.requestPool(req) : local.requestPool(req)),
    releasePool: (id) => (isClusterPool(id) ? cluster.releasePool(id) : local.releasePool(id)),
    requestAddress: (req) => (isClusterPool(req.poolId) ? cluster.requestAddress(req) : local.requestAddress(req)),
    releaseAddress: (id, address) => (isClusterPool(id) ? cluster.releaseAddress(id, address) : local.releaseAddress(id, address)),
  };
}

function bare(address: string): string {
  return address.trim().split('/')[0];
}

function formatBare(alloc: PoolAllocator, address: string, currentGateway: string): string {
  const ip = parseIp(bare(address));
  const text = alloc.format(ip.value);
  // the gateway already set is taken by itself: asking for it again is fine
  return text === currentGateway ? text : alloc.format(alloc.checkExact(ip));
}

function canonicalNetwork(text: string, what: string, family: PoolFamily): string {
  const c: Cidr = parseCidr(text.trim());
  if (!isNetworkAddress(c)) throw new UserError(`${what} ${text} is not a network address (host bits are set): use ${formatCidr(toNetwork(c))}`);
  if (c.family !== family) throw new UserError(`${what} ${text} is IPv${c.family} where Docker asked for the overlay's IPv${family} pool`);
  return formatCidr(c);
}
