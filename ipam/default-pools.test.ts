import { describe, expect, it } from 'vitest';
import { findFreeSubnet, ipv6DefaultPools, LOCAL_DEFAULT_POOLS, parseDefaultPools, ulaPrefix } from './default-pools.js';
import { formatCidr, parseCidr, type Cidr } from './address.js';

const local = parseDefaultPools(LOCAL_DEFAULT_POOLS);
const pick = (excluded: string[]) => {
  const c = findFreeSubnet(local, 4, excluded.map(parseCidr));
  return c && formatCidr(c);
};

describe('default pools', () => {
  it('lists the 31 local subnets like Docker: 172.17-31/16, then 192.168/16 in /20s', () => {
    const taken: Cidr[] = [];
    const got: string[] = [];
    for (;;) {
      const c = findFreeSubnet(local, 4, taken);
      if (!c) break;
      taken.push(c);
      got.push(formatCidr(c));
    }
    expect(got).toHaveLength(31);
    expect(got.slice(0, 3)).toEqual(['172.17.0.0/16', '172.18.0.0/16', '172.19.0.0/16']);
    expect(got[14]).toBe('172.31.0.0/16');
    expect(got[15]).toBe('192.168.0.0/20');
    expect(got[30]).toBe('192.168.240.0/20');
  });

  it('skips subnets that overlap excluded prefixes, large or small', () => {
    expect(pick([])).toBe('172.17.0.0/16');
    expect(pick(['172.17.0.0/16', '172.18.5.0/24'])).toBe('172.19.0.0/16');
    expect(pick(['172.16.0.0/12'])).toBe('192.168.0.0/20');
    expect(pick(['172.16.0.0/12', '192.168.0.1/32', '192.168.17.0/24'])).toBe('192.168.32.0/20');
    expect(pick(['0.0.0.0/1', '128.0.0.0/1'])).toBeUndefined();
    expect(pick(['fd00::/8'])).toBe('172.17.0.0/16'); // other family
  });

  it('skips through a /8 in /24s without trying every candidate', () => {
    const pools = parseDefaultPools([{ base: '10.0.0.0/8', size: 24 }]);
    const c = findFreeSubnet(pools, 4, [parseCidr('10.0.0.0/9'), parseCidr('10.128.0.0/10'), parseCidr('10.192.0.0/24')]);
    expect(c && formatCidr(c)).toBe('10.192.1.0/24');
  });

  it('refuses a bad default pool list', () => {
    expect(() => parseDefaultPools([{ base: '10.0.0.0/8', size: 7 }])).toThrow('default pool 10.0.0.0/8: size 7 must be a prefix length between 8 and 32');
    expect(() => parseDefaultPools([{ base: '10.0.0.0/88', size: 24 }])).toThrow("'10.0.0.0/88' is not a valid CIDR");
  });

  it('derives a stable ULA /48 from the machine ID', () => {
    const a = ulaPrefix('0123456789abcdef0123456789abcdef');
    expect(a).toBe(ulaPrefix('0123456789abcdef0123456789abcdef\n'));
    expect(a).not.toBe(ulaPrefix('fedcba9876543210fedcba9876543210'));
    expect(a).toMatch(/^fd[0-9a-f]{2}:/);
    expect(a.endsWith('/48')).toBe(true);
    const pools = parseDefaultPools(ipv6DefaultPools('0123456789abcdef0123456789abcdef'));
    const first = findFreeSubnet(pools, 6, [])!;
    expect(first.prefix).toBe(64);
    const second = findFreeSubnet(pools, 6, [first])!;
    expect(formatCidr(second)).not.toBe(formatCidr(first));
    expect(parseCidr(a).prefix).toBe(48);
  });
});
