// The protocol layer against recording test doubles: requests exactly as Docker sends them (no
// Content-Type, empty bodies for argument-less calls), answers in Docker's shapes and error forms.
import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer, listenUnix, PLUGIN_CONTENT_TYPE, SerialQueue } from './server.js';
import { UserError, type NetworkDriver } from '../drivers/driver.js';
import type { IpamService } from '../ipam/types.js';

const calls: { method: string; arg: unknown }[] = [];
let failWith: Error | undefined;

function recorder<T extends object>(results: Record<string, unknown>): T {
  return new Proxy({} as T, {
    get: (_t, method: string) => (arg: unknown, arg2?: unknown) => {
      calls.push({ method, arg: arg2 === undefined ? arg : [arg, arg2] });
      if (failWith) throw failWith;
      return results[method];
    },
  });
}

const network = recorder<NetworkDriver>({
  createEndpoint: { macAddress: '02:42:0a:dc:00:03' },
  join: { srcName: 'tsc123', dstPrefix: 'eth', gateway: '10.220.0.1', gatewayIpv6: '', staticRoutes: [], disableGatewayService: false },
  endpointOperInfo: {
    portBindings: [{ proto: 'tcp', port: 80, containerIp: '10.220.0.3', hostIp: '0.0.0.0', hostPort: 8080 }],
    exposedPorts: [{ proto: 'tcp', port: 80 }],
    details: { hostInterface: 'tsv123' },
  },
});
const ipam = recorder<IpamService>({
  getDefaultAddressSpaces: { localDefaultAddressSpace: 'local', globalDefaultAddressSpace: 'global' },
  requestPool: { poolId: 'local/10.220.0.0/24', pool: '10.220.0.0/24', data: {} },
  requestAddress: { address: '10.220.0.1/24', data: {} },
});
const app = buildServer({ network, ipam });

/** As Docker sends it: POST, no Content-Type, the body as given (maybe empty). */
async function call(method: string, body = '') {
  calls.length = 0;
  const r = await app.inject({ method: 'POST', url: `/${method}`, payload: body, headers: { accept: 'application/vnd.docker.plugins.v1.2+json' } });
  return { status: r.statusCode, type: r.headers['content-type'], json: JSON.parse(r.body) as Record<string, unknown> };
}

const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);

