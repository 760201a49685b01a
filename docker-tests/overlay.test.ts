// The overlay driver through the real Docker engine on one host (the daemon under test has no
// cluster store): containers on `-o type=overlay` talk, get the VXLAN-sized MTU, publish ports,
// and the errors say what to do. Multi-host behaviour is tested through the lab
// (netns-tests/overlay-lab.test.ts). afterAll (finishE2e) requires that the daemon let go of
// everything, exits cleanly on SIGTERM and logged no internal error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { BUSYBOX_IMAGE as IMAGE, E2E_PLUGIN as PLUGIN, docker, dockerOk as ok, finishE2e, onCleanup, startE2e, uniqueName, type E2eDaemon } from './harness.js';

const run = uniqueName('ov');
let e2e: E2eDaemon;

function links(): string[] {
  return (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
}

/** MTU of the host's default-route link: what the overlay's MTU derives from. */
function underlayMtu(): number {
  const [route] = JSON.parse(execFileSync('ip', ['-j', 'route', 'show', 'default'], { encoding: 'utf8' })) as { dev: string }[];
  const [link] = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'dev', route.dev], { encoding: 'utf8' })) as { mtu: number }[];
  return link.mtu;
}

interface OverlayRow {
  id: string;
  driver: string;
  config: { bridge: string; mtu: number; overlay: { vxlan: string; vni: number } };
}

function tsnetStatus(): { networks: OverlayRow[] } {
  return { networks: e2e.status().networks as unknown as OverlayRow[] };
}

beforeAll(async () => {
  e2e = await startE2e('tsnet-e2e-ov');
}, 300_000);

afterAll(() => finishE2e(e2e, [{ proto: 'tcp', port: 18140 }]));

describe('overlay networks through Docker (one host)', () => {
  it('lets containers talk by name, with the underlay MTU minus 50, and publishes ports', () => {
    const net = `${run}-net`;
    ok(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '--subnet', '10.236.40.0/24', net]);
    onCleanup(() => docker(['network', 'rm', net]));
    const id = ok(['network', 'inspect', '-f', '{{.Id}}', net]);
    const web = `${run}-web`;
    ok(['run', '-d', '--name', web, '--network', net, '-p', '18140:80', IMAGE, 'sh', '-c', 'mkdir -p /www && echo overlay-web > /www/index.html && httpd -p 80 -h /www && sleep 3600']);
    onCleanup(() => docker(['rm', '-f', web]));
    const client = `${run}-cli`;
    ok(['run', '-d', '--name', client, '--network', net, IMAGE, 'sleep', '3600']);
    onCleanup(() => docker(['rm', '-f', client]));

    const byName = docker(['exec', client, 'ping', '-c', '1', '-W', '2', web]);
    expect(byName.stdout + byName.stderr).toContain('1 packets received');
    const mtu = underlayMtu() - 50;
    expect(ok(['exec', client, 'cat', '/sys/class/net/eth0/mtu'])).toBe(String(mtu));
    // a full-size packet with don't-fragment set crosses (iputils ping in the container's
    // namespace: busybox's ping cannot set DF)
    const pid = ok(['inspect', '-f', '{{.State.Pid}}', client]);
    const webIp = ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, web]);
    const df = (size: number) => spawnSync('nsenter', ['-t', pid, '-n', 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(size), webIp]).status;
    expect(df(mtu - 28)).toBe(0);
    expect(df(mtu - 27)).not.toBe(0);
    // the gateway answers, and the published port is reachable from the host
    expect(docker(['exec', client, 'ping', '-c', '1', '-W', '2', '10.236.40.1']).code).toBe(0);
    expect(execFileSync('curl', ['-s', '--max-time', '5', 'http://127.0.0.1:18140/'], { encoding: 'utf8' }).trim()).toBe('overlay-web');

    const n = tsnetStatus().networks.find((x) => x.id === id)!;
    expect(n).toMatchObject({ driver: 'overlay', config: { mtu } });
    expect(links()).toEqual(expect.arrayContaining([n.config.bridge, n.config.overlay.vxlan]));
    expect(n.config.overlay.vni).toBeGreaterThanOrEqual(4096);

    docker(['rm', '-f', web, client]);
    ok(['network', 'rm', net]);
    expect(links()).not.toContain(n.config.bridge);
    expect(links()).not.toContain(n.config.overlay.vxlan);
  });

  it('refuses what it cannot do, saying why', () => {
    const shared = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '-o', 'overlay=blue', '--subnet', '10.236.41.0/24', `${run}-shared`]);
    expect(shared.code).not.toBe(0);
    expect(shared.stderr).toContain("overlay 'blue' spans hosts and needs the cluster store: start tsnet with --store etcd://HOST:2379");
    const big = docker(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '-o', 'com.docker.network.driver.mtu=9000', '--subnet', '10.236.42.0/24', `${run}-big`]);
    expect(big.code).not.toBe(0);
    expect(big.stderr).toContain('MTU 9000 does not fit through VXLAN');
    const clusterPool = docker(['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--ipam-opt', 'overlay=blue', '-o', 'type=overlay', '--subnet', '10.236.43.0/24', `${run}-pool`]);
    expect(clusterPool.code).not.toBe(0);
    expect(clusterPool.stderr).toContain('needs the cluster store');
    // nothing half-made: no network, no overlay links
    expect(tsnetStatus().networks.filter((n) => n.driver === 'overlay')).toEqual([]);
    expect(links().filter((l) => l.startsWith('tob-') || l.startsWith('tox-'))).toEqual([]);
  });
});
