// The lab's requests through the daemon's own server (test-support/fake-daemon.ts): each passes the server's
// schema and reaches the driver or the IPAM as the request the lab means (an overlay pool, a
// gateway, an overlay network), and dockerd's handling of the replies gives the sandbox its link.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseOverlayOptions } from '../drivers/overlay/plan.js';
import { createOverlayRequest, gatewayRequest, overlayPoolRequest, sandboxLink } from './docker-calls.js';
import { FAKE_LINK, FAKE_MAC, startFakeDaemon, type FakeDaemon } from '../test-support/fake-daemon.js';
import { PluginClient, PluginError } from './plugin-client.js';

const NET = 'ab'.repeat(32);

describe('creating the overlay as dockerd does', () => {
  let d: FakeDaemon;
  let c: PluginClient;
  beforeAll(async () => {
    d = await startFakeDaemon();
    c = new PluginClient(d.socket);
  });
  afterAll(() => d.close());

  it('asks for the overlay pool, its gateway, then the overlay network on them', async () => {
    d.received.length = 0;
    const pool = await c.call('IpamDriver.RequestPool', overlayPoolRequest('lab1', '10.77.0.0/24'));
    const gw = await c.call('IpamDriver.RequestAddress', gatewayRequest(pool.PoolID));
    await c.call('NetworkDriver.CreateNetwork', createOverlayRequest(NET, 'lab1', pool, gw.Address));

    expect(d.received).toEqual([
      // the pool option is what sends the request to the cluster-wide IPAM (ipam/cluster-ipam.ts)
      { call: 'requestPool', req: { addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'lab1' }, v6: false } },
      { call: 'requestAddress', req: { poolId: 'overlay/10.77.0.0/24', address: '', options: { RequestAddressType: 'com.docker.network.gateway' } } },
      {
        call: 'createNetwork',
        req: {
          networkId: NET,
          options: { type: 'overlay', overlay: 'lab1' },
          enableIpv6: false,
          internal: false,
          ipv4: [{ addressSpace: 'local', pool: '10.77.0.0/24', gateway: '10.77.0.1/24', auxAddresses: {} }],
          ipv6: [],
        },
      },
    ]);
    // and the overlay driver reads its own options out of them
    const created = d.received[2]!.req as { options: Record<string, string> };
    expect(parseOverlayOptions(created.options)).toMatchObject({ name: 'lab1' });
  });

  it("reports the daemon's refusal as a PluginError with its message", async () => {
    d.failNext('createNetwork', 'overlay lab1 exists');
    const pool = { PoolID: 'overlay/10.77.0.0/24', Pool: '10.77.0.0/24', Data: {} };
    const refused = c.call('NetworkDriver.CreateNetwork', createOverlayRequest(NET, 'lab1', pool, '10.77.0.1/24'));
    await expect(refused).rejects.toThrow(PluginError);
    await expect(refused).rejects.toThrow('NetworkDriver.CreateNetwork: overlay lab1 exists');
    // an IPAM error travels under another key (Error, not Err): the client reads both
    d.failNext('requestAddress', 'pool is full');
    await expect(c.call('IpamDriver.RequestAddress', gatewayRequest(pool.PoolID))).rejects.toThrow('IpamDriver.RequestAddress: pool is full');
  });

  it('Plugin.Activate, the readiness check, goes without a body', async () => {
    expect(await c.call('Plugin.Activate', undefined)).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
  });
});

describe('the container side of a Join, as dockerd sets it up', () => {
  const join = { InterfaceName: { SrcName: FAKE_LINK, DstPrefix: 'eth' }, Gateway: '10.77.0.1', GatewayIPv6: '', StaticRoutes: [], DisableGatewayService: false };

  it('moves the link Join named in as <prefix>0, with the address, the MAC the driver chose and the gateway', () => {
    expect(sandboxLink('/run/netns/c1', '10.77.0.5/24', { Interface: { MacAddress: FAKE_MAC } }, join)).toEqual({
      link: FAKE_LINK,
      netnsPath: '/run/netns/c1',
      ifName: 'eth0',
      addresses: ['10.77.0.5/24'],
      gateway4: '10.77.0.1',
      mac: FAKE_MAC,
    });
  });

  it('leaves out what the replies left empty (no gateway route, the kernel MAC, eth as prefix)', () => {
    const bare = { ...join, Gateway: '', InterfaceName: { SrcName: FAKE_LINK, DstPrefix: '' } };
    expect(sandboxLink('/run/netns/c1', '10.77.0.5/24', { Interface: {} }, bare)).toEqual({
      link: FAKE_LINK,
      netnsPath: '/run/netns/c1',
      ifName: 'eth0',
      addresses: ['10.77.0.5/24'],
      gateway4: undefined,
      mac: undefined,
    });
  });
});
