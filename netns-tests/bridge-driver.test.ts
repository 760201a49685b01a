// The bridge driver and the controller against the real kernel, without Docker: the whole driver
// stack runs inside a "host" namespace, and the test does what Docker does after Join (moves the
// container end into a "container" namespace and configures it). Rollback and the start-up
// reconcile are exercised by failing operations and by forging what a kill -9 leaves behind.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { Namespaces, dockerAttach, inNs, sh } from './harness.js';

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
import { silentLogger } from '../core/log.js';
import type { Proto } from '../core/protocol.js';

const tag = randomBytes(3).toString('hex');
const HOST = `tsnet-bd-${tag}-h`;
const OUT = `tsnet-bd-${tag}-o`;
const hostPath = `/run/netns/${HOST}`;
const workDir = mkdtempSync(join(tmpdir(), 'bridge-driver-'));
const children: ChildProcess[] = [];

function tryIn(ns: string, cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: inNs(ns, cmd, args) };
  } catch (err) {
    return { ok: false, out: String((err as { stderr?: string }).stderr ?? '') };
  }
}
const namespaces = new Namespaces();
const makeNs = (name: string) => namespaces.make(name);
function hostLinks(): { ifname: string; ifalias?: string }[] {
  return JSON.parse(inNs(HOST, 'ip', ['-j', 'link', 'show']));
}
function hostTable(): string {
  return inNs(HOST, 'nft', ['list', 'table', 'inet', 'tsnet']);
}
/** A TCP server in a namespace that answers each connection with `reply` (or the peer address). */
function serve(ns: string, port: number, reply: string | null): void {
  const answer = reply === null ? 's.remoteAddress' : JSON.stringify(reply);
  const child = spawn('ip', ['netns', 'exec', ns, 'node', '-e', `require('net').createServer(s=>s.end(${answer}+'\\n')).listen(${port},'0.0.0.0')`], { stdio: 'ignore' });
  children.push(child);
}
function connect(ns: string, ip: string, port: number): string {
  const r = tryIn(ns, 'node', [
    '-e',
    `const s=require('net').connect(${port},'${ip}');let d='';s.setTimeout(3000,()=>{process.exit(3)});s.on('data',c=>d+=c);s.on('end',()=>{console.log(d.trim())});s.on('error',()=>process.exit(2))`,
  ]);
  return r.ok ? r.out : '';
}
const waitForServers = () => new Promise((r) => setTimeout(r, 400));

/** Runs the real PortReserver inside the host namespace, where the published ports live. */
function reserverIn(nsPath: string): HostPortReserver {
  const r = new PortReserver({ log: { warn() {} } });
  return {
    reserve: (p: Proto, ip: string, port: number) => withNetns(nsPath, () => r.reserve(p, ip, port)),
    reserveFromRange: (p: Proto, ip: string, a: number, b: number) => withNetns(nsPath, () => r.reserveFromRange(p, ip, a, b)),
    reserveEphemeral: (p: Proto, ip: string) => withNetns(nsPath, () => r.reserveEphemeral(p, ip)),
    release: (p: Proto, ip: string, port: number) => withNetns(nsPath, () => r.release(p, ip, port)),
  };
}

interface Stack {
  db: Db;
  repo: NetworkRepo;
  nl: Netlink;
  controller: Controller;
  reaper: LinkReaper;
  close(): Promise<void>;
}

/** The daemon's wiring, inside the host namespace; a second call is a "restart" on the same DB. */
const owner = new LinkOwner();

