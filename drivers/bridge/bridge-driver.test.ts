// The bridge driver's decisions against a fake host and a fake firewall (test-support/fake-host.ts,
// test-support/fake-firewall.ts): what it makes for a network, an endpoint and published ports, what
// it hands Docker, that a failed step rolls everything back, and that a refusal comes before
// anything is made. Pure and fast; the packets are in netns-tests/bridge-driver.test.ts.
import { beforeEach, describe, expect, it } from 'vitest';
import { BridgeDriver } from './bridge-driver.js';
import { binding, endpointRequest, fakeWorld, leftovers, networkRequest, nothingBut, NO_ENDPOINT_OPTIONS, type FakeWorld } from '../../test-support/fake-host.js';
import { UserError } from '../../core/errors.js';

const bridgeOf = (networkId: string) => `tsnet-${networkId.slice(0, 9)}`;
const vethOf = (endpointId: string) => ({ host: `tsv${endpointId.slice(0, 12)}`, container: `tsc${endpointId.slice(0, 12)}` });

describe('bridge driver (fake host and firewall)', () => {
  let w: FakeWorld;
  let driver: BridgeDriver;

  beforeEach(() => {
    w = fakeWorld();
    w.host.addLink('eth0');
    driver = new BridgeDriver(w.deps);
  });

  /** Nothing of tsnet's on the host, in the firewall or in the store; the user's eth0 untouched. */
  const expectNothingLeft = () => expect(leftovers(w)).toEqual(nothingBut(['eth0']));

  describe('networks', () => {
    it('makes the bridge with its gateways, forwarding and firewall network, and removes all of it', async () => {
      const req = networkRequest('10.231.20.0/24', { v6: 'fd00:231:20::/64' });
      await driver.createNetwork(req);
      const br = bridgeOf(req.networkId);
      expect(w.host.links.get(br)).toMatchObject({
        kind: 'bridge',
        up: true,
        mtu: 1500,
        mac: '02:42:0a:e7:14:01',
        alias: `tsnet:${req.networkId.slice(0, 12)}`,
        addresses: ['10.231.20.1/24', 'fd00:231:20::1/64'],
      });
      expect(w.host.sysctls).toEqual(
        new Map([
          [`net.ipv6.conf.${br}.disable_ipv6`, '0'],
          [`net.ipv4.conf.${br}.route_localnet`, '1'],
          ['net.ipv4.ip_forward', '1'],
          ['net.ipv6.conf.all.forwarding', '1'],
        ]),
      );
      expect(w.firewall.networks.get(br)).toEqual({ id: req.networkId, bridge: br, subnets: ['10.231.20.0/24', 'fd00:231:20::/64'], masquerade: true, internal: false, icc: true });
      expect(w.repo.getNetwork(req.networkId)?.state).toBe('ready');

      await driver.deleteNetwork(req.networkId);
      expectNothingLeft();
    });

    it('an internal network: not masqueraded, no forwarding sysctls, no gateway for its containers', async () => {
      const req = networkRequest('10.231.21.0/24', { internal: true });
      await driver.createNetwork(req);
      const br = bridgeOf(req.networkId);
      expect(w.firewall.networks.get(br)).toMatchObject({ internal: true, masquerade: false });
      expect(w.host.sysctls.has('net.ipv4.ip_forward')).toBe(false);
      // the positive: the bridge's own sysctl was written
      expect(w.host.sysctls.get(`net.ipv4.conf.${br}.route_localnet`)).toBe('1');

      const ep = endpointRequest(req.networkId, '10.231.21.2/24');
      await driver.createEndpoint(ep);
      const join = await driver.join({ networkId: req.networkId, endpointId: ep.endpointId, sandboxKey: '/var/run/docker/netns/x', options: NO_ENDPOINT_OPTIONS });
      expect(join).toMatchObject({ gateway: '', gatewayIpv6: '', disableGatewayService: true });
    });

    it('takes a bridge name, MTU and masquerade from the options', async () => {
      const req = networkRequest('10.231.22.0/24', {
        options: { 'com.docker.network.bridge.name': 'br-custom', 'com.docker.network.driver.mtu': '1400', 'com.docker.network.bridge.enable_ip_masquerade': 'false' },
      });
      await driver.createNetwork(req);
      expect(w.host.links.get('br-custom')).toMatchObject({ kind: 'bridge', mtu: 1400, up: true });
      expect(w.firewall.networks.get('br-custom')).toMatchObject({ masquerade: false, internal: false });
    });
  });

  describe('refusals before anything is made', () => {
    beforeEach(() => w.host.addLink('br-taken'));

    it('a bridge name the host already has, an overlapping subnet, no IPv4 subnet, a known network ID', async () => {
      const first = networkRequest('10.231.23.0/24');
      await driver.createNetwork(first);
      const kernelCalls = w.host.calls.length;
      const fwCalls = w.firewall.calls.length;
      const cases: [string, ReturnType<typeof networkRequest>, RegExp][] = [
        ['existing link', networkRequest('10.231.24.0/24', { options: { 'com.docker.network.bridge.name': 'br-taken' } }), /interface br-taken already exists on this host/],
        ['overlap', networkRequest('10.231.23.128/25'), /overlap/i],
        ['no IPv4', { ...networkRequest('10.231.25.0/24'), ipv4: [] }, /needs an IPv4 subnet/],
        ['same ID', { ...networkRequest('10.231.26.0/24'), networkId: first.networkId }, /already exists in tsnet/],
        ['unknown option', networkRequest('10.231.27.0/24', { options: { 'com.docker.network.bridge.nope': 'x' } }), /nope/],
      ];
      for (const [what, req, msg] of cases) {
        await expect(driver.createNetwork(req), what).rejects.toThrow(msg);
        await expect(driver.createNetwork(req), what).rejects.toBeInstanceOf(UserError);
      }
      expect(w.host.calls.slice(kernelCalls)).toEqual([]);
      expect(w.firewall.calls.slice(fwCalls)).toEqual([]);
      expect(w.repo.listNetworks().map((n) => n.id)).toEqual([first.networkId]);
      expect(w.host.linkNames()).toEqual(['br-taken', bridgeOf(first.networkId), 'eth0'].sort());
    });

    it('an endpoint without an address, on an unknown network, or twice', async () => {
      const net = networkRequest('10.231.28.0/24');
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.28.2/24');
      await driver.createEndpoint(ep);
      const kernelCalls = w.host.calls.length;
      await expect(driver.createEndpoint(endpointRequest(net.networkId, ''))).rejects.toThrow(/needs an IPv4 address/);
      await expect(driver.createEndpoint(endpointRequest(networkRequest('10.231.29.0/24').networkId, '10.231.29.2/24'))).rejects.toThrow(/not known to tsnet/);
      await expect(driver.createEndpoint({ ...ep })).rejects.toThrow(/already exists in tsnet/);
      expect(w.host.calls.slice(kernelCalls)).toEqual([]);
      expect(w.repo.listEndpoints(net.networkId).map((e) => e.id)).toEqual([ep.endpointId]);
    });
  });

  describe('endpoints', () => {
    it('anti-spoofing: the port may send only from its MAC and addresses, from before it joins the bridge until it goes', async () => {
      const net = networkRequest('10.231.38.0/24', { v6: 'fd00:231:38::/64' });
      await driver.createNetwork(net);
      // when, in the host's calls, the firewall was asked
      const askedAt: number[] = [];
      const add = w.firewall.addEndpoint.bind(w.firewall);
      w.firewall.addEndpoint = (e) => {
        askedAt.push(w.host.calls.length);
        add(e);
      };
      const ep = endpointRequest(net.networkId, '10.231.38.5/24', { addressIpv6: 'fd00:231:38::5/64' });
      await driver.createEndpoint(ep);
      const v = vethOf(ep.endpointId);
      expect(w.firewall.endpoints.get(v.host)).toEqual({ endpointId: ep.endpointId, port: v.host, mac: '02:42:0a:e7:26:05', ipv4: ['10.231.38.5'], ipv6: ['fd00:231:38::5'], antiSpoofing: true, icc: true });
      // in place before the port is enslaved and up: no forged frame in between
      expect(askedAt).toHaveLength(1);
      expect(w.host.calls.indexOf(`setLink ${v.host}`)).toBeGreaterThanOrEqual(askedAt[0]);
      expect(driver.firewallState().endpoints.map((e) => e.port)).toEqual([v.host]);
      await driver.deleteEndpoint(ep);
      expect(w.firewall.endpoints.size).toBe(0);
      await driver.deleteNetwork(net.networkId);
      expectNothingLeft();
    });

    it('anti_spoofing=false: no anti-spoofing for the network, and a failed step takes it away again', async () => {
      const off = networkRequest('10.231.37.0/24', { options: { anti_spoofing: 'false' } });
      await driver.createNetwork(off);
      await driver.createEndpoint(endpointRequest(off.networkId, '10.231.37.5/24'));
      expect(w.firewall.endpoints.size).toBe(0);
      expect(driver.firewallState().endpoints).toEqual([]);

      const on = networkRequest('10.231.36.0/24');
      await driver.createNetwork(on);
      const ep = endpointRequest(on.networkId, '10.231.36.5/24');
      w.host.failOn = 'setBridgePort';
      await expect(driver.createEndpoint(ep)).rejects.toThrow(/injected/);
      expect(w.firewall.endpoints.size).toBe(0);
      expect(w.repo.getEndpoint(ep.endpointId)).toBeUndefined();
    });

    it('a veth with its host end on the bridge (hairpin; ICC off is a firewall rule, not port isolation), handed to Docker in Join', async () => {
      const net = networkRequest('10.231.30.0/24', { v6: 'fd00:231:30::/64', options: { 'com.docker.network.bridge.enable_icc': 'false' } });
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.30.5/24', { addressIpv6: 'fd00:231:30::5/64' });
      expect(await driver.createEndpoint(ep)).toEqual({ macAddress: '02:42:0a:e7:1e:05' });
      const v = vethOf(ep.endpointId);
      expect(w.host.links.get(v.host)).toMatchObject({ kind: 'veth', up: true, master: bridgeOf(net.networkId), port: { hairpin: true, isolated: false }, peer: v.container });
      // the firewall closes the routed path through the gateway and the bridged one between ports
      expect(w.firewall.networks.get(bridgeOf(net.networkId))).toMatchObject({ icc: false });
      expect(w.firewall.endpoints.get(v.host)).toMatchObject({ icc: false });
      expect(w.host.links.get(v.container)?.mac).toBe('02:42:0a:e7:1e:05');
      expect(w.host.links.get(v.container)?.master).toBeUndefined();
      // the host end has IPv6 off from before it comes up (bench/scale.ts); the bridge keeps its IPv6
      const noIpv6 = w.host.calls.indexOf(`sysctl net.ipv6.conf.${v.host}.disable_ipv6=1`);
      expect(noIpv6).toBeGreaterThan(-1);
      expect(noIpv6).toBeLessThan(w.host.calls.indexOf(`setLink ${v.host}`));
      expect(w.host.sysctls.get(`net.ipv6.conf.${bridgeOf(net.networkId)}.disable_ipv6`)).toBe('0');

      const join = await driver.join({ networkId: net.networkId, endpointId: ep.endpointId, sandboxKey: '/var/run/docker/netns/y', options: NO_ENDPOINT_OPTIONS });
      expect(join).toEqual({ srcName: v.container, dstPrefix: 'eth', gateway: '10.231.30.1', gatewayIpv6: 'fd00:231:30::1', staticRoutes: [], disableGatewayService: false });
      expect(w.repo.getEndpoint(ep.endpointId)?.sandboxKey).toBe('/var/run/docker/netns/y');

      await driver.deleteEndpoint(ep);
      expect(w.host.links.has(v.host)).toBe(false);
      expect(w.host.links.has(v.container)).toBe(false);
      expect(w.repo.getEndpoint(ep.endpointId)).toBeUndefined();
      await driver.deleteNetwork(net.networkId);
      expectNothingLeft();
    });

    it('ICC on: the port is not isolated; a MAC Docker gives is kept and not returned', async () => {
      const net = networkRequest('10.231.31.0/24');
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.31.5/24', { macAddress: '02:00:00:00:31:05' });
      expect(await driver.createEndpoint(ep)).toEqual({});
      const v = vethOf(ep.endpointId);
      expect(w.host.links.get(v.host)?.port).toEqual({ hairpin: true, isolated: false });
      expect(w.host.links.get(v.container)?.mac).toBe('02:00:00:00:31:05');
    });

    it('deleting a network removes its endpoints and their published ports', async () => {
      const net = networkRequest('10.231.32.0/24');
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.32.2/24');
      await driver.createEndpoint(ep);
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: ep.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18080)] } });
      expect(w.firewall.mappings()).toHaveLength(1);
      await driver.deleteNetwork(net.networkId);
      expectNothingLeft();
    });
  });

  describe('published ports', () => {
    async function endpointOn(v4: string, addr: string, over: Parameters<typeof networkRequest>[1] = {}) {
      const net = networkRequest(v4, over);
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, addr, over.v6 ? { addressIpv6: addr.replace(/^10\.231\.(\d+)\.(\d+)\/24$/, 'fd00:231:$1::$2/64') } : {});
      await driver.createEndpoint(ep);
      return { net, ep };
    }

    it('a range, a host address and both families: reserved, in the firewall, in the store; all gone on revoke', async () => {
      const { net, ep } = await endpointOn('10.231.33.0/24', '10.231.33.2/24', { v6: 'fd00:231:33::/64' });
      const ref = { networkId: net.networkId, endpointId: ep.endpointId };
      await driver.programExternalConnectivity({
        ...ref,
        options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(9000, 19000), binding(9001, 19001), binding(53, 15353, { proto: 'udp', hostIp: '198.51.100.7' })] },
      });
      const mappings = w.firewall.mappings().map((m) => `${m.proto} ${m.hostIp || '*'}:${m.hostPort} -> ${m.containerIp}:${m.containerPort}`);
      expect(mappings).toEqual([
        'tcp *:19000 -> 10.231.33.2:9000',
        'tcp *:19000 -> fd00:231:33::2:9000',
        'tcp *:19001 -> 10.231.33.2:9001',
        'tcp *:19001 -> fd00:231:33::2:9001',
        'udp 198.51.100.7:15353 -> 10.231.33.2:53',
      ]);
      expect([...w.host.heldPorts].sort()).toEqual(['tcp/0.0.0.0/19000', 'tcp/0.0.0.0/19001', 'tcp/::/19000', 'tcp/::/19001', 'udp/198.51.100.7/15353']);
      expect((await driver.endpointOperInfo(ref)).portBindings).toHaveLength(5);

      // Docker re-sends the request when the container's gateway endpoint changes: nothing doubles
      await driver.programExternalConnectivity({ ...ref, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(9000, 19000)] } });
      expect(w.firewall.calls.filter((c) => c.startsWith('publish'))).toHaveLength(1);

      await driver.revokeExternalConnectivity(ref);
      expect(w.firewall.mappings()).toEqual([]);
      expect(w.host.heldPorts.size).toBe(0);
      expect(w.repo.listPorts()).toEqual([]);
    });

    it('a host port published by one container is refused to another, whoever holds the sockets; removing one owner never frees the other', async () => {
      const { net, ep } = await endpointOn('10.231.39.0/24', '10.231.39.2/24');
      const second = endpointRequest(net.networkId, '10.231.39.3/24');
      await driver.createEndpoint(second);
      const first = { networkId: net.networkId, endpointId: ep.endpointId };
      const taker = { networkId: net.networkId, endpointId: second.endpointId };
      // the first owner through Docker (tsnet holds the host port), the second through a CNI runtime
      await driver.programExternalConnectivity({ ...first, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18090)] } });
      const refused = driver.programExternalConnectivity({ ...taker, runtimeHoldsHostPorts: true, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18090)] } });
      await expect(refused).rejects.toThrow(`host port 18090/tcp on 0.0.0.0 is already published by endpoint ${ep.endpointId.slice(0, 12)}: choose another host port`);
      await expect(refused).rejects.toMatchObject({ kind: 'conflict' });
      // a specific host address overlaps the wildcard one too; another port is fine (the positive)
      await expect(
        driver.programExternalConnectivity({ ...taker, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18090, { hostIp: '198.51.100.7' })] } }),
      ).rejects.toThrow(/already published by endpoint/);
      await driver.programExternalConnectivity({ ...taker, runtimeHoldsHostPorts: true, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18091)] } });
      expect(w.firewall.mappings().map((m) => `${m.hostPort} -> ${m.containerIp}`)).toEqual(['18090 -> 10.231.39.2', '18091 -> 10.231.39.3']);
      // removing the second owner leaves the first one's host port held
      await driver.deleteEndpoint(taker);
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18090']);
      expect(w.firewall.mappings().map((m) => m.hostPort)).toEqual([18090]);
    });

    it('the network default host address applies to ports that name none', async () => {
      const { net, ep } = await endpointOn('10.231.34.0/24', '10.231.34.2/24', { options: { 'com.docker.network.bridge.host_binding_ipv4': '203.0.113.9' } });
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: ep.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18081)] } });
      expect(w.firewall.mappings()).toEqual([expect.objectContaining({ hostIp: '203.0.113.9', hostPort: 18081, containerIp: '10.231.34.2', containerPort: 80 })]);
    });

    it('an internal network publishes nothing (the positive: the same request on a plain network does)', async () => {
      const internal = await endpointOn('10.231.35.0/24', '10.231.35.2/24', { internal: true });
      const plain = await endpointOn('10.231.36.0/24', '10.231.36.2/24');
      const options = { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18082)] };
      await driver.programExternalConnectivity({ networkId: internal.net.networkId, endpointId: internal.ep.endpointId, options });
      expect(w.firewall.mappings()).toEqual([]);
      expect(w.host.heldPorts.size).toBe(0);
      await driver.programExternalConnectivity({ networkId: plain.net.networkId, endpointId: plain.ep.endpointId, options });
      expect(w.firewall.mappings()).toHaveLength(1);
    });

    it('a host port already held is refused naming it, and what was reserved before it is released', async () => {
      const { net, ep } = await endpointOn('10.231.37.0/24', '10.231.37.2/24');
      w.deps.ports.reserve('tcp', '0.0.0.0', 18084);
      const req = { networkId: net.networkId, endpointId: ep.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18083), binding(81, 18084)] } };
      await expect(driver.programExternalConnectivity(req)).rejects.toThrow(/18084\/tcp.*already in use/);
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18084']);
      expect(w.firewall.calls.filter((c) => c.startsWith('publish'))).toEqual([]);
      expect(w.repo.listPorts()).toEqual([]);
    });
  });

  describe('rollback: a step that fails leaves nothing behind', () => {
    for (const [step, inject] of [
      ['the bridge address', (w: FakeWorld) => (w.host.failOn = 'addAddress')],
      ['bringing the bridge up', (w: FakeWorld) => (w.host.failOn = 'setLink tsnet-')],
      ['the firewall network', (w: FakeWorld) => (w.firewall.failNext = 'addNetwork')],
    ] as const) {
      it(`network: ${step}`, async () => {
        inject(w);
        await expect(driver.createNetwork(networkRequest('10.231.40.0/24', { v6: 'fd00:231:40::/64' }))).rejects.toThrow(/injected/);
        expectNothingLeft();
      });
    }

    for (const [step, failOn] of [
      ['the veth', 'createLink veth'],
      ['enslaving the host end', 'setLink tsv'],
      ['the bridge port flags', 'setBridgePort tsv'],
    ] as const) {
      it(`endpoint: ${step}`, async () => {
        const net = networkRequest('10.231.41.0/24');
        await driver.createNetwork(net);
        const linksBefore = w.host.linkNames();
        w.host.failOn = failOn;
        const ep = endpointRequest(net.networkId, '10.231.41.2/24');
        await expect(driver.createEndpoint(ep)).rejects.toThrow(/injected/);
        expect(w.host.linkNames()).toEqual(linksBefore);
        expect(w.repo.getEndpoint(ep.endpointId)).toBeUndefined();
        // the network is untouched and still takes endpoints
        await driver.createEndpoint(ep);
        expect(w.host.links.get(vethOf(ep.endpointId).host)?.master).toBe(bridgeOf(net.networkId));
      });
    }

    it('published ports: the firewall fails, the host ports and rows go', async () => {
      const net = networkRequest('10.231.42.0/24');
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.42.2/24');
      await driver.createEndpoint(ep);
      w.firewall.failNext = 'publish';
      const req = { networkId: net.networkId, endpointId: ep.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18090), binding(443, 18443)] } };
      await expect(driver.programExternalConnectivity(req)).rejects.toThrow(/injected/);
      expect(w.host.heldPorts.size).toBe(0);
      expect(w.repo.listPorts()).toEqual([]);
      expect(w.firewall.mappings()).toEqual([]);
      // and a retry publishes them
      await driver.programExternalConnectivity(req);
      expect(w.firewall.mappings()).toHaveLength(2);
    });
  });

  describe('start-up', () => {
    it('rebuilds a missing bridge with its firewall network and puts the endpoint back on it', async () => {
      const net = networkRequest('10.231.43.0/24');
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.43.2/24');
      await driver.createEndpoint(ep);
      const br = bridgeOf(net.networkId);
      w.host.links.delete(br);
      w.firewall.networks.clear();
      new BridgeDriver(w.deps).restore();
      expect(w.host.links.get(br)).toMatchObject({ up: true, addresses: ['10.231.43.1/24'] });
      expect(w.host.links.get(vethOf(ep.endpointId).host)).toMatchObject({ master: br, port: { hairpin: true, isolated: false } });
      expect(w.firewall.networks.has(br)).toBe(true);
    });

    it('holds again the host ports it held, never those a runtime holds itself (CNI)', async () => {
      const net = networkRequest('10.231.45.0/24');
      await driver.createNetwork(net);
      const docker = endpointRequest(net.networkId, '10.231.45.2/24');
      const cni = endpointRequest(net.networkId, '10.231.45.3/24');
      await driver.createEndpoint(docker);
      await driver.createEndpoint(cni);
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: docker.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18095)] } });
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: cni.endpointId, runtimeHoldsHostPorts: true, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18096)] } });
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18095']);
      // a restart: the dead daemon's sockets are gone
      w.host.heldPorts.clear();
      new BridgeDriver(w.deps).restore();
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18095']);
      // and the CNI endpoint's removal releases nothing tsnet holds
      await driver.deleteEndpoint({ networkId: net.networkId, endpointId: cni.endpointId });
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18095']);
    });

    it('a repair while running (drift) leaves the ports it holds alone, with no false warning', async () => {
      const net = networkRequest('10.231.46.0/24');
      await driver.createNetwork(net);
      const ep = endpointRequest(net.networkId, '10.231.46.2/24');
      await driver.createEndpoint(ep);
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: ep.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18097)] } });
      const warned: string[] = [];
      driver = new BridgeDriver({ ...w.deps, log: { ...w.deps.log, warn: (_o: object | string, msg?: string) => void warned.push(msg ?? '') } });
      driver.restore();
      expect(warned).toEqual([]);
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18097']);
      // the positive: a port that is not held (a restart) is held again, quietly
      w.host.heldPorts.clear();
      driver.restore();
      expect(warned).toEqual([]);
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18097']);
    });

    it('with everything in place, writes nothing to the kernel (one read of each kind, no request per endpoint)', async () => {
      const net = networkRequest('10.231.47.0/24');
      await driver.createNetwork(net);
      const eps = [endpointRequest(net.networkId, '10.231.47.2/24'), endpointRequest(net.networkId, '10.231.47.3/24')];
      for (const ep of eps) await driver.createEndpoint(ep);
      w.host.calls.length = 0;
      new BridgeDriver(w.deps).restore();
      expect(w.host.calls.filter((c) => !c.startsWith('sysctl'))).toEqual([]);
      // the positive: a port off its bridge, one down, one with hairpin off are each put back
      const [a, b] = eps.map((ep) => w.host.links.get(vethOf(ep.endpointId).host)!);
      a.master = undefined;
      b.port = { ...b.port!, hairpin: false };
      new BridgeDriver(w.deps).restore();
      expect(w.host.calls.filter((c) => !c.startsWith('sysctl'))).toEqual([`setLink ${a.name}`, `setBridgePort ${a.name}`, `setLink ${b.name}`, `setBridgePort ${b.name}`]);
      expect([a, b].map((l) => [l.master, l.up, l.port])).toEqual([[bridgeOf(net.networkId), true, { hairpin: true, isolated: false }], [bridgeOf(net.networkId), true, { hairpin: true, isolated: false }]]);
      b.up = false;
      w.host.calls.length = 0;
      new BridgeDriver(w.deps).restore();
      expect(w.host.calls.filter((c) => !c.startsWith('sysctl'))).toEqual([`setLink ${b.name}`, `setBridgePort ${b.name}`]);
      expect(b.up).toBe(true);
    });

    it('holds no host port again for an endpoint it rolls back', async () => {
      const net = networkRequest('10.231.48.0/24');
      await driver.createNetwork(net);
      const kept = endpointRequest(net.networkId, '10.231.48.2/24');
      const interrupted = endpointRequest(net.networkId, '10.231.48.3/24');
      for (const ep of [kept, interrupted]) await driver.createEndpoint(ep);
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: kept.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18098)] } });
      await driver.programExternalConnectivity({ networkId: net.networkId, endpointId: interrupted.endpointId, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18099)] } });
      w.repo.setEndpointState(interrupted.endpointId, 'creating');
      w.host.heldPorts.clear();
      new BridgeDriver(w.deps).restore();
      expect([...w.host.heldPorts]).toEqual(['tcp/0.0.0.0/18098']);
      expect(w.repo.getEndpoint(interrupted.endpointId)).toBeUndefined();
    });

    it('rolls back a network left half-made', async () => {
      const net = networkRequest('10.231.44.0/24');
      await driver.createNetwork(net);
      w.repo.setNetworkState(net.networkId, 'creating');
      new BridgeDriver(w.deps).restore();
      expectNothingLeft();
    });
  });
});
