// Podman 4.3 (Debian) with its CNI backend running containers on tsnet conflists: the minimal
// conflist of the CNI guide (tsnet + the reference portmap), and one where tsnet publishes the
// ports itself. Podman gets its own configuration, storage and network directory, all temporary.
// Removing a container must reach tsnet (its DEL): no endpoint, veth, address or published port
// left; and at the end, before any clean-up, the daemon holds nothing of the containers, has logged
// no internal error, and exits 0 on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import { execIn, onCleanup, runCleanups, sh, tryIn, uniqueName, until } from './harness.js';
import { allocations, bindIn, daemonLogErrors, leftoversBesideNetworks, linkExists, linkNames } from './leftovers.js';
import { daemonStatus } from '../test-support/daemon-leftovers.js';
import { removeDaemonKernelState } from '../test-support/commands.js';

const run = uniqueName('pm');
const socket = `/run/tsnet-podman-tests/${run}.sock`;
const IMAGE = 'localhost/tsnet-busybox:latest';
// podman on this kernel cannot raise these limits past the defaults (machine.md)
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
let dir: string;
let daemon: TsnetDaemon;
/** the host's links before the daemon started: tsnet-named links of others are not this file's leaks */
let linksBefore: Set<string>;

function podman(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('podman', ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs', ...args], {
    encoding: 'utf8',
    env: { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf') },
    timeout: 120_000,
  });
  return { code: r.status ?? 1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

function ok(args: string[]): string {
  const r = podman(args);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

function ipOf(name: string, network: string): string {
  return ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]);
}

function conflist(name: string, plugins: object[]): void {
  writeFileSync(join(dir, 'net.d', `${name}.conflist`), JSON.stringify({ cniVersion: '1.0.0', name, plugins }, null, 2));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tsnet-podman-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'net.d'));
  writeFileSync(
    join(dir, 'containers.conf'),
    ['[network]', 'network_backend = "cni"', 'cni_plugin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]', `network_config_dir = "${join(dir, 'net.d')}"`, '[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', ''].join('\n'),
  );
  // the busybox image, from Debian's busybox-static (no registry here)
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  for (const applet of ['sh', 'ping', 'sleep', 'httpd', 'mkdir', 'echo', 'cat']) symlinkSync('busybox', join(rootfs, 'bin', applet));
  sh('tar', ['-C', rootfs, '-cf', join(dir, 'rootfs.tar'), '.']);
  ok(['import', join(dir, 'rootfs.tar'), IMAGE]);

  const stateDir = join(dir, 'tsnet');
  linksBefore = linkNames();
  daemon = await startTsnetDaemon({ stateDir, socketPath: socket });
  // runs after the containers are gone and the check in afterAll has looked (cleanups run newest first)
  onCleanup(async () => {
    await daemon.stop();
    removeDaemonKernelState(run);
  });
  onCleanup(() => podman(['rm', '-f', '-t', '0', '-a']));

  conflist(`${run}-min`, [
    // the socket in the configuration: podman's clean-up process runs without this test's environment
    { type: 'tsnet', mode: 'bridge', socket, ipam: { type: 'tsnet', subnet: '10.239.30.0/24' } },
    { type: 'portmap', capabilities: { portMappings: true } },
  ]);
  conflist(`${run}-own`, [{ type: 'tsnet', mode: 'bridge', socket, capabilities: { portMappings: true }, ipam: { type: 'tsnet', subnet: '10.239.31.0/24' } }]);

  // an outside host: a namespace behind a veth whose host end has an address of its own
  const outside = `${run}-out`;
  sh('ip', ['netns', 'add', outside]);
  onCleanup(() => spawnSync('ip', ['netns', 'del', outside]));
  sh('ip', ['link', 'add', `${run}o`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside]);
  onCleanup(() => spawnSync('ip', ['link', 'del', `${run}o`]));
  sh('ip', ['addr', 'add', '203.0.113.1/24', 'dev', `${run}o`]);
  sh('ip', ['link', 'set', `${run}o`, 'up']);
  execIn(outside, 'ip', ['addr', 'add', '203.0.113.2/24', 'dev', 'eth0']);
  execIn(outside, 'ip', ['link', 'set', 'eth0', 'up']);
}, 180_000);

