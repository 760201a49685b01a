import { describe, expect, it } from 'vitest';
import { formatBinding, goneOwnersOf, reserveBindings, toFirewallMappings, type HostPortReserver, type PublishedBinding } from './ports.js';
import type { PortBindingRequest } from './driver.js';
import type { Proto } from '../core/protocol.js';

/** A reserver over an in-memory set: the logic under test is the resolution, not the sockets. */
class FakeReserver implements HostPortReserver {
  held = new Set<string>();
  next = 40000;
  private key(proto: Proto, ip: string, port: number) {
    return `${proto}/${ip}/${port}`;
  }
  reserve(proto: Proto, ip: string, port: number) {
    const k = this.key(proto, ip, port);
    if (this.held.has(k)) throw new Error(`host port ${port}/${proto} on ${ip} is already in use`);
    this.held.add(k);
  }
  reserveFromRange(proto: Proto, ip: string, from: number, to: number) {
    for (let p = from; p <= to; p++) {
      if (!this.held.has(this.key(proto, ip, p))) {
        this.reserve(proto, ip, p);
        return p;
      }
    }
    throw new Error('range exhausted');
  }
  reserveEphemeral(proto: Proto, ip: string) {
    return this.reserveFromRange(proto, ip, this.next, 60999);
  }
  release(proto: Proto, ip: string, port: number) {
    this.held.delete(this.key(proto, ip, port));
  }
  holds(proto: Proto, ip: string, port: number) {
    return this.held.has(this.key(proto, ip, port));
  }
}

const req = (over: Partial<PortBindingRequest>): PortBindingRequest => ({ proto: 'tcp', port: 80, ip: '', hostIp: '', hostPort: 8080, hostPortEnd: 8080, ...over });
const v4only = { ipv4: '10.231.0.5', ipv6: '' };

describe('reserveBindings', () => {
  it('publishes on every IPv4 address when no host IP is given', () => {
    const r = new FakeReserver();
    expect(reserveBindings([req({})], v4only, '', r)).toEqual([{ proto: 'tcp', port: 80, containerIp: '10.231.0.5', hostIp: '0.0.0.0', hostPort: 8080 }]);
  });

  it('adds the IPv6 twin on the same host port when the container has IPv6', () => {
    const r = new FakeReserver();
    const b = reserveBindings([req({ hostPort: 0, hostPortEnd: 0 })], { ipv4: '10.231.0.5', ipv6: 'fd00::5' }, '', r);
    expect(b.map((x) => x.hostIp)).toEqual(['0.0.0.0', '::']);
    expect(b[0].hostPort).toBe(b[1].hostPort);
    expect(b[0].hostPort).toBe(40000);
  });

  it('uses the network default host IP, and a request host IP over it', () => {
    const r = new FakeReserver();
    expect(reserveBindings([req({})], v4only, '127.0.0.1', r)[0].hostIp).toBe('127.0.0.1');
    expect(reserveBindings([req({ hostIp: '198.51.100.1' })], v4only, '127.0.0.1', r)[0].hostIp).toBe('198.51.100.1');
  });

  it('chooses from a host port range', () => {
    const r = new FakeReserver();
    r.reserve('tcp', '0.0.0.0', 9000);
    expect(reserveBindings([req({ hostPort: 9000, hostPortEnd: 9001 })], v4only, '', r)[0].hostPort).toBe(9001);
  });

  it('is all or nothing: a failed binding releases the ones before it', () => {
    const r = new FakeReserver();
    r.reserve('udp', '0.0.0.0', 53);
    expect(() => reserveBindings([req({ hostPort: 8080 }), req({ proto: 'udp', port: 53, hostPort: 53, hostPortEnd: 53 })], v4only, '', r)).toThrow(/already in use/);
    expect([...r.held]).toEqual(['udp/0.0.0.0/53']);
  });

  it('refuses an IPv6 host address for a container without IPv6', () => {
    expect(() => reserveBindings([req({ hostIp: '::1' })], v4only, '', new FakeReserver())).toThrow(/no IPv6 address/);
  });
});

describe('port formatting and firewall entries', () => {
  it("prints bindings as docker port does", () => {
    expect(formatBinding({ proto: 'tcp', port: 80, hostIp: '0.0.0.0', hostPort: 32768 })).toBe('80/tcp -> 0.0.0.0:32768');
    expect(formatBinding({ proto: 'udp', port: 53, hostIp: '::', hostPort: 5353 })).toBe('53/udp -> [::]:5353');
  });

  it('turns wildcard host addresses into wildcard map entries', () => {
    expect(toFirewallMappings('ep1', [{ proto: 'tcp', port: 80, containerIp: '10.231.0.5', hostIp: '0.0.0.0', hostPort: 8080 }])).toEqual([
      { endpointId: 'ep1', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '10.231.0.5', containerPort: 80 },
    ]);
  });
});

describe('host ports of endpoints whose container is gone', () => {
  const published: PublishedBinding[] = [
    { endpointId: 'old-web', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 },
    { endpointId: 'live', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9000 },
    { endpointId: 'old-dns', proto: 'udp', hostIp: '0.0.0.0', hostPort: 8080 },
    { endpointId: 'new', proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9001 },
  ];
  const on = (proto: Proto, port: number) => published.filter((p) => p.proto === proto && p.hostPort === port);
  const gone = (id: string) => id.startsWith('old-');
  const req = (proto: Proto, hostPort: number, hostPortEnd = 0): PortBindingRequest => ({ proto, port: 80, ip: '', hostIp: '', hostPort, hostPortEnd });

  it('names the gone owners of the requested ports (exact ports and ranges), never a live one, nor the requester', () => {
    expect(goneOwnersOf([req('tcp', 8080)], on, 'new', gone)).toEqual(['old-web']);
    expect(goneOwnersOf([req('tcp', 9000)], on, 'new', gone)).toEqual([]);
    expect(goneOwnersOf([req('tcp', 8079, 8081), req('udp', 8080)], on, 'new', gone)).toEqual(['old-web', 'old-dns']);
    expect(goneOwnersOf([req('tcp', 9001)], on, 'new', () => true)).toEqual([]);
    expect(goneOwnersOf([req('tcp', 0)], on, 'new', () => true)).toEqual([]);
  });
});
