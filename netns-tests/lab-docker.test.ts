// Three lab hosts, each with a Docker engine of its own (`tsnet lab up --docker`), driven as a user
// drives them: `tsnet lab docker --host H -- ...` creates the same overlay on every engine and runs
// busybox containers on it. Shows the engines apart, the overlay across them (full-size packets
// with DF set), a port published on one host answering on its underlay address from outside the
// lab's hosts, each host's containers leaving by their own host, names across hosts, a dual-stack
// overlay (IPv6 addresses unique across hosts, full-size IPv6 packets, AAAA names), etcd as a
// three-member cluster losing one member and then two, h3 cut off its underlay and healed, and
// lab down leaving nothing.
// Needs the build (make test builds first), docker.io, etcd and busybox-static.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execIn, tryIn, uniqueName, until } from './harness.js';
import { delNetns, plugIntoUnderlay } from '../lab/processes.js';
import { engineProcesses, engineRssKiB } from '../lab/engine.js';

const MAIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const LAB = uniqueName('d');
const DIR = `/run/tsnet-lab/${LAB}`;
/** a namespace outside the lab's hosts, on their underlay */
const OUTSIDE = `tsl-${LAB}x-out`;
const OUTSIDE_IP = '198.51.100.200';
const HOSTS = ['h1', 'h2', 'h3'] as const;
const NET = 'blue';
const SUBNET = '10.239.0.0/24';
/** the dual-stack overlay's name and subnets */
const NET6 = 'green';
const SUBNET6_V4 = '10.239.1.0/24';
const SUBNET6 = 'fd00:239:1::/64';
const IMAGE = 'tsnet-busybox';
/** seconds: short, so a cut-off host's containers go from the others within the test */
const LEASE_TTL = 3;

interface Status {
  hosts: { name: string; netns: string; underlay: string; docker?: string }[];
}

interface StateFile {
  hosts: { name: string; pid?: number; docker?: { pid: number; mntNs: string; netNs: string } }[];
}

