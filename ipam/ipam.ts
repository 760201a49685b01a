// tsnet's IPAM (`--ipam-driver tsnet`): pools per address space and addresses within them, every
// change committed to the store before the reply, so an address is never handed out twice, across
// daemon restarts and crashes included.
//
// Address spaces: `local` (local-scope networks) and `global` (cluster-wide networks, later). Any
// other name Docker sends is accepted and behaves like `local`; an empty one means `local`. Pools
// must not overlap within one address space; a subnet chosen by tsnet overlaps no pool of any space
// and none of the host's routes.
//
// Pool IDs: "<space>/<subnet>", plus ",range=<ip-range>" when there is a sub-pool, e.g.
// "local/10.1.0.0/24,range=10.1.0.128/25": readable in logs and Docker's inspect output, unique
// among live pools (overlaps are refused), stable (the same request gives the same ID).
//
// Memory: pool records are loaded at construction (one per network and family); a pool's
// allocations are loaded on its first use, as ranges (see range-set.ts).
import { GATEWAY_REQUEST, REQUEST_ADDRESS_TYPE } from './types.js';
import type { AddressSpaces, IpamService, RequestAddressRequest, RequestAddressResult, RequestPoolRequest, RequestPoolResult } from './types.js';
import {
  containsCidr,
  formatCidr,
  formatIp,
  isNetworkAddress,
  overlaps,
  parseCidr,
  parseIp,
  toNetwork,
  tryParsePrefix,
  type Cidr,
  type IpAddress,
} from './address.js';
import { PoolAllocator } from './allocator.js';
import {
  findFreeSubnet,
  GLOBAL_DEFAULT_POOLS,
  ipv6DefaultPools,
  LOCAL_DEFAULT_POOLS,
  parseDefaultPools,
  readMachineId,
  type DefaultPool,
  type ParsedDefaultPool,
} from './default-pools.js';
import { RepoConflictError, type AllocationKind, type IpamRepo, type PoolRecord } from '../store/ipam-records.js';
import { UserError } from '../core/errors.js';

export type { IpamRepo, PoolRecord, AllocationRecord, AllocationKind, PoolState } from '../store/ipam-records.js';
export { RepoConflictError } from '../store/ipam-records.js';

export const LOCAL_ADDRESS_SPACE = 'local';
export const GLOBAL_ADDRESS_SPACE = 'global';

export interface DefaultPoolsConfig {
  /** IPv4 subnets for the local address space (and any space other than global) */
  local?: DefaultPool[];
  /** IPv4 subnets for the global address space */
  global?: DefaultPool[];
  /** IPv6 subnets for every address space; default: the /64s of this host's ULA /48 */
  ipv6?: DefaultPool[];
}

export interface IpamConfig {
  /** The host's routes as CIDRs (bare addresses count as /32, /128; default routes are ignored). */
  hostRoutes?: () => string[];
  defaultPools?: DefaultPoolsConfig;
  /** Source of the host ID for the IPv6 ULA prefix; default /etc/machine-id. Read on first need. */
  machineId?: () => string;
  now?: () => Date;
}

/** Attempts at an allocation when another writer keeps taking the chosen address first. */
const MAX_ATTEMPTS = 5;

interface LivePool {
  record: PoolRecord;
  pool: Cidr;
  subPool: Cidr | undefined;
  /** loaded on first use */
  allocator?: PoolAllocator;
}

export interface PoolUsage {
  poolId: string;
  pool: string;
  subPool: string;
  /** allocated addresses */
  allocated: bigint;
  /** ranges held in memory for them */
  ranges: number;
}

export function poolIdOf(addressSpace: string, pool: string, subPool: string): string {
  return subPool ? `${addressSpace}/${pool},range=${subPool}` : `${addressSpace}/${pool}`;
}

export class Ipam implements IpamService {
  private readonly pools = new Map<string, LivePool>();
  private readonly hostRoutes: () => string[];
  private readonly now: () => Date;
  private readonly localPools: ParsedDefaultPool[];
  private readonly globalPools: ParsedDefaultPool[];
  private ipv6Pools: ParsedDefaultPool[] | undefined;
  private readonly ipv6Config: DefaultPool[] | undefined;
  private readonly machineId: () => string;

  constructor(
    private readonly repo: IpamRepo,
    config: IpamConfig = {},
  ) {
    this.hostRoutes = config.hostRoutes ?? (() => []);
    this.now = config.now ?? (() => new Date());
    this.machineId = config.machineId ?? readMachineId;
    this.localPools = parseDefaultPools(config.defaultPools?.local ?? LOCAL_DEFAULT_POOLS);
    this.globalPools = parseDefaultPools(config.defaultPools?.global ?? GLOBAL_DEFAULT_POOLS);
    this.ipv6Config = config.defaultPools?.ipv6;
    if (this.ipv6Config) this.ipv6Pools = parseDefaultPools(this.ipv6Config);
    for (const record of repo.listPools()) this.pools.set(record.id, toLive(record));
  }

