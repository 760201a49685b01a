// The overlay across three hosts, through the lab as a user drives it (`tsnet lab ...`): hosts
// are namespaces with their own daemon, etcd runs in a namespace of its own, containers are
// namespaces attached with Docker's protocol. Needs the build (make test builds first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execIn, pings, tryIn, uniqueName, until } from './harness.js';
import { alive } from '../lab/lab.js';
import { hostInstance } from '../lab/state.js';
import { overlayNetnsName, VXLAN_PORT } from '../drivers/overlay/plan.js';

const MAIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const LAB = uniqueName('t');
const LEASE_TTL = 3;

interface LabStatus {
  hosts: { name: string; netns: string; underlay: string }[];
  containers: { name: string; host: string; netns: string; address: string }[];
}

interface LabStateFile {
  etcdPids?: number[];
  hosts: { name: string; pid?: number; networkId?: string }[];
}

function tsnet(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args, '--name', LAB], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

function ok(args: string[]): string {
  const r = tsnet(args);
  if (r.code !== 0) throw new Error(`tsnet ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** `tsnet lab attach` as its own process, so several run at the same time. */
function attachInBackground(host: string, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'lab', 'attach', '--host', host, name, '--name', LAB], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`attach ${name} on ${host} exited ${code}: ${stderr}`))));
  });
}

function status(): LabStatus {
  return JSON.parse(ok(['lab', 'status', '--json'])) as LabStatus;
}

function container(name: string) {
  const c = status().containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return { ...c, ip: c.address.split('/')[0] };
}

function labState(): LabStateFile {
  return JSON.parse(readFileSync(`/run/tsnet-lab/${LAB}/state.json`, 'utf8')) as LabStateFile;
}

/** The overlay network's own namespace on a lab host (its daemon's instance: lab/state.ts hostInstance). */
function overlayNs(host: string): string {
  const id = labState().hosts.find((h) => h.name === host)?.networkId;
  if (!id) throw new Error(`${host} has no overlay network`);
  return overlayNetnsName(hostInstance(LAB, host), id);
}

/** The links of a namespace, with their kind. */
function linksIn(netns: string): { ifname: string; kind?: string; master?: string }[] {
  return (JSON.parse(execIn(netns, 'ip', ['-j', '-d', 'link', 'show'])) as { ifname: string; master?: string; linkinfo?: { info_kind?: string } }[]).map((l) => ({
    ifname: l.ifname,
    kind: l.linkinfo?.info_kind,
    master: l.master,
  }));
}

/** The overlay's VXLAN device on a lab host. */
function vxlanDevice(host: string): string {
  const vxlan = JSON.parse(execIn(overlayNs(host), 'ip', ['-j', '-d', 'link', 'show', 'type', 'vxlan'])) as { ifname: string }[];
  if (vxlan.length !== 1) throw new Error(`${host} has ${vxlan.length} vxlan devices`);
  return vxlan[0].ifname;
}

/** Whether the bridge port of a host's VXLAN device learns source MACs (`bridge -d link show`). */
function vxlanPortLearns(host: string): boolean {
  const port = JSON.parse(execIn(overlayNs(host), 'bridge', ['-j', '-d', 'link', 'show', 'dev', vxlanDevice(host)])) as { learning?: boolean }[];
  if (port[0]?.learning === undefined) throw new Error(`no learning flag in bridge link show on ${host}`);
  return port[0].learning;
}

/** The remote entries a host's VXLAN device holds: MAC -> VTEP and IP -> MAC. */
function remoteEntries(host: string): { fdb: string[]; neigh: string[] } {
  const ns = overlayNs(host);
  const dev = vxlanDevice(host);
  const fdb = (JSON.parse(execIn(ns, 'bridge', ['-j', 'fdb', 'show', 'dev', dev])) as { mac: string; dst?: string }[])
    .filter((e) => e.dst)
    .map((e) => `${e.mac} ${e.dst}`);
  const neigh = (JSON.parse(execIn(ns, 'ip', ['-j', 'neigh', 'show', 'dev', dev])) as { dst: string; lladdr?: string }[]).map((n) => `${n.dst} ${n.lladdr}`);
  return { fdb, neigh };
}

interface FdbRow {
  mac: string;
  ifname: string;
  dst?: string;
  master?: string;
  flags?: string[];
  /** 'static', 'permanent', or '' for a learned entry */
  state?: string;
}

/** Every forwarding entry for a MAC on a lab host, on any device and in any table (`bridge fdb show`). */
function fdbEntriesFor(host: string, mac: string): FdbRow[] {
  const rows = JSON.parse(execIn(overlayNs(host), 'bridge', ['-j', 'fdb', 'show'])) as FdbRow[];
  return rows.filter((r) => r.mac.toLowerCase() === mac.toLowerCase());
}

/** How an entry was made, for messages and checks: learned entries have no state. */
function describeFdb(r: FdbRow): string {
  return `${r.ifname}${r.master ? ` master ${r.master}` : ''}${r.dst ? ` dst ${r.dst}` : ''} ${(r.flags ?? []).join(',')} ${r.state || 'learned'}`;
}

function macOf(netns: string): string {
  return (JSON.parse(execIn(netns, 'ip', ['-j', 'link', 'show', 'eth0'])) as { address: string }[])[0].address;
}

/** Echo requests a container's kernel has received so far (Icmp InEchos of its namespace). */
function echoRequestsReceived(netns: string): number {
  const lines = execIn(netns, 'cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Icmp: '));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values[names.indexOf('InEchos')]);
}

/**
 * Whether a container resolves an address on the overlay from scratch: it forgets what it knew,
 * pings once, and reports the neighbour state (REACHABLE when the VXLAN device's ARP proxy or the
 * container itself answered, FAILED or INCOMPLETE when nobody did).
 */
function resolvesFresh(netns: string, ip: string): { pinged: boolean; neighbour: string } {
  execIn(netns, 'ip', ['neigh', 'flush', 'dev', 'eth0']);
  const pinged = pings(netns, ip);
  const n = JSON.parse(execIn(netns, 'ip', ['-j', 'neigh', 'show', 'to', ip, 'dev', 'eth0'])) as { state?: string[] }[];
  return { pinged, neighbour: (n[0]?.state ?? ['none']).join(',') };
}

function labProcesses(): number[] {
  const path = `/run/tsnet-lab/${LAB}/state.json`;
  if (!existsSync(path)) return [];
  const s = JSON.parse(readFileSync(path, 'utf8')) as LabStateFile;
  return [...(s.etcdPids ?? []), ...s.hosts.map((h) => h.pid)].filter((p): p is number => p !== undefined && p > 0);
}


function labNamespaces(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(`tsl-${LAB}-`));
}

describe('overlay lab with three hosts', () => {
  let pids: number[] = [];

  beforeAll(() => {
    ok(['lab', 'up', '--hosts', '3', '--lease-ttl', String(LEASE_TTL)]);
    pids = labProcesses();
  });

  afterAll(() => {
    // also when a test failed: the lab removes everything it made
    if (existsSync(`/run/tsnet-lab/${LAB}`)) tsnet(['lab', 'down']);
  });

  it('lists hosts and (no) containers as JSON', () => {
    const s = status();
    expect(s.hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h3']);
    for (const h of s.hosts) {
      expect(h.netns).toBe(`tsl-${LAB}-${h.name}`);
      expect(h.underlay).toMatch(/^198\.51\.100\.\d+\/24$/);
    }
    expect(s.containers).toEqual([]);
  });

  it('gives containers attached on different hosts at once unique addresses', async () => {
    const a = ok(['lab', 'attach', '--host', 'h1', 'a']);
    const b = ok(['lab', 'attach', '--host', 'h2', 'b']);
    expect(a).toMatch(/^10\.77\.0\.\d+\/24$/);
    expect(b).not.toBe(a);
    // a burst through the three daemons at once: the cluster store decides every address
    await Promise.all(['h1', 'h2', 'h3', 'h1', 'h2', 'h3'].map((h, i) => attachInBackground(h, `x${i}`)));
    const addresses = status().containers.map((c) => c.address);
    expect(addresses).toHaveLength(8);
    expect(new Set(addresses).size).toBe(8);
    for (let i = 0; i < 6; i++) ok(['lab', 'detach', `x${i}`]);
  });

  it('carries pings across hosts both ways', () => {
    ok(['lab', 'attach', '--host', 'h3', 'c']);
    const a = container('a');
    const b = container('b');
    const c = container('c');
    expect(pings(a.netns, b.ip)).toBe(true);
    expect(pings(b.netns, a.ip)).toBe(true);
    expect(pings(c.netns, a.ip)).toBe(true);
    expect(pings(b.netns, c.ip)).toBe(true);
    // the gateway answers on every host
    expect(pings(c.netns, '10.77.0.1')).toBe(true);
  });

  it('keeps its VXLAN packets out of each host\'s connection tracking, while the hosts\' other traffic is tracked', () => {
    const a = container('a');
    const hostNs = (h: string) => `tsl-${LAB}-${h}`;
    const tracked = (h: string, proto: string) => execIn(hostNs(h), 'conntrack', ['-L', '-p', proto]);
    for (const h of ['h1', 'h2']) execIn(hostNs(h), 'conntrack', ['-F']);
    expect(pings(a.netns, container('b').ip)).toBe(true);
    // the positive: a's way out through h1 to h2's underlay address is masqueraded, so tracked by h1
    expect(pings(a.netns, '198.51.100.12')).toBe(true);
    expect(tracked('h1', 'icmp')).toContain('dst=198.51.100.12');
    for (const h of ['h1', 'h2']) expect(tracked(h, 'udp'), h).not.toContain(`dport=${VXLAN_PORT}`);
  });

  it('keeps the bridge and the VXLAN device in the network\'s own namespace, with br_netfilter off there and on in the host\'s', () => {
    for (const h of ['h1', 'h2']) {
      const hostNs = `tsl-${LAB}-${h}`;
      const own = linksIn(overlayNs(h));
      expect(own.filter((l) => l.kind === 'bridge').map((l) => l.ifname), h).toEqual(['br0']);
      expect(own.find((l) => l.kind === 'vxlan')?.master, h).toBe('br0');
      // the host's side: no bridge and no VXLAN device of tsnet, the gateway on a veth
      const host = linksIn(hostNs);
      expect(host.filter((l) => l.kind === 'bridge' || l.kind === 'vxlan'), h).toEqual([]);
      const gateway = host.find((l) => l.ifname.startsWith('tob-'));
      expect(gateway?.kind, h).toBe('veth');
      expect(execIn(hostNs, 'ip', ['-o', '-4', 'addr', 'show', 'dev', gateway!.ifname]), h).toContain('10.77.0.1/24');
      expect(execIn(overlayNs(h), 'sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables']), h).toBe('0');
      expect(execIn(hostNs, 'sysctl', ['-n', 'net.bridge.bridge-nf-call-iptables']), h).toBe('1');
    }
    // the way out through the own host: a reaches h1's underlay address, and h2's through h1
    expect(pings(container('a').netns, '198.51.100.11')).toBe(true);
    expect(pings(container('a').netns, '198.51.100.12')).toBe(true);
  });

  it('sets the container MTU to the underlay minus 50 and carries a full-size packet with DF set', () => {
    const a = container('a');
    const b = container('b');
    const link = JSON.parse(execIn(a.netns, 'ip', ['-j', 'link', 'show', 'eth0'])) as { mtu: number }[];
    expect(link[0].mtu).toBe(1450);
    // 1450 - 20 (IP) - 8 (ICMP) = 1422 bytes of payload: exactly the MTU, not fragmented
    expect(tryIn(a.netns, 'ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', '1422', b.ip]).code).toBe(0);
    // one byte more does not fit and is refused, not fragmented
    expect(tryIn(a.netns, 'ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', '1423', b.ip]).code).not.toBe(0);
  });

  it('programs no remote entry for a host its own containers', () => {
    const e1 = remoteEntries('h1');
    const a = container('a');
    expect(e1.neigh.some((n) => n.startsWith(`${a.ip} `))).toBe(false);
    expect(e1.neigh.some((n) => n.startsWith(`${container('b').ip} `))).toBe(true);
  });

  it('leaves no forwarding entry for a detached container on the other hosts, and nothing answers at its address', async () => {
    const a = container('a');
    const b = container('b');
    const c = container('c');
    const macC = macOf(c.netns);
    // traffic crossed from h1 and h2 to c on h3 and back: what a learning port would have kept
    expect(pings(a.netns, c.ip)).toBe(true);
    expect(pings(b.netns, c.ip)).toBe(true);
    for (const h of ['h1', 'h2']) {
      const rows = fdbEntriesFor(h, macC);
      // the store's entries: the VXLAN device's MAC -> h3's VTEP, and the bridge's on the VXLAN port
      expect(rows.some((r) => r.ifname.startsWith('tox-') && r.dst === '198.51.100.13' && r.flags?.includes('self')), `${h}: ${rows.map(describeFdb)}`).toBe(true);
      expect(rows.some((r) => r.ifname.startsWith('tox-') && r.master === 'br0' && r.state === 'static'), `${h}: ${rows.map(describeFdb)}`).toBe(true);
      expect(rows.filter((r) => !r.state).map(describeFdb), `${h} learned an entry`).toEqual([]);
    }
    expect(resolvesFresh(a.netns, c.ip)).toEqual({ pinged: true, neighbour: 'REACHABLE' });

    ok(['lab', 'detach', 'c']);
    expect(labNamespaces()).not.toContain(c.netns);
    await until('no entry for c on h1 and h2', () => ['h1', 'h2'].every((h) => fdbEntriesFor(h, macC).length === 0));
    await until('c gone from the neighbours of h1 and h2', () => ['h1', 'h2'].every((h) => !remoteEntries(h).neigh.some((n) => n.startsWith(`${c.ip} `))));
    // a live remote peer is still resolved and answers; at c's former address nothing answers,
    // not even h1's ARP proxy
    expect(resolvesFresh(a.netns, b.ip)).toEqual({ pinged: true, neighbour: 'REACHABLE' });
    expect(resolvesFresh(a.netns, c.ip)).toMatchObject({ pinged: false, neighbour: expect.stringMatching(/^(FAILED|INCOMPLETE)$/) });
  });

  it('keeps the other hosts working when one daemon dies, drops its entries when its lease expires, and learns none back from the wire', async () => {
    ok(['lab', 'attach', '--host', 'h3', 'd']);
    const a = container('a');
    const b = container('b');
    const d = container('d');
    await until('d reachable from a', () => pings(a.netns, d.ip));
    ok(['lab', 'kill', '--host', 'h2']);
    // h1 and h3 go on talking
    expect(pings(a.netns, d.ip)).toBe(true);
    expect(pings(d.netns, a.ip)).toBe(true);
    // b was announced under h2's lease: it disappears from h1 and h3 when the lease expires
    await until('b gone from h1 and h3', () => ['h1', 'h3'].every((h) => !remoteEntries(h).neigh.some((n) => n.startsWith(`${b.ip} `))));
    expect(pings(a.netns, b.ip)).toBe(false);
    // b still sends (h2's kernel keeps its entries for a): its frames reach a on h1, and h1 must
    // not learn b's MAC from them, because only the store says where a container is
    const before = echoRequestsReceived(a.netns);
    pings(b.netns, a.ip); // a's answer finds no way back to b: h1 no longer knows it
    expect(echoRequestsReceived(a.netns)).toBeGreaterThan(before);
    for (const h of ['h1', 'h3']) expect(fdbEntriesFor(h, macOf(b.netns)).map(describeFdb), h).toEqual([]);
  });

  it('resyncs a restarted daemon: its containers come back on the other hosts, and its VXLAN port stops learning again', async () => {
    const a = container('a');
    const b = container('b');
    // as an overlay made by an older tsnet would have it
    execIn(overlayNs('h2'), 'bridge', ['link', 'set', 'dev', vxlanDevice('h2'), 'learning', 'on']);
    expect(vxlanPortLearns('h2')).toBe(true);
    ok(['lab', 'start', '--host', 'h2']);
    await until('learning off on the VXLAN port of h2', () => !vxlanPortLearns('h2'));
    await until('b back on h1 and h3', () => ['h1', 'h3'].every((h) => remoteEntries(h).neigh.some((n) => n.startsWith(`${b.ip} `))));
    expect(pings(a.netns, b.ip)).toBe(true);
    // and h2 learned what changed while it was down: d (attached on h3 before) is reachable from b
    expect(pings(b.netns, container('d').ip)).toBe(true);
  });

  it('moves an overlay made by an older tsnet (bridge and VXLAN device in the host\'s namespace) into its own namespace at start, and its containers keep working', async () => {
    const a = container('a');
    const b = container('b');
    const hostNs = `tsl-${LAB}-h1`;
    const ns = overlayNs('h1');
    ok(['lab', 'kill', '--host', 'h1']);
    // h1 as an older tsnet left it: the bridge with the gateway, the VXLAN port and a's port, all in the host's namespace
    const bridge = linksIn(hostNs).find((l) => l.ifname.startsWith('tob-'))!.ifname;
    const ports = linksIn(ns).filter((l) => l.kind === 'vxlan' || l.ifname.startsWith('tsv')).map((l) => l.ifname);
    expect(ports.length).toBe(2);
    execIn(hostNs, 'ip', ['link', 'del', bridge]);
    for (const p of ports) execIn(ns, 'ip', ['link', 'set', p, 'netns', hostNs]);
    expect(spawnSync('ip', ['netns', 'del', ns]).status).toBe(0);
    execIn(hostNs, 'ip', ['link', 'add', bridge, 'mtu', '1450', 'type', 'bridge']);
    execIn(hostNs, 'ip', ['addr', 'add', '10.77.0.1/24', 'dev', bridge]);
    for (const p of [bridge, ...ports]) execIn(hostNs, 'ip', ['link', 'set', p, ...(p === bridge ? [] : ['master', bridge]), 'up']);
    expect(pings(a.netns, '10.77.0.1')).toBe(true);
    expect(linksIn(hostNs).find((l) => l.ifname === bridge)?.kind).toBe('bridge');

    ok(['lab', 'start', '--host', 'h1']);
    expect(linksIn(hostNs).find((l) => l.ifname === bridge)?.kind).toBe('veth');
    expect(linksIn(hostNs).filter((l) => l.kind === 'bridge' || l.kind === 'vxlan')).toEqual([]);
    expect(linksIn(ns).filter((l) => ports.includes(l.ifname)).map((l) => l.master)).toEqual(['br0', 'br0']);
    // the same container, its link and address untouched, reaches the gateway, h1 and the other hosts
    await until('a reaches b on h2 again', () => pings(a.netns, b.ip));
    expect(pings(a.netns, '10.77.0.1')).toBe(true);
    expect(pings(b.netns, a.ip)).toBe(true);
    expect(vxlanPortLearns('h1')).toBe(false);
  });

  it('runs beside a second lab on the same machine: neither takes the other\'s daemons or overlay namespaces for its own', () => {
    const other = `${LAB}-2`;
    const second = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args, '--name', other], { encoding: 'utf8', timeout: 120_000 });
    try {
      const up = second(['lab', 'up', '--hosts', '1', '--lease-ttl', String(LEASE_TTL)]);
      expect(up.status, up.stderr).toBe(0);
      const attach = second(['lab', 'attach', '--host', 'h1', 'z']);
      expect(attach.status, attach.stderr).toBe(0);
      const z = (JSON.parse(second(['lab', 'status', '--json']).stdout) as LabStatus).containers[0];
      // the second lab's container reaches its gateway, through the overlay's own namespace there
      expect(pings(z.netns, '10.77.0.1')).toBe(true);
      // and the first lab keeps its overlay namespaces and its pings across hosts
      for (const h of ['h1', 'h2', 'h3']) expect(existsSync(`/run/netns/${overlayNs(h)}`), h).toBe(true);
      expect(pings(container('a').netns, container('b').ip)).toBe(true);
    } finally {
      second(['lab', 'down']);
    }
    expect(existsSync(`/run/tsnet-lab/${other}`)).toBe(false);
    // its down took only its own: interface indexes repeat across namespaces, so the first lab's
    // overlay namespaces once looked like the second's (lab.ts, netns-layout.ts overlayNamespacesBehind)
    for (const h of ['h1', 'h2', 'h3']) expect(existsSync(`/run/netns/${overlayNs(h)}`), h).toBe(true);
  });

  it('refuses bad lab commands with a message', () => {
    const unknownHost = tsnet(['lab', 'attach', '--host', 'h9', 'z']);
    expect(unknownHost.code).not.toBe(0);
    expect(unknownHost.stderr).toContain("has no host 'h9'");
    const again = tsnet(['lab', 'up', '--hosts', '1']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('already up');
    const twice = tsnet(['lab', 'attach', '--host', 'h1', 'a']);
    expect(twice.stderr).toContain("already has a container 'a'");
  });

  it('lab down leaves no namespace, process or state behind', () => {
    expect(pids.length).toBe(4);
    // the restarted h2 daemon has a new pid
    const current = labProcesses();
    const overlays = ['h1', 'h2', 'h3'].map(overlayNs);
    expect(overlays.every((n) => existsSync(`/run/netns/${n}`))).toBe(true);
    ok(['lab', 'down']);
    expect(labNamespaces()).toEqual([]);
    expect(overlays.filter((n) => existsSync(`/run/netns/${n}`))).toEqual([]);
    for (const pid of [...pids, ...current]) expect(alive(pid)).toBe(false);
    expect(existsSync(`/run/tsnet-lab/${LAB}`)).toBe(false);
  });
});