function tsnet(args: string[], timeout = 180_000): { code: number; stdout: string; stderr: string } {
  // --name first: everything after `lab docker ... --` goes to docker untouched
  const r = spawnSync(process.execPath, [MAIN, '--name', LAB, ...args], { encoding: 'utf8', timeout });
  return { code: r.status ?? 1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

function ok(args: string[]): string {
  const r = tsnet(args);
  if (r.code !== 0) throw new Error(`tsnet ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The docker CLI against a lab host's engine, through `tsnet lab docker`. */
function docker(host: string, args: string[]): { code: number; stdout: string; stderr: string } {
  return tsnet(['lab', 'docker', '--host', host, '--', ...args]);
}

function dockerOk(host: string, args: string[]): string {
  return ok(['lab', 'docker', '--host', host, '--', ...args]);
}

function stateFile(): StateFile {
  return JSON.parse(readFileSync(join(DIR, 'state.json'), 'utf8')) as StateFile;
}

/** The container's init, to enter its network namespace with the host's iputils ping. */
function pidOf(host: string, name: string): string {
  return dockerOk(host, ['inspect', '-f', '{{.State.Pid}}', name]);
}

function ipOf(host: string, name: string): string {
  return dockerOk(host, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`, name]);
}

function pingFrom(host: string, name: string, ip: string, size: number): number {
  return spawnSync('nsenter', ['-t', pidOf(host, name), '-n', 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(size), ip]).status ?? 1;
}

function underlayIp(host: string): string {
  return `198.51.100.${10 + Number(host.slice(1))}`;
}

/** A node script run in the outside namespace, once it printed 'listening'; what it printed so far. */
async function serveOutside(script: string): Promise<{ said: () => string; kill: () => void }> {
  const child = spawn('ip', ['netns', 'exec', OUTSIDE, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let said = '';
  child.stdout.on('data', (d: Buffer) => (said += d.toString()));
  const kill = () => child.kill();
  try {
    await until('the outside server is up', () => said.includes('listening'));
  } catch (err) {
    kill();
    throw err;
  }
  return { said: () => said, kill };
}

/** Every network namespace whose name says it is this test's. */
function ourNamespaces(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(`tsl-${LAB}`));
}

describe('lab hosts with a Docker engine each', () => {
  let engines: { pid: number; mntNs: string; netNs: string }[] = [];
  let daemons: number[] = [];

  beforeAll(() => {
    // the daemons' resolver for names that are not the overlays' (a namespace outside the hosts, made below)
    process.env.TSNET_DNS_UPSTREAM = OUTSIDE_IP;
    ok(['lab', 'up', '--hosts', '3', '--docker', '--etcd', '3', '--lease-ttl', String(LEASE_TTL)]);
    delete process.env.TSNET_DNS_UPSTREAM;
    const s = stateFile();
    engines = s.hosts.map((h) => h.docker!).filter(Boolean);
    daemons = s.hosts.map((h) => h.pid ?? 0);
    plugIntoUnderlay(`tsl-${LAB}-ul`, OUTSIDE, 'outside', `${OUTSIDE_IP}/24`);
  }, 240_000);

  afterAll(() => {
    // also when a test failed: the lab removes everything it made, the outside namespace is ours
    delNetns(OUTSIDE);
    if (existsSync(DIR)) tsnet(['lab', 'down']);
  }, 120_000);

  it('gives every host its own engine: status names its socket, and no engine sees another one\'s containers', () => {
    const s = JSON.parse(ok(['lab', 'status', '--json'])) as Status;
    expect(s.hosts.map((h) => h.docker)).toEqual(HOSTS.map((h) => `${DIR}/${h}/engine/docker.sock`));
    expect(engines).toHaveLength(3);
    expect(new Set(engines.map((e) => e.mntNs)).size).toBe(3);
    for (const h of HOSTS) expect(dockerOk(h, ['image', 'ls', '--format', '{{.Repository}}'])).toContain(IMAGE);
    dockerOk('h1', ['create', '--name', 'only-on-h1', IMAGE]);
    expect(dockerOk('h1', ['ps', '-a', '--format', '{{.Names}}'])).toContain('only-on-h1');
    expect(dockerOk('h2', ['ps', '-a', '--format', '{{.Names}}'])).not.toContain('only-on-h1');
    dockerOk('h1', ['rm', 'only-on-h1']);
    // measured, not asserted: what three engines take (the report quotes it)
    const rss = engines.map((e) => engineRssKiB(e));
    console.log(`engine RSS (dockerd + containerd + shims), KiB: ${rss.join(', ')}`);
  });

  it('makes one overlay of the same network created on every engine, and refuses a mismatched one', () => {
    for (const h of HOSTS) {
      dockerOk(h, ['network', 'create', '-d', 'tsnet', '-o', 'type=overlay', '-o', `overlay=${NET}`, '--ipam-driver', 'tsnet', '--ipam-opt', `overlay=${NET}`, '--subnet', SUBNET, NET]);
    }
    const bad = docker('h3', ['network', 'create', '-d', 'tsnet', '-o', 'type=overlay', '-o', `overlay=${NET}`, '--subnet', '10.240.0.0/24', 'blue2']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(NET);
    for (const h of HOSTS) dockerOk(h, ['run', '-d', '--name', `c${h}`, '--network', NET, '--network-alias', `alias-${h}`, IMAGE, 'sleep', '600']);
    const ips = HOSTS.map((h) => ipOf(h, `c${h}`));
    expect(new Set(ips).size).toBe(3);
    for (const ip of ips) expect(ip).toMatch(/^10\.239\.0\.\d+$/);
  });

  it('carries full-size packets with DF set between containers of different engines, and no larger one', () => {
    const [, ip2, ip3] = HOSTS.map((h) => ipOf(h, `c${h}`));
    // MTU 1450 (the underlay's 1500 - 50): 1422 bytes of payload + 28 of headers fit exactly
    expect(pingFrom('h1', 'ch1', ip2, 1422)).toBe(0);
    expect(pingFrom('h1', 'ch1', ip3, 1422)).toBe(0);
    expect(pingFrom('h3', 'ch3', ip2, 1422)).toBe(0);
    expect(pingFrom('h1', 'ch1', ip2, 1423)).not.toBe(0);
  });

  it('answers a port published on h2 on h2\'s underlay address from outside, and not on another host\'s', async () => {
    dockerOk('h2', ['run', '-d', '--name', 'web', '--network', NET, '-p', '8080:80', IMAGE, 'sh', '-c', 'echo served-by-h2 > /tmp/index.html && httpd -f -p 80 -h /tmp']);
    const get = (ip: string) => tryIn(OUTSIDE, 'curl', ['-s', '--max-time', '3', `http://${ip}:8080/index.html`]);
    await until('web answers on h2', () => get(underlayIp('h2')).stdout.includes('served-by-h2'));
    expect(get(underlayIp('h1')).code).not.toBe(0);
  });

  it('lets each host\'s containers out through their own host (masqueraded to its underlay address)', async () => {
    // a listener outside that prints the source address of each connection and what came on it
    const listener = await serveOutside(LISTENER);
    try {
      for (const h of HOSTS) dockerOk(h, ['exec', `c${h}`, 'sh', '-c', `echo from-${h} | nc -w 3 ${OUTSIDE_IP} 9000`]);
      await until('three connections', () => (listener.said().match(/from-/g) ?? []).length === 3);
      for (const h of HOSTS) expect(listener.said()).toContain(`${underlayIp(h)} from-${h}`);
    } finally {
      listener.kill();
    }
  });

  it('resolves names and aliases of containers on other hosts, external names through the upstream, and forgets a name when its container goes', async () => {
    // the lab's daemons send other names to OUTSIDE_IP (TSNET_DNS_UPSTREAM at lab up): a resolver that knows ext.example
    const upstream = await serveOutside(UPSTREAM);
    try {
      const [ip1, , ip3] = HOSTS.map((h) => ipOf(h, `c${h}`));
      const lookup = (host: string, name: string) => docker(host, ['exec', `c${host}`, 'nslookup', name]).stdout;
      expect(lookup('h2', 'ch1')).toContain(ip1);
      expect(lookup('h2', 'alias-h1')).toContain(ip1);
      expect(lookup('h1', 'ch3')).toContain(ip3);
      expect(docker('h2', ['exec', 'ch2', 'ping', '-c', '1', '-W', '2', 'ch1']).code).toBe(0);
      expect(lookup('h3', 'ext.example')).toContain('203.0.113.9');
      // a name nobody has is not made up
      expect(lookup('h2', 'nobody-has-this')).not.toMatch(/Address: 10\.239\./);
      dockerOk('h3', ['rm', '-f', 'ch3']);
      expect(lookup('h1', 'ch3')).not.toContain(ip3);
      expect(lookup('h1', 'alias-h3')).not.toContain(ip3);
    } finally {
      upstream.kill();
    }
  });

  it('makes a dual-stack overlay (--ipv6): the same IPv6 subnet on every host or a refusal, IPv6 addresses unique across hosts, full-size IPv6 packets between engines, names with AAAA records', () => {
    const create = (h: string, subnets: string[], name = NET6) =>
      docker(h, ['network', 'create', '-d', 'tsnet', '-o', 'type=overlay', '-o', `overlay=${NET6}`, '--ipam-driver', 'tsnet', '--ipam-opt', `overlay=${NET6}`, ...subnets.flatMap((s) => ['--subnet', s]), ...(subnets.length > 1 ? ['--ipv6'] : []), name]);
    expect(create('h1', [SUBNET6_V4, SUBNET6]).stderr).toBe('');
    expect(create('h2', [SUBNET6_V4, SUBNET6]).code).toBe(0);
    // another IPv6 subnet, or none, for the same overlay is refused, and leaves nothing on h3
    const otherSubnet = create('h3', [SUBNET6_V4, 'fd00:239:9::/64']);
    expect(otherSubnet.code).not.toBe(0);
    expect(otherSubnet.stderr).toContain(`overlay '${NET6}' has subnet ${SUBNET6} in the cluster, not fd00:239:9::/64`);
    const noIpv6 = create('h3', [SUBNET6_V4]);
    expect(noIpv6.code).not.toBe(0);
    expect(noIpv6.stderr).toContain(`IPv6 subnet ${SUBNET6} (not none)`);
    expect(dockerOk('h3', ['network', 'ls', '--format', '{{.Name}}'])).not.toContain(NET6);
    expect(create('h3', [SUBNET6_V4, SUBNET6]).code).toBe(0);

    for (const h of HOSTS) dockerOk(h, ['run', '-d', '--name', `v6${h}`, '--network', NET6, IMAGE, 'sleep', '600']);
    const ip6 = (h: string) => dockerOk(h, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${NET6}").GlobalIPv6Address}}`, `v6${h}`]);
    const ips = HOSTS.map(ip6);
    expect(new Set(ips).size).toBe(3);
    for (const ip of ips) expect(ip).toMatch(/^fd00:239:1::[0-9a-f]+$/);
    const ping6 = (h: string, ip: string, size: number) =>
      spawnSync('nsenter', ['-t', pidOf(h, `v6${h}`), '-n', 'ping', '-6', '-c', '1', '-W', '2', '-M', 'do', '-s', String(size), ip]).status ?? 1;
    // MTU 1450: 1402 bytes of payload + 8 of ICMPv6 + 40 of IPv6 fit exactly, one more does not
    expect(ping6('h1', ips[1], 1402)).toBe(0);
    expect(ping6('h3', ips[0], 1402)).toBe(0);
    expect(ping6('h2', ips[2], 1402)).toBe(0);
    expect(ping6('h1', ips[1], 1403)).not.toBe(0);
    // by name: Docker's embedded DNS passes the AAAA question on to tsnet's responder
    const aaaa = docker('h2', ['exec', 'v6h2', 'nslookup', '-type=AAAA', 'v6h1']).stdout;
    expect(aaaa).toContain(ips[0]);
    expect(docker('h3', ['exec', 'v6h3', 'ping', '-6', '-c', '1', '-W', '2', 'v6h1']).code).toBe(0);
    // a container of the IPv4-only overlay has no AAAA record (the name is found, no address made up)
    expect(docker('h2', ['exec', 'ch2', 'nslookup', '-type=AAAA', 'ch1']).stdout).not.toMatch(/Address: fd00:/);
  });

  it('with one etcd member down a container starts and is reached; with two down running containers work on and docker run is refused saying why; with them back it starts', async () => {
    // m1 on h3, reached from h1 and h2 with one member down
    ok(['lab', 'kill', '--etcd', '1']);
    dockerOk('h3', ['run', '-d', '--name', 'm1', '--network', NET, IMAGE, 'sleep', '600']);
    const m1 = ipOf('h3', 'm1');
    expect(pingFrom('h1', 'ch1', m1, 56)).toBe(0);
    expect(pingFrom('h2', 'ch2', m1, 56)).toBe(0);
    // two down: no majority; every daemon finds its lease lost, and the running containers work on
    ok(['lab', 'kill', '--etcd', '2']);
    await until("every host has lost its lease", () => HOSTS.every((h) => readOr(join(DIR, `${h}.log`)).includes("lost this host's lease")), 30_000);
    const refused = docker('h1', ['run', '-d', '--name', 'm2', '--network', NET, IMAGE, 'sleep', '600']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/the cluster store at .+ did not answer .+ until a majority of its members is reachable/);
    docker('h1', ['rm', '-f', 'm2']);
    expect(pingFrom('h1', 'ch1', m1, 56)).toBe(0);
    expect(pingFrom('h3', 'm1', ipOf('h2', 'ch2'), 56)).toBe(0);
    // back: a new container starts and is reached across hosts
    ok(['lab', 'start', '--etcd', '2']);
    ok(['lab', 'start', '--etcd', '1']);
    await until('docker run works again', () => docker('h1', ['run', '-d', '--name', 'm2', '--network', NET, IMAGE, 'sleep', '600']).code === 0 || (docker('h1', ['rm', '-f', 'm2']), false), 60_000);
    const m2 = ipOf('h1', 'm2');
    await until('m2 reached from h3', () => pingFrom('h3', 'm1', m2, 56) === 0);
    expect(pingFrom('h2', 'ch2', m2, 56)).toBe(0);
  }, 150_000);

  it("with h3 cut off its underlay h1 and h2 work on and h3's containers go from them after the lease; healed, h3 is reached again", async () => {
    const m1 = ipOf('h3', 'm1');
    const announced = () => execIn(`tsl-${LAB}-etcd3`, 'etcdctl', ['--endpoints', '198.51.100.4:2379', 'get', '--consistency=s', '--keys-only', '--prefix', `/tsnet/endpoints/${NET}/`]);
    expect(announced()).toContain(m1);
    ok(['lab', 'cut', '--host', 'h3']);
    expect(pingFrom('h1', 'ch1', m1, 56)).not.toBe(0);
    expect(pingFrom('h1', 'ch1', ipOf('h2', 'ch2'), 56)).toBe(0);
    await until("h3's containers gone from the cluster", () => !announced().includes(m1), 30_000);
    // and from the names h1's containers see
    expect(docker('h1', ['exec', 'ch1', 'nslookup', 'm1']).stdout).not.toContain(m1);
    ok(['lab', 'heal', '--host', 'h3']);
    await until('h3 announces its containers again', () => announced().includes(m1), 30_000);
    await until('m1 reached from h1 again', () => pingFrom('h1', 'ch1', m1, 56) === 0, 30_000);
    expect(pingFrom('h3', 'm1', ipOf('h2', 'ch2'), 56)).toBe(0);
    expect(docker('h2', ['exec', 'ch2', 'nslookup', 'm1']).stdout).toContain(m1);
  }, 120_000);

  it('lab down removes the engines, their containers and files, the daemons, namespaces and mounts', () => {
    const before = engines.flatMap((e) => engineProcesses(e));
    expect(before.length).toBeGreaterThan(engines.length * 2); // dockerd and containerd of each, and the containers' shims
    ok(['lab', 'down']);
    for (const e of engines) expect(engineProcesses(e)).toEqual([]);
    for (const pid of [...before, ...daemons]) expect(existsSync(`/proc/${pid}`) && readOr(`/proc/${pid}/stat`) !== '').toBe(false);
    expect(ourNamespaces()).toEqual([OUTSIDE]);
    expect(existsSync(DIR)).toBe(false);
    // no mount of the lab's anywhere: not in this namespace, and no process is left in an engine's
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(DIR);
    const engineNs = new Set(engines.map((e) => e.mntNs));
    for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) expect(engineNs.has(readlinkOr(`/proc/${p}/ns/mnt`))).toBe(false);
  });
});

/** Accepts connections on :9000 and prints "SOURCE-IP DATA" for each (node, run in the outside namespace). */
const LISTENER = `
require('net').createServer((c) => {
  let data = '';
  c.on('data', (d) => (data += d));
  c.on('end', () => console.log(c.remoteAddress.replace('::ffff:', ''), data.trim()));
}).listen(9000, '0.0.0.0', () => console.log('listening'));
`;

/** A resolver for the lab's upstream: ext.example is 203.0.113.9, every other name does not exist. */
const UPSTREAM = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, from) => {
  let at = 12, labels = [];
  while (m[at]) { labels.push(m.toString('latin1', at + 1, at + 1 + m[at])); at += 1 + m[at]; }
  const q = m.subarray(12, at + 5), known = labels.join('.').toLowerCase() === 'ext.example' && m.readUInt16BE(at + 1) === 1;
  const h = Buffer.alloc(12); m.copy(h, 0, 0, 2);
  h.writeUInt16BE(0x8180 | (known ? 0 : 3), 2); h.writeUInt16BE(1, 4); h.writeUInt16BE(known ? 1 : 0, 6);
  const a = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 203, 0, 113, 9]);
  s.send(Buffer.concat(known ? [h, q, a] : [h, q]), from.port, from.address);
});
s.bind(53, '${OUTSIDE_IP}', () => console.log('listening'));
`;

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function readlinkOr(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}
