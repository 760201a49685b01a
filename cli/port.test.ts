import { describe, expect, it } from 'vitest';
import { formatPortLines, parsePortFilter } from './port.js';
import type { PublishedPort } from '../store/network-repo.js';

const p = (over: Partial<PublishedPort>): PublishedPort => ({ endpointId: 'e', networkId: 'n', proto: 'tcp', port: 80, containerIp: '10.0.0.2', hostIp: '0.0.0.0', hostPort: 8080, ...over });

describe('tsnet port', () => {
  it('lists every binding in docker port format, sorted by port', () => {
    expect(formatPortLines([p({ port: 443, hostPort: 8443 }), p({}), p({ hostIp: '::' })])).toEqual([
      '80/tcp -> 0.0.0.0:8080',
      '80/tcp -> [::]:8080',
      '443/tcp -> 0.0.0.0:8443',
    ]);
  });

  it('prints only host addresses for one port, tcp by default', () => {
    expect(formatPortLines([p({}), p({ proto: 'udp', hostPort: 9999 })], parsePortFilter('80'))).toEqual(['0.0.0.0:8080']);
    expect(formatPortLines([p({}), p({ proto: 'udp', hostPort: 9999 })], parsePortFilter('80/udp'))).toEqual(['0.0.0.0:9999']);
  });

  it('refuses a malformed port argument', () => {
    expect(() => parsePortFilter('http')).toThrow(/invalid port/);
    expect(() => parsePortFilter('70000')).toThrow(/invalid port/);
    expect(() => parsePortFilter('80/icmp')).toThrow(/invalid port/);
  });
});
