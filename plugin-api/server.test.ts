// The protocol layer against recording test doubles: requests exactly as Docker 20.10 sends them
// (POST, no Content-Type, an empty body for argument-less calls; bodies captured in
// shared/docs/protocol.md), answers checked in Docker's shapes, and errors checked the way Docker
// reads them (dockerReads below follows moby's pkg/plugins client and remote driver/IPAM).
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { request } from 'node:http';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer, DEFAULT_SOCKET_PATH, errorKey, listenUnix, PLUGIN_CONTENT_TYPE, SerialQueue, type ServerOptions } from './server.js';
import { type NetworkDriver } from '../drivers/driver.js';
import type { IpamService } from '../ipam/types.js';
import { UserError } from '../core/errors.js';

// ---------------------------------------------------------------- captured requests

const NET = 'f3c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80';
const EP = '0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9';
const POOL_ID = 'local/10.220.0.0/24';

const portmap = [
  { Proto: 17, IP: '', Port: 81, HostIP: '127.0.0.1', HostPort: 18086, HostPortEnd: 18086 },
  { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18085, HostPortEnd: 18085 },
];
const portOptions = {
  'com.docker.network.endpoint.exposedports': [
    { Proto: 17, Port: 81 },
    { Proto: 6, Port: 80 },
  ],
  'com.docker.network.portmap': portmap,
};
/** The translation of portOptions. */
const endpointOptions = {
  portBindings: [
    { proto: 'udp', port: 81, ip: '', hostIp: '127.0.0.1', hostPort: 18086, hostPortEnd: 18086 },
    { proto: 'tcp', port: 80, ip: '', hostIp: '', hostPort: 18085, hostPortEnd: 18085 },
  ],
  exposedPorts: [
    { proto: 'udp', port: 81 },
    { proto: 'tcp', port: 80 },
  ],
  other: {},
};

