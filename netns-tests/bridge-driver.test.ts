// The bridge driver and the controller against the real kernel, without Docker: the whole driver
// stack runs inside a "host" namespace, and the test does what Docker does after Join (moves the
// container end into a "container" namespace and configures it). Rollback and the start-up
// reconcile are exercised by failing operations and by forging what a kill -9 leaves behind.
// Each test builds its own world (namespaces, database, stack) so that each passes alone with -t.
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { Namespaces, dockerAttach, inNs, until } from './harness.js';
import { TSNET_LINK_PREFIXES, bindIn, spoofLeftovers } from './leftovers.js';

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Netlink } from '../native/netlink/netlink.js';
import { withNetns } from '../native/netns.js';
import { writeSysctl } from '../native/sysctl.js';
import { Nft } from '../native/nftables.js';
import { PortReserver } from '../native/sockets.js';
import { LinkReaper } from '../native/link-reaper.js';
import { Firewall } from '../firewall/firewall.js';
import { openDatabase, type Db } from '../store/db.js';
import { NetworkRepo } from '../store/network-repo.js';
import { BridgeDriver } from '../drivers/bridge/bridge-driver.js';
import { Controller } from '../daemon/controller.js';
import { LinkOwner } from '../drivers/owner.js';
import type { HostPortReserver } from '../drivers/ports.js';
import type { CreateNetworkRequest, EndpointOptions } from '../drivers/driver.js';
import type { Logger } from '../core/log.js';
import type { Proto } from '../core/protocol.js';

const tag = randomBytes(3).toString('hex');
const workDir = mkdtempSync(join(tmpdir(), 'bridge-driver-'));
const namespaces = new Namespaces();
const makeNs = (name: string) => namespaces.make(name);
/** servers of the current test, killed after it */
const children: ChildProcess[] = [];

/**
 * One test's world, made fresh for each test so that none depends on another (each passes alone
 * with -t): a "host" namespace where the driver stack runs, and an "outside" namespace behind the
 * host's uplink with a server on port 7000 that answers with the peer's address.
 */
interface World {
  host: string;
  hostPath: string;
  out: string;
  dbPath: string;
}
let w: World;
let worlds = 0;

function tryIn(ns: string, cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: inNs(ns, cmd, args) };
  } catch (err) {
    return { ok: false, out: String((err as { stderr?: string }).stderr ?? '') };
  }
}
function hostLinks(): { ifname: string; ifalias?: string; master?: string }[] {
  return JSON.parse(inNs(w.host, 'ip', ['-j', 'link', 'show']));
}
function hostTable(): string {
  return inNs(w.host, 'nft', ['list', 'table', 'inet', 'tsnet']);
}
/**
 * A TCP server in a namespace that answers each connection with `reply` (or the peer address);
 * resolves once it listens.
 */
async function serve(ns: string, port: number, reply: string | null): Promise<void> {
  const answer = reply === null ? 's.remoteAddress' : JSON.stringify(reply);
  const child = spawn('ip', ['netns', 'exec', ns, 'node', '-e', `require('net').createServer(s=>s.end(${answer}+'\\n')).listen(${port},'0.0.0.0')`], { stdio: 'ignore' });
  children.push(child);
  await until(`a server listening on ${ns}:${port}`, () => inNs(ns, 'ss', ['-Hltn', `sport = :${port}`]) !== '');
}
/** What a client gets: the server's reply, or "error:<code>" ("error:timeout" after 3 s). */
function connect(ns: string, ip: string, port: number): string {
  const r = tryIn(ns, 'node', [
    '-e',
    `const s=require('net').connect(${port},'${ip}');let d='';s.setTimeout(3000,()=>{console.log('error:timeout');process.exit(0)});s.on('data',c=>d+=c);s.on('end',()=>{console.log(d.trim())});s.on('error',e=>{console.log('error:'+e.code)})`,
  ]);
  return r.ok ? r.out : `error:${r.out}`;
}

/**
 * What the stack logged at warn or error level, as "level: message": the daemon's log of this
 * file. Each test ends with exactly the lines it expects (most none), checked after it.
 */
const logged: string[] = [];
let expectedLog: string[] = [];
const record = (level: string) => (obj: object | string, msg?: string) => void logged.push(`${level}: ${msg ?? (typeof obj === 'string' ? obj : JSON.stringify(obj))}`);
const log: Logger = { info() {}, warn: record('warn'), error: record('error') };

