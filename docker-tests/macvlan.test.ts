// The macvlan driver through the real Docker engine, as a user would drive it. The LAN is a
// namespace behind veth pairs whose host ends are the parents; its "router" holds the gateway
// addresses. The daemon under test registers as plugin "tsnet-e2e".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureBusyboxImage, ensureDockerd, onCleanup, runCleanups, startTsnetDaemon, uniqueName } from './harness.js';

const PLUGIN = 'tsnet-e2e';
const IMAGE = 'tsnet-busybox:latest';
const run = uniqueName('mv');
const lanNs = `${run}-lan`;
// parents: host ends of veth pairs into the LAN namespace (names within 15 characters)
const parent = `${run}p`;
const parent2 = `${run}q`;
const downParent = `${run}d`;
let stateDir: string;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
function ok(args: string[]): string {
  const r = docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}
function pingsFrom(ns: string | null, ip: string): boolean {
  const args = ['ping', '-c', '1', '-W', '2', ip];
  return spawnSync(ns ? 'ip' : args[0], ns ? ['netns', 'exec', ns, ...args] : args.slice(1)).status === 0;
}
function execPings(name: string, target: string): boolean {
  return docker(['exec', name, 'ping', '-c', '1', '-W', '2', target]).code === 0;
}
function network(name: string, args: string[]): string {
  ok(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', ...args, name]);
  onCleanup(() => docker(['network', 'rm', name]));
  return ok(['network', 'inspect', '-f', '{{.Id}}', name]);
}
function container(name: string, net: string, extra: string[] = []): string {
  ok(['run', '-d', '--name', name, '--network', net, ...extra, IMAGE, 'sleep', '3600']);
  onCleanup(() => docker(['rm', '-f', name]));
  return ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
}
/** What must survive a network on a parent: state, MAC, MTU, addresses, routes. */
function parentState(name: string): unknown {
  const [l] = JSON.parse(sh('ip', ['-j', '-d', 'link', 'show', 'dev', name])) as Record<string, unknown>[];
  const [a] = JSON.parse(sh('ip', ['-j', 'addr', 'show', 'dev', name])) as { addr_info: { local: string; prefixlen: number }[] }[];
  return {
    flags: l.flags,
    operstate: l.operstate,
    address: l.address,
    mtu: l.mtu,
    promiscuity: l.promiscuity,
    addresses: a.addr_info.map((i) => `${i.local}/${i.prefixlen}`),
    routes: sh('ip', ['route', 'show', 'dev', name]),
  };
}
function tsmLinks(): string[] {
  return (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('tsm'));
}
function tsnetStatus(): { networks: { id: string; driver: string; config: { parent: string; mode: string } }[] } {
  return JSON.parse(execFileSync('node', ['dist/cli/main.js', 'status', '--json', '--state-dir', stateDir], { encoding: 'utf8' }));
}

beforeAll(async () => {
  await ensureDockerd();
  await ensureBusyboxImage(IMAGE);
  stateDir = mkdtempSync(join(tmpdir(), 'tsnet-e2e-mv-'));
  onCleanup(() => rmSync(stateDir, { recursive: true, force: true }));
  onCleanup(() => spawnSync('nft', ['delete', 'table', 'inet', 'tsnet_e2e']));
  const daemon = await startTsnetDaemon({ stateDir, socketPath: `/run/docker/plugins/${PLUGIN}.sock` });
  onCleanup(() => daemon.stop());
  sh('ip', ['netns', 'add', lanNs]);
  onCleanup(() => spawnSync('ip', ['netns', 'del', lanNs]));
  for (const [p, router] of [[parent, '10.236.20.1/24'], [parent2, '10.236.21.1/24'], [downParent, '']]) {
    const lanIf = `${p}l`;
    sh('ip', ['link', 'add', p, 'type', 'veth', 'peer', 'name', lanIf, 'netns', lanNs]);
    onCleanup(() => spawnSync('ip', ['link', 'del', p]));
    if (!router) continue; // left down, for the error case
    sh('ip', ['link', 'set', p, 'up']);
    sh('ip', ['netns', 'exec', lanNs, 'ip', 'addr', 'add', router, 'dev', lanIf]);
    sh('ip', ['netns', 'exec', lanNs, 'ip', 'link', 'set', lanIf, 'up']);
  }
  // the host is on the first LAN too, as most hosts are
  sh('ip', ['addr', 'add', '10.236.20.50/24', 'dev', parent]);
}, 300_000);

afterAll(async () => {
  await runCleanups();
});

describe('macvlan networks through Docker', () => {
  let parentBefore: unknown;

  it('puts containers on the LAN with their own MACs; host_access lets the host in', () => {
    parentBefore = parentState(parent);
    const id = network(`${run}-lan`, ['-o', `parent=${parent}`, '-o', 'host_access=true', '--subnet', '10.236.20.0/24', '--gateway', '10.236.20.1']);
    // -p is accepted and ignored, as with Docker's macvlan: the container has its own address
    const a = container(`${run}-a`, `${run}-lan`, ['-p', '18090:80']);
    const b = container(`${run}-b`, `${run}-lan`);
    expect(execPings(`${run}-a`, '10.236.20.1')).toBe(true); // container -> LAN router
    expect(pingsFrom(lanNs, a)).toBe(true); // LAN host -> container
    expect(pingsFrom(lanNs, b)).toBe(true);
    expect(execPings(`${run}-b`, `${run}-a`)).toBe(true); // container <-> container, by name
    expect(execPings(`${run}-a`, b)).toBe(true);
    expect(pingsFrom(null, a)).toBe(true); // host -> container, through the shim
    expect(execPings(`${run}-a`, '10.236.20.254')).toBe(true); // container -> host's shim address
    expect(pingsFrom(null, '10.236.20.1')).toBe(true); // host -> LAN, still through its own link
    for (const [name, ip] of [[`${run}-a`, a], [`${run}-b`, b]]) {
      const mac = ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${run}-lan").MacAddress}}`, name]);
      expect(mac).toMatch(/^02:42:0a:ec:14:/);
      expect(sh('ip', ['netns', 'exec', lanNs, 'ip', 'neigh', 'show', ip])).toContain(mac);
    }
    const n = tsnetStatus().networks.find((x) => x.id === id);
    expect(n).toMatchObject({ driver: 'macvlan', config: { parent, mode: 'bridge' } });
  });

  it('keeps containers apart in private mode, not from the LAN', () => {
    network(`${run}-priv`, ['-o', `parent=${parent2}`, '-o', 'macvlan_mode=private', '--subnet', '10.236.21.0/24', '--gateway', '10.236.21.1']);
    container(`${run}-p1`, `${run}-priv`);
    const p2 = container(`${run}-p2`, `${run}-priv`);
    expect(execPings(`${run}-p1`, p2)).toBe(false);
    expect(execPings(`${run}-p1`, '10.236.21.1')).toBe(true);
    expect(pingsFrom(lanNs, p2)).toBe(true);
  });

  it('makes an internal-only network when no parent is given', () => {
    network(`${run}-int`, ['--subnet', '10.236.22.0/24']);
    container(`${run}-i1`, `${run}-int`);
    const i2 = container(`${run}-i2`, `${run}-int`);
    expect(execPings(`${run}-i1`, i2)).toBe(true);
    const routes = ok(['exec', `${run}-i1`, 'ip', 'route']);
    expect(routes).toContain('10.236.22.0/24');
    expect(routes).not.toContain('default');
  });

  it('refuses bad parents and clashes with the reason, creating nothing', () => {
    const links = tsmLinks();
    const refused = (args: string[], message: string | RegExp) => {
      const name = `${run}-bad`;
      const r = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', ...args, name]);
      if (r.code === 0) docker(['network', 'rm', name]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(tsmLinks()).toEqual(links);
    };
    refused(['-o', 'parent=nosuch9', '--subnet', '10.236.29.0/24'], 'parent interface nosuch9 does not exist');
    refused(['-o', `parent=${downParent}`, '--subnet', '10.236.29.0/24'], `parent interface ${downParent} is down`);
    // Docker's own IPAM sees the clash first ("Pool overlaps"); tsnet's IPAM or check says "overlaps 10.236.20.0/24"
    refused(['-o', `parent=${parent}`, '--subnet', '10.236.20.0/25'], /overlaps/i);
    refused(['-o', `parent=${parent}`, '-o', 'macvlan_mode=passthru', '--subnet', '10.236.29.0/24'], /passthru mode needs the parent to itself/);
    refused(['-o', `parent=${parent}`, '-o', 'bogus=1', '--subnet', '10.236.29.0/24'], /unknown option 'bogus'/);
    const vlan = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', '-o', `parent=${parent}.30`, '--subnet', '10.236.30.0/24', `${run}-vlan`]);
    if (vlan.code === 0) {
      // a kernel with 8021q: the VLAN link is made, and goes with the network
      expect(sh('ip', ['-br', 'link'])).toContain(`${parent}.30`);
      ok(['network', 'rm', `${run}-vlan`]);
      expect(sh('ip', ['-br', 'link'])).not.toContain(`${parent}.30`);
    } else {
      expect(vlan.stderr).toMatch(/no 802\.1Q VLAN support \(module 8021q\).*-o parent=/);
      expect(tsmLinks()).toEqual(links);
    }
  });

  it('leaves the parent as it was when the network goes', () => {
    for (const n of ['a', 'b']) ok(['rm', '-f', `${run}-${n}`]);
    ok(['network', 'rm', `${run}-lan`]);
    expect(parentState(parent)).toEqual(parentBefore);
    expect(sh('ip', ['-br', 'link'])).not.toMatch(/tsmh-/);
    expect(sh('ip', ['route'])).not.toMatch(/10\.236\.20\.\d+ dev tsmh/);
  });
});