/** Bodies as JSON text, the way they travel. */
const DOCKER = {
  discoverNew: JSON.stringify({ DiscoveryType: 1, DiscoveryData: { Address: '127.0.0.1', BindAddress: '127.0.0.1', Self: true } }),
  requestPool: JSON.stringify({ AddressSpace: 'local', Pool: '10.220.0.0/24', SubPool: '', Options: {}, V6: false }),
  requestPoolWithRange: JSON.stringify({ AddressSpace: 'local', Pool: '10.220.0.0/24', SubPool: '10.220.0.128/25', Options: { foo: '1' }, V6: false }),
  requestGateway: JSON.stringify({ PoolID: POOL_ID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } }),
  requestExactGateway: JSON.stringify({ PoolID: POOL_ID, Address: '10.220.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } }),
  requestAddress: JSON.stringify({ PoolID: POOL_ID, Address: '', Options: null }),
  createNetwork: JSON.stringify({
    NetworkID: NET,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { foo: 'bar' } },
    IPv4Data: [{ AddressSpace: 'local', Gateway: '10.220.0.1/24', Pool: '10.220.0.0/24' }],
    IPv6Data: [],
  }),
  createNetworkInternalIpv6: JSON.stringify({
    NetworkID: NET,
    Options: {
      'com.docker.network.enable_ipv6': true,
      'com.docker.network.generic': { 'com.docker.network.driver.mtu': '1400' },
      'com.docker.network.internal': true,
    },
    IPv4Data: [{ AddressSpace: 'LocalDefault', AuxAddresses: { host1: '10.221.0.10/24' }, Gateway: '10.221.0.254/24', Pool: '10.221.0.0/24' }],
    IPv6Data: [{ AddressSpace: 'LocalDefault', Gateway: 'fd00:1::1/64', Pool: 'fd00:1::/64' }],
  }),
  createEndpoint: JSON.stringify({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.220.0.3/24', AddressIPv6: '', MacAddress: '' }, Options: portOptions }),
  join: JSON.stringify({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/4f2a9c1b7e3d', Options: portOptions }),
  program: JSON.stringify({ NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': portmap } }),
  endpointRef: JSON.stringify({ NetworkID: NET, EndpointID: EP }),
  deleteNetwork: JSON.stringify({ NetworkID: NET }),
  releaseAddress: JSON.stringify({ PoolID: POOL_ID, Address: '10.220.0.3' }),
  releasePool: JSON.stringify({ PoolID: POOL_ID }),
};

// ---------------------------------------------------------------- test doubles

interface Call {
  method: string;
  args: unknown[];
}

/** A NetworkDriver and an IpamService that record their calls and answer canned results. */
class Doubles {
  calls: Call[] = [];
  /** thrown by the next call that reaches a double, then cleared */
  failNext: Error | undefined;
  /** awaited by every network call before it answers (lets tests hold a call open) */
  gate: Promise<void> | undefined;
  results: Record<string, unknown> = {
    createEndpoint: { macAddress: '02:42:0a:dc:00:03' },
    join: { srcName: 'tsc0a1b2c3d', dstPrefix: 'eth', gateway: '10.220.0.1', gatewayIpv6: '', staticRoutes: [], disableGatewayService: false },
    endpointOperInfo: {
      portBindings: [{ proto: 'tcp', port: 80, containerIp: '10.220.0.3', hostIp: '', hostPort: 18085 }],
      exposedPorts: [{ proto: 'tcp', port: 80 }],
      details: { hostInterface: 'tsv0a1b2c3d' },
    },
    getDefaultAddressSpaces: { localDefaultAddressSpace: 'local', globalDefaultAddressSpace: 'global' },
    requestPool: { poolId: POOL_ID, pool: '10.220.0.0/24', data: {} },
    requestAddress: { address: '10.220.0.1/24', data: {} },
  };

  private answer(method: string, args: unknown[]): unknown {
    this.calls.push({ method, args });
    const err = this.failNext;
    this.failNext = undefined;
    if (err) throw err;
    return this.results[method];
  }

  readonly network: NetworkDriver = new Proxy({} as NetworkDriver, {
    get:
      (_t, method: string) =>
      async (...args: unknown[]) => {
        this.calls.push({ method: `start ${method}`, args: [] });
        if (this.gate) await this.gate;
        return this.answer(method, args);
      },
  });

  readonly ipam: IpamService = new Proxy({} as IpamService, {
    get:
      (_t, method: string) =>
      (...args: unknown[]) =>
        this.answer(method, args),
  });

  /** The calls that reached a double, without the "start" markers. */
  get reached(): Call[] {
    return this.calls.filter((c) => !c.method.startsWith('start '));
  }
}

// ---------------------------------------------------------------- Docker's side

interface Reply {
  status: number;
  type: string | undefined;
  body: string;
  json: Record<string, unknown>;
}

/** POST as Docker does: no Content-Type, only its Accept header, the body as given (maybe empty). */
async function post(app: FastifyInstance, method: string, body = ''): Promise<Reply> {
  const r = await app.inject({ method: 'POST', url: `/${method}`, payload: body, headers: { accept: 'application/vnd.docker.plugins.v1.2+json' } });
  return { status: r.statusCode, type: r.headers['content-type'] as string | undefined, body: r.body, json: JSON.parse(r.body) as Record<string, unknown> };
}

/**
 * What Docker makes of a reply (moby pkg/plugins/client.go, drivers/remote, ipams/remote): a
 * non-200 is an error whose text is the body's "Err" or else the raw body (404 on Program/Revoke
 * counts as "not implemented", i.e. success); a 200 is decoded and its error field checked: "Error"
 * for IpamDriver calls, "Err" for the rest.
 */
function dockerReads(method: string, r: { status: number; body: string }): { ok: true; reply: Record<string, unknown> } | { ok: false; error: string } {
  if (r.status !== 200) {
    if (r.status === 404 && /^NetworkDriver\.(Program|Revoke)ExternalConnectivity$/.test(method)) return { ok: true, reply: {} };
    try {
      const j = JSON.parse(r.body) as { Err?: unknown };
      if (typeof j.Err === 'string' && j.Err !== '') return { ok: false, error: j.Err };
    } catch {
      // falls through to the raw body
    }
    return { ok: false, error: r.body };
  }
  const reply = JSON.parse(r.body) as Record<string, unknown>;
  const err = reply[method.startsWith('IpamDriver.') ? 'Error' : 'Err'];
  return typeof err === 'string' && err !== '' ? { ok: false, error: err } : { ok: true, reply };
}

// ---------------------------------------------------------------- tests

let d: Doubles;
let app: FastifyInstance;
const call = (method: string, body = '') => post(app, method, body);

beforeEach(() => {
  d = new Doubles();
  app = buildServer({ network: d.network, ipam: d.ipam });
});
afterEach(async () => {
  await app.close();
});

describe('Docker plugin protocol: every method, as Docker sends it', () => {
  it('Plugin.Activate with an empty body and no Content-Type', async () => {
    const r = await call('Plugin.Activate');
    expect(r.status).toBe(200);
    expect(r.type).toBe(PLUGIN_CONTENT_TYPE);
    expect(r.json).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
  });

  it('capabilities of both subsystems, and the configured scopes', async () => {
    expect((await call('NetworkDriver.GetCapabilities')).json).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
    expect((await call('IpamDriver.GetCapabilities')).json).toEqual({ RequiresMACAddress: false, RequiresRequestReplay: false });
    const global = buildServer({ network: d.network, ipam: d.ipam, capabilities: { scope: 'global', connectivityScope: 'global' } });
    expect((await post(global, 'NetworkDriver.GetCapabilities')).json).toEqual({ Scope: 'global', ConnectivityScope: 'global' });
    await global.close();
  });

  it('DiscoverNew, DiscoverDelete and FreeNetwork answer {}; AllocateNetwork refuses with a reason', async () => {
    expect((await call('NetworkDriver.DiscoverNew', DOCKER.discoverNew)).json).toEqual({});
    expect((await call('NetworkDriver.DiscoverDelete', DOCKER.discoverNew)).json).toEqual({});
    expect((await call('NetworkDriver.FreeNetwork', DOCKER.deleteNetwork)).json).toEqual({});
    const r = await call('NetworkDriver.AllocateNetwork', JSON.stringify({ NetworkID: NET, Options: {}, IPv4Data: [], IPv6Data: [] }));
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ Err: expect.stringMatching(/not allocated by swarm.*docker network create -d tsnet/) });
    expect(d.calls).toEqual([]);
  });

  it('GetDefaultAddressSpaces with an empty body', async () => {
    expect((await call('IpamDriver.GetDefaultAddressSpaces')).json).toEqual({ LocalDefaultAddressSpace: 'local', GlobalDefaultAddressSpace: 'global' });
  });

  it('RequestPool: the captured bodies, with and without an IP range', async () => {
    expect((await call('IpamDriver.RequestPool', DOCKER.requestPool)).json).toEqual({ PoolID: POOL_ID, Pool: '10.220.0.0/24', Data: {} });
    await call('IpamDriver.RequestPool', DOCKER.requestPoolWithRange);
    expect(d.reached.map((c) => c.args[0])).toEqual([
      { addressSpace: 'local', pool: '10.220.0.0/24', subPool: '', options: {}, v6: false },
      { addressSpace: 'local', pool: '10.220.0.0/24', subPool: '10.220.0.128/25', options: { foo: '1' }, v6: false },
    ]);
  });

  it('RequestAddress: gateway, exact, and next-free requests with null Options', async () => {
    expect((await call('IpamDriver.RequestAddress', DOCKER.requestGateway)).json).toEqual({ Address: '10.220.0.1/24', Data: {} });
    await call('IpamDriver.RequestAddress', DOCKER.requestExactGateway);
    await call('IpamDriver.RequestAddress', DOCKER.requestAddress);
    expect(d.reached.map((c) => c.args[0])).toEqual([
      { poolId: POOL_ID, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } },
      { poolId: POOL_ID, address: '10.220.0.1', options: { RequestAddressType: 'com.docker.network.gateway' } },
      { poolId: POOL_ID, address: '', options: {} },
    ]);
  });

  it('ReleaseAddress and ReleasePool', async () => {
    expect((await call('IpamDriver.ReleaseAddress', DOCKER.releaseAddress)).json).toEqual({});
    expect((await call('IpamDriver.ReleasePool', DOCKER.releasePool)).json).toEqual({});
    expect(d.reached).toEqual([
      { method: 'releaseAddress', args: [POOL_ID, '10.220.0.3'] },
      { method: 'releasePool', args: [POOL_ID] },
    ]);
  });

  it('CreateNetwork with tsnet IPAM: generic options, no AuxAddresses, empty IPv6Data', async () => {
    expect((await call('NetworkDriver.CreateNetwork', DOCKER.createNetwork)).json).toEqual({});
    expect(d.reached).toEqual([
      {
        method: 'createNetwork',
        args: [
          {
            networkId: NET,
            options: { foo: 'bar' },
            enableIpv6: false,
            internal: false,
            ipv4: [{ addressSpace: 'local', pool: '10.220.0.0/24', gateway: '10.220.0.1/24', auxAddresses: {} }],
            ipv6: [],
          },
        ],
      },
    ]);
  });

  it('CreateNetwork --internal --ipv6 with aux addresses and an MTU option', async () => {
    expect((await call('NetworkDriver.CreateNetwork', DOCKER.createNetworkInternalIpv6)).json).toEqual({});
    expect(d.reached[0]!.args[0]).toEqual({
      networkId: NET,
      options: { 'com.docker.network.driver.mtu': '1400' },
      enableIpv6: true,
      internal: true,
      ipv4: [{ addressSpace: 'LocalDefault', pool: '10.221.0.0/24', gateway: '10.221.0.254/24', auxAddresses: { host1: '10.221.0.10/24' } }],
      ipv6: [{ addressSpace: 'LocalDefault', pool: 'fd00:1::/64', gateway: 'fd00:1::1/64', auxAddresses: {} }],
    });
  });

  it('CreateNetwork with null Options and IPv6Data, and with neither', async () => {
    const nulls = JSON.stringify({ NetworkID: NET, Options: null, IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '10.1.0.1/24', AuxAddresses: null }], IPv6Data: null });
    expect((await call('NetworkDriver.CreateNetwork', nulls)).json).toEqual({});
    expect((await call('NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET }))).json).toEqual({});
    expect(d.reached.map((c) => (c.args[0] as { ipv6: unknown; options: unknown }).ipv6)).toEqual([[], []]);
  });

  it('CreateEndpoint: port maps decoded; the reply carries only what the driver filled', async () => {
    const r = await call('NetworkDriver.CreateEndpoint', DOCKER.createEndpoint);
    expect(r.json).toEqual({ Interface: { MacAddress: '02:42:0a:dc:00:03' } });
    expect(d.reached[0]!.args[0]).toEqual({
      networkId: NET,
      endpointId: EP,
      address: '10.220.0.3/24',
      addressIpv6: '',
      macAddress: '',
      options: endpointOptions,
    });
  });

  it('CreateEndpoint: a driver that fills nothing answers an empty Interface; Docker fields are never echoed', async () => {
    d.results.createEndpoint = {};
    expect((await call('NetworkDriver.CreateEndpoint', DOCKER.createEndpoint)).json).toEqual({ Interface: {} });
    d.results.createEndpoint = { address: '10.220.0.3/24' };
    expect((await call('NetworkDriver.CreateEndpoint', DOCKER.createEndpoint)).json).toEqual({ Interface: {} });
  });

  it('Join: interface name, bare gateway, routes, gateway service flag', async () => {
    const r = await call('NetworkDriver.Join', DOCKER.join);
    expect(r.json).toEqual({
      InterfaceName: { SrcName: 'tsc0a1b2c3d', DstPrefix: 'eth' },
      Gateway: '10.220.0.1',
      GatewayIPv6: '',
      StaticRoutes: [],
      DisableGatewayService: false,
    });
    expect(d.reached[0]!.args[0]).toEqual({ networkId: NET, endpointId: EP, sandboxKey: '/var/run/docker/netns/4f2a9c1b7e3d', options: endpointOptions });
  });

  it('ProgramExternalConnectivity passes the port map; Revoke, Leave, DeleteEndpoint, DeleteNetwork pass the IDs', async () => {
    expect((await call('NetworkDriver.ProgramExternalConnectivity', DOCKER.program)).json).toEqual({});
    expect(d.reached[0]!.args[0]).toEqual({ networkId: NET, endpointId: EP, options: { ...endpointOptions, exposedPorts: [] } });
    d.calls = [];
    for (const m of ['RevokeExternalConnectivity', 'Leave', 'DeleteEndpoint']) {
      expect((await call(`NetworkDriver.${m}`, DOCKER.endpointRef)).json).toEqual({});
    }
    expect((await call('NetworkDriver.DeleteNetwork', DOCKER.deleteNetwork)).json).toEqual({});
    expect(d.reached).toEqual([
      { method: 'revokeExternalConnectivity', args: [{ networkId: NET, endpointId: EP }] },
      { method: 'leave', args: [{ networkId: NET, endpointId: EP }] },
      { method: 'deleteEndpoint', args: [{ networkId: NET, endpointId: EP }] },
      { method: 'deleteNetwork', args: [NET] },
    ]);
  });

  it('EndpointOperInfo: bindings under Docker keys, numeric protocols, details beside them', async () => {
    expect((await call('NetworkDriver.EndpointOperInfo', DOCKER.endpointRef)).json).toEqual({
      Value: {
        hostInterface: 'tsv0a1b2c3d',
        'com.docker.network.portmap': [{ Proto: 6, IP: '10.220.0.3', Port: 80, HostIP: '', HostPort: 18085, HostPortEnd: 18085 }],
        'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }],
      },
    });
  });

  it('tolerates extra fields Docker may add and a Content-Type some clients send', async () => {
    const body = JSON.stringify({ NetworkID: NET, Options: { 'com.docker.network.enable_ipv4': true }, IPv4Data: [], IPv6Data: [], Future: { x: 1 } });
    expect((await call('NetworkDriver.CreateNetwork', body)).json).toEqual({});
    const r = await app.inject({ method: 'POST', url: '/NetworkDriver.DeleteNetwork', payload: DOCKER.deleteNetwork, headers: { 'content-type': 'application/json' } });
    expect(JSON.parse(r.body)).toEqual({});
  });

  it('an empty body for a call with arguments is {} and fails on the missing field, not on parsing', async () => {
    expect((await call('NetworkDriver.DeleteNetwork')).json).toEqual({ Err: 'invalid NetworkDriver.DeleteNetwork request: NetworkID is missing' });
  });
});

describe('errors, as Docker reads them', () => {
  it('NetworkDriver errors go under Err, IpamDriver errors under Error, both with status 200', async () => {
    d.failNext = new UserError('subnet 10.220.0.0/24 overlaps another tsnet network: choose a different --subnet');
    const ipam = await call('IpamDriver.RequestPool', DOCKER.requestPool);
    expect(ipam.status).toBe(200);
    expect(ipam.type).toBe(PLUGIN_CONTENT_TYPE);
    expect(ipam.json).toEqual({ Error: 'subnet 10.220.0.0/24 overlaps another tsnet network: choose a different --subnet' });
    expect(dockerReads('IpamDriver.RequestPool', ipam)).toEqual({ ok: false, error: 'subnet 10.220.0.0/24 overlaps another tsnet network: choose a different --subnet' });

    d.failNext = new UserError('parent interface eth9 does not exist: give an existing -o parent');
    const net = await call('NetworkDriver.CreateNetwork', DOCKER.createNetwork);
    expect(net.status).toBe(200);
    expect(net.json).toEqual({ Err: 'parent interface eth9 does not exist: give an existing -o parent' });
    expect(dockerReads('NetworkDriver.CreateNetwork', net)).toEqual({ ok: false, error: 'parent interface eth9 does not exist: give an existing -o parent' });
  });

  it('why 200: Docker reads only "Err" from a non-200 body, so an IPAM error sent as 500 would reach the user as raw JSON', () => {
    expect(dockerReads('IpamDriver.RequestPool', { status: 500, body: '{"Error":"no pool left"}' })).toEqual({ ok: false, error: '{"Error":"no pool left"}' });
    expect(errorKey('IpamDriver.RequestPool')).toBe('Error');
    expect(errorKey('NetworkDriver.Join')).toBe('Err');
    expect(errorKey('Plugin.Activate')).toBe('Err');
  });

  it('a thrown non-UserError is an internal error naming the method, and the server goes on', async () => {
    d.failNext = new Error('EBADF: bad file descriptor');
    expect((await call('NetworkDriver.DeleteNetwork', DOCKER.deleteNetwork)).json).toEqual({
      Err: 'tsnet internal error in NetworkDriver.DeleteNetwork: EBADF: bad file descriptor (see the tsnet log)',
    });
    d.failNext = new TypeError("Cannot read properties of undefined (reading 'x')");
    expect((await call('IpamDriver.RequestAddress', DOCKER.requestAddress)).json).toEqual({
      Error: "tsnet internal error in IpamDriver.RequestAddress: Cannot read properties of undefined (reading 'x') (see the tsnet log)",
    });
    expect((await call('NetworkDriver.DeleteNetwork', DOCKER.deleteNetwork)).json).toEqual({});
  });

  it('a driver that overrides an address Docker set is an internal error (Docker would roll back)', async () => {
    d.results.createEndpoint = { address: '10.220.0.99/24' };
    expect((await call('NetworkDriver.CreateEndpoint', DOCKER.createEndpoint)).json.Err).toMatch(/^tsnet internal error in NetworkDriver.CreateEndpoint: the driver returned Address/);
  });

  it('malformed JSON is an error in the subsystem form, not fastify’s 400', async () => {
    const n = await call('NetworkDriver.CreateNetwork', '{"NetworkID": ');
    expect(n.status).toBe(200);
    expect(n.type).toBe(PLUGIN_CONTENT_TYPE);
    expect(n.json).toEqual({ Err: expect.stringMatching(/^invalid NetworkDriver.CreateNetwork request: the request body is not valid JSON \(.+\)$/) });
    expect(Object.keys(n.json)).toEqual(['Err']);
    const i = await call('IpamDriver.RequestPool', '{');
    expect(i.json).toEqual({ Error: expect.stringMatching(/^invalid IpamDriver.RequestPool request: the request body is not valid JSON/) });
    expect((await call('Plugin.Activate', 'nonsense')).json.Err).toMatch(/not valid JSON/);
    expect(d.calls).toEqual([]);
  });

  const bad: [string, unknown, string][] = [
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, IPv4Data: [{ AddressSpace: 'local', Pool: '10.0.0.0/33' }] },
      "invalid subnet '10.0.0.0/33' in IPv4Data: the prefix length 33 is longer than the 32 bits of an IPv4 address",
    ],
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '10.1.0.1' }] },
      "invalid gateway '10.1.0.1' in IPv4Data: it has no prefix length: give an IPv4 subnet like 10.1.0.0/24",
    ],
    ['NetworkDriver.CreateNetwork', { NetworkID: NET, IPv6Data: [{ Pool: '10.1.0.0/24' }] }, "invalid subnet '10.1.0.0/24' in IPv6Data: it is IPv4 where IPv6 is expected"],
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, IPv4Data: [{ Pool: '10.1.0.0/24', AuxAddresses: { host1: '10.1.0.300/24' } }] },
      "invalid aux address host1 '10.1.0.300/24' in IPv4Data: '10.1.0.300' is not an IP address: give an IPv4 subnet like 10.1.0.0/24",
    ],
    ['NetworkDriver.CreateNetwork', { IPv4Data: [] }, 'invalid NetworkDriver.CreateNetwork request: NetworkID is missing'],
    ['NetworkDriver.CreateNetwork', { NetworkID: '' }, 'invalid NetworkDriver.CreateNetwork request: NetworkID must not be empty'],
    ['NetworkDriver.CreateNetwork', { NetworkID: 42 }, 'invalid NetworkDriver.CreateNetwork request: NetworkID must be a string, got 42'],
    ['NetworkDriver.CreateNetwork', { NetworkID: NET, IPv4Data: {} }, 'invalid NetworkDriver.CreateNetwork request: IPv4Data must be an array or null, got {}'],
    [
      'NetworkDriver.CreateNetwork',
      { NetworkID: NET, Options: { 'com.docker.network.generic': 'mtu=1400' } },
      'invalid NetworkDriver.CreateNetwork request: Options.com.docker.network.generic must be an object or null, got "mtu=1400"',
    ],
    ['NetworkDriver.CreateNetwork', [1, 2], 'invalid NetworkDriver.CreateNetwork request: the request body must be a JSON object, got [1,2]'],
    ['NetworkDriver.Leave', { NetworkID: NET, EndpointID: '' }, 'invalid NetworkDriver.Leave request: EndpointID must not be empty'],
    ['NetworkDriver.Join', { NetworkID: NET, EndpointID: EP }, 'invalid NetworkDriver.Join request: SandboxKey is missing'],
    [
      'NetworkDriver.ProgramExternalConnectivity',
      { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': [{ Proto: 1, Port: 80 }] } },
      'unsupported protocol number 1 in Options.com.docker.network.portmap[0].Proto: tsnet publishes tcp (6), udp (17) and sctp (132)',
    ],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.endpoint.exposedports': [{ Proto: 'tcp', Port: 80 }] } },
      'invalid NetworkDriver.CreateEndpoint request: Options.com.docker.network.endpoint.exposedports[0].Proto must be an integer, got "tcp"',
    ],
    [
      'NetworkDriver.Join',
      { NetworkID: NET, EndpointID: EP, SandboxKey: '/x', Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 70000 }] } },
      'port 70000 in Options.com.docker.network.portmap[0].HostPort is out of range: ports are 0 to 65535',
    ],
    [
      'NetworkDriver.Join',
      { NetworkID: NET, EndpointID: EP, SandboxKey: '/x', Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80.5 }] } },
      'invalid NetworkDriver.Join request: Options.com.docker.network.portmap[0].Port must be an integer, got 80.5',
    ],
    [
      'NetworkDriver.ProgramExternalConnectivity',
      { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 9010, HostPortEnd: 9000 }] } },
      'host port range 9010-9000 in Options.com.docker.network.portmap[0] ends before it starts: HostPortEnd must be 0 (no range) or at least HostPort',
    ],
    [
      'NetworkDriver.ProgramExternalConnectivity',
      { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostIP: 'localhost', HostPort: 9000 }] } },
      "invalid host IP 'localhost' in Options.com.docker.network.portmap[0]: it is not an IP address like 10.1.0.5",
    ],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Interface: { Address: '10.220.0.3', AddressIPv6: '', MacAddress: '' } },
      "invalid container address '10.220.0.3' in Interface.Address: it has no prefix length: give an IPv4 subnet like 10.1.0.0/24",
    ],
    [
      'NetworkDriver.CreateEndpoint',
      { NetworkID: NET, EndpointID: EP, Interface: { MacAddress: 'zz:42:0a:dc:00:03' } },
      "invalid MAC address 'zz:42:0a:dc:00:03' in Interface.MacAddress: it is not a MAC address like 02:42:0a:01:00:05",
    ],
    ['IpamDriver.RequestPool', { AddressSpace: 'local', Pool: '10.220.0.0', SubPool: '', Options: {}, V6: false }, "invalid subnet '10.220.0.0': it has no prefix length: give an address with a prefix length, like 10.1.0.0/24"],
    ['IpamDriver.RequestPool', { AddressSpace: 'local', Pool: '10.220.0.0/24', V6: 'no' }, 'invalid IpamDriver.RequestPool request: V6 must be a boolean, got "no"'],
    ['IpamDriver.RequestPool', { AddressSpace: 'local', Pool: '10.220.0.0/24', Options: ['a'] }, 'invalid IpamDriver.RequestPool request: Options must be an object or null, got ["a"]'],
    ['IpamDriver.RequestAddress', { PoolID: POOL_ID, Address: '10.220.0.300' }, "invalid address '10.220.0.300': it is not an IP address like 10.1.0.5"],
    ['IpamDriver.RequestAddress', { Address: '' }, 'invalid IpamDriver.RequestAddress request: PoolID is missing'],
    ['IpamDriver.ReleaseAddress', { PoolID: 7 }, 'invalid IpamDriver.ReleaseAddress request: PoolID must be a string, got 7'],
  ];

  it.each(bad)('refuses a bad %s with a sentence saying what is wrong (%#)', async (method, body, message) => {
    const r = await call(method, JSON.stringify(body));
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ [errorKey(method)]: message });
    expect(dockerReads(method, r)).toEqual({ ok: false, error: message });
    expect(d.calls).toEqual([]);
  });

  it('unknown methods: 404 in the form of their subsystem', async () => {
    const n = await call('NetworkDriver.GwAllocCheck', JSON.stringify({ Options: {} }));
    expect(n.status).toBe(404);
    expect(n.type).toBe(PLUGIN_CONTENT_TYPE);
    expect(n.json).toEqual({ Err: 'tsnet does not implement NetworkDriver.GwAllocCheck' });
    expect(dockerReads('NetworkDriver.GwAllocCheck', n)).toEqual({ ok: false, error: 'tsnet does not implement NetworkDriver.GwAllocCheck' });
    const i = await call('IpamDriver.Bogus');
    expect(i.status).toBe(404);
    expect(i.json).toEqual({ Error: 'tsnet does not implement IpamDriver.Bogus' });
    expect((await call('VolumeDriver.Create')).json).toEqual({ Err: 'tsnet does not implement VolumeDriver.Create' });
    const get = await app.inject({ method: 'GET', url: '/Plugin.Activate' });
    expect(get.statusCode).toBe(404);
    expect(JSON.parse(get.body)).toEqual({ Err: 'tsnet plugin calls are POST requests, not GET /Plugin.Activate' });
  });

  it('keeps serving after every kind of error', async () => {
    d.failNext = new Error('boom');
    await call('NetworkDriver.CreateNetwork', DOCKER.createNetwork);
    d.failNext = new UserError('no');
    await call('IpamDriver.RequestPool', DOCKER.requestPool);
    await call('NetworkDriver.CreateNetwork', '{');
    await call('NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET, IPv4Data: [{ Pool: 'x' }] }));
    await call('NetworkDriver.Nope');
    const big = await call('NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET, pad: 'x'.repeat(2 << 20) }));
    expect(big.json.Err).toMatch(/^invalid NetworkDriver.CreateNetwork request: .*too large/i);
    expect((await call('Plugin.Activate')).json).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
    expect((await call('NetworkDriver.CreateNetwork', DOCKER.createNetwork)).json).toEqual({});
    expect((await call('IpamDriver.RequestPool', DOCKER.requestPool)).json).toHaveProperty('PoolID', POOL_ID);
  });
});

