// The macvlan driver through the real Docker engine, as a user would drive it. The LAN is a
// namespace behind veth pairs whose host ends are the parents (one per test, made by that test
// or its beforeAll, so each test runs alone with `-t`); its "router" holds the gateway
// addresses. The daemon under test registers as plugin "tsnet-e2e"; afterAll (finishE2e)
// requires that it let go of everything, exits cleanly on SIGTERM and logged no internal error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkSnapshot, run as runCommand, sh } from '../test-support/commands.js';
import { kernelHas8021q } from '../netns-tests/harness.js';
import { linksTaggedBy, tableElements, tryBind } from '../test-support/daemon-leftovers.js';
import {
  BUSYBOX_IMAGE as IMAGE,
  E2E_PLUGIN as PLUGIN,
  E2E_TABLE as TABLE,
  docker,
  dockerOk as ok,
  finishE2e,
  onCleanup,
  startE2e,
  uniqueName,
  type E2eDaemon,
} from './harness.js';

const run = uniqueName('mv');
const lanNs = `${run}-lan`;
/** the host port the "-p is ignored" container asks for */
const IGNORED_PORT = 18090;
let e2e: E2eDaemon;

/**
 * A parent for one test: the host end (run + letter) of a veth into the LAN namespace, up, with
 * the router's address on the LAN end; without a router address it is left down.
 */
function lanParent(letter: string, router?: string): string {
  const p = `${run}${letter}`;
  const lanIf = `${p}l`;
  sh('ip', ['link', 'add', p, 'type', 'veth', 'peer', 'name', lanIf, 'netns', lanNs]);
  onCleanup(() => runCommand('ip', ['link', 'del', p]));
  if (router) {
    sh('ip', ['link', 'set', p, 'up']);
    sh('ip', ['netns', 'exec', lanNs, 'ip', 'addr', 'add', router, 'dev', lanIf]);
    sh('ip', ['netns', 'exec', lanNs, 'ip', 'link', 'set', lanIf, 'up']);
  }
  return p;
}

