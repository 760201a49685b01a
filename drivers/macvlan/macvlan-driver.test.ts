// The driver's decisions against a kernel stand-in: the 802.1Q path (which this machine's kernel
// cannot run), shared VLAN links, rollback and restore. The real kernel is in
// netns-tests/macvlan-driver.test.ts.
import { beforeEach, describe, expect, it } from 'vitest';
import { MacvlanDriver } from './macvlan-driver.js';
import { openDatabase } from '../../store/db.js';
import { NetworkRepo } from '../../store/network-repo.js';
import { LinkOwner } from '../owner.js';
import { NetlinkError } from '../../native/netlink/errors.js';
import type { Netlink } from '../../native/netlink/netlink.js';
import type { LinkSpec } from '../../native/netlink/links.js';
import type { RouteSpec } from '../../native/netlink/routes.js';
import type { CreateNetworkRequest, EndpointOptions } from '../driver.js';
import { silentLogger } from '../../core/log.js';

const EOPNOTSUPP = 95;

interface FakeLink {
  name: string;
  kind: string;
  up: boolean;
  mtu: number;
  mac: string;
  parent?: string;
  alias?: string;
  addresses: string[];
}

/** Links, addresses and routes as plain data, with the calls recorded. */
class FakeKernel {
  links = new Map<string, FakeLink>();
  routes: RouteSpec[] = [];
  calls: string[] = [];
  vlanSupported = true;
  failOn?: string;

  add(name: string, over: Partial<FakeLink> = {}): void {
    this.links.set(name, { name, kind: 'veth', up: true, mtu: 1500, mac: '52:54:00:00:00:01', addresses: [], ...over });
  }

  private step(call: string): void {
    this.calls.push(call);
    if (this.failOn && call.startsWith(this.failOn)) throw new Error(`injected failure at ${call}`);
  }

  netlink(): Netlink {
    const k = this;
    const fake = {
      getLink(name: string) {
        const l = k.links.get(name);
        return l && { index: 1, name: l.name, kind: l.kind, mtu: l.mtu, mac: l.mac, up: l.up, operState: 'up', alias: l.alias, flags: 0 };
      },
      createLink(spec: LinkSpec) {
        k.step(`createLink ${spec.kind} ${spec.name}`);
        if (spec.kind === 'vlan' && !k.vlanSupported) throw new NetlinkError('createLink', EOPNOTSUPP, "kernel does not support link type 'vlan' (module 8021q missing)");
        if (k.links.has(spec.name)) throw new Error(`link ${spec.name} already exists`);
        const parent = 'parent' in spec ? spec.parent : undefined;
        if (parent !== undefined && !k.links.has(parent)) throw new Error(`no link named ${parent}`);
        k.links.set(spec.name, { name: spec.name, kind: spec.kind, up: false, mtu: spec.mtu ?? 1500, mac: ('mac' in spec && spec.mac) || '02:00:00:00:00:99', parent, alias: spec.alias, addresses: [] });
      },
      deleteLink(name: string, opts: { ignoreMissing?: boolean } = {}) {
        k.step(`deleteLink ${name}`);
        if (!k.links.delete(name) && !opts.ignoreMissing) throw new Error(`no link named ${name}`);
        // children and routes go with their link, as in the kernel
        for (const l of [...k.links.values()]) if (l.parent === name) k.links.delete(l.name);
        k.routes = k.routes.filter((r) => r.dev !== name);
      },
      setLink(name: string, change: { up?: boolean }) {
        k.step(`setLink ${name}`);
        const l = k.links.get(name);
        if (!l) throw new Error(`no link named ${name}`);
        if (change.up !== undefined) l.up = change.up;
      },
      addAddress(link: string, cidr: string) {
        k.step(`addAddress ${link} ${cidr}`);
        k.links.get(link)!.addresses.push(cidr);
      },
      replaceRoute(r: RouteSpec) {
        k.step(`replaceRoute ${r.dst} ${r.dev}`);
        if (!r.dev || !k.links.has(r.dev)) throw new Error(`no link named ${r.dev}`);
        k.routes = [...k.routes.filter((x) => x.dst !== r.dst), r];
      },
      deleteRoute(r: RouteSpec) {
        k.step(`deleteRoute ${r.dst} ${r.dev}`);
        k.routes = k.routes.filter((x) => !(x.dst === r.dst && x.dev === r.dev));
      },
      listRoutes() {
        return k.routes.map((r) => ({ ...r, family: 4, table: 254, scope: 'link', protocol: 4, type: 'unicast', onlink: false }));
      },
    };
    return fake as unknown as Netlink;
  }
}

const noOptions: EndpointOptions = { portBindings: [], exposedPorts: [], other: {} };
let ids = 0;
const id = (c: string) => `${c}${String(++ids).padStart(3, '0')}`.padEnd(64, c);
const netReq = (options: Record<string, string>, subnet: string): CreateNetworkRequest => ({
  networkId: id('a'),
  options: { type: 'macvlan', ...options },
  enableIpv6: false,
  internal: false,
  ipv4: [{ addressSpace: 'local', pool: subnet, gateway: subnet.replace(/0\/24$/, '1/24'), auxAddresses: {} }],
  ipv6: [],
});