describe('concurrency', () => {
  it('driver and IPAM calls never interleave; calls answered by the protocol layer do not wait', async () => {
    let open!: () => void;
    d.gate = new Promise<void>((resolve) => (open = resolve));
    const first = call('NetworkDriver.CreateEndpoint', DOCKER.createEndpoint);
    const second = call('NetworkDriver.Join', DOCKER.join);
    const third = call('IpamDriver.RequestAddress', DOCKER.requestAddress);
    // the first reaches the driver and holds the queue; the gate keeps the others waiting however
    // long this takes, so waiting for the first is no race
    await vi.waitFor(() => expect(d.calls.map((c) => c.method)).toEqual(['start createEndpoint']), { timeout: 5000 });
    // argument-less calls are answered while the queue is held
    expect((await call('Plugin.Activate')).json).toHaveProperty('Implements');
    expect((await call('NetworkDriver.GetCapabilities')).json).toHaveProperty('Scope', 'local');
    expect(d.calls.map((c) => c.method)).toEqual(['start createEndpoint']);
    open();
    await Promise.all([first, second, third]);
    expect(d.calls.map((c) => c.method)).toEqual(['start createEndpoint', 'createEndpoint', 'start join', 'join', 'requestAddress']);
  });

  it('a failing call releases the queue for the next', async () => {
    d.failNext = new Error('first fails');
    const [a, b] = await Promise.all([call('NetworkDriver.DeleteNetwork', DOCKER.deleteNetwork), call('NetworkDriver.DeleteNetwork', DOCKER.deleteNetwork)]);
    expect(a.json.Err).toMatch(/first fails/);
    expect(b.json).toEqual({});
  });

  it('uses a queue passed in, so the daemon can put other work in the same line', async () => {
    const queue = new SerialQueue();
    const shared = buildServer({ network: d.network, ipam: d.ipam, queue });
    let open!: () => void;
    d.gate = new Promise<void>((resolve) => (open = resolve));
    const pending = post(shared, 'NetworkDriver.DeleteNetwork', DOCKER.deleteNetwork);
    // the call reaches the driver and is held there by the gate, however long this takes
    await vi.waitFor(() => expect(d.calls.map((c) => c.method)).toEqual(['start deleteNetwork']), { timeout: 5000 });
    // the daemon's own work, queued now, runs only once the held call is done: were the server's
    // queue another one, this line would be idle and the work would run before the gate opens
    const daemonWork = queue.run(() => d.calls.push({ method: 'daemon work', args: [] }));
    open();
    expect((await pending).json).toEqual({});
    await daemonWork;
    expect(d.calls.map((c) => c.method)).toEqual(['start deleteNetwork', 'deleteNetwork', 'daemon work']);
    await shared.close();
  });

  it('SerialQueue runs functions one at a time, in order, and goes on after a failure', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    const step = (name: string, ms: number, fail = false) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
      if (fail) throw new Error(`${name} failed`);
      return name;
    };
    const syncThrow = () => {
      throw new Error('sync');
    };
    const results = await Promise.allSettled([q.run(step('a', 20)), q.run(step('b', 1, true)), q.run(syncThrow), q.run(step('c', 1))]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[3] as PromiseFulfilledResult<string>).value).toBe('c');
  });
});

