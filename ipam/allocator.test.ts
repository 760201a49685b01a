import { describe, expect, it } from 'vitest';
import { PoolAllocator } from './allocator.js';
import { parseCidr, parseIp } from './address.js';
import { UserError } from '../core/errors.js';

function pool(cidr: string, range?: string, state?: ConstructorParameters<typeof PoolAllocator>[2]): PoolAllocator {
  return new PoolAllocator(parseCidr(cidr), range ? parseCidr(range) : undefined, state);
}

const next = (a: PoolAllocator) => a.format(a.allocate());
const exact = (a: PoolAllocator, ip: string) => a.format(a.allocateExact(parseIp(ip)));

describe('PoolAllocator, IPv4', () => {
  it('hands out addresses in order, skipping the network address', () => {
    const a = pool('10.1.0.0/24');
    expect([next(a), next(a), next(a)]).toEqual(['10.1.0.1', '10.1.0.2', '10.1.0.3']);
    expect(a.formatWithPrefix(a.allocate())).toBe('10.1.0.4/24');
    expect(a.allocatedCount).toBe(4n);
  });

  it('does not reuse a released address at once', () => {
    const a = pool('10.1.0.0/24');
    next(a);
    next(a);
    next(a);
    expect(a.release(parseIp('10.1.0.2').value)).toBe(true);
    expect(a.release(parseIp('10.1.0.2').value)).toBe(false);
    expect(next(a)).toBe('10.1.0.4');
  });

  it('wraps around to released addresses, then reports exhaustion', () => {
    const a = pool('10.1.0.0/29'); // .1 - .6 usable
    expect(Array.from({ length: 6 }, () => next(a))).toEqual(['10.1.0.1', '10.1.0.2', '10.1.0.3', '10.1.0.4', '10.1.0.5', '10.1.0.6']);
    expect(() => a.allocate()).toThrow(new UserError('no free address left in pool 10.1.0.0/29: release addresses or use a larger --subnet or --ip-range'));
    a.release(parseIp('10.1.0.3').value);
    a.release(parseIp('10.1.0.5').value);
    expect(next(a)).toBe('10.1.0.3'); // wrapped: after .6 comes .1, first free is .3
    expect(next(a)).toBe('10.1.0.5');
    expect(() => a.allocate()).toThrow(/^no free address left in pool 10\.1\.0\.0\/29/);
  });

  it('serves exact requests exactly, without moving the cursor', () => {
    const a = pool('10.1.0.0/24');
    expect(exact(a, '10.1.0.5')).toBe('10.1.0.5');
    expect(next(a)).toBe('10.1.0.1');
    expect(exact(a, '10.1.0.2')).toBe('10.1.0.2');
    expect(next(a)).toBe('10.1.0.3');
    expect(next(a)).toBe('10.1.0.4');
    expect(next(a)).toBe('10.1.0.6'); // .5 was taken exactly
  });

  it('refuses exact requests with a reason', () => {
    const a = pool('10.1.0.0/24');
    exact(a, '10.1.0.5');
    expect(() => a.allocateExact(parseIp('10.1.0.5'))).toThrow(new UserError('address 10.1.0.5 is already in use in pool 10.1.0.0/24'));
    expect(() => a.allocateExact(parseIp('10.2.0.5'))).toThrow(new UserError('address 10.2.0.5 is outside pool 10.1.0.0/24'));
    expect(() => a.allocateExact(parseIp('10.1.0.0'))).toThrow(
      new UserError('address 10.1.0.0 is the network address of pool 10.1.0.0/24 and cannot be assigned'),
    );
    expect(() => a.allocateExact(parseIp('10.1.0.255'))).toThrow(
      new UserError('address 10.1.0.255 is the broadcast address of pool 10.1.0.0/24 and cannot be assigned'),
    );
    expect(() => a.allocateExact(parseIp('fd00::5'))).toThrow(new UserError('address fd00::5 is IPv6 but pool 10.1.0.0/24 is IPv4'));
    expect(a.allocatedCount).toBe(1n);
  });

  it('allocates dynamically only from the sub-pool, exactly anywhere in the pool', () => {
    const a = pool('10.1.0.0/24', '10.1.0.128/25');
    expect(a.dynamicLo).toBe(parseIp('10.1.0.128').value);
    expect(a.dynamicHi).toBe(parseIp('10.1.0.254').value); // .255 is the pool's broadcast
    expect(next(a)).toBe('10.1.0.128');
    expect(exact(a, '10.1.0.10')).toBe('10.1.0.10'); // --ip outside --ip-range, inside --subnet
    expect(a.allocateLowest()).toBe(parseIp('10.1.0.1').value); // gateway: first usable of the pool
    expect(next(a)).toBe('10.1.0.129');
  });

  it('names the sub-pool when it is exhausted', () => {
    const a = pool('10.1.0.0/24', '10.1.0.4/30');
    expect([next(a), next(a), next(a), next(a)]).toEqual(['10.1.0.4', '10.1.0.5', '10.1.0.6', '10.1.0.7']);
    expect(() => a.allocate()).toThrow('no free address left in pool 10.1.0.0/24 (range 10.1.0.4/30)');
    expect(exact(a, '10.1.0.8')).toBe('10.1.0.8');
  });

  it('reserves nothing in /31 and /32 pools', () => {
    const p31 = pool('10.1.0.0/31');
    expect([next(p31), next(p31)]).toEqual(['10.1.0.0', '10.1.0.1']);
    expect(() => p31.allocate()).toThrow(/no free address/);
    const p32 = pool('10.1.0.9/32');
    expect(next(p32)).toBe('10.1.0.9');
    expect(() => p32.allocate()).toThrow(/no free address/);
  });

  it('gives the lowest free address for a gateway', () => {
    const a = pool('10.1.0.0/24');
    expect(a.format(a.allocateLowest())).toBe('10.1.0.1');
    expect(a.format(a.allocateLowest())).toBe('10.1.0.2');
    const full = pool('10.1.0.0/30');
    full.allocateLowest();
    full.allocateLowest();
    expect(() => full.allocateLowest()).toThrow('no free address left in pool 10.1.0.0/30');
  });

  it('resumes from stored state', () => {
    const a = pool('10.1.0.0/24', undefined, {
      allocated: [parseIp('10.1.0.1').value, parseIp('10.1.0.7').value],
      cursor: parseIp('10.1.0.7').value,
    });
    expect(next(a)).toBe('10.1.0.8');
    expect(() => a.allocateExact(parseIp('10.1.0.1'))).toThrow('already in use');
  });

  it('refuses a pool with host bits and a sub-pool outside it', () => {
    expect(() => pool('10.1.0.5/24')).toThrow('pool 10.1.0.5/24 is not a network address');
    expect(() => pool('10.1.0.0/24', '10.2.0.0/25')).toThrow('ip-range 10.2.0.0/25 is not inside subnet 10.1.0.0/24');
    expect(pool('10.1.0.0/24', '10.1.0.0/32').hasDynamicRange).toBe(false);
  });
});