describe('Docker plugin protocol', () => {
  it('activates with an empty body and no Content-Type', async () => {
    const r = await call('Plugin.Activate');
    expect(r).toEqual({ status: 200, type: PLUGIN_CONTENT_TYPE, json: { Implements: ['NetworkDriver', 'IpamDriver'] } });
  });

  it('answers capabilities and default address spaces', async () => {
    expect((await call('NetworkDriver.GetCapabilities')).json).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
    expect((await call('IpamDriver.GetCapabilities')).json).toEqual({ RequiresMACAddress: false, RequiresRequestReplay: false });
    expect((await call('IpamDriver.GetDefaultAddressSpaces')).json).toEqual({ LocalDefaultAddressSpace: 'local', GlobalDefaultAddressSpace: 'global' });
  });

  it('translates CreateNetwork as Docker sends it', async () => {
    const body = {
      NetworkID: NET,
      Options: {
        'com.docker.network.enable_ipv6': true,
        'com.docker.network.generic': { 'com.docker.network.driver.mtu': '1400', foo: 1 },
        'com.docker.network.internal': true,
      },
      IPv4Data: [{ AddressSpace: 'LocalDefault', AuxAddresses: { host1: '10.221.0.10/24' }, Gateway: '10.221.0.254/24', Pool: '10.221.0.0/24' }],
      IPv6Data: [{ AddressSpace: 'LocalDefault', Gateway: 'fd00:1::1/64', Pool: 'fd00:1::/64' }],
    };
    expect((await call('NetworkDriver.CreateNetwork', JSON.stringify(body))).json).toEqual({});
    expect(calls[0]).toEqual({
      method: 'createNetwork',
      arg: {
        networkId: NET,
        options: { 'com.docker.network.driver.mtu': '1400', foo: '1' },
        enableIpv6: true,
        internal: true,
        ipv4: [{ addressSpace: 'LocalDefault', pool: '10.221.0.0/24', gateway: '10.221.0.254/24', auxAddresses: { host1: '10.221.0.10/24' } }],
        ipv6: [{ addressSpace: 'LocalDefault', pool: 'fd00:1::/64', gateway: 'fd00:1::1/64', auxAddresses: {} }],
      },
    });
  });

  it('accepts null Options and IPv6Data', async () => {
    const r = await call('NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET, Options: null, IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '10.1.0.1/24' }], IPv6Data: null }));
    expect(r.json).toEqual({});
  });

  it('translates CreateEndpoint and returns only what the driver filled', async () => {
    const body = {
      NetworkID: NET,
      EndpointID: EP,
      Interface: { Address: '10.220.0.3/24', AddressIPv6: '', MacAddress: '' },
      Options: {
        'com.docker.network.endpoint.exposedports': [{ Proto: 17, Port: 81 }, { Proto: 6, Port: 80 }],
        'com.docker.network.portmap': [
          { Proto: 17, IP: '', Port: 81, HostIP: '127.0.0.1', HostPort: 18086, HostPortEnd: 18086 },
          { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 0, HostPortEnd: 0 },
        ],
      },
    };
    expect((await call('NetworkDriver.CreateEndpoint', JSON.stringify(body))).json).toEqual({ Interface: { MacAddress: '02:42:0a:dc:00:03' } });
    const arg = calls[0].arg as { options: { portBindings: unknown[]; exposedPorts: unknown[] } };
    expect(arg.options.portBindings).toEqual([
      { proto: 'udp', port: 81, ip: '', hostIp: '127.0.0.1', hostPort: 18086, hostPortEnd: 18086 },
      { proto: 'tcp', port: 80, ip: '', hostIp: '', hostPort: 0, hostPortEnd: 0 },
    ]);
    expect(arg.options.exposedPorts).toEqual([{ proto: 'udp', port: 81 }, { proto: 'tcp', port: 80 }]);
  });

  it('answers Join with interface name, bare gateway and routes', async () => {
    const r = await call('NetworkDriver.Join', JSON.stringify({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/x', Options: {} }));
    expect(r.json).toEqual({ InterfaceName: { SrcName: 'tsc123', DstPrefix: 'eth' }, Gateway: '10.220.0.1', GatewayIPv6: '', StaticRoutes: [], DisableGatewayService: false });
  });

  it('reports bindings in EndpointOperInfo under Docker keys with numeric protocols', async () => {
    const r = await call('NetworkDriver.EndpointOperInfo', JSON.stringify({ NetworkID: NET, EndpointID: EP }));
    expect(r.json).toEqual({
      Value: {
        hostInterface: 'tsv123',
        'com.docker.network.portmap': [{ Proto: 6, IP: '10.220.0.3', Port: 80, HostIP: '0.0.0.0', HostPort: 8080, HostPortEnd: 8080 }],
        'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }],
      },
    });
  });

  it('passes Leave, DeleteEndpoint, Revoke, DeleteNetwork and discovery through', async () => {
    for (const m of ['Leave', 'DeleteEndpoint', 'RevokeExternalConnectivity', 'ProgramExternalConnectivity']) {
      expect((await call(`NetworkDriver.${m}`, JSON.stringify({ NetworkID: NET, EndpointID: EP }))).json).toEqual({});
    }
    expect((await call('NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: NET }))).json).toEqual({});
    expect((await call('NetworkDriver.DiscoverNew', JSON.stringify({ DiscoveryType: 1, DiscoveryData: {} }))).json).toEqual({});
    expect((await call('NetworkDriver.FreeNetwork', JSON.stringify({ NetworkID: NET }))).json).toEqual({});
    expect((await call('NetworkDriver.AllocateNetwork', JSON.stringify({ NetworkID: NET }))).json.Err).toMatch(/swarm/);
  });

  it('serves IPAM calls in IPAM shapes', async () => {
    expect((await call('IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'local', Pool: '10.220.0.0/24', SubPool: '', Options: {}, V6: false }))).json).toEqual({
      PoolID: 'local/10.220.0.0/24',
      Pool: '10.220.0.0/24',
      Data: {},
    });
    expect(calls[0].arg).toEqual({ addressSpace: 'local', pool: '10.220.0.0/24', subPool: '', options: {}, v6: false });
    const addr = await call('IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'p', Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } }));
    expect(addr.json).toEqual({ Address: '10.220.0.1/24', Data: {} });
    expect(calls[0].arg).toEqual({ poolId: 'p', address: '', options: { RequestAddressType: 'com.docker.network.gateway' } });
    expect((await call('IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'p', Address: '', Options: null }))).json).toHaveProperty('Address');
    expect((await call('IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: 'p', Address: '10.220.0.3' }))).json).toEqual({});
    expect((await call('IpamDriver.ReleasePool', JSON.stringify({ PoolID: 'p' }))).json).toEqual({});
  });
});

describe('errors in Docker form', () => {
  it('uses Err for NetworkDriver and Error for IpamDriver', async () => {
    const n = await call('NetworkDriver.CreateNetwork', '{"NetworkID": ');
    expect(n.status).toBe(200);
    expect(n.json).toEqual({ Err: expect.stringMatching(/not valid JSON/) });
    const i = await call('IpamDriver.RequestPool', '{');
    expect(i.json).toEqual({ Error: expect.stringMatching(/not valid JSON/) });
  });

  it.each([
    ['NetworkDriver.CreateNetwork', { NetworkID: NET, IPv4Data: [{ Pool: '10.0.0.0/33' }] }, "invalid NetworkDriver.CreateNetwork request: invalid IPv4Data[0].Pool '10.0.0.0/33': expected an address with prefix length, like 10.1.0.0/24"],
    ['NetworkDriver.CreateNetwork', { IPv4Data: [] }, 'invalid NetworkDriver.CreateNetwork request: NetworkID is missing'],
    ['NetworkDriver.CreateNetwork', { NetworkID: 42 }, 'invalid NetworkDriver.CreateNetwork request: NetworkID must be string, got 42'],
    ['NetworkDriver.CreateNetwork', [1, 2], 'invalid NetworkDriver.CreateNetwork request: the request body must be a JSON object'],
    [
      'NetworkDriver.ProgramExternalConnectivity',
      { NetworkID: NET, EndpointID: EP, Options: { 'com.docker.network.portmap': [{ Proto: 1, Port: 80 }] } },
      "invalid NetworkDriver.ProgramExternalConnectivity request: unsupported protocol number 1 in Options.com.docker.network.portmap[0].Proto: tsnet handles tcp (6), udp (17) and sctp (132)",
    ],
    ['IpamDriver.RequestAddress', { PoolID: 'p', Address: '10.0.0.300' }, "invalid IpamDriver.RequestAddress request: invalid Address '10.0.0.300': expected an IP address like 10.1.0.5"],
  ])('refuses a bad %s with a message saying what is wrong', async (method, body, message) => {
    const r = await call(method, JSON.stringify(body));
    const key = method.startsWith('Ipam') ? 'Error' : 'Err';
    expect(r.json[key]).toBe(message);
  });

  it('refuses an IP range without a subnet', async () => {
    expect((await call('IpamDriver.RequestPool', JSON.stringify({ Pool: '', SubPool: '10.1.0.0/25' }))).json.Error).toMatch(/needs a subnet/);
  });

  it('says what the user did wrong for a UserError, and calls anything else internal', async () => {
    failWith = new UserError('subnet overlaps: choose another');
    expect((await call('IpamDriver.RequestPool', JSON.stringify({ Pool: '10.1.0.0/24' }))).json).toEqual({ Error: 'subnet overlaps: choose another' });
    failWith = new Error('EBADF');
    expect((await call('NetworkDriver.DeleteNetwork', JSON.stringify({ NetworkID: NET }))).json).toEqual({
      Err: 'tsnet internal error in NetworkDriver.DeleteNetwork: EBADF (see the tsnet log)',
    });
    failWith = undefined;
    expect((await call('Plugin.Activate')).status).toBe(200);
  });

  it('answers unknown methods with 404 in the form of their subsystem', async () => {
    const n = await call('NetworkDriver.Bogus');
    expect(n.status).toBe(404);
    expect(n.json.Err).toMatch(/does not implement/);
    expect((await call('IpamDriver.Bogus')).json.Error).toMatch(/does not implement/);
  });
});

describe('SerialQueue', () => {
  it('runs calls one at a time, in order, and goes on after a failure', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    const slow = (name: string, ms: number) => async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
      if (name === 'b') throw new Error('b failed');
    };
    const results = await Promise.allSettled([q.run(slow('a', 20)), q.run(slow('b', 1)), q.run(slow('c', 1))]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});

describe('over a real unix socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plugin-api-'));
  const socketPath = join(dir, 'plugins', 'tsnet.sock');
  const served = buildServer({ network, ipam });
  afterAll(async () => {
    await served.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('listens with mode 0600, answers as Docker expects, and refuses a second server', async () => {
    await listenUnix(served, socketPath);
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    const r = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = request({ socketPath, path: '/Plugin.Activate', method: 'POST' }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(r).toEqual({ status: 200, type: PLUGIN_CONTENT_TYPE, body: '{"Implements":["NetworkDriver","IpamDriver"]}' });
    await expect(listenUnix(buildServer({ network, ipam }), socketPath)).rejects.toThrow(/already answers/);
  });
});
