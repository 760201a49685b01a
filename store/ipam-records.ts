// IPAM's persistence seam. Pools and allocations are plain records; every change is one atomic
// operation, so the store can be SQLite on one host (store/ipam-repo.ts) or, later, a cluster-wide
// key-value store (etcd) for overlay networks:
//  - createPool reads the current pools and writes the new one atomically: `build` runs inside the
//    atomic step (an etcd version runs it in a transaction guarded by the pools' revision and may
//    call it again on a retry), so two hosts can never create overlapping pools;
//  - addAllocation is an insert-if-absent keyed by (pool, address), together with the pool's cursor:
//    when another writer got the address first it throws RepoConflictError('address-taken') and Ipam
//    reloads the pool and tries again. Ipam's in-memory view may be stale; the store decides.

export type AllocationKind = 'gateway' | 'static' | 'dynamic';

export interface PoolRecord {
  /** e.g. "local/10.1.0.0/24" or "local/10.1.0.0/24,range=10.1.0.128/25" */
  id: string;
  addressSpace: string;
  /** canonical CIDR */
  pool: string;
  /** canonical CIDR of the dynamic range (--ip-range), '' for the whole pool */
  subPool: string;
  v6: boolean;
  /** RequestPool options as Docker sent them (--ipam-opt and Docker's own) */
  options: Record<string, string>;
  /** true when tsnet chose the subnet (RequestPool without a Pool) */
  auto: boolean;
  /** ISO 8601 */
  createdAt: string;
}

export interface AllocationRecord {
  poolId: string;
  /** canonical bare address */
  address: string;
  /** gateway: a gateway request; static: an exact address (--ip, --aux-address); dynamic: next free */
  kind: AllocationKind;
  /** RequestAddress options as sent */
  options: Record<string, string>;
  /** ISO 8601 */
  createdAt: string;
}

/** What an allocator needs of a pool: the taken addresses and the last one handed out dynamically. */
export interface PoolState {
  /** canonical bare addresses, any order */
  addresses: string[];
  /** canonical bare address or null */
  cursor: string | null;
}

export type RepoConflict = 'address-taken' | 'pool-missing' | 'pool-exists';

/** A write lost against the store's current content; the caller reloads and decides. */
export class RepoConflictError extends Error {
  constructor(
    readonly conflict: RepoConflict,
    message: string,
  ) {
    super(message);
    this.name = 'RepoConflictError';
  }
}

export interface IpamRepo {
  /** Every pool (few: one per network and family). */
  listPools(): PoolRecord[];
  getPool(id: string): PoolRecord | undefined;
  /**
   * Atomically: reads the current pools, calls `build` with them (it returns the pool to add or
   * throws to abort, e.g. on overlap), and stores the result. Throws RepoConflictError('pool-exists')
   * when a pool with that id exists.
   */
  createPool(build: (existing: readonly PoolRecord[]) => PoolRecord): PoolRecord;
  /** Atomically removes the pool and all its allocations. No-op when unknown. */
  deletePool(id: string): void;
  /** The taken addresses and the cursor of a pool; empty when unknown. */
  loadPoolState(poolId: string): PoolState;
  /**
   * Atomically records the allocation and, when `cursor` is not null, sets the pool's cursor to it.
   * Throws RepoConflictError('address-taken') when the address is already allocated in the pool,
   * RepoConflictError('pool-missing') when the pool does not exist. Durable when it returns.
   */
  addAllocation(allocation: AllocationRecord, cursor: string | null): void;
  /** Removes one allocation. No-op when unknown. The cursor stays. */
  removeAllocation(poolId: string, address: string): void;
}
