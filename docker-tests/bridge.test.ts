// The bridge driver through the real Docker engine, as a user would drive it. The daemon under
// test registers as plugin "tsnet-e2e" (socket /run/docker/plugins/tsnet-e2e.sock) so a tsnet
// started with `make up` on the same machine is left alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  docker,
  ensureBusyboxImage,
  ensureDockerd,
  onCleanup,
  runCleanups,
  startTsnetDaemon,
  uniqueName,
  type TsnetDaemon,
} from './harness.js';

const PLUGIN = 'tsnet-e2e';
const SOCKET = `/run/docker/plugins/${PLUGIN}.sock`;
// the daemon's own nftables table, named after its plugin name (daemon/paths.ts instanceOf)
const TABLE = 'tsnet_e2e';
const IMAGE = 'tsnet-busybox:latest';
// Test subnets: private ranges only on bridges this test makes; the "outside" world is a
// namespace on 203.0.113.0/24 with no route back to the containers.
const WEB_SUBNET = '10.231.0.0/24';
const OUT_HOST_IP = '203.0.113.1';
const OUT_PEER_IP = '203.0.113.2';

let daemon: TsnetDaemon;
let stateDir: string;
const run = uniqueName('e2e');
const outsideNs = `${run}-out`;
const outsideHostIf = `o${run.slice(-8)}h`;
let peerServer: ChildProcess | undefined;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
}

