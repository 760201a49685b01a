// The macvlan driver against the real kernel. Every test builds its own world: a "host"
// namespace running the whole driver stack (its own state database too), whose parent links are
// veth ends with the other end in a "LAN" namespace holding the router's address. The test does
// what Docker does after Join (moves the sub-interface into a container namespace and configures
// it). Namespaces have unique names and go in afterEach, also when a test fails.
import { afterEach, describe, expect, it } from 'vitest';
import { NO_8021Q, Namespaces, dockerAttach, inNs, kernelHas8021q, pings, tryIn } from './harness.js';
import { linkSnapshot } from '../test-support/commands.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netlink } from '../native/netlink/netlink.js';
import { LinkReaper } from '../native/link-reaper.js';
import { openDatabase, type Db } from '../store/db.js';
import { NetworkRepo } from '../store/network-repo.js';
import { MacvlanDriver } from '../drivers/macvlan/macvlan-driver.js';
import { Controller } from '../daemon/controller.js';
import { LinkOwner } from '../drivers/owner.js';
import type { CreateNetworkRequest, EndpointOptions, JoinResult } from '../drivers/driver.js';
import { silentLogger } from '../core/log.js';

const tag = randomBytes(3).toString('hex');
const noOptions: EndpointOptions = { portBindings: [], exposedPorts: [], other: {} };
const owner = new LinkOwner();
let seq = 0;

/** Asked of the kernel itself (harness.ts), not of tsnet, whose refusal is under test. */
const kernelHasVlan = kernelHas8021q();
const NO_VLAN_REASON = `${NO_8021Q}: the VLAN success path cannot run here`;

const namespaces = new Namespaces();
const dirs: string[] = [];
const stacks: Stack[] = [];

afterEach(async () => {
  for (const s of stacks.splice(0)) await s.close().catch(() => {});
  namespaces.removeAll();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Stack {
  repo: NetworkRepo;
  controller: Controller;
  reaper: LinkReaper;
  close(): Promise<void>;
}

/** Wraps a Netlink so that one call (method and a match on its arguments) fails: a crash part-way. */
function failing(nl: Netlink, method: keyof Netlink, match: (args: unknown[]) => boolean): Netlink {
  return new Proxy(nl, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === method && match(args)) throw new Error(`injected failure in ${String(method)}`);
        return value.apply(target, args);
      };
    },
  });
}

/** One test's world: a host namespace with its own tsnet state. */
class World {
  readonly host: string;
  readonly hostPath: string;
  private readonly dbPath: string;
  private readonly attached: { ns: string; srcName: string }[] = [];

  constructor() {
    this.host = namespaces.make(`tsnet-mv-${tag}-h${++seq}`);
    this.hostPath = `/run/netns/${this.host}`;
    const dir = mkdtempSync(join(tmpdir(), 'macvlan-driver-'));
    dirs.push(dir);
    this.dbPath = join(dir, 'tsnet.db');
  }

  /** The daemon's wiring inside the host namespace; a second call is a restart on the same state. */
  start(wrap: (nl: Netlink) => Netlink = (nl) => nl): Stack {
    const db: Db = openDatabase(this.dbPath);
    const repo = new NetworkRepo(db);
    const raw = Netlink.openInNetns(this.hostPath);
    const nl = wrap(raw);
    const reaper = new LinkReaper({ warn() {} }, this.hostPath);
    const macvlan = new MacvlanDriver({ repo, netlink: nl, reaper, owner, log: silentLogger });
    const controller = new Controller([macvlan], repo, nl, { sync() {} }, owner, silentLogger);
    controller.restore();
    let closed = false;
    const stack: Stack = {
      repo,
      controller,
      reaper,
      async close() {
        if (closed) return;
        closed = true;
        await reaper.close();
        raw.close();
        db.close();
      },
    };
    stacks.push(stack);
    return stack;
  }