describe('macvlan driver (kernel stand-in)', () => {
  let k: FakeKernel;
  let repo: NetworkRepo;
  let driver: MacvlanDriver;
  const removed: string[] = [];
  const start = () => new MacvlanDriver({ repo, netlink: k.netlink(), reaper: { remove: (n) => removed.push(n) }, owner: new LinkOwner(), log: silentLogger });

  beforeEach(() => {
    k = new FakeKernel();
    k.add('eth1');
    repo = new NetworkRepo(openDatabase(':memory:'));
    removed.length = 0;
    driver = start();
  });

  it('creates the VLAN link eth1.20, shares it, and removes it with the last network on it', async () => {
    const a = netReq({ parent: 'eth1.20' }, '10.236.40.0/24');
    const b = netReq({ parent: 'eth1.20' }, '10.236.41.0/24');
    await driver.createNetwork(a);
    expect(k.links.get('eth1.20')).toMatchObject({ kind: 'vlan', parent: 'eth1', up: true, alias: `tsnet:${a.networkId.slice(0, 12)}` });
    await driver.createNetwork(b);
    expect(k.calls.filter((c) => c.startsWith('createLink vlan'))).toHaveLength(1);
    expect(repo.getNetwork<{ createdParent: boolean }>(b.networkId)?.config.createdParent).toBe(true);
    expect(driver.ownedLinks()).toContain('eth1.20');

    await driver.deleteNetwork(a.networkId);
    expect(k.links.has('eth1.20')).toBe(true);
    await driver.deleteNetwork(b.networkId);
    expect(k.links.has('eth1.20')).toBe(false);
    expect(k.links.get('eth1')).toMatchObject({ up: true, addresses: [] });
  });

  it('never removes a VLAN link the user made', async () => {
    k.add('eth1.30', { kind: 'vlan', parent: 'eth1' });
    const a = netReq({ parent: 'eth1.30' }, '10.236.42.0/24');
    await driver.createNetwork(a);
    expect(k.calls.some((c) => c.startsWith('createLink'))).toBe(false);
    expect(driver.ownedLinks()).not.toContain('eth1.30');
    await driver.deleteNetwork(a.networkId);
    expect(k.links.has('eth1.30')).toBe(true);
  });

  it('names module 8021q when the kernel cannot make the VLAN link, and keeps nothing', async () => {
    k.vlanSupported = false;
    await expect(driver.createNetwork(netReq({ parent: 'eth1.20' }, '10.236.43.0/24'))).rejects.toThrow(
      /cannot create VLAN parent eth1.20: this kernel has no 802.1Q VLAN support \(module 8021q\).*-o parent=eth1/,
    );
    expect(repo.listNetworks()).toEqual([]);
    expect([...k.links.keys()]).toEqual(['eth1']);
  });

  it('rolls back a network whose shim fails part-way', async () => {
    k.failOn = 'setLink tsmh-';
    await expect(driver.createNetwork(netReq({ parent: 'eth1.20', host_access: 'true' }, '10.236.44.0/24'))).rejects.toThrow(/injected failure/);
    expect(repo.listNetworks()).toEqual([]);
    expect([...k.links.keys()]).toEqual(['eth1']);
  });

  it('routes each container through the shim and rolls an endpoint back when its route fails', async () => {
    const n = netReq({ parent: 'eth1', host_access: 'true' }, '10.236.45.0/24');
    await driver.createNetwork(n);
    const ep = id('e');
    await driver.createEndpoint({ networkId: n.networkId, endpointId: ep, address: '10.236.45.2/24', addressIpv6: '', macAddress: '', options: noOptions });
    expect(k.routes).toEqual([{ dst: '10.236.45.2/32', dev: `tsmh-${n.networkId.slice(0, 10)}`, src: '10.236.45.254' }]);
    await driver.deleteEndpoint({ networkId: n.networkId, endpointId: ep });
    expect(k.routes).toEqual([]);
    expect(removed).toEqual([`tsm${ep.slice(0, 12)}`]);

    k.failOn = 'replaceRoute';
    const ep2 = id('e');
    await expect(driver.createEndpoint({ networkId: n.networkId, endpointId: ep2, address: '10.236.45.3/24', addressIpv6: '', macAddress: '', options: noOptions })).rejects.toThrow(/injected/);
    expect(repo.getEndpoint(ep2)).toBeUndefined();
    expect(k.links.has(`tsm${ep2.slice(0, 12)}`)).toBe(false);
  });

  it('makes the VLAN link and the shim again after a reboot, with the shim routes of the endpoints', async () => {
    const a = netReq({ parent: 'eth1.20', host_access: 'true' }, '10.236.46.0/24');
    const b = netReq({ parent: 'eth1.20' }, '10.236.47.0/24');
    await driver.createNetwork(a);
    await driver.createNetwork(b);
    const ep = id('e');
    await driver.createEndpoint({ networkId: a.networkId, endpointId: ep, address: '10.236.46.2/24', addressIpv6: '', macAddress: '', options: noOptions });
    // a reboot: everything tsnet made is gone, the user's eth1 is back
    k.links.clear();
    k.routes = [];
    k.add('eth1');
    k.calls = [];
    start().restore();
    expect(k.calls.filter((c) => c.startsWith('createLink'))).toEqual(['createLink vlan eth1.20', `createLink macvlan tsmh-${a.networkId.slice(0, 10)}`]);
    expect(k.routes.map((r) => r.dst)).toEqual(['10.236.46.2/32']);
  });

  it('finishes an interrupted deletion: the owned parent goes, not the user one', async () => {
    const a = netReq({ parent: 'eth1.20' }, '10.236.48.0/24');
    await driver.createNetwork(a);
    repo.setNetworkState(a.networkId, 'deleting');
    start().restore();
    expect(repo.listNetworks()).toEqual([]);
    expect([...k.links.keys()]).toEqual(['eth1']);
  });
});
