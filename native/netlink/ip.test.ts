import { describe, expect, it } from 'vitest';
import { formatIp, formatMac, ipv4Broadcast, parseCidr, parseIp, parseMac } from './ip.js';

describe('IP addresses', () => {
  it('round-trips IPv4', () => {
    expect([...parseIp('10.88.0.1')]).toEqual([10, 88, 0, 1]);
    expect(formatIp(parseIp('198.51.100.7'))).toBe('198.51.100.7');
  });

  it.each([
    ['fd88::1', 'fd88::1'],
    ['FD88:0:0:0:0:0:0:1', 'fd88::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    // one zero group is not shortened; the longer run wins; on a tie the first one
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
  ])('writes %s as %s (RFC 5952)', (input, canonical) => {
    expect(formatIp(parseIp(input))).toBe(canonical);
  });

  it('parses CIDRs and refuses what is not one', () => {
    expect(parseCidr('10.88.0.1/24')).toEqual({ family: 4, ip: Buffer.from([10, 88, 0, 1]), prefixLen: 24 });
    expect(parseCidr('fd88::1/64').prefixLen).toBe(64);
    expect(parseCidr('10.0.0.1').prefixLen).toBe(32);
    expect(() => parseCidr('10.0.0.1/33')).toThrow(/not a CIDR/);
    expect(() => parseCidr('10.0.0.1/x')).toThrow(/not a CIDR/);
    expect(() => parseCidr('br0/24')).toThrow(/not an IP address/);
  });

  it('computes IPv4 broadcast addresses', () => {
    expect(formatIp(ipv4Broadcast(parseIp('10.88.0.1'), 24))).toBe('10.88.0.255');
    expect(formatIp(ipv4Broadcast(parseIp('10.88.0.1'), 0))).toBe('255.255.255.255');
    expect(formatIp(ipv4Broadcast(parseIp('172.20.5.1'), 12))).toBe('172.31.255.255');
  });
});

describe('MAC addresses', () => {
  it('round-trips and lower-cases', () => {
    expect(formatMac(parseMac('02:42:0A:00:00:01'))).toBe('02:42:0a:00:00:01');
    expect(() => parseMac('02:42:0a:00:00')).toThrow(/not a MAC/);
  });
});
