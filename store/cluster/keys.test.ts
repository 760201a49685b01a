import { describe, expect, it } from 'vitest';
import { key, keysOfHost } from './keys.js';

const kv = (k: string, v: object | string) => ({ key: k, value: typeof v === 'string' ? v : JSON.stringify(v) });

describe("a host's keys in the cluster store", () => {
  it('are its announcements, its non-gateway addresses and its memberships, nothing of other hosts', () => {
    const all = [
      kv(key.host('dead'), { vtep: '198.51.100.2' }),
      kv(key.overlay('blue'), { vni: 4096, createdBy: 'dead' }),
      kv(key.pool('blue'), { subnet: '10.9.0.0/24', gateway: '10.9.0.1' }),
      kv(key.endpoint('blue', '10.9.0.2'), { host: 'dead', mac: 'm2' }),
      kv(key.endpoint('blue', '10.9.0.3'), { host: 'alive', mac: 'm3' }),
      kv(key.address('blue', '10.9.0.1'), { kind: 'gateway', host: 'dead' }),
      kv(key.address('blue', '10.9.0.2'), { kind: 'dynamic', host: 'dead' }),
      kv(key.address('blue', '10.9.0.3'), { kind: 'static', host: 'alive' }),
      kv(key.address('red', '10.8.0.4'), { kind: 'static', host: 'dead' }),
      kv(key.member('blue', 'dead'), { since: 'x' }),
      kv(key.member('blue', 'alive'), { since: 'x' }),
      kv(key.member('red', 'dead'), { since: 'x' }),
      // a host whose name starts like the other's, and a value that is not JSON
      kv(key.member('green', 'dead2'), { since: 'x' }),
      kv(key.endpoint('blue', '10.9.0.9'), 'not json'),
    ];
    expect(keysOfHost(all, 'dead')).toEqual({
      endpoints: ['/tsnet/endpoints/blue/10.9.0.2'],
      addresses: ['/tsnet/addresses/blue/10.9.0.2', '/tsnet/addresses/red/10.8.0.4'],
      members: ['/tsnet/members/blue/dead', '/tsnet/members/red/dead'],
      overlays: ['blue', 'red'],
    });
    expect(keysOfHost(all, 'nobody')).toEqual({ endpoints: [], addresses: [], members: [], overlays: [] });
  });
});
