import { describe, expect, it } from 'vitest';
import { RangeSet } from './range-set.js';

const ranges = (s: RangeSet) => [...s.ranges()].map(([a, b]) => [Number(a), Number(b)]);

describe('RangeSet', () => {
  it('merges on insert', () => {
    const s = new RangeSet();
    expect(s.add(5n)).toBe(true);
    expect(s.add(7n)).toBe(true);
    expect(ranges(s)).toEqual([
      [5, 5],
      [7, 7],
    ]);
    expect(s.add(6n)).toBe(true); // bridges both
    expect(ranges(s)).toEqual([[5, 7]]);
    expect(s.add(4n)).toBe(true); // extends left
    expect(s.add(8n)).toBe(true); // extends right
    expect(s.add(6n)).toBe(false);
    expect(ranges(s)).toEqual([[4, 8]]);
    expect(s.add(1n)).toBe(true);
    expect(s.add(20n)).toBe(true);
    expect(ranges(s)).toEqual([
      [1, 1],
      [4, 8],
      [20, 20],
    ]);
    expect(s.size).toBe(7n);
    expect(s.rangeCount).toBe(3);
  });

  it('splits on delete', () => {
    const s = RangeSet.of([1n, 2n, 3n, 4n, 5n]);
    expect(s.delete(3n)).toBe(true);
    expect(ranges(s)).toEqual([
      [1, 2],
      [4, 5],
    ]);
    expect(s.delete(1n)).toBe(true);
    expect(s.delete(5n)).toBe(true);
    expect(ranges(s)).toEqual([
      [2, 2],
      [4, 4],
    ]);
    expect(s.delete(2n)).toBe(true);
    expect(s.delete(9n)).toBe(false);
    expect(s.delete(3n)).toBe(false);
    expect(ranges(s)).toEqual([[4, 4]]);
    expect(s.size).toBe(1n);
  });

  it('builds from unsorted values with duplicates', () => {
    const s = RangeSet.of([9n, 3n, 4n, 3n, 10n, 1n]);
    expect(ranges(s)).toEqual([
      [1, 1],
      [3, 4],
      [9, 10],
    ]);
    expect(s.size).toBe(5n);
    expect([...s.values()].map(Number)).toEqual([1, 3, 4, 9, 10]);
    expect(s.has(4n)).toBe(true);
    expect(s.has(5n)).toBe(false);
    expect(s.has(0n)).toBe(false);
    expect(s.countIn(2n, 9n)).toBe(3n);
    expect(s.countIn(0n, 100n)).toBe(5n);
    expect(s.countIn(5n, 8n)).toBe(0n);
  });

  it('finds the first free value from a cursor, wrapping once', () => {
    const s = RangeSet.of([10n, 11n, 12n, 15n]);
    expect(s.firstFreeFrom(10n, 10n, 20n)).toBe(13n);
    expect(s.firstFreeFrom(13n, 10n, 20n)).toBe(13n);
    expect(s.firstFreeFrom(15n, 10n, 20n)).toBe(16n);
    expect(s.firstFreeFrom(5n, 10n, 20n)).toBe(13n); // cursor below the range starts at lo
    expect(s.firstFreeFrom(99n, 10n, 20n)).toBe(13n); // and above it too
    expect(s.firstFreeFrom(15n, 10n, 15n)).toBe(13n); // wraps
    const full = RangeSet.of([10n, 11n, 12n]);
    expect(full.firstFreeFrom(11n, 10n, 12n)).toBeUndefined();
    expect(full.firstFreeFrom(11n, 10n, 13n)).toBe(13n);
    expect(new RangeSet().firstFreeFrom(0n, 5n, 4n)).toBeUndefined(); // empty range
  });

  it('agrees with a plain Set under random operations', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const s = new RangeSet();
    const model = new Set<number>();
    for (let i = 0; i < 3000; i++) {
      const v = rand(200);
      if (rand(3) === 0) expect(s.delete(BigInt(v))).toBe(model.delete(v));
      else {
        expect(s.add(BigInt(v))).toBe(!model.has(v));
        model.add(v);
      }
    }
    expect([...s.values()].map(Number)).toEqual([...model].sort((a, b) => a - b));
    expect(s.size).toBe(BigInt(model.size));
    // ranges are disjoint and never touch
    const rs = [...s.ranges()];
    for (let i = 1; i < rs.length; i++) expect(rs[i]![0] > rs[i - 1]![1] + 1n).toBe(true);
    for (let c = 0; c < 200; c++) {
      const got = s.firstFreeFrom(BigInt(c), 0n, 199n);
      let want: number | undefined;
      for (let k = 0; k < 200 && want === undefined; k++) if (!model.has((c + k) % 200)) want = (c + k) % 200;
      expect(got === undefined ? undefined : Number(got)).toBe(want);
    }
  });

  it('costs nothing for a huge span until used', () => {
    const s = new RangeSet();
    const lo = 1n << 64n;
    const hi = lo + (1n << 64n) - 1n;
    expect(s.rangeCount).toBe(0);
    let cur = lo;
    for (let i = 0; i < 1000; i++) {
      const v = s.firstFreeFrom(cur, lo, hi)!;
      s.add(v);
      cur = v + 1n;
    }
    expect(s.rangeCount).toBe(1);
    expect(s.size).toBe(1000n);
  });
});