  /** A LAN behind parent `parent` of the host; the LAN namespace holds `routerCidr` on its eth0. */
  lan(parent: string, routerCidr: string): string {
    const ns = namespaces.make(`tsnet-mv-${tag}-l${++seq}`);
    inNs(this.host, 'ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    inNs(this.host, 'ip', ['link', 'set', parent, 'up']);
    inNs(ns, 'ip', ['addr', 'add', routerCidr, 'dev', 'eth0']);
    inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    return ns;
  }

  links(): string[] {
    return (JSON.parse(inNs(this.host, 'ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).sort();
  }

  /** Everything about a parent that must survive a network on it: state, MAC, MTU, promiscuity, addresses, routes. */
  parentState(name: string): unknown {
    return linkSnapshot(this.host, name);
  }

  /** CreateEndpoint + Join + what Docker does with the link; returns the container namespace. */
  async attach(s: Stack, networkId: string, address: string, mac = ''): Promise<{ ns: string; endpointId: string; mac: string; join: JoinResult }> {
    const endpointId = randomBytes(32).toString('hex');
    const ns = namespaces.make(`tsnet-mv-${tag}-c${++seq}`);
    const res = await s.controller.createEndpoint({ networkId, endpointId, address, addressIpv6: '', macAddress: mac, options: noOptions });
    const join = await s.controller.join({ networkId, endpointId, sandboxKey: `/run/netns/${ns}`, options: noOptions });
    dockerAttach(this.host, ns, join, address);
    this.attached.push({ ns, srcName: join.srcName });
    return { ns, endpointId, mac: res.macAddress ?? mac, join };
  }

  /**
   * What Docker does when a container stops, before DeleteEndpoint: its sandbox gives each
   * interface back to the host namespace under its original name, for the driver to remove.
   */
  detach(ns: string): void {
    const i = this.attached.findIndex((a) => a.ns === ns);
    const [{ srcName }] = this.attached.splice(i, 1);
    inNs(ns, 'ip', ['link', 'set', 'eth0', 'down']);
    inNs(ns, 'ip', ['link', 'set', 'eth0', 'name', srcName]);
    inNs(ns, 'ip', ['link', 'set', srcName, 'netns', this.host]);
  }

  detachAll(): void {
    for (const { ns } of [...this.attached]) this.detach(ns);
  }
}

function netRequest(subnet: string, options: Record<string, string>, over: Partial<CreateNetworkRequest> = {}): CreateNetworkRequest {
  const [base, len] = subnet.split('/');
  return {
    networkId: randomBytes(32).toString('hex'),
    options: { type: 'macvlan', ...options },
    enableIpv6: false,
    internal: false,
    ipv4: [{ addressSpace: 'local', pool: subnet, gateway: `${base.replace(/\.0$/, '.1')}/${len}`, auxAddresses: {} }],
    ipv6: [],
    ...over,
  };
}

function neighbours(ns: string): Map<string, string> {
  const list = JSON.parse(inNs(ns, 'ip', ['-j', 'neigh', 'show', 'dev', 'eth0'])) as { dst: string; lladdr?: string }[];
  return new Map(list.map((n) => [n.dst, n.lladdr ?? '']));
}

function macvlanMode(ns: string, link: string): string {
  const [l] = JSON.parse(inNs(ns, 'ip', ['-j', '-d', 'link', 'show', 'dev', link])) as { linkinfo: { info_kind: string; info_data: { mode: string } } }[];
  expect(l.linkinfo.info_kind).toBe('macvlan');
  return l.linkinfo.info_data.mode;
}

/** Stops every container and deletes every endpoint and network, as Docker does (deletion twice: it is idempotent). */
async function removeAll(w: World, s: Stack): Promise<void> {
  w.detachAll();
  for (const net of s.repo.listNetworks()) {
    for (const ep of s.repo.listEndpoints(net.id)) {
      await s.controller.leave({ networkId: net.id, endpointId: ep.id });
      await s.controller.deleteEndpoint({ networkId: net.id, endpointId: ep.id });
      await s.controller.deleteEndpoint({ networkId: net.id, endpointId: ep.id });
    }
    await s.controller.deleteNetwork(net.id);
    await s.controller.deleteNetwork(net.id);
  }
  await s.reaper.idle();
}

describe('macvlan driver against the kernel', () => {
  it('puts containers on the LAN with their own MACs; bridge mode lets them talk; -p is ignored', async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.1.1/24');
    const before = w.parentState('lan0');
    const req = netRequest('10.236.1.0/24', { parent: 'lan0' });
    await s.controller.createNetwork(req);
    const a = await w.attach(s, req.networkId, '10.236.1.2/24');
    const b = await w.attach(s, req.networkId, '10.236.1.3/24');
    expect(a.join).toMatchObject({ gateway: '10.236.1.1', disableGatewayService: false, dstPrefix: 'eth' });
    expect(macvlanMode(a.ns, 'eth0')).toBe('bridge');

    expect(pings(a.ns, '10.236.1.1')).toBe(true); // container -> LAN router
    expect(pings(router, '10.236.1.3')).toBe(true); // LAN host -> container
    expect(pings(a.ns, '10.236.1.3')).toBe(true); // container <-> container
    expect(pings(b.ns, '10.236.1.2')).toBe(true);
    const seen = neighbours(router);
    expect(seen.get('10.236.1.2')).toBe(a.mac);
    expect(seen.get('10.236.1.3')).toBe(b.mac);
    expect([a.mac, b.mac]).toEqual(['02:42:0a:ec:01:02', '02:42:0a:ec:01:03']);

    // Docker's macvlan ignores -p: so does tsnet (with a warning in its log)
    const portBindings = [{ proto: 'tcp' as const, port: 80, ip: '', hostIp: '', hostPort: 8080, hostPortEnd: 8080 }];
    await s.controller.programExternalConnectivity({ networkId: req.networkId, endpointId: a.endpointId, options: { ...noOptions, portBindings } });

    await removeAll(w, s);
    expect(w.links().filter((n) => n.startsWith('tsm'))).toEqual([]);
    expect(w.parentState('lan0')).toEqual(before);
  });

  it("takes Docker's MAC when it gives one", async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.2.1/24');
    const req = netRequest('10.236.2.0/24', { parent: 'lan0' });
    await s.controller.createNetwork(req);
    const a = await w.attach(s, req.networkId, '10.236.2.2/24', '02:00:00:ec:02:02');
    expect(pings(router, '10.236.2.2')).toBe(true);
    expect(neighbours(router).get('10.236.2.2')).toBe('02:00:00:ec:02:02');
    expect(a.mac).toBe('02:00:00:ec:02:02');
  });

  it('isolates containers from each other in private mode, not from the LAN', async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.3.1/24');
    const req = netRequest('10.236.3.0/24', { parent: 'lan0', macvlan_mode: 'private' });
    await s.controller.createNetwork(req);
    const a = await w.attach(s, req.networkId, '10.236.3.2/24');
    const b = await w.attach(s, req.networkId, '10.236.3.3/24');
    expect(macvlanMode(a.ns, 'eth0')).toBe('private');
    expect(pings(a.ns, '10.236.3.1')).toBe(true);
    expect(pings(router, '10.236.3.2')).toBe(true);
    expect(pings(router, '10.236.3.3')).toBe(true);
    expect(pings(a.ns, '10.236.3.3')).toBe(false);
    expect(pings(b.ns, '10.236.3.2')).toBe(false);
  });

  it('creates vepa networks: containers reach the LAN through the parent', async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.4.1/24');
    const req = netRequest('10.236.4.0/24', { parent: 'lan0', macvlan_mode: 'vepa' });
    await s.controller.createNetwork(req);
    const a = await w.attach(s, req.networkId, '10.236.4.2/24');
    await w.attach(s, req.networkId, '10.236.4.3/24');
    expect(macvlanMode(a.ns, 'eth0')).toBe('vepa');
    expect(pings(a.ns, '10.236.4.1')).toBe(true);
    expect(pings(router, '10.236.4.3')).toBe(true);
  });

  it('gives the parent to one container in passthru mode, and gives it back as it was', async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.5.1/24');
    inNs(w.host, 'ip', ['addr', 'add', '10.236.5.50/24', 'dev', 'lan0']);
    const before = w.parentState('lan0');
    const parentMac = (before as { address: string }).address;
    const req = netRequest('10.236.5.0/24', { parent: 'lan0', macvlan_mode: 'passthru' });
    await s.controller.createNetwork(req);
    const a = await w.attach(s, req.networkId, '10.236.5.2/24');
    expect(macvlanMode(a.ns, 'eth0')).toBe('passthru');
    expect(a.mac).toBe(parentMac);
    expect(pings(a.ns, '10.236.5.1')).toBe(true);
    expect(neighbours(router).get('10.236.5.2')).toBe(parentMac);
    expect(w.parentState('lan0')).toMatchObject({ address: parentMac, promiscuity: 1 }); // the kernel's, while the container has it
    const second = s.controller.createEndpoint({ networkId: req.networkId, endpointId: randomBytes(32).toString('hex'), address: '10.236.5.3/24', addressIpv6: '', macAddress: '', options: noOptions });
    await expect(second).rejects.toThrow(/passthru mode gives the parent lan0 to a single container/);
    await expect(s.controller.createNetwork(netRequest('10.236.6.0/24', { parent: 'lan0' }))).rejects.toThrow(/parent lan0 is used in passthru mode/);

    await removeAll(w, s);
    expect(w.links().filter((n) => n.startsWith('tsm'))).toEqual([]);
    expect(w.parentState('lan0')).toEqual(before);
  });

