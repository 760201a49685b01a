import { describe, expect, it } from 'vitest';
import { checkCidr, checkIfname, checkIp, checkPort, checkProto } from './addr.js';
import { FirewallInputError } from './model.js';

describe('address checks', () => {
  it('clears host bits of subnets, in nft form', () => {
    expect(checkCidr('10.231.1.77/24')).toEqual({ cidr: '10.231.1.0/24', family: 4 });
    expect(checkCidr('10.0.0.1/32')).toEqual({ cidr: '10.0.0.1/32', family: 4 });
    expect(checkCidr('0.0.0.0/0')).toEqual({ cidr: '0.0.0.0/0', family: 4 });
    expect(checkCidr('FD00:231:1:0:0:0:0:9/64')).toEqual({ cidr: 'fd00:231:1::/64', family: 6 });
    expect(checkCidr('fd00:231:1:ffff::9/56')).toEqual({ cidr: 'fd00:231:1:ff00::/56', family: 6 });
    expect(checkCidr('::ffff:10.1.2.3/128')).toEqual({ cidr: '::ffff:a01:203/128', family: 6 });
  });

  it('writes IPv6 addresses the way nft prints them', () => {
    expect(checkIp('FD00:0:0:0:0:0:0:2')).toEqual({ ip: 'fd00::2', family: 6 });
    expect(checkIp('10.1.2.3')).toEqual({ ip: '10.1.2.3', family: 4 });
    expect(() => checkIp('10.1.2')).toThrow(FirewallInputError);
    expect(() => checkIp('fe80::1%eth0')).toThrow(FirewallInputError);
  });

  it('accepts the interface names tsnet and Docker make, nothing nft could misread', () => {
    for (const ok of ['tsnet-0123abcde', 'br-0123456789ab', 'docker0', 'eth0.20', 'a']) expect(checkIfname(ok)).toBe(ok);
    for (const bad of ['', '-br', 'br*', 'br"x', 'br x', 'br/x', '0123456789abcdef']) expect(() => checkIfname(bad)).toThrow(FirewallInputError);
  });

  it('checks ports and protocols', () => {
    expect(checkPort(1, 'p')).toBe(1);
    expect(checkPort(65535, 'p')).toBe(65535);
    expect(() => checkPort(0, 'p')).toThrow(/not a port number/);
    expect(checkProto('sctp')).toBe('sctp');
    expect(() => checkProto('icmp')).toThrow(/cannot be published/);
  });
});
