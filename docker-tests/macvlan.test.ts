// The macvlan driver through the real Docker engine. The LAN is a namespace behind a veth whose
// host end is the parent; its "router" holds the gateway address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureBusyboxImage, ensureDockerd, onCleanup, runCleanups, startTsnetDaemon, uniqueName } from './harness.js';

const PLUGIN = 'tsnet-e2e';
const IMAGE = 'tsnet-busybox:latest';
const run = uniqueName('mv');
const lanNs = `${run}-lan`;
const parent = `${run}p`;
const parent2 = `${run}q`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}
function ok(args: string[]): string {
  const r = docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}
function pingsFrom(ns: string | null, ip: string): boolean {
  const args = ['ping', '-c', '1', '-W', '2', ip];
  return spawnSync(ns ? 'ip' : args[0], ns ? ['netns', 'exec', ns, ...args] : args.slice(1)).status === 0;
}
function network(name: string, args: string[]): void {
  ok(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', ...args, name]);
  onCleanup(() => docker(['network', 'rm', name]));
}
function container(name: string, net: string): string {
  ok(['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '3600']);
  onCleanup(() => docker(['rm', '-f', name]));
  return ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
}

beforeAll(async () => {
  await ensureDockerd();
  await ensureBusyboxImage(IMAGE);
  const stateDir = mkdtempSync(join(tmpdir(), 'tsnet-e2e-mv-'));
  onCleanup(() => spawnSync('nft', ['delete', 'table', 'inet', 'tsnet_e2e']));
  const daemon = await startTsnetDaemon({ stateDir, socketPath: `/run/docker/plugins/${PLUGIN}.sock` });
  onCleanup(() => daemon.stop());
  sh('ip', ['netns', 'add', lanNs]);
  onCleanup(() => sh('ip', ['netns', 'del', lanNs]));
  for (const [p, router] of [[parent, '10.236.20.1/24'], [parent2, '10.236.21.1/24']]) {
    const lanIf = `${p}l`;
    sh('ip', ['link', 'add', p, 'type', 'veth', 'peer', 'name', lanIf, 'netns', lanNs]);
    onCleanup(() => spawnSync('ip', ['link', 'del', p]));
    sh('ip', ['link', 'set', p, 'up']);
    sh('ip', ['netns', 'exec', lanNs, 'ip', 'addr', 'add', router, 'dev', lanIf]);
    sh('ip', ['netns', 'exec', lanNs, 'ip', 'link', 'set', lanIf, 'up']);
  }
}, 300_000);

afterAll(async () => {
  await runCleanups();
});

describe('macvlan networks through Docker', () => {
  it('puts containers on the LAN: to the router, from the LAN, to each other by name, from the host with host_access', () => {
    network(`${run}-lan`, ['-o', `parent=${parent}`, '-o', 'host_access=true', '--subnet', '10.236.20.0/24', '--gateway', '10.236.20.1']);
    const a = container(`${run}-a`, `${run}-lan`);
    container(`${run}-b`, `${run}-lan`);
    expect(docker(['exec', `${run}-a`, 'ping', '-c', '1', '-W', '2', '10.236.20.1']).code).toBe(0);
    expect(pingsFrom(lanNs, a)).toBe(true);
    expect(docker(['exec', `${run}-b`, 'ping', '-c', '1', '-W', '2', `${run}-a`]).code).toBe(0);
    expect(pingsFrom(null, a)).toBe(true);
    const mac = ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${run}-lan").MacAddress}}`, `${run}-a`]);
    const neigh = sh('ip', ['netns', 'exec', lanNs, 'ip', 'neigh', 'show', a]);
    expect(neigh).toContain(mac);
  });

  it('keeps containers apart in private mode', () => {
    network(`${run}-priv`, ['-o', `parent=${parent2}`, '-o', 'macvlan_mode=private', '--subnet', '10.236.21.0/24', '--gateway', '10.236.21.1']);
    container(`${run}-p1`, `${run}-priv`);
    const p2 = container(`${run}-p2`, `${run}-priv`);
    expect(docker(['exec', `${run}-p1`, 'ping', '-c', '1', '-W', '2', p2]).code).not.toBe(0);
    expect(docker(['exec', `${run}-p1`, 'ping', '-c', '1', '-W', '2', '10.236.21.1']).code).toBe(0);
  });

  it('refuses a missing parent and a VLAN parent this kernel cannot make, with the reason', () => {
    const missing = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', '-o', 'parent=nosuch9', '--subnet', '10.236.29.0/24', `${run}-bad`]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('parent interface nosuch9 does not exist');
    const vlan = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', '-o', `parent=${parent}.30`, '--subnet', '10.236.30.0/24', `${run}-vlan`]);
    if (vlan.code === 0) {
      docker(['network', 'rm', `${run}-vlan`]);
    } else {
      expect(vlan.stderr).toMatch(/8021q/);
    }
  });

  it('leaves the parent as it was when the network goes', () => {
    const before = sh('ip', ['-br', 'addr', 'show', 'dev', parent]);
    for (const n of ['a', 'b']) ok(['rm', '-f', `${run}-${n}`]);
    ok(['network', 'rm', `${run}-lan`]);
    expect(sh('ip', ['-br', 'addr', 'show', 'dev', parent])).toBe(before);
    expect(sh('ip', ['-br', 'link'])).not.toMatch(/tsmh-/);
    expect(sh('ip', ['route'])).not.toContain('10.236.20.0/24');
  });
});