function ok(args: string[]): string {
  const r = docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

function tsnet(args: string[]): { stdout: string; stderr: string; code: number } {
  try {
    const stdout = execFileSync('node', ['dist/cli/main.js', ...args, '--state-dir', stateDir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { stdout: stdout.trim(), stderr: '', code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; status: number };
    return { stdout: String(e.stdout ?? '').trim(), stderr: String(e.stderr ?? '').trim(), code: e.status ?? 1 };
  }
}

function network(name: string, args: string[]): string {
  ok(['network', 'create', '-d', PLUGIN, ...args, name]);
  onCleanup(() => docker(['network', 'rm', name]));
  return ok(['network', 'inspect', '-f', '{{.Id}}', name]);
}

function container(name: string, args: string[], cmd: string[]): string {
  ok(['run', '-d', '--name', name, ...args, IMAGE, ...cmd]);
  onCleanup(() => docker(['rm', '-f', name]));
  return name;
}

function ipOf(name: string, net: string): string {
  return ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
}

/** Runs a throwaway container on a network and returns its output and exit code. */
function oneShot(net: string, cmd: string[], extra: string[] = []): { out: string; code: number } {
  const r = docker(['run', '--rm', '--network', net, ...extra, IMAGE, ...cmd]);
  return { out: (r.stdout + r.stderr).trim(), code: r.code };
}

function httpGetFrom(ns: string | null, host: string, port: number): string {
  const args = ['-s', '--max-time', '5', `http://${host}:${port}/`];
  try {
    return ns ? sh('ip', ['netns', 'exec', ns, 'curl', ...args]) : sh('curl', args);
  } catch {
    return '';
  }
}

/** An HTTP server inside a container: busybox httpd on each port, index says which container. */
function webServer(name: string, net: string, publish: string[], ports = [80]): string {
  const starts = ports.map((p) => `httpd -p ${p} -h /www`).join(' && ');
  return container(name, ['--network', net, ...publish.flatMap((p) => ['-p', p])], [
    'sh',
    '-c',
    `mkdir -p /www && echo hello-from-${name} > /www/index.html && ${starts} && sleep 3600`,
  ]);
}

function bridgeOf(networkId: string): string {
  const status = JSON.parse(tsnet(['status', '--json']).stdout) as { networks: { id: string; config: { bridge: string } }[] };
  const n = status.networks.find((x) => x.id === networkId);
  if (!n) throw new Error(`network ${networkId} not in tsnet status`);
  return n.config.bridge;
}

function linkExists(name: string): boolean {
  try {
    sh('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

function sendRaw(path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: SOCKET, path, method: 'POST' }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  await ensureDockerd();
  await ensureBusyboxImage(IMAGE);
  stateDir = mkdtempSync(join(tmpdir(), 'tsnet-e2e-'));
  onCleanup(() => rmSync(stateDir, { recursive: true, force: true }));
  onCleanup(() => {
    // the table outlives a stopped daemon by design (networks keep working); the test's goes now
    spawnSync('nft', ['delete', 'table', 'inet', TABLE]);
  });
  daemon = await startTsnetDaemon({ stateDir, socketPath: SOCKET });
  onCleanup(() => daemon.stop());

  // the outside world: a namespace behind a veth, reachable from the host, with no route back
  sh('ip', ['netns', 'add', outsideNs]);
  onCleanup(() => sh('ip', ['netns', 'del', outsideNs]));
  sh('ip', ['link', 'add', outsideHostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs]);
  onCleanup(() => {
    if (linkExists(outsideHostIf)) sh('ip', ['link', 'del', outsideHostIf]);
  });
  sh('ip', ['addr', 'add', `${OUT_HOST_IP}/24`, 'dev', outsideHostIf]);
  sh('ip', ['link', 'set', outsideHostIf, 'up']);
  sh('ip', ['netns', 'exec', outsideNs, 'ip', 'addr', 'add', `${OUT_PEER_IP}/24`, 'dev', 'eth0']);
  sh('ip', ['netns', 'exec', outsideNs, 'ip', 'link', 'set', 'eth0', 'up']);
  sh('ip', ['netns', 'exec', outsideNs, 'ip', 'link', 'set', 'lo', 'up']);
  // tells each client the source address it saw: proof of masquerade
  peerServer = spawn('ip', [
    'netns',
    'exec',
    outsideNs,
    'node',
    '-e',
    "require('net').createServer(s=>s.end(s.remoteAddress+'\\n')).listen(7000,'0.0.0.0')",
  ]);
  onCleanup(() => peerServer?.kill());
  await new Promise((r) => setTimeout(r, 300));
}, 600_000);

afterAll(async () => {
  await runCleanups();
});

describe('bridge networks through Docker', () => {
  let webId: string;

  it('creates a network with a given subnet: a bridge with the gateway on it', () => {
    webId = network(`${run}-web`, ['--subnet', WEB_SUBNET]);
    const bridge = bridgeOf(webId);
    const addrs = JSON.parse(sh('ip', ['-j', 'addr', 'show', 'dev', bridge])) as { addr_info: { local: string; prefixlen: number }[] }[];
    expect(addrs[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain('10.231.0.1/24');
  });

  it('lets containers ping each other by name', () => {
    container(`${run}-a`, ['--network', `${run}-web`], ['sleep', '3600']);
    const r = oneShot(`${run}-web`, ['ping', '-c', '1', '-W', '3', `${run}-a`]);
    expect(r.code, r.out).toBe(0);
  });

  it('masquerades outbound traffic: the outside sees the host address', () => {
    const r = oneShot(`${run}-web`, ['nc', '-w', '3', OUT_PEER_IP, '7000']);
    expect(r.out).toBe(OUT_HOST_IP);
  });

  it('publishes ports: from outside, from 127.0.0.1, from a host address, and by hairpin', () => {
    webServer(`${run}-site`, `${run}-web`, ['8080:80', '9000-9010:9000-9010'], [80, 9000, 9005, 9010]);
    const hello = `hello-from-${run}-site`;
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 8080)).toBe(hello);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 9005)).toBe(hello);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 9010)).toBe(hello);
    expect(httpGetFrom(null, '127.0.0.1', 8080)).toBe(hello);
    expect(httpGetFrom(null, OUT_HOST_IP, 9000)).toBe(hello);
    const hairpin = oneShot(`${run}-web`, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${OUT_HOST_IP} 8080`]);
    expect(hairpin.out).toContain(hello);
  });

  it('shows bindings with tsnet port, as docker port prints them', () => {
    const all = tsnet(['port', `${run}-site`]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split('\n')).toContain('80/tcp -> 0.0.0.0:8080');
    expect(all.stdout.split('\n')).toContain('9005/tcp -> 0.0.0.0:9005');
    expect(tsnet(['port', `${run}-site`, '80']).stdout).toBe('0.0.0.0:8080');
    const missing = tsnet(['port', `${run}-site`, '81']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("No public port '81/tcp'");
  });

  it('chooses an ephemeral host port from the local port range for -p 80', () => {
    webServer(`${run}-eph`, `${run}-web`, ['80']);
    const line = tsnet(['port', `${run}-eph`, '80/tcp']).stdout;
    const port = Number(line.split(':').pop());
    const [lo, hi] = sh('cat', ['/proc/sys/net/ipv4/ip_local_port_range']).split(/\s+/).map(Number);
    expect(port).toBeGreaterThanOrEqual(lo);
    expect(port).toBeLessThanOrEqual(hi);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, port)).toBe(`hello-from-${run}-eph`);
  });

  it('refuses a host port that is already published', () => {
    const r = docker(['run', '-d', '--name', `${run}-dup`, '--network', `${run}-web`, '-p', '8080:80', IMAGE, 'sleep', '60']);
    onCleanup(() => docker(['rm', '-f', `${run}-dup`]));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/8080/);
  });

  it('picks a free subnet with --ipam-driver tsnet and never hands out an address twice', () => {
    network(`${run}-app`, ['--ipam-driver', PLUGIN]);
    const subnet = ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', `${run}-app`]);
    expect(subnet).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    const names = [1, 2, 3, 4].map((i) => container(`${run}-app${i}`, ['--network', `${run}-app`], ['sleep', '3600']));
    const ips = names.map((n) => ipOf(n, `${run}-app`));
    expect(new Set(ips).size).toBe(ips.length);
  });

  it('serves exact addresses, IP ranges and aux addresses through tsnet IPAM', () => {
    network(`${run}-ipam`, ['--ipam-driver', PLUGIN, '--subnet', '10.231.4.0/24', '--ip-range', '10.231.4.128/25', '--aux-address', 'router=10.231.4.130']);
    container(`${run}-fixed`, ['--network', `${run}-ipam`, '--ip', '10.231.4.7'], ['sleep', '3600']);
    expect(ipOf(`${run}-fixed`, `${run}-ipam`)).toBe('10.231.4.7');
    container(`${run}-ranged`, ['--network', `${run}-ipam`], ['sleep', '3600']);
    const ranged = ipOf(`${run}-ranged`, `${run}-ipam`);
    expect(Number(ranged.split('.')[3])).toBeGreaterThanOrEqual(128);
    expect(ranged).not.toBe('10.231.4.130');
    const taken = docker(['run', '--rm', '--network', `${run}-ipam`, '--ip', '10.231.4.7', IMAGE, 'true']);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toMatch(/10\.231\.4\.7/);
  });

  it('carries IPv6 with --ipv6: containers reach each other by name', () => {
    network(`${run}-v6`, ['--ipv6', '--subnet', '10.231.5.0/24', '--subnet', 'fd00:231:5::/64']);
    container(`${run}-six`, ['--network', `${run}-v6`], ['sleep', '3600']);
    const six = ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${run}-v6").GlobalIPv6Address}}`, `${run}-six`]);
    expect(six).toMatch(/^fd00:231:5::/);
    const r = oneShot(`${run}-v6`, ['ping', '-6', '-c', '1', '-W', '3', six]);
    expect(r.code, r.out).toBe(0);
  });

  it('isolates networks from each other', () => {
    const target = ipOf(`${run}-a`, `${run}-web`);
    const r = oneShot(`${run}-app`, ['ping', '-c', '1', '-W', '2', target]);
    expect(r.code).not.toBe(0);
  });

  it('blocks container-to-container traffic with enable_icc=false, but not the way out', () => {
    network(`${run}-noicc`, ['--subnet', '10.231.2.0/24', '-o', 'com.docker.network.bridge.enable_icc=false']);
    container(`${run}-n1`, ['--network', `${run}-noicc`], ['sleep', '3600']);
    const peer = ipOf(`${run}-n1`, `${run}-noicc`);
    expect(oneShot(`${run}-noicc`, ['ping', '-c', '1', '-W', '2', peer]).code).not.toBe(0);
    expect(oneShot(`${run}-noicc`, ['ping', '-c', '1', '-W', '2', '10.231.2.1']).code).toBe(0);
    expect(oneShot(`${run}-noicc`, ['nc', '-w', '3', OUT_PEER_IP, '7000']).out).toBe(OUT_HOST_IP);
  });

  it('gives internal networks no way out', () => {
    network(`${run}-int`, ['--internal', '--subnet', '10.231.3.0/24']);
    container(`${run}-i1`, ['--network', `${run}-int`], ['sleep', '3600']);
    const peer = ipOf(`${run}-i1`, `${run}-int`);
    expect(oneShot(`${run}-int`, ['ping', '-c', '1', '-W', '2', peer]).code).toBe(0);
    const out = oneShot(`${run}-int`, ['nc', '-w', '2', OUT_PEER_IP, '7000']);
    expect(out.out).not.toContain(OUT_HOST_IP);
    expect(oneShot(`${run}-int`, ['ip', 'route']).out).not.toContain('default');
  });

  it('refuses bad input with a clear message and keeps serving', async () => {
    const unknown = docker(['network', 'create', '-d', PLUGIN, '-o', 'colour=blue', `${run}-bad`]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("unknown option 'colour'");
    const overlap = docker(['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', '10.231.0.0/16', `${run}-bad2`]);
    if (overlap.code === 0) docker(['network', 'rm', `${run}-bad2`]);
    expect(overlap.code).not.toBe(0);
    expect(overlap.stderr).toMatch(/overlap/);
    const malformed = await sendRaw('/NetworkDriver.CreateNetwork', '{"NetworkID": ');
    expect(JSON.parse(malformed.body)).toHaveProperty('Err');
    const badIpam = await sendRaw('/IpamDriver.RequestPool', '{"AddressSpace": "local", "Pool": "10.0.0.0/33", "V6": false}');
    expect(JSON.parse(badIpam.body).Error).toMatch(/10\.0\.0\.0\/33/);
    expect(oneShot(`${run}-web`, ['ping', '-c', '1', '-W', '3', `${run}-a`]).code).toBe(0);
  });

  it('keeps networks and containers working across a daemon restart and a kill -9', async () => {
    await daemon.restart();
    expect(oneShot(`${run}-web`, ['ping', '-c', '1', '-W', '3', `${run}-a`]).code).toBe(0);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 8080)).toBe(`hello-from-${run}-site`);
    await daemon.kill9();
    await daemon.restart();
    container(`${run}-late`, ['--network', `${run}-app`], ['sleep', '3600']);
    const ips = [1, 2, 3, 4].map((i) => ipOf(`${run}-app${i}`, `${run}-app`));
    expect(ips).not.toContain(ipOf(`${run}-late`, `${run}-app`));
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 8080)).toBe(`hello-from-${run}-site`);
  });

  it('leaves nothing behind after containers and networks are removed', () => {
    const bridge = bridgeOf(webId);
    for (const n of ['a', 'site', 'eph']) ok(['rm', '-f', `${run}-${n}`]);
    ok(['network', 'rm', `${run}-web`]);
    expect(linkExists(bridge)).toBe(false);
    const table = sh('nft', ['list', 'table', 'inet', TABLE]);
    expect(table).not.toContain(bridge);
    expect(table).not.toMatch(/: 10\.231\.0\.\d+ \. 80/);
    let dockerUser = '';
    try {
      dockerUser = sh('nft', ['list', 'chain', 'ip', 'filter', 'DOCKER-USER']);
    } catch {
      // no Docker chain: nothing of ours can be in it
    }
    expect(dockerUser).not.toContain(bridge);
    const status = JSON.parse(tsnet(['status', '--json']).stdout) as { networks: { id: string }[]; ports: { network: string }[] };
    expect(status.networks.map((n) => n.id)).not.toContain(webId);
    expect(status.ports.filter((p) => p.network === webId)).toEqual([]);
  });
});
