// A set of bigints (allocated addresses) kept as sorted, disjoint, non-adjacent closed ranges.
// Memory grows with the number of ranges, i.e. with what is allocated and how fragmented it is,
// never with the size of the pool: an empty IPv6 /64 costs two empty arrays. Lookups are binary
// searches; insert and delete touch at most one range (merge, extend or split). Pure.

export class RangeSet {
  // los[i]..his[i] inclusive; los[i] <= his[i]; his[i] + 1 < los[i + 1]
  private readonly los: bigint[] = [];
  private readonly his: bigint[] = [];
  private count = 0n;

  static of(values: Iterable<bigint>): RangeSet {
    const set = new RangeSet();
    const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const v of sorted) {
      const last = set.los.length - 1;
      if (last >= 0 && v <= set.his[last]!) continue;
      if (last >= 0 && v === set.his[last]! + 1n) set.his[last] = v;
      else {
        set.los.push(v);
        set.his.push(v);
      }
      set.count++;
    }
    return set;
  }

  /** Number of values in the set. */
  get size(): bigint {
    return this.count;
  }

  /** Number of stored ranges: what the set costs in memory. */
  get rangeCount(): number {
    return this.los.length;
  }

  /** The ranges, ascending, as [lo, hi] inclusive. */
  *ranges(): IterableIterator<[bigint, bigint]> {
    for (let i = 0; i < this.los.length; i++) yield [this.los[i]!, this.his[i]!];
  }

  *values(): IterableIterator<bigint> {
    for (const [lo, hi] of this.ranges()) for (let v = lo; v <= hi; v++) yield v;
  }

  /** Index of the last range starting at or before v, -1 when none. */
  private floor(v: bigint): number {
    let lo = 0;
    let hi = this.los.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.los[mid]! <= v) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Index of the range holding v, -1 when v is not in the set. */
  private indexOf(v: bigint): number {
    const i = this.floor(v);
    return i >= 0 && v <= this.his[i]! ? i : -1;
  }

  has(v: bigint): boolean {
    return this.indexOf(v) >= 0;
  }

  /** Adds v; false when it was already there. */
  add(v: bigint): boolean {
    const i = this.floor(v);
    if (i >= 0 && v <= this.his[i]!) return false;
    const joinsLeft = i >= 0 && this.his[i]! + 1n === v;
    const joinsRight = i + 1 < this.los.length && this.los[i + 1]! - 1n === v;
    if (joinsLeft && joinsRight) {
      this.his[i] = this.his[i + 1]!;
      this.los.splice(i + 1, 1);
      this.his.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.his[i] = v;
    } else if (joinsRight) {
      this.los[i + 1] = v;
    } else {
      this.los.splice(i + 1, 0, v);
      this.his.splice(i + 1, 0, v);
    }
    this.count++;
    return true;
  }

  /** Removes v; false when it was not there. */
  delete(v: bigint): boolean {
    const i = this.indexOf(v);
    if (i < 0) return false;
    const lo = this.los[i]!;
    const hi = this.his[i]!;
    if (lo === hi) {
      this.los.splice(i, 1);
      this.his.splice(i, 1);
    } else if (v === lo) {
      this.los[i] = v + 1n;
    } else if (v === hi) {
      this.his[i] = v - 1n;
    } else {
      this.his[i] = v - 1n;
      this.los.splice(i + 1, 0, v + 1n);
      this.his.splice(i + 1, 0, hi);
    }
    this.count--;
    return true;
  }

  /** Smallest value in [from, hi] not in the set, undefined when all are taken. */
  private firstFreeIn(from: bigint, hi: bigint): bigint | undefined {
    if (from > hi) return undefined;
    const i = this.indexOf(from);
    if (i < 0) return from;
    // ranges never touch, so the value right after a range is free
    const next = this.his[i]! + 1n;
    return next <= hi ? next : undefined;
  }

  /**
   * The first value not in the set at or after `cursor` within [lo, hi], wrapping once to lo and
   * searching up to cursor - 1; undefined when [lo, hi] is full. A cursor outside [lo, hi] starts at lo.
   */
  firstFreeFrom(cursor: bigint, lo: bigint, hi: bigint): bigint | undefined {
    if (lo > hi) return undefined;
    const start = cursor < lo || cursor > hi ? lo : cursor;
    return this.firstFreeIn(start, hi) ?? this.firstFreeIn(lo, start - 1n);
  }

  /** Number of values of the set within [lo, hi]. */
  countIn(lo: bigint, hi: bigint): bigint {
    let n = 0n;
    for (let i = Math.max(0, this.floor(lo)); i < this.los.length && this.los[i]! <= hi; i++) {
      const a = this.los[i]! > lo ? this.los[i]! : lo;
      const b = this.his[i]! < hi ? this.his[i]! : hi;
      if (a <= b) n += b - a + 1n;
    }
    return n;
  }
}
