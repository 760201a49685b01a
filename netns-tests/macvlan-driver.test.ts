// The macvlan driver against the real kernel: a "host" namespace whose parent links are veth ends,
// the other ends in "LAN" namespaces acting as router and LAN host. The test does what Docker
// does after Join (moves the sub-interface into a container namespace and configures it).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Namespaces, dockerAttach, inNs, pings, sh } from './harness.js';
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
import { silentLogger } from '../drivers/undo.js';
import type { CreateNetworkRequest, EndpointOptions } from '../drivers/driver.js';

const tag = randomBytes(3).toString('hex');
const HOST = `tsnet-mv-${tag}-h`;
const hostPath = `/run/netns/${HOST}`;
const workDir = mkdtempSync(join(tmpdir(), 'macvlan-driver-'));
const noOptions: EndpointOptions = { portBindings: [], exposedPorts: [], other: {} };
const owner = new LinkOwner();
let seq = 0;

const namespaces = new Namespaces();
const makeNs = (name: string) => namespaces.make(name);
function hostLinks(): string[] {
  return (JSON.parse(inNs(HOST, 'ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname);
}
/** A LAN behind parent `parent` of the host: the LAN namespace holds the router address. */
function lan(parent: string, routerCidr: string): string {
  const ns = makeNs(`tsnet-mv-${tag}-l${++seq}`);
  inNs(HOST, 'ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  inNs(HOST, 'ip', ['link', 'set', parent, 'up']);
  inNs(ns, 'ip', ['addr', 'add', routerCidr, 'dev', 'eth0']);
  inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
  return ns;
}

interface Stack {
  db: Db;
  repo: NetworkRepo;
  controller: Controller;
  reaper: LinkReaper;
  close(): Promise<void>;
}

function startStack(): Stack {
  const db = openDatabase(join(workDir, 'tsnet.db'));
  const repo = new NetworkRepo(db);
  const nl = Netlink.openInNetns(hostPath);
  const reaper = new LinkReaper({ warn() {} }, hostPath);
  const macvlan = new MacvlanDriver({ repo, netlink: nl, reaper, owner, log: silentLogger });
  const controller = new Controller([macvlan], repo, nl, { sync() {} }, owner, silentLogger);
  controller.restore();
  return {
    db,
    repo,
    controller,
    reaper,
    async close() {
      await reaper.close();
      nl.close();
      db.close();
    },
  };
}

function netRequest(subnet: string, options: Record<string, string>): CreateNetworkRequest {
  const [base, len] = subnet.split('/');
  return {
    networkId: randomBytes(32).toString('hex'),
    options: { type: 'macvlan', ...options },
    enableIpv6: false,
    internal: false,
    ipv4: [{ addressSpace: 'local', pool: subnet, gateway: `${base.replace(/\.0$/, '.1')}/${len}`, auxAddresses: {} }],
    ipv6: [],
  };
}

/** CreateEndpoint + Join + what Docker does with the link; returns the container namespace. */
async function attach(s: Stack, networkId: string, address: string): Promise<{ ns: string; endpointId: string; mac: string }> {
  const endpointId = randomBytes(32).toString('hex');
  const ns = makeNs(`tsnet-mv-${tag}-c${++seq}`);
  const res = await s.controller.createEndpoint({ networkId, endpointId, address, addressIpv6: '', macAddress: '', options: noOptions });
  const join = await s.controller.join({ networkId, endpointId, sandboxKey: `/run/netns/${ns}`, options: noOptions });
  dockerAttach(HOST, ns, join, address);
  return { ns, endpointId, mac: res.macAddress! };
}

beforeAll(() => {
  makeNs(HOST);
});

afterAll(() => {
  namespaces.removeAll();
  rmSync(workDir, { recursive: true, force: true });
});

describe('macvlan driver in a namespace', () => {
  let s: Stack;
  afterEach(async () => s?.close());

  it('puts containers on the LAN with their own MACs, bridge mode lets them talk', async () => {
    s = startStack();
    const router = lan('lan0', '10.236.1.1/24');
    const req = netRequest('10.236.1.0/24', { parent: 'lan0' });
    await s.controller.createNetwork(req);
    const a = await attach(s, req.networkId, '10.236.1.2/24');
    const b = await attach(s, req.networkId, '10.236.1.3/24');
    expect(pings(a.ns, '10.236.1.1')).toBe(true);
    expect(pings(router, '10.236.1.3')).toBe(true);
    expect(pings(a.ns, '10.236.1.3')).toBe(true);
    const neigh = JSON.parse(inNs(router, 'ip', ['-j', 'neigh', 'show', 'dev', 'eth0'])) as { dst: string; lladdr: string }[];
    expect(neigh.find((n) => n.dst === '10.236.1.2')?.lladdr).toBe(a.mac);
    expect(neigh.find((n) => n.dst === '10.236.1.3')?.lladdr).toBe(b.mac);
    expect(a.mac).not.toBe(b.mac);
  });

  it('isolates containers from each other in private mode, not from the LAN', async () => {
    s = startStack();
    const router = lan('lan1', '10.236.2.1/24');
    const req = netRequest('10.236.2.0/24', { parent: 'lan1', macvlan_mode: 'private' });
    await s.controller.createNetwork(req);
    const a = await attach(s, req.networkId, '10.236.2.2/24');
    await attach(s, req.networkId, '10.236.2.3/24');
    expect(pings(a.ns, '10.236.2.1')).toBe(true);
    expect(pings(router, '10.236.2.2')).toBe(true);
    expect(pings(a.ns, '10.236.2.3')).toBe(false);
  });

  it('gives the host access to its containers through a shim with host_access=true', async () => {
    s = startStack();
    lan('lan2', '10.236.3.1/24');
    const req = netRequest('10.236.3.0/24', { parent: 'lan2', host_access: 'true' });
    await s.controller.createNetwork(req);
    const a = await attach(s, req.networkId, '10.236.3.2/24');
    expect(inNs(HOST, 'ip', ['-br', 'addr'])).toContain('10.236.3.254/32');
    expect(pings(HOST, '10.236.3.2')).toBe(true);
    expect(pings(a.ns, '10.236.3.254')).toBe(true);
  });

  it('makes an internal-only network when no parent is given', async () => {
    s = startStack();
    const req = netRequest('10.236.4.0/24', {});
    await s.controller.createNetwork(req);
    const a = await attach(s, req.networkId, '10.236.4.2/24');
    await attach(s, req.networkId, '10.236.4.3/24');
    expect(pings(a.ns, '10.236.4.3')).toBe(true);
    expect(inNs(a.ns, 'ip', ['route'])).not.toContain('default');
  });

  it('refuses bad parents and clashes with a clear message, creating nothing', async () => {
    s = startStack();
    const before = hostLinks();
    const rows = s.repo.listNetworks().length;
    await expect(s.controller.createNetwork(netRequest('10.236.9.0/24', { parent: 'nosuch0' }))).rejects.toThrow('parent interface nosuch0 does not exist');
    inNs(HOST, 'ip', ['link', 'add', 'lan9', 'type', 'veth', 'peer', 'name', 'lan9p']);
    await expect(s.controller.createNetwork(netRequest('10.236.9.0/24', { parent: 'lan9' }))).rejects.toThrow('parent interface lan9 is down');
    await expect(s.controller.createNetwork(netRequest('10.236.1.0/25', { parent: 'lan0' }))).rejects.toThrow(/overlaps 10\.236\.1\.0\/24/);
    await expect(s.controller.createNetwork(netRequest('10.236.9.0/24', { parent: 'lan0', macvlan_mode: 'passthru' }))).rejects.toThrow(/passthru mode needs the parent to itself/);
    await expect(s.controller.createNetwork(netRequest('10.236.9.0/24', { parent: 'lan0', com_docker: 'x' }))).rejects.toThrow(/unknown option 'com_docker'/);
    await expect(s.controller.createNetwork(netRequest('10.236.9.0/24', { parent: 'lan0', 'com.docker.network.driver.mtu': '9000' }))).rejects.toThrow(/above the MTU 1500 of parent lan0/);
    const vlan = s.controller.createNetwork(netRequest('10.236.9.0/24', { parent: 'lan0.20' }));
    const kernelHasVlan = sh('sh', ['-c', 'zcat /proc/config.gz 2>/dev/null | grep -c "^CONFIG_VLAN_8021Q=[ym]" || true']) !== '0';
    if (kernelHasVlan) {
      await vlan;
    } else {
      // the success path needs 8021q, which this kernel lacks: its error is what users get here
      await expect(vlan).rejects.toThrow(/no 802\.1Q VLAN support \(module 8021q\).*-o parent=lan0/);
      expect(hostLinks()).toEqual([...before, 'lan9p', 'lan9'].filter((n, i, all) => all.indexOf(n) === i));
      expect(s.repo.listNetworks().length).toBe(rows);
    }
    inNs(HOST, 'ip', ['link', 'del', 'lan9']);
  });

  it('rolls back what a kill -9 left and removes networks leaving parents as they were', async () => {
    s = startStack();
    const half = randomBytes(32).toString('hex');
    s.repo.insertNetwork({ id: half, driver: 'macvlan', state: 'creating', config: { parent: 'lan0', parentPlan: { kind: 'existing', name: 'lan0' }, mode: 'bridge', internal: false, subnets: [], gateway: '', gatewayIpv6: '', createdParent: false }, ipv4: [], ipv6: [] });
    inNs(HOST, 'ip', ['link', 'add', 'tsmstray', 'link', 'lan0', 'type', 'macvlan', 'mode', 'bridge']);
    inNs(HOST, 'ip', ['link', 'set', 'tsmstray', 'alias', owner.alias('abcdefabcdef')]);
    await s.close();
    s = startStack();
    expect(s.repo.getNetwork(half)).toBeUndefined();
    expect(hostLinks()).not.toContain('tsmstray');

    const parentsBefore = inNs(HOST, 'ip', ['-br', 'link', 'show', 'type', 'veth']);
    for (const net of s.repo.listNetworks()) {
      for (const ep of s.repo.listEndpoints(net.id)) await s.controller.deleteEndpoint({ networkId: net.id, endpointId: ep.id });
      await s.controller.deleteNetwork(net.id);
      await s.controller.deleteNetwork(net.id);
    }
    await s.reaper.idle();
    expect(s.repo.listNetworks()).toEqual([]);
    expect(hostLinks().filter((n) => n.startsWith('tsm'))).toEqual([]);
    expect(inNs(HOST, 'ip', ['-br', 'link', 'show', 'type', 'veth'])).toBe(parentsBefore);
    expect(inNs(HOST, 'ip', ['route'])).not.toContain('10.236.3.0/24');
  });
});
