// The overlay driver's decisions on one host against a fake host, fake namespaces and a fake
// firewall (test-support/fake-host.ts, fake-namespaces.ts, fake-firewall.ts): the network's own
// namespace with the bridge and the VXLAN port, the gateway veth on the host, VNI choice, the MTU,
// endpoints and published ports through the bridge driver, rollback of a failed step, refusals
// before anything is made, restore, and the move of an overlay made in the older layout (bridge
// in the host's namespace). No cluster store here (the control plane has tests of its own); the
// real kernel is in netns-tests/ and docker-tests/.
import { beforeEach, describe, expect, it } from 'vitest';
import { OverlayDriver } from './overlay-driver.js';
import type { Underlay } from './plan.js';
import { binding, endpointRequest, fakeWorld, leftovers, networkRequest, nothingBut, NO_ENDPOINT_OPTIONS, type FakeWorld } from '../../test-support/fake-host.js';
import type { CreateNetworkRequest } from '../driver.js';
import type { VxlanSpec } from '../../native/netlink/links.js';
import { FakeNamespaces } from '../../test-support/fake-namespaces.js';
import { overlayNetnsName } from './plan.js';
import { ingressChainOf } from '../../firewall/rules/spoofing.js';

const UNDERLAY: Underlay = { vtep: '198.51.100.1', link: 'eth0', mtu: 1400 };
const names = (networkId: string) => ({ bridge: `tob-${networkId.slice(0, 11)}`, vxlan: `tox-${networkId.slice(0, 11)}` });

function overlayRequest(v4: string, options: Record<string, string> = {}, over: Partial<CreateNetworkRequest> = {}): CreateNetworkRequest {
  return networkRequest(v4, { options: { type: 'overlay', ...options }, ...over });
}

