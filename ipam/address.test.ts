import { describe, expect, it } from 'vitest';
import IPCIDR from 'ip-cidr';
import {
  canonicalCidr,
  canonicalIp,
  cidrStringsOverlap,
  containsCidr,
  containsIp,
  formatCidr,
  formatIp,
  isNetworkAddress,
  lastOf,
  maskOf,
  networkOf,
  parseCidr,
  parseIp,
  prefixLength,
  sizeOf,
  toNetwork,
  tryParseCidr,
  tryParseIp,
  tryParsePrefix,
} from './address.js';
import { UserError } from '../core/errors.js';

describe('IPv4 addresses', () => {
  it('parses and formats', () => {
    expect(parseIp('10.1.2.3')).toEqual({ family: 4, value: 0x0a010203n });
    expect(parseIp('0.0.0.0').value).toBe(0n);
    expect(parseIp('255.255.255.255').value).toBe(0xffffffffn);
    expect(formatIp({ family: 4, value: 0xc0a80001n })).toBe('192.168.0.1');
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '010.1.1.1', '1.2.3.-1', ' 1.2.3.4', '1.2.3.4 ', 'a.b.c.d', '1..2.3', '1.2.3.4/24'])(
    'refuses %j',
    (text) => {
      expect(tryParseIp(text)).toBeUndefined();
    },
  );

  it('says which address is bad', () => {
    expect(() => parseIp('10.1.0.300')).toThrow(new UserError("'10.1.0.300' is not a valid IP address"));
  });
});

describe('IPv6 addresses', () => {
  it.each([
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:0DB8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run is compressed
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['fd00::', 'fd00::'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['fe80::1:2', 'fe80::1:2'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['::ffff:0102:0304', '::ffff:1.2.3.4'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['FD00:1::ABCD', 'fd00:1::abcd'],
  ])('%s is %s', (text, canonical) => {
    expect(canonicalIp(text)).toBe(canonical);
    expect(canonicalIp(canonical)).toBe(canonical);
  });

  it('parses to a 128-bit value', () => {
    expect(parseIp('::1')).toEqual({ family: 6, value: 1n });
    expect(parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff').value).toBe((1n << 128n) - 1n);
    expect(parseIp('fd00::1').value).toBe((0xfd00n << 112n) | 1n);
  });

  it.each([':::', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'g::1', 'fe80::1%eth0', '1.2.3.4::', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::', '::ffff:1.2.3'])(
    'refuses %j',
    (text) => {
      expect(tryParseIp(text)).toBeUndefined();
    },
  );
});

describe('CIDRs', () => {
  it('parses, keeps host bits, formats canonically', () => {
    expect(parseCidr('10.1.0.0/16')).toEqual({ family: 4, address: 0x0a010000n, prefix: 16 });
    expect(formatCidr(parseCidr('10.1.0.5/24'))).toBe('10.1.0.5/24');
    expect(canonicalCidr('FD00:0001:0000::/64')).toBe('fd00:1::/64');
    expect(prefixLength('10.1.0.0/16')).toBe(16);
    expect(prefixLength('fd00::/48')).toBe(48);
  });

  it('says which CIDR is bad', () => {
    expect(() => parseCidr('10.1.0.0/33')).toThrow(new UserError("'10.1.0.0/33' is not a valid CIDR"));
    expect(() => parseCidr('10.1.0.0')).toThrow("'10.1.0.0' is not a valid CIDR");
    expect(() => parseCidr('fd00::/129')).toThrow("'fd00::/129' is not a valid CIDR");
  });

  it.each(['10.0.0.0/08', '10.0.0.0/', '/24', '10.0.0.0/-1', '10.0.0.0/2 4', 'fe80::%eth0/64', '10.0.0.0/24/1', 'x/24'])('refuses %j', (text) => {
    expect(tryParseCidr(text)).toBeUndefined();
  });

  it('computes network, last address, size and mask', () => {
    const c = parseCidr('10.1.2.3/22');
    expect(formatIp({ family: 4, value: networkOf(c) })).toBe('10.1.0.0');
    expect(formatIp({ family: 4, value: lastOf(c) })).toBe('10.1.3.255');
    expect(sizeOf(c)).toBe(1024n);
    expect(maskOf(4, 22)).toBe(0xfffffc00n);
    expect(maskOf(4, 0)).toBe(0n);
    expect(maskOf(6, 128)).toBe((1n << 128n) - 1n);
    expect(isNetworkAddress(c)).toBe(false);
    expect(formatCidr(toNetwork(c))).toBe('10.1.0.0/22');
    const v6 = parseCidr('fd00:1::/64');
    expect(formatIp({ family: 6, value: lastOf(v6) })).toBe('fd00:1::ffff:ffff:ffff:ffff');
    expect(sizeOf(parseCidr('0.0.0.0/0'))).toBe(1n << 32n);
  });

  it('tests containment and overlap', () => {
    const p = parseCidr('10.1.0.0/16');
    expect(containsCidr(p, parseCidr('10.1.128.0/17'))).toBe(true);
    expect(containsCidr(p, p)).toBe(true);
    expect(containsCidr(p, parseCidr('10.0.0.0/8'))).toBe(false);
    expect(containsCidr(p, parseCidr('10.2.0.0/24'))).toBe(false);
    expect(containsCidr(p, parseCidr('fd00::/64'))).toBe(false);
    expect(containsIp(p, parseIp('10.1.255.255'))).toBe(true);
    expect(containsIp(p, parseIp('10.2.0.0'))).toBe(false);
    expect(containsIp(parseCidr('::/0'), parseIp('10.1.0.1'))).toBe(false);
    expect(cidrStringsOverlap('10.1.0.0/24', '10.1.0.0/16')).toBe(true);
    expect(cidrStringsOverlap('10.1.0.0/16', '10.1.255.0/24')).toBe(true);
    expect(cidrStringsOverlap('10.1.0.0/24', '10.1.1.0/24')).toBe(false);
    expect(cidrStringsOverlap('0.0.0.0/0', '::/0')).toBe(false);
    expect(cidrStringsOverlap('fd00::/48', 'fd00:0:0:5::/64')).toBe(true);
  });

  it('reads route prefixes, bare addresses as host routes', () => {
    expect(tryParsePrefix('10.1.0.7')).toEqual({ family: 4, address: 0x0a010007n, prefix: 32 });
    expect(tryParsePrefix('fd00::1')?.prefix).toBe(128);
    expect(tryParsePrefix('10.1.0.0/16')?.prefix).toBe(16);
    expect(tryParsePrefix('default')).toBeUndefined();
  });

  // ip-cidr as an independent oracle for network and last address
  it.each(['10.1.0.0/24', '10.1.2.3/22', '0.0.0.0/0', '192.168.7.9/32', '172.16.0.0/12', 'fd00:1:2:3::/64', '2001:db8::1/127', '::/0', 'fe80::1:2:3/100'])(
    'agrees with ip-cidr on %s',
    (text) => {
      const ours = parseCidr(text);
      const theirs = new IPCIDR(text);
      expect(networkOf(ours)).toBe(theirs.start<bigint>({ type: 'bigInteger' }));
      expect(lastOf(ours)).toBe(theirs.end<bigint>({ type: 'bigInteger' }));
      expect(IPCIDR.isValidCIDR(text)).toBe(true);
    },
  );
});