describe('logging', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    return { lines, logger: pino({ level: 'info' }, stream) };
  }

  it('one line per call with method, duration, outcome and IDs; no bodies at info level', async () => {
    const { lines, logger } = capture();
    const logged = buildServer({ network: d.network, ipam: d.ipam, logger });
    await post(logged, 'NetworkDriver.CreateEndpoint', DOCKER.createEndpoint);
    await post(logged, 'IpamDriver.RequestAddress', DOCKER.requestAddress);
    await logged.close();
    const calls = lines.filter((l) => l.method);
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({ level: 30, msg: 'NetworkDriver.CreateEndpoint', method: 'NetworkDriver.CreateEndpoint', status: 200, outcome: 'ok', networkId: NET, endpointId: EP });
    expect(typeof calls[0]!.ms).toBe('number');
    expect(calls[1]).toMatchObject({ method: 'IpamDriver.RequestAddress', outcome: 'ok', poolId: POOL_ID });
    const text = JSON.stringify(lines);
    for (const secret of ['10.220.0.3', '18086', 'portmap', 'Interface', 'Options']) expect(text).not.toContain(secret);
  });

  it('failures at warn with the message; internal errors at error with the stack', async () => {
    const { lines, logger } = capture();
    const logged = buildServer({ network: d.network, ipam: d.ipam, logger });
    d.failNext = new UserError('subnet overlaps');
    await post(logged, 'IpamDriver.RequestPool', DOCKER.requestPool);
    d.failNext = new Error('netlink said no');
    await post(logged, 'NetworkDriver.Join', DOCKER.join);
    await post(logged, 'NetworkDriver.Bogus');
    await logged.close();
    expect(lines.find((l) => l.method === 'IpamDriver.RequestPool' && l.outcome)).toMatchObject({ level: 40, outcome: 'error', error: 'subnet overlaps', status: 200 });
    const internal = lines.find((l) => l.level === 50)!;
    expect(internal).toMatchObject({ method: 'NetworkDriver.Join', msg: 'internal error in NetworkDriver.Join' });
    expect((internal.err as { stack: string }).stack).toMatch(/netlink said no\n\s+at /);
    expect(lines.find((l) => l.method === 'NetworkDriver.Join' && l.outcome)).toMatchObject({
      level: 40,
      error: 'tsnet internal error in NetworkDriver.Join: netlink said no (see the tsnet log)',
    });
    expect(lines.find((l) => l.method === 'NetworkDriver.Bogus')).toMatchObject({ level: 40, status: 404, outcome: 'error' });
  });

  it('bodies only at debug level', async () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
        cb();
      },
    });
    const logged = buildServer({ network: d.network, ipam: d.ipam, logger: pino({ level: 'debug' }, stream) });
    await post(logged, 'IpamDriver.ReleaseAddress', DOCKER.releaseAddress);
    await logged.close();
    expect(lines.find((l) => l.msg === 'call body')).toMatchObject({ level: 20, body: { PoolID: POOL_ID, Address: '10.220.0.3' } });
  });

  it('takes fastify logger options as well as a pino instance', async () => {
    const quiet = buildServer({ network: d.network, ipam: d.ipam, logger: { level: 'silent' } });
    expect((await post(quiet, 'Plugin.Activate')).status).toBe(200);
    await quiet.close();
  });
});