afterAll(async () => {
  // look first: the tests removed their containers, and podman's DELs must have let go of all of
  // them (podman may run the DEL from its clean-up process a moment after `rm` returns)
  let left: string[] = [];
  if (daemon) {
    const identity = { instance: run, table: run, stateDir: daemon.stateDir };
    await until('tsnet holds nothing of the removed containers', () => (left = leftoversBesideNetworks(identity, linksBefore)).length === 0).catch(() => {});
  }
  const exit = await daemon?.stop();
  const errors = daemon ? daemonLogErrors(daemon.logPath) : [];
  // then clean
  await runCleanups();
  // one expectation, so that a failure shows all three
  expect({ left, errors, exit }).toEqual({ left: [], errors: [], exit: { code: 0, signal: null, hung: false } });
});

/** curl from the outside namespace to a host port: its exit code (7: refused, 28: timed out) and body. */
function curlFromOutside(port: number): { code: number; stdout: string } {
  return tryIn(`${run}-out`, 'curl', ['-s', '--max-time', '5', `http://203.0.113.1:${port}/`]);
}

describe('podman with the CNI backend on tsnet', () => {
  for (const [kind, port] of [['min', 18170], ['own', 18171]] as const) {
    it(`runs two containers that ping each other, publishes a port (${kind === 'min' ? 'tsnet + portmap' : 'tsnet publishes'}), and rm reaches tsnet`, async () => {
      const network = `${run}-${kind}`;
      const names = ['a', 'b', 'web'].map((c) => `${run}-${kind}-${c}`);
      ok(['run', '-d', '--name', names[0], '--network', network, ...ULIMITS, IMAGE, 'sleep', '600']);
      ok(['run', '-d', '--name', names[1], '--network', network, ...ULIMITS, IMAGE, 'sleep', '600']);
      const a = ipOf(names[0], network);
      const b = ipOf(names[1], network);
      expect(a).toMatch(/^10\.239\.3[01]\.\d+$/);
      expect(b).not.toBe(a);
      expect(podman(['exec', names[0], 'ping', '-c', '1', '-W', '2', b]).code).toBe(0);
      expect(podman(['exec', names[1], 'ping', '-c', '1', '-W', '2', a]).code).toBe(0);

      ok(['run', '-d', '--name', names[2], '--network', network, '-p', `${port}:80`, ...ULIMITS, IMAGE, 'sh', '-c', `mkdir -p /www && echo hello-${kind} > /www/index.html && httpd -f -p 80 -h /www`]);
      await until(`the published port ${port} answers from outside`, () => curlFromOutside(port).stdout === `hello-${kind}`);
      const published = () => sh('nft', ['list', 'table', 'inet', run]).includes(String(port));
      if (kind === 'own') expect(published()).toBe(true);

      // tsnet status shows podman's network and containers beside Docker's
      const status = JSON.parse(sh(process.execPath, [join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'), 'status', '--json', '--state-dir', daemon.stateDir])) as {
        networks: { id: string; cniName: string | null }[];
        endpoints: { network: string; address: string; config: { hostIf?: string } }[];
      };
      const n = status.networks.find((x) => x.cniName === network)!;
      const held = status.endpoints.filter((e) => e.network === n.id);
      expect(held.map((e) => e.address.split('/')[0])).toEqual(expect.arrayContaining([a, b]));
      // what tsnet holds for the three containers: endpoints, host ends of their veths, addresses
      expect(held.length).toBe(3);
      const veths = held.map((e) => String(e.config.hostIf));
      const addresses = held.map((e) => e.address.split('/')[0]);
      const allocated = () => allocations(daemon.stateDir).map((x) => x.address);
      expect(veths.filter(linkExists)).toEqual(veths);
      expect(allocated()).toEqual(expect.arrayContaining(addresses));
      // podman holds its containers' host ports while they run
      expect(bindIn(null, 'tcp', '0.0.0.0', port)).toBe('EADDRINUSE');

      ok(['rm', '-f', '-t', '0', ...names]);
      // the DELs reached tsnet (podman may run them from the clean-up process conmon starts when
      // a container exits, a moment after rm returns): wait for that, then look at each part
      const endpoints = () => daemonStatus(daemon.stateDir).endpoints.filter((e) => e.network === n.id);
      await until('tsnet forgets the removed containers', () => endpoints().length === 0 && !veths.some(linkExists) && !addresses.some((x) => allocated().includes(x))).catch(() => {});
      expect(endpoints()).toEqual([]);
      expect(veths.filter(linkExists)).toEqual([]);
      expect(allocated().filter((x) => addresses.includes(x))).toEqual([]);
      expect(published()).toBe(false);
      // nothing forwards the host port any more: the host itself refuses (a leftover DNAT would time out)
      expect(curlFromOutside(port).code).toBe(7);
      expect(bindIn(null, 'tcp', '0.0.0.0', port)).toBe('free');
    });
  }
});
