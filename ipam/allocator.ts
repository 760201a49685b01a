// One pool's address allocator: which addresses of a subnet are taken, which one comes next.
// Pure (no I/O) so it can be tested alone and so the caller can commit an allocation to the store
// before it counts: plan with nextFree()/lowestFree()/checkExact(), persist, then markAllocated().
//
// Rules:
//  - IPv4 pools reserve the network and broadcast addresses, except /31 and /32 (RFC 3021: both
//    addresses of a /31 are hosts). IPv6 pools reserve the subnet-router anycast address (the first
//    one), except /127 and /128 (RFC 6164).
//  - Dynamic allocation takes the next free address after the last one handed out, wrapping once,
//    within the sub-pool (--ip-range) if there is one: a released address is not reused at once,
//    which keeps stale ARP entries and late packets from reaching a new container.
//  - Exact requests (--ip, --gateway, --aux-address) may lie anywhere in the pool, the sub-pool
//    does not limit them; they are served exactly or refused, and do not move the cursor.
import { containsCidr, formatAddress, formatCidr, isNetworkAddress, lastOf, networkOf, type Cidr, type IpAddress } from './address.js';
import { RangeSet } from './range-set.js';
import { UserError } from '../core/errors.js';

export interface AllocatorState {
  /** addresses already taken */
  allocated?: Iterable<bigint>;
  /** the last address handed out dynamically; the next one starts after it */
  cursor?: bigint;
}

export class PoolAllocator {
  readonly pool: Cidr;
  readonly subPool: Cidr | undefined;
  /** first and last assignable address of the pool */
  readonly usableLo: bigint;
  readonly usableHi: bigint;
  /** first and last address of dynamic allocation: the sub-pool within the usable range */
  readonly dynamicLo: bigint;
  readonly dynamicHi: bigint;
  private readonly taken: RangeSet;
  private last: bigint | undefined;

  constructor(pool: Cidr, subPool?: Cidr, state: AllocatorState = {}) {
    if (!isNetworkAddress(pool)) throw new UserError(`pool ${formatCidr(pool)} is not a network address`);
    if (subPool && !containsCidr(pool, subPool)) {
      throw new UserError(`ip-range ${formatCidr(subPool)} is not inside subnet ${formatCidr(pool)}`);
    }
    this.pool = pool;
    this.subPool = subPool;
    const lo = networkOf(pool);
    const hi = lastOf(pool);
    const reserveFirst = pool.family === 4 ? pool.prefix < 31 : pool.prefix < 127;
    const reserveLast = pool.family === 4 && pool.prefix < 31;
    this.usableLo = reserveFirst ? lo + 1n : lo;
    this.usableHi = reserveLast ? hi - 1n : hi;
    const sLo = subPool ? networkOf(subPool) : lo;
    const sHi = subPool ? lastOf(subPool) : hi;
    this.dynamicLo = sLo > this.usableLo ? sLo : this.usableLo;
    this.dynamicHi = sHi < this.usableHi ? sHi : this.usableHi;
    this.taken = RangeSet.of(state.allocated ?? []);
    this.last = state.cursor;
  }

  /** "pool 10.1.0.0/24", for messages */
  describe(): string {
    return `pool ${formatCidr(this.pool)}`;
  }

  private fmt(v: bigint): string {
    return formatAddress(this.pool.family, v);
  }

  /** False when the sub-pool holds no assignable address (e.g. only the network address). */
  get hasDynamicRange(): boolean {
    return this.dynamicLo <= this.dynamicHi;
  }

  /** Number of allocated addresses. */
  get allocatedCount(): bigint {
    return this.taken.size;
  }

  /** Ranges held in memory for the allocated addresses. */
  get rangeCount(): number {
    return this.taken.rangeCount;
  }

  /** The last address handed out dynamically, if any. */
  get cursor(): bigint | undefined {
    return this.last;
  }

  isAllocated(v: bigint): boolean {
    return this.taken.has(v);
  }

  /** Allocated addresses, ascending. */
  allocated(): IterableIterator<bigint> {
    return this.taken.values();
  }

  private exhausted(): UserError {
    const range = this.subPool ? ` (range ${formatCidr(this.subPool)})` : '';
    return new UserError(`no free address left in ${this.describe()}${range}: release addresses or use a larger --subnet or --ip-range`);
  }

  /** The address the next dynamic allocation gets. Throws UserError when none is free. */
  nextFree(): bigint {
    const start = this.last === undefined ? this.dynamicLo : this.last + 1n;
    const v = this.taken.firstFreeFrom(start, this.dynamicLo, this.dynamicHi);
    if (v === undefined) throw this.exhausted();
    return v;
  }

  /** The lowest free assignable address of the whole pool (a gateway without a preferred address). */
  lowestFree(): bigint {
    const v = this.taken.firstFreeFrom(this.usableLo, this.usableLo, this.usableHi);
    if (v === undefined) throw new UserError(`no free address left in ${this.describe()}: release addresses or use a larger --subnet`);
    return v;
  }

  /** Checks that `ip` can be handed out exactly; returns its value. Throws UserError saying why not. */
  checkExact(ip: IpAddress): bigint {
    const text = formatAddress(ip.family, ip.value);
    if (ip.family !== this.pool.family) {
      throw new UserError(`address ${text} is IPv${ip.family} but ${this.describe()} is IPv${this.pool.family}`);
    }
    const v = ip.value;
    if (v < networkOf(this.pool) || v > lastOf(this.pool)) throw new UserError(`address ${text} is outside ${this.describe()}`);
    if (v < this.usableLo) {
      const what = this.pool.family === 4 ? 'network address' : 'subnet-router anycast address';
      throw new UserError(`address ${text} is the ${what} of ${this.describe()} and cannot be assigned`);
    }
    if (v > this.usableHi) throw new UserError(`address ${text} is the broadcast address of ${this.describe()} and cannot be assigned`);
    if (this.taken.has(v)) throw new UserError(`address ${text} is already in use in ${this.describe()}`);
    return v;
  }

  /** Records v as taken (after the store has it). `dynamic` moves the cursor to v. */
  markAllocated(v: bigint, dynamic: boolean): void {
    this.taken.add(v);
    if (dynamic) this.last = v;
  }

  /** Frees v; false when it was not allocated. The cursor stays, so v is not reused at once. */
  release(v: bigint): boolean {
    return this.taken.delete(v);
  }

  // conveniences for callers without a store

  /** Next free address, marked taken. */
  allocate(): bigint {
    const v = this.nextFree();
    this.markAllocated(v, true);
    return v;
  }

  /** Exactly `ip`, marked taken, or a UserError. */
  allocateExact(ip: IpAddress): bigint {
    const v = this.checkExact(ip);
    this.markAllocated(v, false);
    return v;
  }

  /** The lowest free address of the pool, marked taken (gateway). */
  allocateLowest(): bigint {
    const v = this.lowestFree();
    this.markAllocated(v, false);
    return v;
  }

  /** Text of an address of this pool, bare. */
  format(v: bigint): string {
    return this.fmt(v);
  }

  /** Text of an address of this pool with the pool's prefix length: "10.1.0.5/24". */
  formatWithPrefix(v: bigint): string {
    return `${this.fmt(v)}/${this.pool.prefix}`;
  }
}
