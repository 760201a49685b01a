// The lab with etcd as a three-member cluster, through `tsnet lab ...` as a user drives it: a
// member down (the store works on), two down (no majority: running containers keep working and
// keep their peer entries, a new attach is refused with a clear error, not a hang), the members
// back (everything resyncs), a host cut off the underlay (the others work on, its containers go
// from them after the lease) and healed (it resyncs and claims again the addresses `cluster
// forget` freed; an address given to another container while it was away stays with that one, and
// the host takes its own container's link down, reported by doctor), and a restart of that host's
// daemon keeping the container cut off. Needs the build (make test builds first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { execIn, pings, tryIn, uniqueName, until } from './harness.js';
import { readState } from '../lab/lab.js';
import { shortId } from '../core/text.js';

const MAIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const LAB = uniqueName('te');
const LEASE_TTL = 3;

interface Container {
  name: string;
  host: string;
  netns: string;
  address: string;
  ip: string;
}

function tsnet(args: string[], inNetns?: string): { code: number; stdout: string; stderr: string } {
  const cmd = [process.execPath, MAIN, ...args];
  const r = inNetns
    ? spawnSync('ip', ['netns', 'exec', inNetns, ...cmd], { encoding: 'utf8', timeout: 120_000 })
    : spawnSync(cmd[0]!, [...cmd.slice(1), '--name', LAB], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? 1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

function ok(args: string[]): string {
  const r = tsnet(args);
  if (r.code !== 0) throw new Error(`tsnet ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

function containers(): Container[] {
  const s = JSON.parse(ok(['lab', 'status', '--json'])) as { containers: Omit<Container, 'ip'>[] };
  return s.containers.map((c) => ({ ...c, ip: c.address.split('/')[0]! }));
}

function container(name: string): Container {
  const c = containers().find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

function hostNs(host: string): string {
  return `tsl-${LAB}-${host}`;
}

/**
 * The namespace holding a host's VXLAN device and its name: the host's own, or a namespace of the
 * overlay network's own (named after the network's ID), wherever the overlay driver puts it.
 */
function vxlanOf(host: string): { ns: string; dev: string } {
  const candidates = overlayNamespaces(host);
  for (const ns of candidates) {
    const vxlan = JSON.parse(execIn(ns, 'ip', ['-j', '-d', 'link', 'show', 'type', 'vxlan'])) as { ifname: string }[];
    if (vxlan.length === 1) return { ns, dev: vxlan[0]!.ifname };
  }
  throw new Error(`no VXLAN device of ${host} in ${candidates.join(', ')}`);
}

/** The host's namespace and the namespace of its overlay network's own, if the driver made one. */
function overlayNamespaces(host: string): string[] {
  const networkId = readState(LAB)!.hosts.find((h) => h.name === host)!.networkId!;
  const named = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]!);
  return [hostNs(host), ...named.filter((n) => n.endsWith(`-ov-${networkId.slice(0, 12)}`))];
}

/** The IPs a host's VXLAN device has neighbour entries for: the remote containers it knows. */
function peerIps(host: string): string[] {
  const { ns, dev } = vxlanOf(host);
  const neigh = JSON.parse(execIn(ns, 'ip', ['-j', 'neigh', 'show', 'dev', dev])) as { dst: string }[];
  return neigh.map((n) => n.dst).sort();
}

function ipsOn(...hosts: string[]): string[] {
  return containers()
    .filter((c) => hosts.includes(c.host))
    .map((c) => c.ip)
    .sort();
}

/** The keys of the lab's overlay under `kind` in etcd, IP -> host, read from member k (serializable: its own copy). */
function hostsByIp(k: number, kind: 'endpoints' | 'addresses'): Map<string, string> {
  const ns = k === 1 ? `tsl-${LAB}-etcd` : `tsl-${LAB}-etcd${k}`;
  const out = execIn(ns, 'etcdctl', ['--endpoints', `198.51.100.${1 + k}:2379`, 'get', '--consistency=s', '--prefix', `/tsnet/${kind}/${LAB}/`]);
  const lines = out.split('\n').filter(Boolean);
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) m.set(lines[i]!.split('/').pop()!, (JSON.parse(lines[i + 1]!) as { host: string }).host);
  return m;
}

/** The announcements: which host has each address's container. */
const announcements = (k: number) => hostsByIp(k, 'endpoints');
/** The address claims of the cluster IPAM: which host holds each address. */
const claims = (k: number) => hostsByIp(k, 'addresses');

/** `tsnet doctor` as run on a lab host, against its daemon's state and the lab's etcd. */
function doctorOn(host: string): string {
  const s = readState(LAB)!;
  const h = s.hosts.find((x) => x.name === host)!;
  return tsnet(['doctor', '--state-dir', h.stateDir, '--socket', h.socket, '--store', s.store], hostNs(host)).stdout;
}

/** Whether etcd member k answers a health check (which needs a leader, so a majority). */
function memberHealthy(k: number): boolean {
  const ns = k === 1 ? `tsl-${LAB}-etcd` : `tsl-${LAB}-etcd${k}`;
  return tryIn(ns, 'etcdctl', ['--endpoints', `198.51.100.${1 + k}:2379`, '--command-timeout', '2s', 'endpoint', 'health']).code === 0;
}

function hostLog(host: string): string {
  return execIn(hostNs(host), 'cat', [join(readState(LAB)!.dir, `${host}.log`)]);
}

/** The host-side link of a lab container on its host, and whether it is up. */
function hostLinkUp(name: string): boolean {
  const s = readState(LAB)!;
  const ct = s.containers.find((c) => c.name === name)!;
  const link = `tsv${shortId(ct.endpointId)}`;
  for (const ns of overlayNamespaces(ct.host)) {
    const r = tryIn(ns, 'ip', ['-j', 'link', 'show', 'dev', link]);
    if (r.code === 0) return (JSON.parse(r.stdout) as { flags: string[] }[])[0]!.flags.includes('UP');
  }
  throw new Error(`no link ${link} on ${ct.host}`);
}

/** Every container pair across hosts reaches the other (by a ping from each of the given ones). */
function allReach(from: string[], to: string[]): string[] {
  const failed: string[] = [];
  for (const f of from) for (const t of to) if (f !== t && !pings(container(f).netns, container(t).ip)) failed.push(`${f}->${t}`);
  return failed;
}

describe('lab with a three-member etcd cluster', () => {
  beforeAll(() => {
    ok(['lab', 'up', '--hosts', '3', '--etcd', '3', '--lease-ttl', String(LEASE_TTL)]);
    for (const [host, name] of [['h1', 'a'], ['h2', 'b'], ['h3', 'c']] as const) ok(['lab', 'attach', '--host', host, name]);
  }, 120_000);

  afterAll(() => {
    tsnet(['lab', 'down']);
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(`tsl-${LAB}-`));
    expect(left).toEqual([]);
  }, 60_000);

  it('runs three members in their own namespaces, and gives every daemon all three', () => {
    expect([1, 2, 3].map(memberHealthy)).toEqual([true, true, true]);
    const text = ok(['lab', 'status']);
    for (const ns of ['etcd', 'etcd2', 'etcd3']) expect(text).toMatch(new RegExp(`\\n\\d  tsl-${LAB}-${ns}  198\\.51\\.100\\.\\d:2379  pid \\d+`));
    expect(readState(LAB)!.store).toBe('etcd://198.51.100.2:2379,198.51.100.3:2379,198.51.100.4:2379');
    expect(allReach(['a', 'b', 'c'], ['a', 'b', 'c'])).toEqual([]);
  });

  it('with one member down: the overlay works on and a new container attaches and is reached from every host', () => {
    ok(['lab', 'kill', '--etcd', '1']);
    expect(memberHealthy(1)).toBe(false);
    expect(memberHealthy(2)).toBe(true);
    expect(ok(['lab', 'status'])).toMatch(new RegExp(`\\n1  tsl-${LAB}-etcd  198\\.51\\.100\\.2:2379  NOT RUNNING`));
    ok(['lab', 'attach', '--host', 'h2', 'd']);
    expect(allReach(['a', 'c'], ['d'])).toEqual([]);
    expect(allReach(['d'], ['a', 'b', 'c'])).toEqual([]);
  });

  it('with two members down: running containers keep working and keep their peer entries past the lease, a new attach is refused saying why', async () => {
    const before = { h1: peerIps('h1'), h2: peerIps('h2'), h3: peerIps('h3') };
    expect(before.h1).toEqual(ipsOn('h2', 'h3'));
    ok(['lab', 'kill', '--etcd', '2']);
    expect(memberHealthy(3)).toBe(false); // no majority: the last member has no leader
    // every daemon notices its lease can no longer be kept (twice the lease without an answer)
    await until('every host has lost its lease', () => ['h1', 'h2', 'h3'].every((h) => hostLog(h).includes("lost this host's lease")), 30_000);
    const refused = tsnet(['lab', 'attach', '--host', 'h3', 'e']);
    expect(refused.code).toBe(69); // unavailable, as every tsnet command exits when the store cannot answer
    expect(refused.stderr).toMatch(/IpamDriver\.RequestAddress: the cluster store at http:\/\/198\.51\.100\.2:2379,\S+ did not answer \(.+\): .+ until a majority of its members is reachable/);
    expect(containers().map((c) => c.name)).not.toContain('e');
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(`tsl-${LAB}-c-e`);
    // the store's outage removed nothing: every peer entry is there and traffic flows
    expect({ h1: peerIps('h1'), h2: peerIps('h2'), h3: peerIps('h3') }).toEqual(before);
    expect(allReach(['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd'])).toEqual([]);
  }, 90_000);

  it('with the members back: they rejoin with the data, attaches work again, and the new container is reached from every host', async () => {
    ok(['lab', 'start', '--etcd', '2']);
    expect(memberHealthy(3)).toBe(true);
    ok(['lab', 'attach', '--host', 'h3', 'e']);
    ok(['lab', 'start', '--etcd', '1']);
    expect(memberHealthy(1)).toBe(true);
    // member 1, down since before d and e, has caught up: its own copy holds every announcement
    const all = ipsOn('h1', 'h2', 'h3');
    await until('member 1 holds every announcement', () => [...announcements(1).keys()].sort().join() === all.join());
    await until('every host knows every other host\'s containers', () => ['h1', 'h2', 'h3'].every((h) => peerIps(h).join() === ipsOn(...['h1', 'h2', 'h3'].filter((x) => x !== h)).join()));
    expect(allReach(['a', 'b', 'd'], ['e'])).toEqual([]);
    expect(allReach(['e'], ['a', 'b', 'c', 'd'])).toEqual([]);
  }, 90_000);

  it('with h3 cut off the underlay: the others work on, and h3\'s containers go from them once its lease expired', async () => {
    const h3Ips = ipsOn('h3');
    expect(h3Ips.length).toBe(2);
    ok(['lab', 'cut', '--host', 'h3']);
    expect(ok(['lab', 'status'])).toMatch(/\nh3  \S+  198\.51\.100\.13\/24 \(CUT\)  pid \d+/);
    expect(pings(container('c').netns, container('a').ip)).toBe(false);
    await until("h3's containers gone from h1 and h2", () => ['h1', 'h2'].every((h) => peerIps(h).every((ip) => !h3Ips.includes(ip))), 30_000);
    expect(peerIps('h1')).toEqual(ipsOn('h2'));
    expect(allReach(['a', 'b', 'd'], ['a', 'b', 'd'])).toEqual([]);
    ok(['lab', 'attach', '--host', 'h1', 'f']);
    expect(allReach(['b', 'd'], ['f'])).toEqual([]);
  }, 90_000);

  it("on heal: h3 resyncs both ways, and an address given away while it was cut off stays with its new holder while h3 takes its own container's link down", async () => {
    const c = container('c');
    // h3's addresses freed while it was away (its lease expired, so forget is allowed), and the
    // first free one after h2's last (d's) given to g on h2: e's
    const s = readState(LAB)!;
    const forgot = tsnet(['cluster', 'forget', 'h3', '--store', s.store], hostNs('h1'));
    expect(forgot.code, forgot.stderr).toBe(0);
    const g = ok(['lab', 'attach', '--host', 'h2', 'g']).split('/')[0];
    const e = container('e');
    expect([c.ip, e.ip]).toContain(g);
    const taken = g === c.ip ? 'c' : 'e';
    const kept = taken === 'c' ? 'e' : 'c';
    ok(['lab', 'heal', '--host', 'h3']);
    await until("h3 cut its container off whose address went to g", () => hostLog('h3').includes(`endpoint ${shortId(readState(LAB)!.containers.find((x) => x.name === taken)!.endpointId)} is cut off`), 40_000);
    expect(hostLinkUp(taken)).toBe(false);
    expect(hostLinkUp(kept)).toBe(true);
    // the store has one holder for every address: g's stays h2's; h3's other container is back
    await until("h3's remaining container announced again", () => announcements(3).get(container(kept).ip) === 'h3', 30_000);
    const ann = announcements(3);
    expect(ann.get(g!)).toBe('h2');
    // the address forget freed is claimed again by h3, in the same transaction as its announcement,
    // so the cluster IPAM hands it to nobody else; g's claim stays h2's
    expect(claims(3).get(container(kept).ip)).toBe('h3');
    expect(claims(3).get(g!)).toBe('h2');
    const next = ok(['lab', 'attach', '--host', 'h1', 'k']).split('/')[0];
    expect([container(kept).ip, g]).not.toContain(next);
    ok(['lab', 'detach', 'k']);
    // doctor on h3 names the cut-off container, and on h1 none
    expect(doctorOn('h3')).toMatch(new RegExp(`missing +overlay addresses +cut off.*endpoint ${shortId(readState(LAB)!.containers.find((x) => x.name === taken)!.endpointId)} \\(${g!.replace(/\./g, '\\.')} on '${LAB}', now endpoint \\S+ on host h2`));
    expect(doctorOn('h1')).toMatch(/ok +overlay addresses +no container of this host is cut off/);
    await until('h1 and h2 know h3\'s remaining container again, and h3 knows f and g', () =>
      peerIps('h1').includes(container(kept).ip) && peerIps('h2').includes(container(kept).ip) && ['f', 'g'].every((n) => peerIps('h3').includes(container(n).ip)),
    30_000);
    expect(allReach(['a', 'b', 'd', 'f'], [kept, 'g'])).toEqual([]);
    expect(allReach([kept], ['a', 'b', 'd', 'f', 'g'])).toEqual([]);
    // no duplicate: among the containers still on the overlay every address is one container's
    const live = containers().filter((x) => x.name !== taken).map((x) => x.ip);
    expect(new Set(live).size).toBe(live.length);
    expect(pings(container(taken).netns, container('a').ip)).toBe(false);
  }, 120_000);

  it("after a restart of h3's daemon the cut-off container stays cut off, and the rest of h3 works as before", async () => {
    const s = readState(LAB)!;
    const taken = s.containers.filter((x) => x.host === 'h3').find((x) => !hostLinkUp(x.name))!.name;
    const kept = ['c', 'e'].find((n) => n !== taken)!;
    const kepts = () => hostLog('h3').split('endpoint(s) stay cut off').length;
    const before = kepts();
    ok(['lab', 'kill', '--host', 'h3']);
    ok(['lab', 'start', '--host', 'h3']);
    await until("h3's remaining container announced again", () => announcements(3).get(container(kept).ip) === 'h3', 30_000);
    expect(hostLinkUp(taken)).toBe(false);
    expect(hostLinkUp(kept)).toBe(true);
    expect(kepts()).toBeGreaterThan(before);
    expect(announcements(3).get(container(taken).ip)).toBe('h2');
    expect(allReach([kept], ['a', 'g'])).toEqual([]);
    expect(pings(container(taken).netns, container('a').ip)).toBe(false);
    // detach frees it from the list; doctor is clear again
    ok(['lab', 'detach', taken]);
    ok(['lab', 'kill', '--host', 'h3']);
    ok(['lab', 'start', '--host', 'h3']);
    expect(doctorOn('h3')).toMatch(/ok +overlay addresses +no container of this host is cut off/);
  }, 120_000);
});