/** Runs the real PortReserver inside the host namespace, where the published ports live. */
function reserverIn(nsPath: string): HostPortReserver & { releaseAll(): void } {
  const r = new PortReserver({ log });
  return {
    reserve: (p: Proto, ip: string, port: number) => withNetns(nsPath, () => r.reserve(p, ip, port)),
    reserveFromRange: (p: Proto, ip: string, a: number, b: number) => withNetns(nsPath, () => r.reserveFromRange(p, ip, a, b)),
    reserveEphemeral: (p: Proto, ip: string) => withNetns(nsPath, () => r.reserveEphemeral(p, ip)),
    release: (p: Proto, ip: string, port: number) => withNetns(nsPath, () => r.release(p, ip, port)),
    holds: (p: Proto, ip: string, port: number) => r.holds(p, ip, port),
    releaseAll: () => r.releaseAll(),
  };
}

interface Stack {
  db: Db;
  repo: NetworkRepo;
  nl: Netlink;
  controller: Controller;
  reaper: LinkReaper;
  /** what the daemon's exit does: every socket (held ports, netlink, nftables) closed, nothing else */
  close(): Promise<void>;
}

/** The daemon's wiring, inside the host namespace; a second call is a "restart" on the same DB. */
const owner = new LinkOwner();

function startStack(): Stack {
  const { hostPath } = w;
  const db = openDatabase(w.dbPath);
  const repo = new NetworkRepo(db);
  const nl = Netlink.openInNetns(hostPath);
  const nft = withNetns(hostPath, () => Nft.open());
  const firewall = new Firewall(nft, log);
  const reaper = new LinkReaper(log, hostPath);
  const ports = reserverIn(hostPath);
  const bridge = new BridgeDriver({
    repo,
    netlink: nl,
    firewall,
    ports,
    reaper,
    owner,
    writeSysctl: (k, v) => writeSysctl(k, v, { nsPath: hostPath }),
    log,
  });
  const controller = new Controller([bridge], repo, nl, firewall, owner, log);
  controller.restore();
  return {
    db,
    repo,
    nl,
    controller,
    reaper,
    async close() {
      await reaper.close();
      ports.releaseAll();
      nl.close();
      nft.close();
      db.close();
    },
  };
}

const noOptions: EndpointOptions = { portBindings: [], exposedPorts: [], other: {} };
let seq = 0;
function netId(): string {
  return randomBytes(32).toString('hex');
}
function netRequest(id: string, subnet: string, over: Partial<CreateNetworkRequest> = {}): CreateNetworkRequest {
  const [base, len] = subnet.split('/');
  const gw = base.replace(/\.0$/, '.1');
  return {
    networkId: id,
    options: {},
    enableIpv6: false,
    internal: false,
    ipv4: [{ addressSpace: 'local', pool: subnet, gateway: `${gw}/${len}`, auxAddresses: {} }],
    ipv6: [],
    ...over,
  };
}

interface Attached {
  ns: string;
  endpointId: string;
  /** the host end of its veth */
  hostIf: string;
}

/** CreateEndpoint + Join + what Docker does with the container end; returns the container namespace. */
async function attach(s: Stack, networkId: string, address: string): Promise<Attached> {
  const endpointId = randomBytes(32).toString('hex');
  const ns = makeNs(`tsnet-bd-${tag}-c${++seq}`);
  const res = await s.controller.createEndpoint({ networkId, endpointId, address, addressIpv6: '', macAddress: '', options: noOptions });
  const join = await s.controller.join({ networkId, endpointId, sandboxKey: `/run/netns/${ns}`, options: noOptions });
  dockerAttach(w.host, ns, join, address);
  expect(res.macAddress).toMatch(/^02:42:/);
  const info = await s.controller.endpointOperInfo({ networkId, endpointId });
  return { ns, endpointId, hostIf: String(info.details.hostInterface) };
}

function publish(s: Stack, networkId: string, endpointId: string, portBindings: EndpointOptions['portBindings']): Promise<void> {
  return s.controller.programExternalConnectivity({ networkId, endpointId, options: { ...noOptions, portBindings } });
}
const tcp = (port: number, hostPort: number, hostIp = '') => ({ proto: 'tcp' as const, port, ip: '', hostIp, hostPort, hostPortEnd: hostPort });