describe('over a real unix socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-plugin-api-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** An HTTP POST as Docker's Go client makes it: no Content-Type, Content-Length 0 when there is no body. */
  function unixPost(socketPath: string, method: string, body = '', chunked = false): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { accept: 'application/vnd.docker.plugins.v1.2+json' };
      if (!chunked) headers['content-length'] = String(Buffer.byteLength(body));
      const req = request({ socketPath, path: `/${method}`, method: 'POST', headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('default path is where Docker looks for the tsnet plugin', () => {
    expect(DEFAULT_SOCKET_PATH).toBe('/run/docker/plugins/tsnet.sock');
  });

  it('creates the directory, listens with mode 0600, serves Docker, keeps serving after errors, refuses a second server', async () => {
    const socketPath = join(dir, 'run', 'docker', 'plugins', 'tsnet.sock');
    const served = buildServer({ network: d.network, ipam: d.ipam });
    try {
      await listenUnix(served, socketPath);
      expect(lstatSync(socketPath).isSocket()).toBe(true);
      expect(statSync(socketPath).mode & 0o777).toBe(0o600);

      expect(await unixPost(socketPath, 'Plugin.Activate')).toEqual({ status: 200, type: PLUGIN_CONTENT_TYPE, body: '{"Implements":["NetworkDriver","IpamDriver"]}' });
      expect(await unixPost(socketPath, 'IpamDriver.GetCapabilities', '', true)).toMatchObject({ status: 200, body: '{"RequiresMACAddress":false,"RequiresRequestReplay":false}' });
      expect((await unixPost(socketPath, 'IpamDriver.RequestPool', '{bad')).body).toMatch(/^\{"Error":"invalid IpamDriver.RequestPool request: the request body is not valid JSON/);
      d.failNext = new Error('kernel said no');
      expect(JSON.parse((await unixPost(socketPath, 'NetworkDriver.CreateNetwork', DOCKER.createNetwork)).body)).toEqual({
        Err: 'tsnet internal error in NetworkDriver.CreateNetwork: kernel said no (see the tsnet log)',
      });
      expect(await unixPost(socketPath, 'NetworkDriver.CreateNetwork', DOCKER.createNetwork)).toMatchObject({ status: 200, body: '{}' });
      expect(await unixPost(socketPath, 'IpamDriver.RequestAddress', DOCKER.requestGateway)).toMatchObject({ status: 200, body: '{"Address":"10.220.0.1/24","Data":{}}' });

      const second = buildServer({ network: d.network, ipam: d.ipam });
      await expect(listenUnix(second, socketPath)).rejects.toThrow(`another server already answers on ${socketPath}: is tsnet already running?`);
      await second.close();
      // the first one is untouched
      expect((await unixPost(socketPath, 'Plugin.Activate')).status).toBe(200);
    } finally {
      await served.close();
    }
  });

  it('replaces a stale socket left by a crash', async () => {
    const socketPath = join(dir, 'stale', 'tsnet.sock');
    // a process that listens and dies without cleaning up, as after kill -9
    const child = spawnSync(
      process.execPath,
      ['-e', "require('fs').mkdirSync(require('path').dirname(process.argv[1]),{recursive:true});require('net').createServer().listen(process.argv[1],()=>process.kill(process.pid,'SIGKILL'))", socketPath],
      { timeout: 10_000 },
    );
    expect(child.signal).toBe('SIGKILL');
    expect(lstatSync(socketPath).isSocket()).toBe(true);
    const served = buildServer({ network: d.network, ipam: d.ipam });
    try {
      await listenUnix(served, socketPath);
      expect((await unixPost(socketPath, 'Plugin.Activate')).status).toBe(200);
    } finally {
      await served.close();
    }
  });

  it('refuses to replace something that is not a socket', async () => {
    const socketPath = join(dir, 'file.sock');
    writeFileSync(socketPath, 'not a socket');
    const served = buildServer({ network: d.network, ipam: d.ipam });
    await expect(listenUnix(served, socketPath)).rejects.toThrow(`${socketPath} exists and is not a socket`);
    await served.close();
    expect(lstatSync(socketPath).isFile()).toBe(true);
  });
});
