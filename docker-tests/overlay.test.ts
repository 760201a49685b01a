// The overlay driver through the real Docker engine on one host (the daemon under test has no
// cluster store): containers on `-o type=overlay` talk, get the VXLAN-sized MTU, publish ports,
// and the errors say what to do. Multi-host behaviour is tested through the lab
// (netns-tests/overlay-lab.test.ts). afterAll (finishE2e) requires that the daemon let go of
// everything, exits cleanly on SIGTERM and logged no internal error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { overlayNetnsName } from '../drivers/overlay/plan.js';
import { addEndpointSpoofRules, spoofTableRules } from '../firewall/rules/spoofing.js';
import { BUSYBOX_IMAGE as IMAGE, E2E_PLUGIN as PLUGIN, docker, dockerOk as ok, finishE2e, onCleanup, startE2e, uniqueName, type E2eDaemon } from './harness.js';

const run = uniqueName('ov');
let e2e: E2eDaemon;

/** the daemon's instance, which names the overlays' namespaces: the plugin's (socket's) name */
const INSTANCE = PLUGIN;

/** Link names of the host's namespace, or of the named namespace `netns`. */
function links(netns?: string): string[] {
  return (JSON.parse(execFileSync('ip', [...(netns ? ['-n', netns] : []), '-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[]).map((l) => l.ifname);
}

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter(Boolean);
}

/** iputils ping from a container's network namespace (busybox's cannot set DF or bind a source). */
function pingFrom(container: string, args: string[]): number | null {
  const pid = ok(['inspect', '-f', '{{.State.Pid}}', container]);
  return spawnSync('nsenter', ['-t', pid, '-n', 'ping', '-c', '1', '-W', '2', ...args]).status;
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
    const webIp = ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, web]);
    const df = (size: number) => pingFrom(client, ['-M', 'do', '-s', String(size), webIp]);
    expect(df(mtu - 28)).toBe(0);
    expect(df(mtu - 27)).not.toBe(0);
    // the gateway answers, and the published port is reachable from the host
    expect(docker(['exec', client, 'ping', '-c', '1', '-W', '2', '10.236.40.1']).code).toBe(0);
    expect(execFileSync('curl', ['-s', '--max-time', '5', 'http://127.0.0.1:18140/'], { encoding: 'utf8' }).trim()).toBe('overlay-web');
    // and from a container of the same overlay, through the host (its gateway address)
    expect(ok(['exec', client, 'sh', '-c', "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.236.40.1 18140"])).toContain('overlay-web');
    // anti-spoofing: the client's own address gets through, another it claims does not
    const clientPid = ok(['inspect', '-f', '{{.State.Pid}}', client]);
    execFileSync('nsenter', ['-t', clientPid, '-n', 'ip', 'addr', 'add', '10.236.40.222/24', 'dev', 'eth0']);
    expect(pingFrom(client, ['-I', ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, client]), webIp])).toBe(0);
    expect(pingFrom(client, ['-I', '10.236.40.222', webIp])).not.toBe(0);

    // the bridge and the VXLAN device are in the network's own namespace; the host has the gateway veth
    const n = tsnetStatus().networks.find((x) => x.id === id)!;
    const netns = overlayNetnsName(INSTANCE, id);
    expect(n).toMatchObject({ driver: 'overlay', config: { mtu } });
    expect(links()).toContain(n.config.bridge);
    expect(links()).not.toContain(n.config.overlay.vxlan);
    expect(links(netns)).toEqual(expect.arrayContaining(['br0', 'gw0', n.config.overlay.vxlan]));
    expect(n.config.overlay.vni).toBeGreaterThanOrEqual(4096);

    docker(['rm', '-f', web, client]);
    ok(['network', 'rm', net]);
    expect(links()).not.toContain(n.config.bridge);
    expect(namespaces()).not.toContain(netns);
  });

  it('isolates two overlay networks from each other', () => {
    const [n1, n2] = [`${run}-iso1`, `${run}-iso2`];
    ok(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '--subnet', '10.236.44.0/24', n1]);
    onCleanup(() => docker(['network', 'rm', n1]));
    ok(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '--subnet', '10.236.45.0/24', n2]);
    onCleanup(() => docker(['network', 'rm', n2]));
    const [a, b, c] = [`${run}-isoa`, `${run}-isob`, `${run}-isoc`];
    for (const [name, net] of [[a, n1], [b, n1], [c, n2]]) {
      ok(['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '3600']);
      onCleanup(() => docker(['rm', '-f', name]));
    }
    const ipOf = (name: string, net: string) => ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
    // the same target: reached from its own network, not from the other
    expect(pingFrom(b, [ipOf(a, n1)])).toBe(0);
    expect(pingFrom(c, [ipOf(a, n1)])).not.toBe(0);
    docker(['rm', '-f', a, b, c]);
    ok(['network', 'rm', n1]);
    ok(['network', 'rm', n2]);
  });

  it('ICC off keeps a network\'s containers apart but not from the host; an older daemon\'s anti-spoofing table is replaced at start-up, the ports guarded again', async () => {
    const [off, on] = [`${run}-iccoff`, `${run}-iccon`];
    ok(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '-o', 'com.docker.network.bridge.enable_icc=false', '--subnet', '10.236.46.0/24', off]);
    onCleanup(() => docker(['network', 'rm', off]));
    ok(['network', 'create', '-d', PLUGIN, '-o', 'type=overlay', '--subnet', '10.236.47.0/24', on]);
    onCleanup(() => docker(['network', 'rm', on]));
    const [x, y, p, q] = [`${run}-iccx`, `${run}-iccy`, `${run}-iccp`, `${run}-iccq`];
    for (const [name, net] of [[x, off], [y, off], [p, on], [q, on]]) {
      ok(['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '3600']);
      onCleanup(() => docker(['rm', '-f', name]));
    }
    const ipOf = (name: string, net: string) => ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
    const isolation = () => {
      // ICC on: a peer answers; ICC off: the gateway (the host) does, a peer does not
      expect(pingFrom(q, [ipOf(p, on)])).toBe(0);
      expect(pingFrom(x, ['10.236.46.1'])).toBe(0);
      expect(pingFrom(x, [ipOf(y, off)])).not.toBe(0);
    };
    isolation();

    // as a tsnet before the per-port layout left the ICC-on network's namespace: the checks in a
    // bridge-family table's prerouting hook, no netdev table
    const netns = overlayNetnsName(INSTANCE, ok(['network', 'inspect', '-f', '{{.Id}}', on]));
    const guardOf = (name: string) => ({
      endpointId: name,
      port: `tsv${ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${on}").EndpointID}}`, name]).slice(0, 12)}`,
      mac: ok(['exec', name, 'cat', '/sys/class/net/eth0/address']),
      ipv4: [ipOf(name, on)],
      ipv6: [],
    });
    const older = ['delete table netdev tsnet', spoofTableRules('bridge tsnet'), ...[p, q].map((c) => addEndpointSpoofRules('bridge tsnet', guardOf(c)))].join('\n');
    execFileSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: older });
    const tables = () => execFileSync('ip', ['netns', 'exec', netns, 'nft', 'list', 'tables'], { encoding: 'utf8' }).trim().split('\n').sort();
    expect(tables()).toEqual(['table bridge tsnet']);
    const qPid = ok(['inspect', '-f', '{{.State.Pid}}', q]);
    execFileSync('nsenter', ['-t', qPid, '-n', 'ip', 'addr', 'add', '10.236.47.222/24', 'dev', 'eth0']);
    const spoofing = () => {
      expect(pingFrom(q, ['-I', ipOf(q, on), ipOf(p, on)])).toBe(0);
      expect(pingFrom(q, ['-I', '10.236.47.222', ipOf(p, on)])).not.toBe(0);
    };
    spoofing();

    await e2e.daemon.restart();
    expect(tables()).toEqual(['table netdev tsnet']);
    spoofing();
    isolation();
    docker(['rm', '-f', x, y, p, q]);
    ok(['network', 'rm', off]);
    ok(['network', 'rm', on]);
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
    expect(namespaces().filter((n) => n.startsWith(`${INSTANCE}-ov-`))).toEqual([]);
  });
});