function pingsFrom(ns: string | null, ip: string): boolean {
  const args = ['ping', '-c', '1', '-W', '2', ip];
  return (ns ? runCommand('ip', ['netns', 'exec', ns, ...args]) : runCommand(args[0], args.slice(1))).code === 0;
}
function execPings(name: string, target: string): boolean {
  return docker(['exec', name, 'ping', '-c', '1', '-W', '2', target]).code === 0;
}
function network(name: string, args: string[]): string {
  ok(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', ...args, name]);
  onCleanup(() => docker(['network', 'rm', name]));
  return ok(['network', 'inspect', '-f', '{{.Id}}', name]);
}
function container(name: string, net: string, extra: string[] = [], cmd = ['sleep', '3600']): string {
  ok(['run', '-d', '--name', name, '--network', net, ...extra, IMAGE, ...cmd]);
  onCleanup(() => docker(['rm', '-f', name]));
  return ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
}
/** What must survive a network on a parent: state, MAC, MTU, addresses, routes. */
function parentState(name: string): unknown {
  return linkSnapshot(null, name);
}
function tsmLinks(): string[] {
  return (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith('tsm'));
}
/** Host links the daemon made for one network (its shim, its parent bridge), by their alias. */
function linksOfNetwork(id: string): string[] {
  return linksTaggedBy(PLUGIN).filter((l) => l.includes(`:${id.slice(0, 12)})`));
}

beforeAll(async () => {
  e2e = await startE2e('tsnet-e2e-mv');
  sh('ip', ['netns', 'add', lanNs]);
  onCleanup(() => runCommand('ip', ['netns', 'del', lanNs]));
}, 300_000);

afterAll(() => finishE2e(e2e, [{ proto: 'tcp', port: IGNORED_PORT }]));

describe('macvlan networks through Docker', () => {
  describe('on a LAN the host is on too, with host_access', () => {
    let id: string;
    let parent: string;
    let a: string;
    let b: string;

    beforeAll(() => {
      parent = lanParent('p', '10.236.20.1/24');
      sh('ip', ['addr', 'add', '10.236.20.50/24', 'dev', parent]);
      id = network(`${run}-lan`, ['-o', `parent=${parent}`, '-o', 'host_access=true', '--subnet', '10.236.20.0/24', '--gateway', '10.236.20.1']);
      // -p is accepted and ignored, as with Docker's macvlan: the container has its own address
      a = container(`${run}-a`, `${run}-lan`, ['-p', `${IGNORED_PORT}:80`], ['sh', '-c', 'mkdir -p /www && echo hello-from-a > /www/index.html && httpd -p 80 -h /www && sleep 3600']);
      b = container(`${run}-b`, `${run}-lan`);
    });

    it('puts containers on the LAN with their own MACs; host_access lets the host in', () => {
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
      const n = e2e.status().networks.find((x) => x.id === id);
      expect(n).toMatchObject({ driver: 'macvlan', config: { parent, mode: 'bridge' } });
    });

    it('ignores -p, as Docker does: the container answers at its own address; no map element, no held host port', async () => {
      const curl = runCommand('ip', ['netns', 'exec', lanNs, 'curl', '-s', '--max-time', '5', `http://${a}:80/`]);
      expect(curl.stdout.trim(), curl.stderr).toBe('hello-from-a');
      const elements = tableElements(TABLE);
      expect(elements.filter((e) => e.includes(`${IGNORED_PORT}`) || e.includes(`"${a}"`))).toEqual([]);
      expect(e2e.status().ports.filter((p) => p.network === id)).toEqual([]);
      expect(await tryBind({ proto: 'tcp', port: IGNORED_PORT })).toBe('free');
    });
  });

  it('keeps containers apart in private mode, not from the LAN', () => {
    const parent = lanParent('q', '10.236.21.1/24');
    network(`${run}-priv`, ['-o', `parent=${parent}`, '-o', 'macvlan_mode=private', '--subnet', '10.236.21.0/24', '--gateway', '10.236.21.1']);
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
    const downParent = lanParent('d');
    // a network already on this parent, for the clashes
    const parent = lanParent('c', '10.236.24.1/24');
    network(`${run}-clash`, ['-o', `parent=${parent}`, '--subnet', '10.236.24.0/24', '--gateway', '10.236.24.1']);
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
    // Docker's own IPAM sees the clash first ("Pool overlaps"); tsnet's IPAM or check says "overlaps 10.236.24.0/24"
    refused(['-o', `parent=${parent}`, '--subnet', '10.236.24.0/25'], /overlaps/i);
    refused(['-o', `parent=${parent}`, '-o', 'macvlan_mode=passthru', '--subnet', '10.236.29.0/24'], /passthru mode needs the parent to itself/);
    refused(['-o', `parent=${parent}`, '-o', 'bogus=1', '--subnet', '10.236.29.0/24'], /unknown option 'bogus'/);
    const vlan = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=macvlan', '-o', `parent=${parent}.30`, '--subnet', '10.236.30.0/24', `${run}-vlan`]);
    // the branch comes from the kernel (one probe, asked directly), never from tsnet's own answer
    if (kernelHas8021q()) {
      // a kernel with 8021q: the VLAN link is made, and goes with the network
      expect(vlan.code).toBe(0);
      expect(sh('ip', ['-br', 'link'])).toContain(`${parent}.30`);
      ok(['network', 'rm', `${run}-vlan`]);
      expect(sh('ip', ['-br', 'link'])).not.toContain(`${parent}.30`);
    } else {
      expect(vlan.code).not.toBe(0);
      expect(vlan.stderr).toMatch(/no 802\.1Q VLAN support \(module 8021q\).*-o parent=/);
      expect(tsmLinks()).toEqual(links);
    }
  });

  it('leaves the parent as it was when the network goes, and no shim or route behind', () => {
    const parent = lanParent('r', '10.236.25.1/24');
    sh('ip', ['addr', 'add', '10.236.25.50/24', 'dev', parent]);
    const before = parentState(parent);
    const net = `${run}-gone`;
    const id = network(net, ['-o', `parent=${parent}`, '-o', 'host_access=true', '--subnet', '10.236.25.0/24', '--gateway', '10.236.25.1']);
    const ip = container(`${run}-g1`, net);
    const hostRoute = () => sh('ip', ['route', 'show', `${ip}/32`]);
    // while it runs: the shim is there, the host reaches the container through it
    expect(linksOfNetwork(id)).toHaveLength(1);
    expect(hostRoute()).toMatch(/dev tsmh-/);
    expect(pingsFrom(null, ip)).toBe(true);
    ok(['rm', '-f', `${run}-g1`]);
    ok(['network', 'rm', net]);
    expect(parentState(parent)).toEqual(before);
    expect(linksOfNetwork(id)).toEqual([]);
    expect(hostRoute()).toBe('');
  });
});