function startStack(dbPath: string, ports = reserverIn(hostPath)): Stack {
  const db = openDatabase(dbPath);
  const repo = new NetworkRepo(db);
  const nl = Netlink.openInNetns(hostPath);
  const nft = withNetns(hostPath, () => Nft.open());
  const firewall = new Firewall(nft, { warn() {} });
  const reaper = new LinkReaper({ warn() {} }, hostPath);
  const bridge = new BridgeDriver({
    repo,
    netlink: nl,
    firewall,
    ports,
    reaper,
    owner,
    writeSysctl: (k, v) => writeSysctl(k, v, { nsPath: hostPath }),
    log: silentLogger,
  });
  const controller = new Controller([bridge], repo, nl, firewall, owner, silentLogger);
  controller.restore();
  return {
    db,
    repo,
    nl,
    controller,
    reaper,
    async close() {
      await reaper.close();
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

/** CreateEndpoint + Join + what Docker does with the container end; returns the container namespace. */
async function attach(s: Stack, networkId: string, address: string): Promise<{ ns: string; endpointId: string }> {
  const endpointId = randomBytes(32).toString('hex');
  const ns = makeNs(`tsnet-bd-${tag}-c${++seq}`);
  const res = await s.controller.createEndpoint({ networkId, endpointId, address, addressIpv6: '', macAddress: '', options: noOptions });
  const join = await s.controller.join({ networkId, endpointId, sandboxKey: `/run/netns/${ns}`, options: noOptions });
  dockerAttach(HOST, ns, join, address);
  expect(res.macAddress).toMatch(/^02:42:/);
  return { ns, endpointId };
}

beforeAll(() => {
  makeNs(HOST);
  makeNs(OUT);
  // the outside world, reachable from the host, with no route back to container subnets
  inNs(HOST, 'ip', ['link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUT]);
  inNs(HOST, 'ip', ['addr', 'add', '203.0.113.1/24', 'dev', 'uplink']);
  inNs(HOST, 'ip', ['link', 'set', 'uplink', 'up']);
  inNs(OUT, 'ip', ['addr', 'add', '203.0.113.2/24', 'dev', 'eth0']);
  inNs(OUT, 'ip', ['link', 'set', 'eth0', 'up']);
  serve(OUT, 7000, null);
});

afterAll(() => {
  for (const c of children) c.kill();
  rmSync(workDir, { recursive: true, force: true });
  namespaces.removeAll();
});

describe('bridge driver in a namespace', () => {
  let s: Stack;
  let dbPath: string;
  afterEach(async () => s?.close());

  it('builds a network that carries traffic: ping, masquerade, published ports, isolation', async () => {
    dbPath = join(workDir, 'tsnet.db');
    s = startStack(dbPath);
    const web = netId();
    await s.controller.createNetwork(netRequest(web, '10.231.10.0/24'));
    const bridge = `tsnet-${web.slice(0, 9)}`;
    expect(inNs(HOST, 'ip', ['-br', 'addr', 'show', 'dev', bridge])).toContain('10.231.10.1/24');
    expect(hostTable()).toContain(`"${bridge}"`);

    const a = await attach(s, web, '10.231.10.2/24');
    const b = await attach(s, web, '10.231.10.3/24');
    expect(tryIn(a.ns, 'ping', ['-c', '1', '-W', '2', '10.231.10.3']).ok).toBe(true);
    expect(connect(b.ns, '203.0.113.2', 7000)).toBe('203.0.113.1');

    serve(a.ns, 80, 'from-a');
    await waitForServers();
    await s.controller.programExternalConnectivity({
      networkId: web,
      endpointId: a.endpointId,
      options: { ...noOptions, portBindings: [{ proto: 'tcp', port: 80, ip: '', hostIp: '', hostPort: 18080, hostPortEnd: 18080 }] },
    });
    expect(connect(OUT, '203.0.113.1', 18080)).toBe('from-a');
    expect(connect(HOST, '127.0.0.1', 18080)).toBe('from-a');
    expect(connect(b.ns, '203.0.113.1', 18080)).toBe('from-a');
    // its own published port, through a host address: hairpin on the same bridge port
    expect(connect(a.ns, '203.0.113.1', 18080)).toBe('from-a');
    const info = await s.controller.endpointOperInfo({ networkId: web, endpointId: a.endpointId });
    expect(info.portBindings).toEqual([{ proto: 'tcp', port: 80, containerIp: '10.231.10.2', hostIp: '0.0.0.0', hostPort: 18080 }]);

    const other = netId();
    await s.controller.createNetwork(netRequest(other, '10.231.11.0/24'));
    const c = await attach(s, other, '10.231.11.2/24');
    expect(tryIn(c.ns, 'ping', ['-c', '1', '-W', '1', '10.231.10.2']).ok).toBe(false);
    // a published port of the other network still answers through the host address
    expect(connect(c.ns, '203.0.113.1', 18080)).toBe('from-a');

    await s.controller.revokeExternalConnectivity({ networkId: web, endpointId: a.endpointId });
    expect(connect(OUT, '203.0.113.1', 18080)).toBe('');
    expect(hostTable()).not.toContain('18080');
  });

  it('rolls back everything when an endpoint cannot be created', async () => {
    s = startStack(dbPath);
    const net = s.repo.listNetworks()[0].id;
    const endpointId = randomBytes(32).toString('hex');
    // a link already holding the endpoint's host-side name makes the veth creation fail
    inNs(HOST, 'ip', ['link', 'add', `tsv${endpointId.slice(0, 12)}`, 'type', 'bridge']);
    const before = hostLinks().length;
    await expect(
      s.controller.createEndpoint({ networkId: net, endpointId, address: '10.231.10.9/24', addressIpv6: '', macAddress: '', options: noOptions }),
    ).rejects.toThrow(/already exists/);
    expect(s.repo.getEndpoint(endpointId)).toBeUndefined();
    expect(hostLinks().length).toBe(before);
    inNs(HOST, 'ip', ['link', 'del', `tsv${endpointId.slice(0, 12)}`]);
  });

  it('rolls back a publish whose host port is taken: no elements, no rows', async () => {
    s = startStack(dbPath);
    const net = s.repo.listNetworks()[0].id;
    const ep = s.repo.listEndpoints(net)[0];
    serve(HOST, 18181, 'squatter');
    await waitForServers();
    await expect(
      s.controller.programExternalConnectivity({
        networkId: net,
        endpointId: ep.id,
        options: {
          ...noOptions,
          portBindings: [
            { proto: 'tcp', port: 80, ip: '', hostIp: '', hostPort: 18180, hostPortEnd: 18180 },
            { proto: 'tcp', port: 81, ip: '', hostIp: '', hostPort: 18181, hostPortEnd: 18181 },
          ],
        },
      }),
    ).rejects.toThrow(/18181/);
    expect(s.repo.listPorts({ endpointId: ep.id })).toEqual([]);
    expect(hostTable()).not.toContain('18180');
  });

  it('refuses a clashing bridge name or subnet and creates nothing', async () => {
    s = startStack(dbPath);
    const existing = s.repo.listNetworks()[0];
    const before = hostLinks().length;
    await expect(s.controller.createNetwork(netRequest(netId(), '10.231.10.0/25'))).rejects.toThrow(/overlaps 10\.231\.10\.0\/24/);
    await expect(
      s.controller.createNetwork(netRequest(netId(), '10.231.12.0/24', { options: { 'com.docker.network.bridge.name': 'uplink' } })),
    ).rejects.toThrow(/uplink already exists/);
    await expect(s.controller.createNetwork(netRequest(netId(), '10.231.12.0/24', { options: { colour: 'blue' } }))).rejects.toThrow(/unknown option 'colour'/);
    expect(hostLinks().length).toBe(before);
    expect(s.repo.listNetworks().map((n) => n.id)).toContain(existing.id);
    expect(s.repo.listNetworks().length).toBe(2);
  });

  it('reconciles at start what a kill -9 left: half-made network, stray links, lost bridge and table', async () => {
    // forge the aftermath of a crash in the middle of CreateNetwork: a 'creating' row and its bridge
    s = startStack(dbPath);
    const half = netId();
    s.repo.insertNetwork({ id: half, driver: 'bridge', state: 'creating', config: { bridge: 'tsnet-halfmade', gatewayAddresses: [], subnets: [] }, ipv4: [], ipv6: [] });
    inNs(HOST, 'ip', ['link', 'add', 'tsnet-halfmade', 'type', 'bridge']);
    // a veth from an interrupted CreateEndpoint whose row never got written
    inNs(HOST, 'ip', ['link', 'add', 'tsvstray', 'type', 'veth', 'peer', 'name', 'tscstray']);
    inNs(HOST, 'ip', ['link', 'set', 'tsvstray', 'alias', 'tsnet:0123456789ab']);
    // what a reboot takes away: the bridges, the table
    const web = s.repo.listNetworks().find((n) => n.state === 'ready')!;
    const webBridge = (web.config as { bridge: string }).bridge;
    await s.controller.programExternalConnectivity({
      networkId: web.id,
      endpointId: s.repo.listEndpoints(web.id)[0].id,
      options: { ...noOptions, portBindings: [{ proto: 'udp', port: 53, ip: '', hostIp: '203.0.113.1', hostPort: 18053, hostPortEnd: 18053 }] },
    });
    await s.close();
    inNs(HOST, 'ip', ['link', 'del', webBridge]);
    inNs(HOST, 'nft', ['delete', 'table', 'inet', 'tsnet']);

    s = startStack(dbPath, reserverIn(hostPath));
    const names = hostLinks().map((l) => l.ifname);
    expect(names).not.toContain('tsnet-halfmade');
    expect(names).not.toContain('tsvstray');
    expect(s.repo.getNetwork(half)).toBeUndefined();
    expect(names).toContain(webBridge);
    expect(inNs(HOST, 'ip', ['-br', 'addr', 'show', 'dev', webBridge])).toContain('10.231.10.1/24');
    const table = hostTable();
    expect(table).toContain(`"${webBridge}"`);
    expect(table).toMatch(/203\.0\.113\.1 \. udp \. 18053 : 10\.231\.10\.\d+ \. 53/);
  });

  it('deletes networks and endpoints leaving nothing behind, and tolerates repeats', async () => {
    s = startStack(dbPath);
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
    await s.reaper.idle();
    expect(hostLinks().filter((l) => l.ifname.startsWith('tsnet-') || l.ifname.startsWith('tsv'))).toEqual([]);
    const table = hostTable();
    expect(table).not.toMatch(/elements/);
  });
});