describe('overlay driver on one host (fake host and firewall)', () => {
  let w: FakeWorld;
  let ns: FakeNamespaces;
  let driver: OverlayDriver;
  const start = () => new OverlayDriver({ ...w.deps, underlay: () => UNDERLAY, namespaces: ns });

  beforeEach(() => {
    w = fakeWorld();
    w.host.addLink('eth0');
    ns = new FakeNamespaces(w.host);
    driver = start();
  });

  /** Nothing of tsnet's on the host, in the firewall, in the store or as a namespace; the user's eth0 untouched. */
  const expectNothingLeft = () => {
    expect(leftovers(w)).toEqual(nothingBut(['eth0']));
    expect([...ns.namespaces.keys()]).toEqual([]);
  };

  /** The network's own namespace. */
  const own = (networkId: string) => ns.get(overlayNetnsName('tsnet', networkId));
  const vxlanSpec = (networkId: string) => own(networkId).links.get(names(networkId).vxlan)?.spec as VxlanSpec | undefined;
  const failOn = (call: string) => {
    w.host.failOn = call;
    ns.failOn = call;
  };

  it('a bridge with a VXLAN port in the network\'s own namespace (br_netfilter off there), the gateway on a veth to the host: no learning, ARP proxy, MTU of the underlay minus 50; all removed with it', async () => {
    const req = overlayRequest('10.237.10.0/24');
    await driver.createNetwork(req);
    const n = names(req.networkId);
    // the host has the gateway veth under the bridge's name, nothing else of the overlay
    expect(w.host.links.get(n.bridge)).toMatchObject({ kind: 'veth', mtu: 1350, up: true, addresses: ['10.237.10.1/24'], peer: 'gw0' });
    expect(w.host.linkNames()).toEqual(['eth0', n.bridge].sort());
    const o = own(req.networkId);
    expect(o.linkNames()).toEqual(['br0', 'gw0', n.vxlan].sort());
    expect(o.links.get('br0')).toMatchObject({ kind: 'bridge', mtu: 1350, up: true, addresses: [] });
    expect(o.links.get('gw0')).toMatchObject({ master: 'br0', up: true });
    expect(o.sysctls.get('net.bridge.bridge-nf-call-iptables')).toBe('0');
    expect(vxlanSpec(req.networkId)).toMatchObject({ kind: 'vxlan', vni: 4096, port: 4789, local: '198.51.100.1', learning: false, proxy: true, mtu: 1350 });
    expect(o.links.get(n.vxlan)).toMatchObject({ master: 'br0', up: true, port: { isolated: false, hairpin: false, learning: false } });
    // its VXLAN packets exempt from connection tracking: this host's VTEP, the port and the VNI
    expect(w.firewall.networks.get(n.bridge)).toEqual({ id: req.networkId, bridge: n.bridge, subnets: ['10.237.10.0/24'], masquerade: true, internal: false, icc: true, tunnel: { local: '198.51.100.1', port: 4789, vni: 4096 } });

    await driver.deleteNetwork(req.networkId);
    expectNothingLeft();
  });

  it('ICC off covers the VXLAN port too (the firewall drops what passes between any two ports of the bridge), so remote containers are cut off as well', async () => {
    const req = overlayRequest('10.237.11.0/24', { 'com.docker.network.bridge.enable_icc': 'false' });
    await driver.createNetwork(req);
    expect(w.firewall.networks.get(names(req.networkId).bridge)).toMatchObject({ icc: false });
    // not port isolation, which also dropped published ports reached through a host address
    expect(own(req.networkId).links.get(names(req.networkId).vxlan)?.port).toMatchObject({ isolated: false, hairpin: false });
  });

  describe('VNIs', () => {
    it('each overlay takes the first free VNI from 4096; a VNI in use here is refused before anything is made', async () => {
      const a = overlayRequest('10.237.12.0/24');
      const b = overlayRequest('10.237.13.0/24');
      await driver.createNetwork(a);
      await driver.createNetwork(b);
      expect(vxlanSpec(a.networkId)?.vni).toBe(4096);
      expect(vxlanSpec(b.networkId)?.vni).toBe(4097);
      const calls = w.host.calls.length;
      await expect(driver.createNetwork(overlayRequest('10.237.14.0/24', { vni: '4097' }))).rejects.toThrow(/VNI 4097 is used by another overlay network on this host/);
      expect(w.host.calls.slice(calls)).toEqual([]);
      // the positive: a free explicit VNI is taken as given
      const c = overlayRequest('10.237.14.0/24', { vni: '5000' });
      await driver.createNetwork(c);
      expect(vxlanSpec(c.networkId)?.vni).toBe(5000);
    });

    it('a VNI chosen here but held by a device tsnet cannot see is skipped, leaving nothing of the first attempt', async () => {
      w.host.foreignVnis.add(4096);
      const req = overlayRequest('10.237.15.0/24');
      await driver.createNetwork(req);
      const n = names(req.networkId);
      expect(vxlanSpec(req.networkId)?.vni).toBe(4097);
      expect(w.host.linkNames()).toEqual(['eth0', n.bridge].sort());
      expect(own(req.networkId).linkNames()).toEqual(['br0', 'gw0', n.vxlan].sort());
      expect(w.host.calls.filter((c) => c.startsWith('createLink vxlan'))).toHaveLength(2);
      expect(ns.namespaces.size).toBe(1);
    });

    it('a VNI the user gave that such a device holds is refused naming it, and nothing is left', async () => {
      w.host.foreignVnis.add(6000);
      await expect(driver.createNetwork(overlayRequest('10.237.16.0/24', { vni: '6000' }))).rejects.toThrow(/VNI 6000 on UDP port 4789 is taken by another VXLAN device/);
      expectNothingLeft();
    });
  });

  describe('refusals before anything is made', () => {
    it('a cluster name without a cluster store, --ipv6 without an IPv6 subnet, no or two IPv4 subnets, an MTU VXLAN cannot carry, an unknown option', async () => {
      const cases: [string, CreateNetworkRequest, RegExp][] = [
        ['cluster name', overlayRequest('10.237.17.0/24', { overlay: 'blue' }), /overlay 'blue' spans hosts and needs the cluster store/],
        ['ipv6 without a subnet', { ...networkRequest('10.237.18.0/24', { options: { type: 'overlay' } }), enableIpv6: true }, /--ipv6 needs an IPv6 subnet for a tsnet overlay network/],
        ['no subnet', { ...overlayRequest('10.237.19.0/24'), ipv4: [] }, /needs an IPv4 subnet/],
        ['two subnets', { ...overlayRequest('10.237.20.0/24'), ipv4: [...overlayRequest('10.237.20.0/24').ipv4, ...overlayRequest('10.237.21.0/24').ipv4] }, /takes one IPv4 subnet/],
        ['mtu', overlayRequest('10.237.22.0/24', { 'com.docker.network.driver.mtu': '1351' }), /MTU 1351 does not fit through VXLAN: the underlay eth0 has MTU 1400.*1350 is the largest/],
        ['unknown option', overlayRequest('10.237.23.0/24', { 'com.docker.network.bridge.name': 'br-x' }), /unknown option 'com.docker.network.bridge.name'/],
      ];
      for (const [what, req, msg] of cases) await expect(driver.createNetwork(req), what).rejects.toThrow(msg);
      expect(w.host.calls).toEqual([]);
      expect(w.firewall.calls).toEqual([]);
      expectNothingLeft();
      // the positive: the largest MTU that fits is taken
      const ok = overlayRequest('10.237.22.0/24', { 'com.docker.network.driver.mtu': '1350' });
      await driver.createNetwork(ok);
      expect(w.host.links.get(names(ok.networkId).bridge)?.mtu).toBe(1350);
    });
  });

  describe('endpoints and published ports, through the bridge driver', () => {
    it('a veth at the overlay MTU, a gateway in Join, a published port; all gone with the endpoint', async () => {
      const net = overlayRequest('10.237.24.0/24');
      await driver.createNetwork(net);
      const n = names(net.networkId);
      const ep = endpointRequest(net.networkId, '10.237.24.2/24');
      expect(await driver.createEndpoint(ep)).toEqual({ macAddress: '02:42:0a:ed:18:02' });
      const hostIf = `tsv${ep.endpointId.slice(0, 12)}`;
      expect(own(net.networkId).links.get(hostIf)).toMatchObject({ kind: 'veth', mtu: 1350, master: 'br0', up: true, port: { hairpin: false, isolated: false } });
      expect(w.host.links.has(hostIf)).toBe(false);
      // anti-spoofing in the network's namespace (the port is there), not in the host's table
      expect(ns.scripts.get(overlayNetnsName('tsnet', net.networkId))!.join('\n')).toContain(`add chain netdev tsnet ${ingressChainOf(hostIf)} { type filter hook ingress device "${hostIf}"`);
      expect(w.firewall.endpoints.size).toBe(0);

      const join = await driver.join({ networkId: net.networkId, endpointId: ep.endpointId, sandboxKey: '/var/run/docker/netns/o', options: NO_ENDPOINT_OPTIONS });
      expect(join).toMatchObject({ srcName: `tsc${ep.endpointId.slice(0, 12)}`, gateway: '10.237.24.1', disableGatewayService: false });

      const ref = { networkId: net.networkId, endpointId: ep.endpointId };
      await driver.programExternalConnectivity({ ...ref, options: { ...NO_ENDPOINT_OPTIONS, portBindings: [binding(80, 18180)] } });
      expect(w.firewall.mappings()).toEqual([expect.objectContaining({ hostIp: '', hostPort: 18180, containerIp: '10.237.24.2', containerPort: 80 })]);
      expect((await driver.endpointOperInfo(ref)).details).toMatchObject({ vxlan: n.vxlan, vni: '4096', bridge: n.bridge });

      await driver.deleteEndpoint(ref);
      expect(own(net.networkId).links.has(hostIf)).toBe(false);
      expect(ns.scripts.get(overlayNetnsName('tsnet', net.networkId))!.at(-1)).toContain(`delete chain netdev tsnet ${ingressChainOf(hostIf)}`);
      // every element of the port, not only its guard (the layout remembers what it added)
      expect(ns.scripts.get(overlayNetnsName('tsnet', net.networkId))!.at(-1)).toContain(`delete element netdev tsnet port_mac { "${hostIf}" . 02:42:0a:ed:18:02 }`);
      expect(w.firewall.mappings()).toEqual([]);
      expect(w.host.heldPorts.size).toBe(0);
      await driver.deleteNetwork(net.networkId);
      expectNothingLeft();
    });

    it('dual-stack (--ipv6): the IPv6 gateway on the host end of the gateway veth, each endpoint an IPv6 address and gateway too', async () => {
      const net = overlayRequest('10.237.26.0/24', {}, { enableIpv6: true, ipv6: [{ addressSpace: 'local', pool: 'fd00:237:26::/64', gateway: 'fd00:237:26::1/64', auxAddresses: {} }] });
      await driver.createNetwork(net);
      const n = names(net.networkId);
      expect(w.host.links.get(n.bridge)).toMatchObject({ kind: 'veth', addresses: ['10.237.26.1/24', 'fd00:237:26::1/64'] });
      const ep = endpointRequest(net.networkId, '10.237.26.2/24', { addressIpv6: 'fd00:237:26::2/64' });
      await driver.createEndpoint(ep);
      const hostIf = `tsv${ep.endpointId.slice(0, 12)}`;
      // anti-spoofing knows the IPv6 address too
      expect(ns.scripts.get(overlayNetnsName('tsnet', net.networkId))!.join('\n')).toContain('fd00:237:26::2');
      const join = await driver.join({ networkId: net.networkId, endpointId: ep.endpointId, sandboxKey: '/var/run/docker/netns/o6', options: NO_ENDPOINT_OPTIONS });
      expect(join).toMatchObject({ gateway: '10.237.26.1', gatewayIpv6: 'fd00:237:26::1' });
      await driver.deleteEndpoint({ networkId: net.networkId, endpointId: ep.endpointId });
      expect(own(net.networkId).links.has(hostIf)).toBe(false);
      await driver.deleteNetwork(net.networkId);
      expectNothingLeft();
    });

    it('an endpoint without an IPv4 address is refused before anything is made', async () => {
      const net = overlayRequest('10.237.25.0/24');
      await driver.createNetwork(net);
      const calls = w.host.calls.length;
      await expect(driver.createEndpoint(endpointRequest(net.networkId, ''))).rejects.toThrow(/overlay endpoint needs an IPv4 address/);
      expect(w.host.calls.slice(calls)).toEqual([]);
      expect(w.repo.listEndpoints(net.networkId)).toEqual([]);
    });
  });

  describe('rollback: a step that fails leaves nothing behind', () => {
    // the firewall's network is added after the namespace, the bridge and the gateway veth
    const added = ['addNetwork', 'removeNetwork'];
    for (const [step, call, firewall] of [
      ['making the VXLAN device', 'createLink vxlan', added],
      ['putting it on the bridge', 'setLink tox-', added],
      ['its bridge port flags', 'setBridgePort tox-', added],
      ['making the bridge in the namespace', 'createLink bridge br0', []],
      ['making the gateway veth', 'createLink veth tob-', []],
    ] as const) {
      it(step, async () => {
        failOn(call);
        await expect(driver.createNetwork(overlayRequest('10.237.26.0/24'))).rejects.toThrow(/injected/);
        expectNothingLeft();
        expect(w.firewall.calls.map((c) => c.split(' ')[0])).toEqual(firewall);
      });
    }
  });

  it('rollback of an endpoint whose port fails to join the bridge in the namespace: no port, no rules, no row left', async () => {
    const net = overlayRequest('10.237.30.0/24');
    await driver.createNetwork(net);
    const o = own(net.networkId);
    o.failOn = 'setLink tsv';
    const ep = endpointRequest(net.networkId, '10.237.30.2/24');
    await expect(driver.createEndpoint(ep)).rejects.toThrow(/injected/);
    const hostIf = `tsv${ep.endpointId.slice(0, 12)}`;
    expect(o.links.has(hostIf)).toBe(false);
    expect(w.host.linkNames()).toEqual(['eth0', names(net.networkId).bridge].sort());
    expect(ns.scripts.get(overlayNetnsName('tsnet', net.networkId))!.at(-1)).toContain(`delete chain netdev tsnet ${ingressChainOf(hostIf)}`);
    expect(w.repo.listEndpoints(net.networkId)).toEqual([]);
    // the positive: the same endpoint is made when nothing fails
    await driver.createEndpoint(ep);
    expect(o.links.get(hostIf)).toMatchObject({ master: 'br0' });
  });

  it('start-up: removes this daemon\'s overlay namespaces that no network names, and leaves its own networks\' and other daemons\' alone', async () => {
    const req = overlayRequest('10.237.31.0/24');
    await driver.createNetwork(req);
    ns.add('tsnet-ov-0123456789ab');
    ns.add('other-ov-0123456789ab');
    start().restore();
    expect([...ns.namespaces.keys()].sort()).toEqual([overlayNetnsName('tsnet', req.networkId), 'other-ov-0123456789ab'].sort());
  });

  it('start-up: a VXLAN device gone missing is made again and put back on its bridge', async () => {
    const req = overlayRequest('10.237.27.0/24');
    await driver.createNetwork(req);
    const n = names(req.networkId);
    own(req.networkId).links.delete(n.vxlan);
    start().restore();
    expect(vxlanSpec(req.networkId)).toMatchObject({ vni: 4096, proxy: true, learning: false });
    expect(own(req.networkId).links.get(n.vxlan)).toMatchObject({ master: 'br0', up: true, port: { isolated: false, hairpin: false } });
    expect(start().ownedLinks()).toEqual(expect.arrayContaining([n.bridge, n.vxlan]));
  });

  it('start-up: the VXLAN port of an overlay made when it still learned stops learning', async () => {
    const req = overlayRequest('10.237.28.0/24');
    await driver.createNetwork(req);
    const vxlan = own(req.networkId).links.get(names(req.networkId).vxlan)!;
    vxlan.port = { ...vxlan.port, learning: true };
    start().restore();
    expect(own(req.networkId).links.get(names(req.networkId).vxlan)?.port).toMatchObject({ learning: false });
  });

  it('start-up: an overlay made in the older layout (bridge, VXLAN port and container ports in the host\'s namespace) moves into its own namespace, its ports and addresses kept', async () => {
    const req = overlayRequest('10.237.29.0/24');
    await driver.createNetwork(req);
    const ep = endpointRequest(req.networkId, '10.237.29.2/24');
    await driver.createEndpoint(ep);
    const n = names(req.networkId);
    const hostIf = `tsv${ep.endpointId.slice(0, 12)}`;
    // as the older tsnet left it: everything on a bridge in the host's namespace, no namespace
    const nsName = overlayNetnsName('tsnet', req.networkId);
    const moved = [n.vxlan, hostIf].map((l) => own(req.networkId).links.get(l)!);
    ns.namespaces.delete(nsName);
    w.host.links.delete(n.bridge);
    w.host.links.set(n.bridge, { name: n.bridge, kind: 'bridge', up: true, mtu: 1350, mac: '02:42:0a:ed:1d:01', addresses: ['10.237.29.1/24'], spec: { kind: 'bridge', name: n.bridge } });
    for (const l of moved) w.host.links.set(l.name, { ...l, master: n.bridge });

    start().restore();
    expect(w.host.links.get(n.bridge)).toMatchObject({ kind: 'veth', addresses: ['10.237.29.1/24'], up: true });
    // (the container's end stays where it was: here on the fake host)
    expect(w.host.linkNames()).toEqual(['eth0', n.bridge, `tsc${ep.endpointId.slice(0, 12)}`].sort());
    const o = own(req.networkId);
    expect(o.linkNames()).toEqual(['br0', 'gw0', n.vxlan, hostIf].sort());
    for (const l of [n.vxlan, hostIf, 'gw0']) expect(o.links.get(l), l).toMatchObject({ master: 'br0', up: true });
    // the same container port, not a new one: nothing made but the namespace's bridge and the gateway veth
    expect(o.links.get(hostIf)?.mac).toBe(moved[1].mac);
    expect(ns.scripts.get(nsName)!.join('\n')).toContain(`add chain netdev tsnet ${ingressChainOf(hostIf)} { type filter hook ingress device "${hostIf}"`);
    // and a start-up after that changes nothing
    const calls = w.host.calls.length;
    start().restore();
    expect(w.host.calls.slice(calls).filter((c) => c.startsWith('createLink') || c.startsWith('deleteLink'))).toEqual([]);
  });

  describe('the namespace\'s tables: anti-spoofing at each port\'s ingress, a bridge table only for ICC off', () => {
    const tablesMade = (script: string) => script.includes('delete table netdev tsnet');
    it('ICC on: no bridge-family table (no hook every frame of the bridge enters); a start-up keeps the tables', async () => {
      const req = overlayRequest('10.237.32.0/24');
      await driver.createNetwork(req);
      const scripts = ns.scripts.get(overlayNetnsName('tsnet', req.networkId))!;
      const made = scripts.filter(tablesMade);
      expect(made).toHaveLength(1);
      expect(made[0]).toContain('add chain netdev tsnet spoof');
      expect(made[0]).not.toContain('add chain bridge tsnet');
      await driver.createEndpoint(endpointRequest(req.networkId, '10.237.32.2/24'));
      expect(scripts.at(-1)).not.toContain('bridge tsnet');
      start().restore();
      expect(scripts.filter(tablesMade)).toHaveLength(1);
    });

    it('ICC off: the bridge table with its forward hook, the gateway spared, each port a member', async () => {
      const req = overlayRequest('10.237.33.0/24', { 'com.docker.network.bridge.enable_icc': 'false' });
      await driver.createNetwork(req);
      const scripts = ns.scripts.get(overlayNetnsName('tsnet', req.networkId))!;
      expect(scripts.filter(tablesMade)[0]).toMatch(/add chain bridge tsnet forward[^]*insert rule bridge tsnet forward oifname "gw0" accept/);
      const ep = endpointRequest(req.networkId, '10.237.33.2/24');
      await driver.createEndpoint(ep);
      expect(scripts.at(-1)).toContain(`add element bridge tsnet no_icc_ports { "tsv${ep.endpointId.slice(0, 12)}" }`);
      start().restore();
      expect(scripts.filter(tablesMade)).toHaveLength(1);
    });

    it('an older tsnet\'s table (anti-spoofing in the bridge\'s prerouting hook) is replaced at start-up, and the ports guarded again', async () => {
      const req = overlayRequest('10.237.34.0/24');
      await driver.createNetwork(req);
      const ep = endpointRequest(req.networkId, '10.237.34.2/24');
      await driver.createEndpoint(ep);
      const scripts = ns.scripts.get(overlayNetnsName('tsnet', req.networkId))!;
      // as the older tsnet left it
      scripts.push('add table netdev tsnet\ndelete table netdev tsnet\nadd table bridge tsnet\nadd chain bridge tsnet spoof');
      const before = scripts.length;
      start().restore();
      const after = scripts.slice(before).join('\n');
      expect(after).toMatch(/add chain netdev tsnet spoof[^]*delete table bridge tsnet[^]*add chain netdev tsnet in_/);
      expect(after).not.toContain('add chain bridge tsnet');
    });
  });
});