  getDefaultAddressSpaces(): AddressSpaces {
    return { localDefaultAddressSpace: LOCAL_ADDRESS_SPACE, globalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
  }

  // -------------------------------------------------------------------------------------------
  // pools

  requestPool(req: RequestPoolRequest): RequestPoolResult {
    const space = req.addressSpace || LOCAL_ADDRESS_SPACE;
    const options = { ...(req.options ?? {}) };
    const record = req.pool ? this.createExplicitPool(space, req, options) : this.createAutoPool(space, req, options);
    this.pools.set(record.id, toLive(record));
    return { poolId: record.id, pool: record.pool, data: {} };
  }

  private createExplicitPool(space: string, req: RequestPoolRequest, options: Record<string, string>): PoolRecord {
    const pool = parseNetwork(req.pool, 'subnet');
    checkFamily(pool, req.v6, 'subnet');
    let subPool: Cidr | undefined;
    if (req.subPool) {
      subPool = parseNetwork(req.subPool, 'ip-range');
      if (!containsCidr(pool, subPool)) throw new UserError(`ip-range ${formatCidr(subPool)} is not inside subnet ${formatCidr(pool)}`);
      if (!new PoolAllocator(pool, subPool).hasDynamicRange) {
        throw new UserError(`ip-range ${formatCidr(subPool)} holds no assignable address of subnet ${formatCidr(pool)}: use a larger --ip-range`);
      }
    }
    const poolText = formatCidr(pool);
    const subText = subPool ? formatCidr(subPool) : '';
    return this.insertPool((existing) => {
      for (const other of existing) {
        if (other.addressSpace !== space) continue;
        if (overlaps(pool, parseCidr(other.pool))) {
          throw new UserError(`subnet ${poolText} overlaps ${other.pool} of another tsnet network: choose a different --subnet`);
        }
      }
      return this.newRecord(space, poolText, subText, req.v6, options, false);
    });
  }

  private createAutoPool(space: string, req: RequestPoolRequest, options: Record<string, string>): PoolRecord {
    if (req.subPool) {
      throw new UserError(`ip-range ${req.subPool} was given without a subnet: give --subnet together with --ip-range`);
    }
    const family = req.v6 ? 6 : 4;
    const candidates = req.v6 ? this.ipv6Defaults() : space === GLOBAL_ADDRESS_SPACE ? this.globalPools : this.localPools;
    const routes: Cidr[] = [];
    for (const r of this.hostRoutes()) {
      const c = tryParsePrefix(r.trim());
      // a default route covers everything and says nothing about which subnets are in use
      if (c && c.prefix > 0) routes.push(c);
    }
    return this.insertPool((existing) => {
      // avoid pools of every address space: they may all be routed on this host
      const excluded = [...routes, ...existing.map((p) => parseCidr(p.pool))];
      const subnet = findFreeSubnet(candidates, family, excluded);
      if (!subnet) {
        throw new UserError(
          `no free IPv${family} subnet left in the default pools of address space ${space}: give --subnet, or remove networks you no longer need`,
        );
      }
      return this.newRecord(space, formatCidr(subnet), '', req.v6, options, true);
    });
  }

  private insertPool(build: (existing: readonly PoolRecord[]) => PoolRecord): PoolRecord {
    try {
      return this.repo.createPool(build);
    } catch (err) {
      if (err instanceof RepoConflictError && err.conflict === 'pool-exists') {
        throw new UserError(`${err.message}: choose a different --subnet`);
      }
      throw err;
    }
  }

  private newRecord(space: string, pool: string, subPool: string, v6: boolean, options: Record<string, string>, auto: boolean): PoolRecord {
    return { id: poolIdOf(space, pool, subPool), addressSpace: space, pool, subPool, v6, options, auto, createdAt: this.now().toISOString() };
  }

  private ipv6Defaults(): ParsedDefaultPool[] {
    this.ipv6Pools ??= parseDefaultPools(ipv6DefaultPools(this.machineId()));
    return this.ipv6Pools;
  }

  releasePool(poolId: string): void {
    this.repo.deletePool(poolId);
    this.pools.delete(poolId);
  }

  // -------------------------------------------------------------------------------------------
  // addresses

  requestAddress(req: RequestAddressRequest): RequestAddressResult {
    const options = { ...(req.options ?? {}) };
    const gateway = options[REQUEST_ADDRESS_TYPE] === GATEWAY_REQUEST;
    const wanted = req.address ? parseRequestedAddress(req.address) : undefined;
    for (let attempt = 1; ; attempt++) {
      const live = this.livePool(req.poolId);
      if (!live) throw new UserError(`unknown IPAM pool ID '${req.poolId}': the pool was released or was not requested from tsnet`);
      const alloc = this.allocatorOf(live);
      let value: bigint;
      let kind: AllocationKind;
      if (wanted) {
        value = alloc.checkExact(wanted);
        kind = gateway ? 'gateway' : 'static';
      } else if (gateway) {
        value = alloc.lowestFree();
        kind = 'gateway';
      } else {
        value = alloc.nextFree();
        kind = 'dynamic';
      }
      const address = alloc.format(value);
      try {
        this.repo.addAllocation(
          { poolId: live.record.id, address, kind, options, createdAt: this.now().toISOString() },
          kind === 'dynamic' ? address : null,
        );
      } catch (err) {
        if (!(err instanceof RepoConflictError)) throw err;
        if (attempt >= MAX_ATTEMPTS) throw new Error(`could not allocate an address in pool ${live.record.pool}: the store kept reporting conflicts`);
        // another writer released the pool or took the address: reload what the store holds and
        // decide again (an exact request then fails with "already in use", a gone pool as unknown)
        this.pools.delete(live.record.id);
        continue;
      }
      alloc.markAllocated(value, kind === 'dynamic');
      return { address: alloc.formatWithPrefix(value), data: {} };
    }
  }

  releaseAddress(poolId: string, address: string): void {
    const live = this.livePool(poolId);
    if (!address || !live) return;
    const ip = parseRequestedAddress(address);
    if (ip.family !== live.pool.family) return;
    const text = formatIp(ip);
    this.repo.removeAllocation(live.record.id, text);
    live.allocator?.release(ip.value);
  }

  // -------------------------------------------------------------------------------------------
  // introspection

  /** Allocation counts per pool (for status output and tests). Loads every pool's allocations. */
  usage(): PoolUsage[] {
    return [...this.pools.values()].map((live) => {
      const a = this.allocatorOf(live);
      return { poolId: live.record.id, pool: live.record.pool, subPool: live.record.subPool, allocated: a.allocatedCount, ranges: a.rangeCount };
    });
  }

  /** The pool records known to this instance. */
  listPools(): PoolRecord[] {
    return [...this.pools.values()].map((l) => l.record);
  }

  private livePool(poolId: string): LivePool | undefined {
    const cached = this.pools.get(poolId);
    if (cached) return cached;
    // created by another writer sharing the store?
    const record = this.repo.getPool(poolId);
    if (!record) return undefined;
    const live = toLive(record);
    this.pools.set(record.id, live);
    return live;
  }

  private allocatorOf(live: LivePool): PoolAllocator {
    if (!live.allocator) {
      const state = this.repo.loadPoolState(live.record.id);
      const family = live.pool.family;
      const values: bigint[] = [];
      for (const a of state.addresses) {
        const ip = parseIp(a);
        if (ip.family === family) values.push(ip.value);
      }
      const cursor = state.cursor ? parseIp(state.cursor) : undefined;
      live.allocator = new PoolAllocator(live.pool, live.subPool, {
        allocated: values,
        cursor: cursor && cursor.family === family ? cursor.value : undefined,
      });
    }
    return live.allocator;
  }
}

function toLive(record: PoolRecord): LivePool {
  return {
    record,
    pool: toNetwork(parseCidr(record.pool)),
    subPool: record.subPool ? toNetwork(parseCidr(record.subPool)) : undefined,
  };
}

/** A CIDR that must be a network address; `what` names it in the message ("subnet", "ip-range"). */
function parseNetwork(text: string, what: string): Cidr {
  const c = parseCidr(text.trim());
  if (!isNetworkAddress(c)) {
    throw new UserError(`${what} ${text} is not a network address (host bits are set): use ${formatCidr(toNetwork(c))}`);
  }
  return c;
}

function checkFamily(c: Cidr, v6: boolean, what: string): void {
  const family = v6 ? 6 : 4;
  if (c.family !== family) {
    throw new UserError(`${what} ${formatCidr(c)} is IPv${c.family} but the request is for an IPv${family} pool`);
  }
}

/** A bare address, or a CIDR whose address part is taken. */
function parseRequestedAddress(text: string): IpAddress {
  const t = text.trim();
  if (t.includes('/')) {
    const c = parseCidr(t);
    return { family: c.family, value: c.address };
  }
  return parseIp(t);
}
