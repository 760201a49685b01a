// The format checks behind the schemas, and the sentences that replace ajv's messages.
import { describe, expect, it } from 'vitest';
import { cidrProblem, describeValidation, FORMATS, ipProblem, macProblem } from './schemas.js';

describe('formats', () => {
  it.each([
    ['10.0.0.0/33', undefined, 'the prefix length 33 is longer than the 32 bits of an IPv4 address'],
    ['fd00::/129', undefined, 'the prefix length 129 is longer than the 128 bits of an IPv6 address'],
    ['10.0.0.0', undefined, 'it has no prefix length: give an address with a prefix length, like 10.1.0.0/24'],
    ['10.0.0.256/24', undefined, "'10.0.0.256' is not an IP address: give an address with a prefix length, like 10.1.0.0/24"],
    ['10.0.0.0/024', undefined, "'/024' is not a prefix length: give an address with a prefix length, like 10.1.0.0/24"],
    ['10.0.0.0/', 4, "'/' is not a prefix length: give an IPv4 subnet like 10.1.0.0/24"],
    ['fd00:1::/64', 4, 'it is IPv6 where IPv4 is expected'],
    ['10.1.0.0/24', 6, 'it is IPv4 where IPv6 is expected'],
    ['', 6, 'it is empty: give an IPv6 subnet like fd00:1::/64'],
  ] as const)('%s (IPv%s) is refused: %s', (text, family, problem) => {
    expect(cidrProblem(text, family)).toBe(problem);
  });

  it('accepts CIDRs with host bits set (gateways and aux addresses come that way)', () => {
    for (const ok of ['10.1.0.1/24', '0.0.0.0/0', 'fd00:1::1/64', '::/0']) expect(cidrProblem(ok)).toBeUndefined();
    expect(cidrProblem('10.1.0.1/24', 4)).toBeUndefined();
  });

  it('IPs, MACs and the -or-empty variants', () => {
    expect(ipProblem('10.1.0.5')).toBeUndefined();
    expect(ipProblem('fe80::1')).toBeUndefined();
    expect(ipProblem('10.1.0.5/24')).toBe('give the address without a prefix length, like 10.1.0.5');
    expect(ipProblem('host.example')).toBe('it is not an IP address like 10.1.0.5');
    expect(macProblem('02:42:0A:01:00:05')).toBeUndefined();
    expect(macProblem('02-42-0a-01-00-05')).toMatch(/not a MAC address/);
    expect(FORMATS['ip-or-empty']!('')).toBeUndefined();
    expect(FORMATS['cidr4-or-empty']!('')).toBeUndefined();
    expect(FORMATS.cidr4!('')).toMatch(/empty/);
  });
});

describe('describeValidation', () => {
  const M = 'NetworkDriver.CreateNetwork';
  it('names user-typed values for what they are', () => {
    expect(describeValidation(M, { instancePath: '/IPv4Data/0/Pool', keyword: 'format', params: { format: 'cidr4' }, data: '10.0.0.0/33' })).toBe(
      "invalid subnet '10.0.0.0/33' in IPv4Data: the prefix length 33 is longer than the 32 bits of an IPv4 address",
    );
    expect(describeValidation(M, { instancePath: '/IPv6Data/0/AuxAddresses/host~1a', keyword: 'format', params: { format: 'cidr6' }, data: 'x' })).toBe(
      "invalid aux address host/a 'x' in IPv6Data: 'x' is not an IP address: give an IPv6 subnet like fd00:1::/64",
    );
    expect(describeValidation('IpamDriver.RequestPool', { instancePath: '/SubPool', keyword: 'format', params: { format: 'cidr-or-empty' }, data: '10.1.0.128' })).toBe(
      "invalid IP range '10.1.0.128': it has no prefix length: give an address with a prefix length, like 10.1.0.0/24",
    );
  });

  it('says which port and why', () => {
    const P = 'NetworkDriver.Join';
    expect(describeValidation(P, { instancePath: '/Options/com.docker.network.portmap/1/HostPort', keyword: 'maximum', params: { limit: 65535 }, data: 70000 })).toBe(
      'port 70000 in Options.com.docker.network.portmap[1].HostPort is out of range: ports are 0 to 65535',
    );
    expect(describeValidation(P, { instancePath: '/Options/com.docker.network.portmap/0/HostPortEnd', keyword: 'minimum', params: { limit: 9010 }, data: 9000 })).toBe(
      'host port range 9010-9000 in Options.com.docker.network.portmap[0] ends before it starts: HostPortEnd must be 0 (no range) or at least HostPort',
    );
    expect(describeValidation(P, { instancePath: '/Options/com.docker.network.portmap/0/HostPortEnd', keyword: 'minimum', params: { limit: 0 }, data: -1 })).toMatch(
      /^port -1 in .* is out of range/,
    );
  });

  it('structural faults name the method', () => {
    expect(describeValidation(M, { instancePath: '', keyword: 'required', params: { missingProperty: 'NetworkID' } })).toBe(
      'invalid NetworkDriver.CreateNetwork request: NetworkID is missing',
    );
    expect(describeValidation(M, { instancePath: '/IPv4Data/0', keyword: 'required', params: { missingProperty: 'Pool' } })).toBe(
      'invalid NetworkDriver.CreateNetwork request: IPv4Data[0].Pool is missing',
    );
    expect(describeValidation(M, { instancePath: '/Options', keyword: 'type', params: { type: ['object', 'null'] }, data: 'x' })).toBe(
      'invalid NetworkDriver.CreateNetwork request: Options must be an object or null, got "x"',
    );
    expect(describeValidation(M, { instancePath: '/NetworkID', keyword: 'minLength', params: { limit: 1 }, data: '' })).toBe(
      'invalid NetworkDriver.CreateNetwork request: NetworkID must not be empty',
    );
  });
});