describe('PoolAllocator, IPv6', () => {
  it('skips the subnet-router anycast address', () => {
    const a = pool('fd00:1::/64');
    expect(next(a)).toBe('fd00:1::1');
    expect(a.formatWithPrefix(a.allocate())).toBe('fd00:1::2/64');
    expect(() => a.allocateExact(parseIp('fd00:1::'))).toThrow(
      new UserError('address fd00:1:: is the subnet-router anycast address of pool fd00:1::/64 and cannot be assigned'),
    );
    // the last address is a normal one in IPv6
    expect(exact(a, 'fd00:1::ffff:ffff:ffff:ffff')).toBe('fd00:1::ffff:ffff:ffff:ffff');
    expect(() => a.allocateExact(parseIp('fd00:2::1'))).toThrow('address fd00:2::1 is outside pool fd00:1::/64');
    expect(() => a.allocateExact(parseIp('10.0.0.1'))).toThrow('address 10.0.0.1 is IPv4 but pool fd00:1::/64 is IPv6');
  });

  it('uses both addresses of a /127', () => {
    const a = pool('fd00::/127');
    expect([next(a), next(a)]).toEqual(['fd00::', 'fd00::1']);
  });
});

describe('memory grows with allocations, not pool size', () => {
  it('a /8 holds a thousand sequential addresses in one range', () => {
    const a = pool('10.0.0.0/8');
    expect(a.rangeCount).toBe(0);
    for (let i = 0; i < 1000; i++) a.allocate();
    expect(a.allocatedCount).toBe(1000n);
    expect(a.rangeCount).toBe(1);
    a.release(parseIp('10.0.1.0').value);
    expect(a.rangeCount).toBe(2);
    exact(a, '10.200.0.1');
    expect(a.rangeCount).toBe(3);
  });

  it('an IPv6 /64 holds a thousand sequential addresses in one range', () => {
    const a = pool('fd00:1:2:3::/64');
    expect(a.rangeCount).toBe(0);
    for (let i = 0; i < 1000; i++) a.allocate();
    expect(a.allocatedCount).toBe(1000n);
    expect(a.rangeCount).toBe(1);
    expect(next(a)).toBe('fd00:1:2:3::3e9'); // 1001
    expect(a.rangeCount).toBe(1);
  });

  it('an IPv6 /64 with a /80 sub-pool starts at the sub-pool', () => {
    const a = pool('fd00::/64', 'fd00:0:0:0:5::/80');
    expect(next(a)).toBe('fd00::5:0:0:0');
    expect(next(a)).toBe('fd00::5:0:0:1');
    expect(a.rangeCount).toBe(1);
  });
});