  it('gives the host access to its containers through a shim, leaving its own LAN route alone', async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.8.1/24');
    // the host is on the same LAN, as most hosts are: its connected route must survive
    inNs(w.host, 'ip', ['addr', 'add', '10.236.8.50/24', 'dev', 'lan0']);
    const before = w.parentState('lan0');
    const req = netRequest('10.236.8.0/24', { parent: 'lan0', host_access: 'true' });
    await s.controller.createNetwork(req);
    const shim = `tsmh-${req.networkId.slice(0, 10)}`;
    expect(inNs(w.host, 'ip', ['-br', 'addr', 'show', 'dev', shim])).toContain('10.236.8.254/32');
    const a = await w.attach(s, req.networkId, '10.236.8.2/24');
    await w.attach(s, req.networkId, '10.236.8.3/24');

    expect(pings(w.host, '10.236.8.2')).toBe(true); // host -> container
    expect(pings(w.host, '10.236.8.3')).toBe(true);
    expect(pings(a.ns, '10.236.8.254')).toBe(true); // container -> host (shim)
    expect(pings(a.ns, '10.236.8.50')).toBe(true); // container -> host (its LAN address)
    expect(pings(w.host, '10.236.8.1')).toBe(true); // host -> LAN, through its own link still
    expect(inNs(w.host, 'ip', ['route', 'get', '10.236.8.1'])).toContain('dev lan0');
    expect(pings(router, '10.236.8.2')).toBe(true);
    expect(inNs(w.host, 'ip', ['route', 'show', 'dev', 'lan0'])).toBe('10.236.8.0/24 proto kernel scope link src 10.236.8.50');

    // an endpoint's route goes with it
    w.detach(a.ns);
    await s.controller.deleteEndpoint({ networkId: req.networkId, endpointId: a.endpointId });
    expect(inNs(w.host, 'ip', ['route', 'show', 'dev', shim])).not.toContain('10.236.8.2 ');
    await removeAll(w, s);
    expect(w.links().filter((n) => n.startsWith('tsm'))).toEqual([]);
    expect(w.parentState('lan0')).toEqual(before);
  });

  it('makes an internal-only network on a tsnet bridge when no parent is given (or --internal)', async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.9.1/24');
    const req = netRequest('10.236.9.0/24', {});
    await s.controller.createNetwork(req);
    const bridge = `tsmb-${req.networkId.slice(0, 10)}`;
    expect(w.links()).toContain(bridge);
    const a = await w.attach(s, req.networkId, '10.236.9.2/24');
    await w.attach(s, req.networkId, '10.236.9.3/24');
    expect(a.join).toMatchObject({ gateway: '', disableGatewayService: true });
    expect(pings(a.ns, '10.236.9.3')).toBe(true);
    expect(inNs(a.ns, 'ip', ['route'])).not.toContain('default');

    // --internal with a parent: off the LAN, as with Docker
    const internal = netRequest('10.236.10.0/24', { parent: 'lan0' }, { internal: true });
    await s.controller.createNetwork(internal);
    const c = await w.attach(s, internal.networkId, '10.236.10.2/24');
    inNs(router, 'ip', ['addr', 'add', '10.236.10.1/24', 'dev', 'eth0']);
    expect(pings(c.ns, '10.236.10.1')).toBe(false);

    await removeAll(w, s);
    expect(w.links().filter((n) => n.startsWith('tsm'))).toEqual([]);
  });

  it('refuses bad parents and clashes with a message naming them, creating nothing', async () => {
    const w = new World();
    const s = w.start();
    w.lan('lan0', '10.236.11.1/24');
    inNs(w.host, 'ip', ['link', 'add', 'lan9', 'type', 'veth', 'peer', 'name', 'lan9p']);
    await s.controller.createNetwork(netRequest('10.236.11.0/24', { parent: 'lan0' }));
    const links = w.links();
    const parents = ['lan0', 'lan9'].map((p) => w.parentState(p));
    const rows = s.repo.listNetworks().length;
    const refused = async (req: CreateNetworkRequest, message: string | RegExp) => {
      await expect(s.controller.createNetwork(req)).rejects.toThrow(message);
      expect(w.links()).toEqual(links);
      expect(['lan0', 'lan9'].map((p) => w.parentState(p))).toEqual(parents);
      expect(s.repo.listNetworks().length).toBe(rows);
    };

    await refused(netRequest('10.236.12.0/24', { parent: 'eth9' }), 'parent interface eth9 does not exist on this host');
    await refused(netRequest('10.236.12.0/24', { parent: 'lan9' }), 'parent interface lan9 is down: bring it up (ip link set lan9 up)');
    await refused(netRequest('10.236.11.0/25', { parent: 'lan0' }), /subnet 10\.236\.11\.0\/25 overlaps 10\.236\.11\.0\/24/);
    await refused(netRequest('10.236.12.0/24', { parent: 'lan0', macvlan_mode: 'passthru' }), /parent lan0 already carries tsnet macvlan network .*: passthru mode needs the parent to itself/);
    await refused(netRequest('10.236.12.0/24', { parent: 'lan0', com_docker: 'x' }), /unknown option 'com_docker'.*accepted: type, parent, macvlan_mode/);
    await refused(netRequest('10.236.12.0/24', { parent: 'lan0', 'com.docker.network.driver.mtu': '9000' }), 'MTU 9000 is above the MTU 1500 of parent lan0');
    await refused(netRequest('10.236.12.0/24', { parent: 'eth9.20' }), 'parent interface eth9 (for VLAN eth9.20) does not exist');
    await refused(netRequest('10.236.12.0/24', { parent: 'lan0', host_access: 'true', macvlan_mode: 'vepa' }), /host_access needs macvlan_mode=bridge/);
    if (!kernelHasVlan) {
      // 8021q missing: the error names it and the way around it
      await refused(netRequest('10.236.12.0/24', { parent: 'lan0.20' }), /cannot create VLAN parent lan0.20: this kernel has no 802\.1Q VLAN support \(module 8021q\).*-o parent=lan0/);
    }
  });

  it.skipIf(!kernelHasVlan)(`creates a VLAN parent and removes it with its last network (skipped where ${NO_VLAN_REASON})`, async () => {
    const w = new World();
    const s = w.start();
    const router = w.lan('lan0', '10.236.13.254/24');
    inNs(router, 'ip', ['link', 'add', 'link', 'eth0', 'name', 'eth0.20', 'type', 'vlan', 'id', '20']);
    inNs(router, 'ip', ['addr', 'add', '10.236.14.1/24', 'dev', 'eth0.20']);
    inNs(router, 'ip', ['link', 'set', 'eth0.20', 'up']);
    const before = w.parentState('lan0');
    const a = netRequest('10.236.14.0/24', { parent: 'lan0.20' });
    const b = netRequest('10.236.15.0/24', { parent: 'lan0.20' });
    await s.controller.createNetwork(a);
    await s.controller.createNetwork(b);
    const c = await w.attach(s, a.networkId, '10.236.14.2/24');
    expect(pings(c.ns, '10.236.14.1')).toBe(true);
    await s.controller.deleteEndpoint({ networkId: a.networkId, endpointId: c.endpointId });
    await s.controller.deleteNetwork(a.networkId);
    expect(w.links()).toContain('lan0.20');
    await s.controller.deleteNetwork(b.networkId);
    expect(w.links()).not.toContain('lan0.20');
    expect(w.parentState('lan0')).toEqual(before);
  });

  it('rolls back a network and an endpoint that fail part-way', async () => {
    const w = new World();
    const s = w.start((nl) => failing(nl, 'setLink', (args) => String(args[0]).startsWith('tsmh-')));
    w.lan('lan0', '10.236.16.1/24');
    const links = w.links();
    const before = w.parentState('lan0');
    // the shim is made and addressed, then bringing it up fails
    await expect(s.controller.createNetwork(netRequest('10.236.16.0/24', { parent: 'lan0', host_access: 'true' }))).rejects.toThrow(/injected failure in setLink/);
    expect(w.links()).toEqual(links);
    expect(w.parentState('lan0')).toEqual(before);
    expect(s.repo.listNetworks()).toEqual([]);

    const s2 = w.start((nl) => failing(nl, 'replaceRoute', () => true));
    const req = netRequest('10.236.17.0/24', { parent: 'lan0', host_access: 'false' });
    await s2.controller.createNetwork(req);
    const withShim = netRequest('10.236.18.0/24', { parent: 'lan0', host_access: 'true' });
    await s2.controller.createNetwork(withShim);
    const linksNow = w.links();
    // the endpoint's macvlan is made, then its route through the shim fails
    const endpointId = randomBytes(32).toString('hex');
    await expect(s2.controller.createEndpoint({ networkId: withShim.networkId, endpointId, address: '10.236.18.2/24', addressIpv6: '', macAddress: '', options: noOptions })).rejects.toThrow(/injected failure in replaceRoute/);
    expect(w.links()).toEqual(linksNow);
    expect(s2.repo.getEndpoint(endpointId)).toBeUndefined();
  });

  it('restores after a kill -9: rolls back half-made work, finishes deletions, rebuilds what is missing', async () => {
    const w = new World();
    let s = w.start();
    w.lan('lan0', '10.236.19.1/24');
    const ready = netRequest('10.236.19.0/24', { parent: 'lan0', host_access: 'true' });
    await s.controller.createNetwork(ready);
    const a = await w.attach(s, ready.networkId, '10.236.19.2/24');
    const isolated = netRequest('10.236.20.0/24', {});
    await s.controller.createNetwork(isolated);
    const deleting = netRequest('10.236.21.0/24', { parent: 'lan0', host_access: 'true' });
    await s.controller.createNetwork(deleting);
    // forge what a kill -9 leaves: a network half-made, a deletion half-done, an endpoint half-made
    s.repo.setNetworkState(deleting.networkId, 'deleting');
    const half = netRequest('10.236.22.0/24', {});
    s.repo.insertNetwork({ id: half.networkId, driver: 'macvlan', state: 'creating', config: { parent: `tsmb-${half.networkId.slice(0, 10)}`, parentPlan: { kind: 'isolated', name: `tsmb-${half.networkId.slice(0, 10)}` }, mode: 'bridge', internal: true, subnets: ['10.236.22.0/24'], gateway: '', gatewayIpv6: '', createdParent: true }, ipv4: half.ipv4, ipv6: [] });
    inNs(w.host, 'ip', ['link', 'add', `tsmb-${half.networkId.slice(0, 10)}`, 'type', 'bridge']);
    const halfEp = randomBytes(32).toString('hex');
    s.repo.insertEndpoint({ id: halfEp, networkId: ready.networkId, state: 'creating', address: '10.236.19.9/24', addressIpv6: '', mac: '02:42:0a:ec:13:09', config: { link: `tsm${halfEp.slice(0, 12)}`, hostRoute: '10.236.19.9/32' } });
    inNs(w.host, 'ip', ['link', 'add', `tsm${halfEp.slice(0, 12)}`, 'link', 'lan0', 'type', 'macvlan', 'mode', 'bridge']);
    // a link of this daemon that no record knows (killed between create and insert)
    inNs(w.host, 'ip', ['link', 'add', 'tsmstray', 'link', 'lan0', 'type', 'macvlan', 'mode', 'bridge']);
    inNs(w.host, 'ip', ['link', 'set', 'tsmstray', 'alias', owner.alias('abcdefabcdef')]);
    // and what a reboot would take: the shim of the ready network, the isolated bridge
    const shim = `tsmh-${ready.networkId.slice(0, 10)}`;
    inNs(w.host, 'ip', ['link', 'del', shim]);
    inNs(w.host, 'ip', ['link', 'del', `tsmb-${isolated.networkId.slice(0, 10)}`]);
    expect(pings(w.host, '10.236.19.2')).toBe(false);
    await s.close();

    s = w.start();
    expect(s.repo.listNetworks().map((n) => n.id).sort()).toEqual([ready.networkId, isolated.networkId].sort());
    expect(s.repo.getEndpoint(halfEp)).toBeUndefined();
    await s.reaper.idle();
    const links = w.links();
    for (const gone of ['tsmstray', `tsm${halfEp.slice(0, 12)}`, `tsmh-${deleting.networkId.slice(0, 10)}`, `tsmb-${half.networkId.slice(0, 10)}`]) expect(links).not.toContain(gone);
    expect(links).toContain(shim);
    expect(links).toContain(`tsmb-${isolated.networkId.slice(0, 10)}`);
    expect(inNs(w.host, 'ip', ['route', 'show', 'dev', shim])).toContain('10.236.19.2 ');
    expect(pings(w.host, '10.236.19.2')).toBe(true);
    expect(pings(a.ns, '10.236.19.254')).toBe(true);
    // and the restored networks still work
    const b = await w.attach(s, isolated.networkId, '10.236.20.2/24');
    const c = await w.attach(s, isolated.networkId, '10.236.20.3/24');
    expect(pings(b.ns, '10.236.20.3')).toBe(true);
    expect(c.join.disableGatewayService).toBe(true);
  });

  it('a container gone without its DeleteEndpoint (killed with the daemon): the next endpoint given its address evicts it and comes up; another endpoint stays', async () => {
    const w = new World();
    let s = w.start();
    const router = w.lan('lan0', '10.236.23.1/24');
    const req = netRequest('10.236.23.0/24', { parent: 'lan0' });
    await s.controller.createNetwork(req);
    const old = await w.attach(s, req.networkId, '10.236.23.2/24');
    const other = await w.attach(s, req.networkId, '10.236.23.3/24');
    // the daemon dies and the DeleteEndpoint of `old` never comes; its namespace and its link (on
    // the parent, with the MAC derived from the address) are left behind, as its records are
    await s.close();
    s = w.start();
    // the runtime gives the address to a new container: its link comes up (else "address already in use")
    const again = await w.attach(s, req.networkId, '10.236.23.2/24');
    expect(pings(router, '10.236.23.2')).toBe(true);
    expect({
      macSeen: neighbours(router).get('10.236.23.2'),
      oldLinkLeft: tryIn(old.ns, 'ip', ['link', 'show', 'eth0']).code === 0,
      oldRecord: s.repo.getEndpoint(old.endpointId)?.id,
      otherRecord: s.repo.getEndpoint(other.endpointId)?.id,
      otherOnLan: pings(other.ns, '10.236.23.1'),
    }).toEqual({ macSeen: again.mac, oldLinkLeft: false, oldRecord: undefined, otherRecord: other.endpointId, otherOnLan: true });
  });
});