/** The network most tests start from: 10.231.10.0/24 with containers a and b, a serving "from-a" on port 80. */
async function webWithTwo(s: Stack): Promise<{ id: string; bridge: string; a: Attached; b: Attached }> {
  const id = netId();
  await s.controller.createNetwork(netRequest(id, '10.231.10.0/24'));
  const a = await attach(s, id, '10.231.10.2/24');
  const b = await attach(s, id, '10.231.10.3/24');
  await serve(a.ns, 80, 'from-a');
  return { id, bridge: `tsnet-${id.slice(0, 9)}`, a, b };
}

afterAll(() => {
  rmSync(workDir, { recursive: true, force: true });
});

describe('bridge driver in a namespace', () => {
  let s: Stack;
  beforeEach(async () => {
    const n = ++worlds;
    const host = makeNs(`tsnet-bd-${tag}-h${n}`);
    const out = makeNs(`tsnet-bd-${tag}-o${n}`);
    w = { host, hostPath: `/run/netns/${host}`, out, dbPath: join(workDir, `tsnet-${n}.db`) };
    // the outside world, reachable from the host, with no route back to container subnets
    inNs(host, 'ip', ['link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out]);
    inNs(host, 'ip', ['addr', 'add', '203.0.113.1/24', 'dev', 'uplink']);
    inNs(host, 'ip', ['link', 'set', 'uplink', 'up']);
    inNs(out, 'ip', ['addr', 'add', '203.0.113.2/24', 'dev', 'eth0']);
    inNs(out, 'ip', ['link', 'set', 'eth0', 'up']);
    await serve(out, 7000, null);
    s = startStack();
  });
  afterEach(async () => {
    await s?.close();
    for (const c of children.splice(0)) c.kill();
    namespaces.removeAll();
    const got = logged.splice(0);
    const expected = expectedLog;
    expectedLog = [];
    // no failed rollback step, no port that could not be held again, nothing unexpected
    expect(got).toEqual(expected);
  });

  it('builds a network that carries traffic: ping, masquerade, published ports, isolation', async () => {
    const web = await webWithTwo(s);
    const { a, b } = web;
    expect(inNs(w.host, 'ip', ['-br', 'addr', 'show', 'dev', web.bridge])).toContain('10.231.10.1/24');
    expect(hostTable()).toContain(`"${web.bridge}"`);
    expect(tryIn(a.ns, 'ping', ['-c', '1', '-W', '2', '10.231.10.3']).ok).toBe(true);
    expect(connect(b.ns, '203.0.113.2', 7000)).toBe('203.0.113.1');

    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('free');
    await publish(s, web.id, a.endpointId, [tcp(80, 18080)]);
    // tsnet holds the published port: no host process can take it
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('EADDRINUSE');
    expect(connect(w.out, '203.0.113.1', 18080)).toBe('from-a');
    expect(connect(w.host, '127.0.0.1', 18080)).toBe('from-a');
    expect(connect(b.ns, '203.0.113.1', 18080)).toBe('from-a');
    // its own published port, through a host address: hairpin on the same bridge port
    expect(connect(a.ns, '203.0.113.1', 18080)).toBe('from-a');
    const info = await s.controller.endpointOperInfo({ networkId: web.id, endpointId: a.endpointId });
    expect(info.portBindings).toEqual([{ proto: 'tcp', port: 80, containerIp: '10.231.10.2', hostIp: '0.0.0.0', hostPort: 18080 }]);

    const other = netId();
    await s.controller.createNetwork(netRequest(other, '10.231.11.0/24'));
    const c = await attach(s, other, '10.231.11.2/24');
    expect(tryIn(c.ns, 'ping', ['-c', '1', '-W', '1', '10.231.10.2']).ok).toBe(false);
    // a published port of the other network still answers through the host address
    expect(connect(c.ns, '203.0.113.1', 18080)).toBe('from-a');

    await s.controller.revokeExternalConnectivity({ networkId: web.id, endpointId: a.endpointId });
    // nothing listens on the host port any more: the host answers with a reset
    expect(connect(w.out, '203.0.113.1', 18080)).toBe('error:ECONNREFUSED');
    expect(hostTable()).not.toContain('18080');
    expect(s.repo.listPorts({ endpointId: a.endpointId })).toEqual([]);
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('free');
  });

  it('rolls back everything when an endpoint cannot be created', async () => {
    const net = netId();
    await s.controller.createNetwork(netRequest(net, '10.231.10.0/24'));
    const endpointId = randomBytes(32).toString('hex');
    // a link already holding the endpoint's host-side name makes the veth creation fail
    inNs(w.host, 'ip', ['link', 'add', `tsv${endpointId.slice(0, 12)}`, 'type', 'bridge']);
    const before = hostLinks().length;
    await expect(
      s.controller.createEndpoint({ networkId: net, endpointId, address: '10.231.10.9/24', addressIpv6: '', macAddress: '', options: noOptions }),
    ).rejects.toThrow(/already exists/);
    expect(s.repo.getEndpoint(endpointId)).toBeUndefined();
    expect(s.repo.listEndpoints()).toEqual([]);
    expect(hostLinks().length).toBe(before);
    // the same request works once the name is free: the failure was the clash, not the network
    inNs(w.host, 'ip', ['link', 'del', `tsv${endpointId.slice(0, 12)}`]);
    await s.controller.createEndpoint({ networkId: net, endpointId, address: '10.231.10.9/24', addressIpv6: '', macAddress: '', options: noOptions });
    expect(s.repo.getEndpoint(endpointId)?.state).toBe('ready');
  });

  it('rolls back a publish whose host port is taken: no elements, no rows, the other port free again', async () => {
    const web = await webWithTwo(s);
    await serve(w.host, 18181, 'squatter');
    await expect(publish(s, web.id, web.a.endpointId, [tcp(80, 18180), tcp(81, 18181)])).rejects.toThrow(/18181/);
    expect(s.repo.listPorts({ endpointId: web.a.endpointId })).toEqual([]);
    expect(hostTable()).not.toContain('18180');
    // 18180 was reserved before 18181 failed: the rollback let it go; the squatter still has 18181
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18180)).toBe('free');
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18181)).toBe('EADDRINUSE');
  });

  it('refuses a clashing bridge name or subnet and creates nothing', async () => {
    const existing = netId();
    await s.controller.createNetwork(netRequest(existing, '10.231.10.0/24'));
    const before = hostLinks().length;
    await expect(s.controller.createNetwork(netRequest(netId(), '10.231.10.0/25'))).rejects.toThrow(/overlaps 10\.231\.10\.0\/24/);
    await expect(
      s.controller.createNetwork(netRequest(netId(), '10.231.12.0/24', { options: { 'com.docker.network.bridge.name': 'uplink' } })),
    ).rejects.toThrow(/uplink already exists/);
    await expect(s.controller.createNetwork(netRequest(netId(), '10.231.12.0/24', { options: { colour: 'blue' } }))).rejects.toThrow(/unknown option 'colour'/);
    expect(hostLinks().length).toBe(before);
    expect(s.repo.listNetworks().map((n) => n.id)).toEqual([existing]);
  });

  it('reconciles at start what a kill -9 left: half-made network, stray links, lost bridge and table; containers and ports work again', async () => {
    const web = await webWithTwo(s);
    const { a, b } = web;
    await publish(s, web.id, a.endpointId, [tcp(80, 18080), { proto: 'udp', port: 53, ip: '', hostIp: '203.0.113.1', hostPort: 18053, hostPortEnd: 18053 }]);
    // forge the aftermath of a crash in the middle of CreateNetwork: a 'creating' row and its bridge
    const half = netId();
    s.repo.insertNetwork({ id: half, driver: 'bridge', state: 'creating', config: { bridge: 'tsnet-halfmade', gatewayAddresses: [], subnets: [] }, ipv4: [], ipv6: [] });
    inNs(w.host, 'ip', ['link', 'add', 'tsnet-halfmade', 'type', 'bridge']);
    // a veth from an interrupted CreateEndpoint whose row never got written
    inNs(w.host, 'ip', ['link', 'add', 'tsvstray', 'type', 'veth', 'peer', 'name', 'tscstray']);
    inNs(w.host, 'ip', ['link', 'set', 'tsvstray', 'alias', 'tsnet:0123456789ab']);
    // the process dies: its sockets close, so the held ports are free while it is down
    await s.close();
    expect(bindIn(w.host, 'udp', '203.0.113.1', 18053)).toBe('free');
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('free');
    // what a reboot takes away: the bridges (the veths fall off them), the table
    inNs(w.host, 'ip', ['link', 'del', web.bridge]);
    inNs(w.host, 'nft', ['delete', 'table', 'inet', 'tsnet']);
    expect(hostLinks().find((l) => l.ifname === a.hostIf)?.master).toBeUndefined();

    s = startStack();
    expectedLog = ['warn: bridge missing: rebuilding it'];
    const links = hostLinks();
    const names = links.map((l) => l.ifname);
    expect(names).not.toContain('tsnet-halfmade');
    expect(names).not.toContain('tsvstray');
    expect(s.repo.getNetwork(half)).toBeUndefined();
    expect(names).toContain(web.bridge);
    expect(inNs(w.host, 'ip', ['-br', 'addr', 'show', 'dev', web.bridge])).toContain('10.231.10.1/24');
    const table = hostTable();
    expect(table).toContain(`"${web.bridge}"`);
    expect(table).toMatch(/203\.0\.113\.1 \. udp \. 18053 : 10\.231\.10\.2 \. 53/);
    // the containers' veths are ports of the rebuilt bridge again, and the containers talk
    expect(links.filter((l) => l.ifname === a.hostIf || l.ifname === b.hostIf).map((l) => l.master)).toEqual([web.bridge, web.bridge]);
    expect(tryIn(a.ns, 'ping', ['-c', '1', '-W', '2', '10.231.10.3']).ok).toBe(true);
    expect(tryIn(b.ns, 'ping', ['-c', '1', '-W', '2', '10.231.10.2']).ok).toBe(true);
    expect(connect(b.ns, '203.0.113.2', 7000)).toBe('203.0.113.1');
    expect(connect(w.out, '203.0.113.1', 18080)).toBe('from-a');
    // the published ports are held again, and only they: a port nobody published binds
    expect(bindIn(w.host, 'udp', '203.0.113.1', 18053)).toBe('EADDRINUSE');
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('EADDRINUSE');
    expect(bindIn(w.host, 'udp', '203.0.113.1', 18054)).toBe('free');
  });

  it('deletes networks and endpoints leaving nothing behind (rows, links, elements, held ports), and tolerates repeats', async () => {
    const web = await webWithTwo(s);
    await publish(s, web.id, web.a.endpointId, [tcp(80, 18080)]);
    const other = netId();
    await s.controller.createNetwork(netRequest(other, '10.231.11.0/24'));
    const c = await attach(s, other, '10.231.11.2/24');
    await publish(s, other, c.endpointId, [{ proto: 'udp', port: 53, ip: '', hostIp: '203.0.113.1', hostPort: 18053, hostPortEnd: 18053 }]);
    // what must go: rows, links, elements, held ports
    expect(s.repo.listEndpoints().length).toBe(3);
    expect(s.repo.listPorts().length).toBe(2);
    expect(hostTable()).toMatch(/elements/);
    expect(spoofLeftovers('tsnet', w.host).length).toBeGreaterThan(0);
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('EADDRINUSE');
    expect(bindIn(w.host, 'udp', '203.0.113.1', 18053)).toBe('EADDRINUSE');

    for (const net of s.repo.listNetworks()) {
      for (const ep of s.repo.listEndpoints(net.id)) {
        await s.controller.leave({ networkId: net.id, endpointId: ep.id });
        await s.controller.leave({ networkId: net.id, endpointId: ep.id });
        await s.controller.deleteEndpoint({ networkId: net.id, endpointId: ep.id });
        await s.controller.deleteEndpoint({ networkId: net.id, endpointId: ep.id });
      }
      await s.controller.deleteNetwork(net.id);
      await s.controller.deleteNetwork(net.id);
    }
    expect(s.repo.listNetworks()).toEqual([]);
    expect(s.repo.listEndpoints()).toEqual([]);
    expect(s.repo.listPorts()).toEqual([]);
    await s.reaper.idle();
    expect(hostLinks().filter((l) => TSNET_LINK_PREFIXES.some((p) => l.ifname.startsWith(p)) || l.ifalias?.startsWith('tsnet:'))).toEqual([]);
    expect(hostTable()).not.toMatch(/elements/);
    expect(spoofLeftovers('tsnet', w.host)).toEqual([]);
    expect(bindIn(w.host, 'tcp', '0.0.0.0', 18080)).toBe('free');
    expect(bindIn(w.host, 'udp', '203.0.113.1', 18053)).toBe('free');
  });
});
