// Podman 4.3 (Debian) with its CNI backend running containers on tsnet conflists: the minimal
// conflist of the CNI guide (tsnet + the reference portmap), and one where tsnet publishes the
// ports itself. Podman gets its own configuration, storage and network directory, all temporary.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import { execIn, onCleanup, runCleanups, sh, uniqueName } from './harness.js';

const run = uniqueName('pm');
const socket = `/run/tsnet-podman-tests/${run}.sock`;
const IMAGE = 'localhost/tsnet-busybox:latest';
// podman on this kernel cannot raise these limits past the defaults (machine.md)
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
let dir: string;
let daemon: TsnetDaemon;

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
  daemon = await startTsnetDaemon({ stateDir, socketPath: socket });
  // runs after the containers are gone (cleanups run newest first), so their DELs reach the daemon
  onCleanup(async () => {
    await daemon.stop();
    spawnSync('nft', ['delete', 'table', 'inet', run]);
    for (const l of JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; ifalias?: string }[]) {
      if (l.ifalias?.startsWith(`${run}:`)) spawnSync('ip', ['link', 'del', l.ifname]);
    }
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
  await runCleanups();
});

function curlFromOutside(port: number): string {
  const r = spawnSync('ip', ['netns', 'exec', `${run}-out`, 'curl', '-s', '--max-time', '5', `http://203.0.113.1:${port}/`], { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}

describe('podman with the CNI backend on tsnet', () => {
  for (const [kind, port] of [['min', 18170], ['own', 18171]] as const) {
    it(`runs two containers that ping each other, and publishes a port (${kind === 'min' ? 'tsnet + portmap' : 'tsnet publishes'})`, () => {
      const network = `${run}-${kind}`;
      ok(['run', '-d', '--name', `${run}-${kind}-a`, '--network', network, ...ULIMITS, IMAGE, 'sleep', '600']);
      ok(['run', '-d', '--name', `${run}-${kind}-b`, '--network', network, ...ULIMITS, IMAGE, 'sleep', '600']);
      const a = ipOf(`${run}-${kind}-a`, network);
      const b = ipOf(`${run}-${kind}-b`, network);
      expect(a).toMatch(/^10\.239\.3[01]\.\d+$/);
      expect(b).not.toBe(a);
      expect(podman(['exec', `${run}-${kind}-a`, 'ping', '-c', '1', '-W', '2', b]).code).toBe(0);
      expect(podman(['exec', `${run}-${kind}-b`, 'ping', '-c', '1', '-W', '2', a]).code).toBe(0);

      ok(['run', '-d', '--name', `${run}-${kind}-web`, '--network', network, '-p', `${port}:80`, ...ULIMITS, IMAGE, 'sh', '-c', `mkdir -p /www && echo hello-${kind} > /www/index.html && httpd -f -p 80 -h /www`]);
      let body = '';
      for (let i = 0; i < 20 && body !== `hello-${kind}`; i++) {
        body = curlFromOutside(port);
        if (body !== `hello-${kind}`) spawnSync('sleep', ['0.2']);
      }
      expect(body).toBe(`hello-${kind}`);
      if (kind === 'own') expect(sh('nft', ['list', 'table', 'inet', run])).toContain(String(port));

      // tsnet status shows podman's network and containers beside Docker's
      const status = JSON.parse(sh(process.execPath, [join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'), 'status', '--json', '--state-dir', daemon.stateDir])) as {
        networks: { id: string; cniName: string | null }[];
        endpoints: { network: string; address: string }[];
      };
      const n = status.networks.find((x) => x.cniName === network)!;
      expect(status.endpoints.filter((e) => e.network === n.id).map((e) => e.address.split('/')[0]).sort()).toEqual(expect.arrayContaining([a, b]));

      ok(['rm', '-f', '-t', '0', `${run}-${kind}-a`, `${run}-${kind}-b`, `${run}-${kind}-web`]);
      expect(curlFromOutside(port)).toBe('');
      if (kind === 'own') {
        // podman may leave the network clean-up (CNI DEL) to the cleanup process conmon starts
        // when the container exits: wait for it
        const published = () => sh('nft', ['list', 'table', 'inet', run]).includes(String(port));
        for (let i = 0; i < 100 && published(); i++) spawnSync('sleep', ['0.1']);
        expect(published()).toBe(false);
      }
    });
  }
});
