// The CNI plugin as runtimes drive it: the built executable (dist/cni/tsnet), CNI_* variables,
// the configuration on stdin, the result on stdout, against a tsnet daemon of the test's own.
// Containers are namespaces; chaining runs the reference plugins from /usr/lib/cni.
// At the end, before any clean-up, the daemon must hold nothing of the containers (links, table
// elements, rows, addresses, ports) nor any network (a CNI network goes with its last DEL), have
// logged no internal error, and exit 0 on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import { assertNoLeaks, execIn, onCleanup, pings, sh, tryIn, uniqueName } from './harness.js';
import { cleanAfterDaemon } from './crash-support.js';
import { allocations, bindIn, daemonLogErrors, leftoversBesideNetworks, linkExists, linkNames } from './leftovers.js';

const PLUGIN = join(import.meta.dirname, '..', 'dist', 'cni', 'tsnet');
const REFERENCE = '/usr/lib/cni';
const run = uniqueName('cn');
const socket = `/run/tsnet-cni-tests/${run}.sock`;
let daemon: TsnetDaemon;
let stateDir: string;
/** the host's links before the daemon started: tsnet-named links of others are not this file's leaks */
let linksBefore: Set<string>;
/** host ports published through the daemon in this file: free again at the end */
const publishedPorts = new Set<number>();

interface Reply {
  code: number;
  out: Record<string, unknown> | undefined;
  raw: string;
}

/** Runs a plugin as a runtime does. */
function cni(command: string, conf: object, env: { container?: string; netns?: string; ifName?: string; args?: string } = {}, plugin = PLUGIN): Reply {
  const r = spawnSync(plugin, [], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      TSNET_SOCKET: socket,
      CNI_COMMAND: command,
      CNI_CONTAINERID: env.container ?? '',
      CNI_NETNS: env.netns ? `/run/netns/${env.netns}` : '',
      CNI_IFNAME: env.ifName ?? 'eth0',
      CNI_ARGS: env.args ?? '',
      CNI_PATH: `${join(import.meta.dirname, '..', 'dist', 'cni')}:${REFERENCE}`,
    },
  });
  const raw = r.stdout ?? '';
  let out: Record<string, unknown> | undefined;
  try {
    out = raw.trim() ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
  } catch {
    out = undefined;
  }
  return { code: r.status ?? 1, out, raw };
}

function ok(command: string, conf: object, env: Parameters<typeof cni>[2] = {}, plugin?: string): Record<string, unknown> | undefined {
  const r = cni(command, conf, env, plugin);
  if (r.code !== 0) throw new Error(`${command} failed (${r.code}): ${r.raw}`);
  return r.out;
}

/** DEL as a runtime runs it: exit 0 and nothing on stdout, or the test fails. */
function del(conf: object, env: Parameters<typeof cni>[2], plugin?: string): void {
  const r = cni('DEL', conf, env, plugin);
  expect({ code: r.code, stdout: r.raw }).toEqual({ code: 0, stdout: '' });
}

let nsCounter = 0;
function container(): string {
  const ns = `${run}-${nsCounter++}`;
  sh('ip', ['netns', 'add', ns]);
  onCleanup(() => spawnSync('ip', ['netns', 'del', ns]));
  return ns;
}

function net(name: string, extra: object = {}, version = '1.0.0'): Record<string, unknown> {
  return { cniVersion: version, name: `${run}-${name}`, type: 'tsnet', mode: 'bridge', ...extra };
}

/** The result's interface inside the container. */
function inContainer(result: Record<string, unknown>): { name: string; mac: string; mtu: number } {
  return (result.interfaces as { name: string; mac: string; mtu: number; sandbox?: string }[]).find((i) => i.sandbox)!;
}

function addressOf(result: Record<string, unknown> | undefined): string {
  return ((result?.ips as { address: string }[])[0].address ?? '').split('/')[0];
}

/** The host end of an attachment's veth: the bridge driver names it after the endpoint ID, which tsnet derives from the attachment. */
function hostLink(network: string, containerId: string, ifName = 'eth0'): string {
  return `tsv${createHash('sha256').update(`cni:${network}/${containerId}/${ifName}`).digest('hex').slice(0, 12)}`;
}

/** CNI networks, tsnet networks and pools the daemon still has, as readable lines. */
function networksLeft(): string[] {
  const rows = (sql: string) => {
    const out = sh('sqlite3', ['-readonly', '-json', join(stateDir, 'tsnet.db'), sql]);
    return out ? (JSON.parse(out) as Record<string, string>[]) : [];
  };
  return [
    ...rows('SELECT name FROM cni_networks').map((r) => `CNI network ${r.name}`),
    ...rows('SELECT id, driver FROM networks').map((r) => `${r.driver} network ${r.id.slice(0, 12)}`),
    ...rows('SELECT id FROM ipam_pools').map((r) => `pool ${r.id}`),
  ];
}

/** `tsnet ARGS` against this file's daemon. */
function tsnet(args: string[]): { code: number; out: string } {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'), ...args, '--socket', socket, '--state-dir', stateDir], { encoding: 'utf8' });
  return { code: r.status ?? 1, out: `${r.stdout}${r.stderr}`.trim() };
}

/** The host ends are deleted off the request path (the kernel takes ~20 ms per veth): wait for it. */
async function gone(links: string[]): Promise<boolean> {
  for (let i = 0; i < 100 && links.some(linkExists); i++) await new Promise((r) => setTimeout(r, 50));
  return !links.some(linkExists);
}

/** An outside host: a namespace behind a veth pair whose host end has an address of its own. */
function outsideHost(hostEnd: string, hostAddress: string, outsideAddress: string): string {
  const outside = container();
  sh('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside]);
  onCleanup(() => spawnSync('ip', ['link', 'del', hostEnd]));
  sh('ip', ['addr', 'add', hostAddress, 'dev', hostEnd]);
  sh('ip', ['link', 'set', hostEnd, 'up']);
  execIn(outside, 'ip', ['addr', 'add', outsideAddress, 'dev', 'eth0']);
  execIn(outside, 'ip', ['link', 'set', 'eth0', 'up']);
  return outside;
}

/** A web server in a container namespace answering `body` on port, stopped at the end. */
function webServer(ns: string, port: number, body: string): void {
  execIn(ns, 'sh', ['-c', `mkdir -p /tmp/${ns}-www && echo ${body} > /tmp/${ns}-www/index.html && busybox httpd -p ${port} -h /tmp/${ns}-www`]);
  onCleanup(() => spawnSync('ip', ['netns', 'exec', ns, 'pkill', '-f', `/tmp/${ns}-www`]));
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'tsnet-cni-'));
  linksBefore = linkNames();
  daemon = await startTsnetDaemon({ stateDir, socketPath: socket });
}, 60_000);

afterAll(async () => {
  // look first: every DEL above must have let go of everything but the networks themselves
  const left = daemon ? leftoversBesideNetworks({ instance: run, table: run, stateDir }, linksBefore) : [];
  // every test DELs what it ADDs: no network may stay (issue 11 item 9), nor its pool
  if (daemon) left.push(...networksLeft());
  for (const port of publishedPorts) if (bindIn(null, 'tcp', '0.0.0.0', port) !== 'free') left.push(`host port ${port}/tcp still held`);
  const exit = await daemon?.stop();
  const errors = daemon ? daemonLogErrors(daemon.logPath) : [];
  // then clean: the containers, anything a failed test left, the table
  await cleanAfterDaemon(run, stateDir);
  assertNoLeaks(run);
  // one expectation, so that a failure shows all three
  expect({ left, errors, exit }).toEqual({ left: [], errors: [], exit: { code: 0, signal: null, hung: false } });
});

describe('tsnet CNI plugin', () => {
  it('answers VERSION without the daemon', () => {
    const r = spawnSync(PLUGIN, [], { input: '', encoding: 'utf8', env: { CNI_COMMAND: 'VERSION', TSNET_SOCKET: '/nonexistent' } });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });

  it('says how to start the daemon when none runs', () => {
    const r = spawnSync(PLUGIN, [], { input: JSON.stringify(net('x')), encoding: 'utf8', env: { CNI_COMMAND: 'ADD', TSNET_SOCKET: `/run/${run}-none.sock` } });
    expect(r.status).toBe(1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string; cniVersion: string };
    expect(e.code).toBe(11);
    expect(e.cniVersion).toBe('1.0.0');
    expect(e.msg).toContain('the tsnet daemon is not running');
    expect(e.msg).toContain('make up');
  });

  for (const version of ['0.4.0', '1.0.0', '1.1.0']) {
    it(`ADD, CHECK and DEL in version ${version}`, () => {
      const conf = net(`v${version.replace(/\./g, '')}`, { ipam: { type: 'tsnet', subnet: `10.239.${version === '0.4.0' ? 1 : version === '1.0.0' ? 2 : 3}.0/24` } }, version);
      const a = container();
      const b = container();
      const ra = ok('ADD', conf, { container: `${a}-id`, netns: a })!;
      const rb = ok('ADD', conf, { container: `${b}-id`, netns: b })!;
      expect(ra.cniVersion).toBe(version);
      const ip = (ra.ips as Record<string, unknown>[])[0];
      const interfaces = ra.interfaces as Record<string, unknown>[];
      // the bridge and the host end first (no sandbox), then the container's interface
      expect(interfaces.map((i) => i.sandbox ?? null)).toEqual([null, null, `/run/netns/${a}`]);
      expect(ip).toMatchObject({ interface: 2 });
      expect(ip.address).toMatch(/^10\.239\.\d\.2\/24$/);
      if (version === '0.4.0') expect(ip.version).toBe('4');
      else expect(ip.version).toBeUndefined();
      const iface = interfaces[2];
      expect(iface).toMatchObject({ name: 'eth0', sandbox: `/run/netns/${a}` });
      expect(iface.mac).toMatch(/^02:42:0a:ef:/);
      // containers on the network reach each other and the gateway
      expect(pings(a, addressOf(rb))).toBe(true);
      expect(pings(b, String(ip.gateway))).toBe(true);
      expect(execIn(a, 'ip', ['-br', 'addr', 'show', 'eth0'])).toContain(String(ip.address));
      // CHECK gets the result as prevResult
      expect(cni('CHECK', { ...conf, prevResult: ra }, { container: `${a}-id`, netns: a }).code).toBe(0);
      del(conf, { container: `${a}-id`, netns: a });
      del(conf, { container: `${b}-id`, netns: b });
      expect(tryIn(a, 'ip', ['link', 'show', 'eth0']).code).not.toBe(0);
      // DEL again: already gone is fine
      del(conf, { container: `${a}-id`, netns: a });
      // CHECK of something never attached says so
      const check = cni('CHECK', { ...conf, prevResult: ra }, { container: `${a}-id`, netns: a });
      expect(check.code).toBe(1);
      expect(check.out).toMatchObject({ code: 101, cniVersion: version });
    });
  }

  it('refuses bad input with the spec error codes', () => {
    const ns = container();
    const env = { container: `${ns}-id`, netns: ns };
    expect(cni('ADD', { ...net('bad'), cniVersion: '0.2.0' }, env).out).toMatchObject({ code: 1, msg: expect.stringContaining("does not speak CNI version '0.2.0'") });
    const notJson = spawnSync(PLUGIN, [], { input: '{nope', encoding: 'utf8', env: { TSNET_SOCKET: socket, CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0' } });
    expect(JSON.parse(notJson.stdout)).toMatchObject({ code: 6 });
    expect(cni('ADD', net('bad'), { container: 'x', ifName: 'eth0' }).out).toMatchObject({ code: 4, msg: 'CNI_NETNS is required for ADD' });
    expect(cni('ADD', net('bad', { colour: 'red' }), env).out).toMatchObject({ code: 7, msg: expect.stringContaining("unknown key 'colour'") });
    expect(cni('ADD', net('bad', { mode: 'ipvlan' }), env).out).toMatchObject({ code: 7 });
    expect(cni('ADD', net('gone'), { container: 'x', netns: `${run}-nonexistent` }).out).toMatchObject({ code: 3 });
    expect(cni('STATUS', net('bad'), {}).out).toMatchObject({ code: 1, msg: 'STATUS needs cniVersion 1.1.0, the configuration says 1.0.0' });
    // the driver's own refusals come through as tsnet's code 100, with the driver's message
    expect(cni('ADD', net('mtu', { mtu: 'lots', ipam: { type: 'tsnet', subnet: '10.239.9.0/24' } }), env).out).toMatchObject({ code: 100, msg: expect.stringContaining('mtu') });
    // nothing half-made by the failures
    expect(linkExists(hostLink(`${run}-mtu`, `${ns}-id`))).toBe(false);
  });

  it('keeps one network per name: a different subnet under the same name is refused', () => {
    const ns = container();
    const conf = net('same', { ipam: { type: 'tsnet', subnet: '10.239.10.0/24' } });
    ok('ADD', conf, { container: `${ns}-id`, netns: ns });
    const other = container();
    const r = cni('ADD', net('same', { ipam: { type: 'tsnet', subnet: '10.239.11.0/24' } }), { container: `${other}-id`, netns: other });
    expect(r.out).toMatchObject({ code: 7, msg: expect.stringContaining('exists in tsnet with another configuration') });
    del(conf, { container: `${ns}-id`, netns: ns });
  });

  it('takes the address and MAC the runtime asks for', () => {
    const ns = container();
    const conf = { ...net('ips', { ipam: { type: 'tsnet', subnet: '10.239.12.0/24' } }), runtimeConfig: { ips: ['10.239.12.77/24'], mac: '02:00:00:ab:cd:ef' } };
    const r = ok('ADD', conf, { container: `${ns}-id`, netns: ns })!;
    expect(addressOf(r)).toBe('10.239.12.77');
    expect(inContainer(r).mac).toBe('02:00:00:ab:cd:ef');
    expect(execIn(ns, 'cat', ['/sys/class/net/eth0/address'])).toBe('02:00:00:ab:cd:ef');
    del(conf, { container: `${ns}-id`, netns: ns });
  });

  it('DEL succeeds after the namespace is gone and frees everything', async () => {
    const ns = container();
    const conf = net('gone', { ipam: { type: 'tsnet', subnet: '10.239.13.0/24' } });
    const first = ok('ADD', conf, { container: `${ns}-id`, netns: ns })!;
    sh('ip', ['netns', 'del', ns]);
    expect(allocations(stateDir).map((x) => x.address)).toContain(addressOf(first));
    del(conf, { container: `${ns}-id`, netns: ns });
    // the address is free again, and no host link is left
    expect(allocations(stateDir).map((x) => x.address)).not.toContain(addressOf(first));
    const again = container();
    const second = ok('ADD', { ...conf, runtimeConfig: { ips: [addressOf(first)] } }, { container: `${again}-id`, netns: again })!;
    expect(addressOf(second)).toBe(addressOf(first));
    del(conf, { container: `${again}-id`, netns: again });
    expect(await gone([hostLink(conf.name as string, `${ns}-id`), hostLink(conf.name as string, `${again}-id`)])).toBe(true);
  });

  it('GC removes attachments the runtime no longer lists', async () => {
    const conf = net('gc', { ipam: { type: 'tsnet', subnet: '10.239.14.0/24' } }, '1.1.0');
    const keep = container();
    const drop = container();
    const kept = ok('ADD', conf, { container: 'keep-id', netns: keep })!;
    ok('ADD', conf, { container: 'drop-id', netns: drop });
    const [keepLink, dropLink] = [hostLink(conf.name as string, 'keep-id'), hostLink(conf.name as string, 'drop-id')];
    expect(linkExists(keepLink) && linkExists(dropLink)).toBe(true);
    ok('GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'keep-id', ifname: 'eth0' }] });
    expect(await gone([dropLink])).toBe(true);
    expect(linkExists(keepLink)).toBe(true);
    expect(tryIn(drop, 'ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(cni('CHECK', { ...conf, prevResult: kept }, { container: 'keep-id', netns: keep }).code).toBe(0);
    expect(cni('STATUS', conf).code).toBe(0);
    del(conf, { container: 'keep-id', netns: keep });
    expect(await gone([keepLink])).toBe(true);
  });

  it('publishes runtimeConfig.portMappings in tsnet\'s nftables maps, reachable from outside', () => {
    const ns = container();
    const conf = { ...net('ports', { ipam: { type: 'tsnet', subnet: '10.239.15.0/24' }, capabilities: { portMappings: true } }), runtimeConfig: { portMappings: [{ hostPort: 18150, containerPort: 80, protocol: 'tcp' }] } };
    ok('ADD', conf, { container: `${ns}-id`, netns: ns });
    publishedPorts.add(18150);
    webServer(ns, 80, 'hello-cni');
    const outside = outsideHost(`${run}o`, '198.51.100.1/24', '198.51.100.2/24');
    expect(execIn(outside, 'curl', ['-s', '--max-time', '5', 'http://198.51.100.1:18150/'])).toBe('hello-cni');
    expect(sh('nft', ['list', 'table', 'inet', run])).toContain('18150');
    del(conf, { container: `${ns}-id`, netns: ns });
    expect(sh('nft', ['list', 'table', 'inet', run])).not.toContain('18150');
  });

  it('chains with the reference tuning, portmap and bandwidth plugins, and delegates to host-local IPAM', async () => {
    const ns = container();
    const dataDir = mkdtempSync(join(tmpdir(), 'tsnet-hostlocal-'));
    onCleanup(() => rmSync(dataDir, { recursive: true, force: true }));
    const name = `${run}-chain`;
    const tsnetConf = { cniVersion: '1.0.0', name, type: 'tsnet', mode: 'bridge', ipam: { type: 'host-local', dataDir, ranges: [[{ subnet: '10.239.16.0/24', gateway: '10.239.16.1' }]] } };
    const tuningConf = { cniVersion: '1.0.0', name, type: 'tuning', mtu: 1400 };
    const portmapConf = { cniVersion: '1.0.0', name, type: 'portmap', capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: 18151, containerPort: 81, protocol: 'tcp' }] } };
    const bandwidthConf = { cniVersion: '1.0.0', name, type: 'bandwidth', capabilities: { bandwidth: true }, runtimeConfig: { bandwidth: { ingressRate: 8_000_000, ingressBurst: 100_000, egressRate: 8_000_000, egressBurst: 100_000 } } };
    const env = { container: `${ns}-id`, netns: ns };
    // ADD in order, each plugin getting the result so far
    const r1 = ok('ADD', tsnetConf, env)!;
    expect(addressOf(r1)).toBe('10.239.16.2');
    expect(existsSync(join(dataDir, name, '10.239.16.2'))).toBe(true);
    const r2 = ok('ADD', { ...tuningConf, prevResult: r1 }, env, join(REFERENCE, 'tuning'))!;
    const r3 = ok('ADD', { ...portmapConf, prevResult: r2 }, env, join(REFERENCE, 'portmap'))!;
    expect(addressOf(r3)).toBe('10.239.16.2');
    // bandwidth finds the host end of tsnet's veth in the result and shapes it
    const r4 = ok('ADD', { ...bandwidthConf, prevResult: r3 }, env, join(REFERENCE, 'bandwidth'))!;
    const hostEnd = hostLink(name, `${ns}-id`);
    expect(sh('tc', ['qdisc', 'show', 'dev', hostEnd])).toContain('tbf');
    expect(execIn(ns, 'cat', ['/sys/class/net/eth0/mtu'])).toBe('1400');
    webServer(ns, 81, 'chained');
    // portmap's DNAT (its own iptables chains) into tsnet's container
    expect(sh('curl', ['-s', '--max-time', '5', `http://10.239.16.1:18151/`])).toBe('chained');
    // CHECK down the chain, then DEL in reverse order
    expect(cni('CHECK', { ...tsnetConf, prevResult: r4 }, env).code).toBe(0);
    del({ ...bandwidthConf, prevResult: r4 }, env, join(REFERENCE, 'bandwidth'));
    del({ ...portmapConf, prevResult: r3 }, env, join(REFERENCE, 'portmap'));
    del({ ...tuningConf, prevResult: r3 }, env, join(REFERENCE, 'tuning'));
    del({ ...tsnetConf, prevResult: r3 }, env);
    expect(existsSync(join(dataDir, name, '10.239.16.2'))).toBe(false);
    expect(await gone([hostLink(name, `${ns}-id`)])).toBe(true);
  });

  it('keeps attachments working across a restart and a kill -9 that lost the table: containers talk, reach out, publish; a new ADD works', async () => {
    const conf = net('restart', { ipam: { type: 'tsnet', subnet: '10.239.17.0/24' }, capabilities: { portMappings: true } });
    const confA = { ...conf, runtimeConfig: { portMappings: [{ hostPort: 18152, containerPort: 80, protocol: 'tcp' }] } };
    const env = (ns: string) => ({ container: `${ns}-id`, netns: ns });
    const outside = outsideHost(`${run}r`, '203.0.113.1/24', '203.0.113.2/24');
    const a = container();
    const b = container();
    const ra = ok('ADD', confA, env(a))!;
    publishedPorts.add(18152);
    const rb = ok('ADD', conf, env(b))!;
    webServer(a, 80, 'hello-restart');
    const published = () => tryIn(outside, 'curl', ['-s', '--max-time', '5', 'http://203.0.113.1:18152/']);
    /** both ways between the containers, out through the masquerade (the outside has no route back), in through the published port */
    const works = () => {
      expect(pings(a, addressOf(rb))).toBe(true);
      expect(pings(b, addressOf(ra))).toBe(true);
      expect(pings(b, '203.0.113.2')).toBe(true);
      expect(published()).toMatchObject({ code: 0, stdout: 'hello-restart' });
    };
    works();
    await daemon.restart();
    works();
    expect(cni('CHECK', { ...confA, prevResult: ra }, env(a)).code).toBe(0);

    await daemon.kill9();
    // a reboot would take the table too: with the daemon down nothing brings the published port back
    sh('nft', ['delete', 'table', 'inet', run]);
    expect(published().code).toBe(7); // curl: connection refused, the host itself answered
    await daemon.restart();
    works();
    expect(cni('CHECK', { ...conf, prevResult: rb }, env(b)).code).toBe(0);
    // addresses stay taken: a new container gets a new one, and it works
    const c = container();
    const rc = ok('ADD', conf, env(c))!;
    expect([addressOf(ra), addressOf(rb)]).not.toContain(addressOf(rc));
    expect(pings(c, addressOf(ra))).toBe(true);
    expect(pings(c, '203.0.113.2')).toBe(true);
    del(confA, env(a));
    for (const ns of [b, c]) del(conf, env(ns));
    expect(await gone([a, b, c].map((ns) => hostLink(conf.name as string, `${ns}-id`)))).toBe(true);
  });

  it('attaches to an overlay network (one host, no cluster store) with the VXLAN-sized MTU', () => {
    const conf = net('ovl', { mode: 'overlay', ipam: { type: 'tsnet', subnet: '10.239.19.0/24' } });
    const a = container();
    const b = container();
    const ra = ok('ADD', conf, { container: `${a}-id`, netns: a })!;
    const rb = ok('ADD', conf, { container: `${b}-id`, netns: b })!;
    const [route] = JSON.parse(sh('ip', ['-j', 'route', 'show', 'default'])) as { dev: string }[];
    const [uplink] = JSON.parse(sh('ip', ['-j', 'link', 'show', 'dev', route.dev])) as { mtu: number }[];
    expect(inContainer(ra).mtu).toBe(uplink.mtu - 50);
    expect(execIn(a, 'cat', ['/sys/class/net/eth0/mtu'])).toBe(String(uplink.mtu - 50));
    expect(pings(a, addressOf(rb))).toBe(true);
    del(conf, { container: `${a}-id`, netns: a });
    del(conf, { container: `${b}-id`, netns: b });
  });

  it('attaches to a macvlan network on a parent, and DEL removes the child from the container', () => {
    const lan = container();
    const parent = `${run}m`;
    sh('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', lan]);
    onCleanup(() => spawnSync('ip', ['link', 'del', parent]));
    sh('ip', ['link', 'set', parent, 'up']);
    execIn(lan, 'ip', ['addr', 'add', '10.239.20.1/24', 'dev', 'eth0']);
    execIn(lan, 'ip', ['link', 'set', 'eth0', 'up']);
    const conf = net('mv', { mode: 'macvlan', parent, ipam: { type: 'tsnet', subnet: '10.239.20.0/24', gateway: '10.239.20.1' } });
    const a = container();
    const b = container();
    const ra = ok('ADD', conf, { container: `${a}-id`, netns: a })!;
    const rb = ok('ADD', conf, { container: `${b}-id`, netns: b })!;
    expect(JSON.parse(execIn(a, 'ip', ['-j', '-d', 'link', 'show', 'eth0']))[0].linkinfo.info_kind).toBe('macvlan');
    expect(pings(a, addressOf(rb))).toBe(true);
    expect(pings(lan, addressOf(ra))).toBe(true);
    del(conf, { container: `${a}-id`, netns: a });
    expect(tryIn(a, 'ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(JSON.parse(execIn(a, 'ip', ['-j', 'link', 'show'])).filter((l: { ifname: string }) => l.ifname !== 'lo')).toEqual([]);
    del(conf, { container: `${b}-id`, netns: b });
  });

  it('removes a network with its last DEL, so a renamed conflist takes the same subnet; `tsnet cni rm` refuses while attached', async () => {
    const env = (ns: string) => ({ container: `${ns}-id`, netns: ns });
    const old = net('old', { ipam: { type: 'tsnet', subnet: '10.239.21.0/24' } });
    const a = container();
    ok('ADD', old, env(a));
    const bridge = () => (JSON.parse(sh('ip', ['-j', 'addr', 'show'])) as { ifname: string; addr_info: { local: string }[] }[]).find((l) => l.addr_info.some((x) => x.local === '10.239.21.1'))?.ifname;
    const oldBridge = bridge();
    expect(oldBridge).toBeDefined();
    // the same subnet under another name is taken while the old network has a container
    const renamed = net('renamed', { ipam: { type: 'tsnet', subnet: '10.239.21.0/24' } });
    const b = container();
    expect(cni('ADD', renamed, env(b)).out).toMatchObject({ code: 100, msg: expect.stringContaining('overlaps') });
    const refused = tsnet(['cni', 'rm', old.name as string]);
    expect(refused).toEqual({ code: 1, out: expect.stringContaining('has 1 attachment') });
    del(old, env(a));
    // the last DEL took the network: bridge, rules, pool
    expect(await gone([oldBridge!])).toBe(true);
    expect(networksLeft()).toEqual([]);
    expect(tsnet(['cni', 'rm', old.name as string])).toEqual({ code: 1, out: expect.stringContaining(`no CNI network '${old.name as string}'`) });
    const r = ok('ADD', renamed, env(b))!;
    expect(addressOf(r)).toBe('10.239.21.2');
    expect(pings(b, '10.239.21.1')).toBe(true);
    del(renamed, env(b));
    expect(networksLeft()).toEqual([]);
  });

  it('shows CNI networks in tsnet status beside Docker\'s', () => {
    const ns = container();
    const conf = net('status', { ipam: { type: 'tsnet', subnet: '10.239.18.0/24' } });
    ok('ADD', conf, { container: `${ns}-id`, netns: ns });
    const status = JSON.parse(sh(process.execPath, [join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'), 'status', '--json', '--state-dir', stateDir])) as {
      networks: { id: string; driver: string; cniName?: string }[];
      endpoints: { network: string; address: string; cni: { containerId: string } | null }[];
    };
    const n = status.networks.find((x) => x.cniName === conf.name);
    expect(n).toMatchObject({ driver: 'bridge' });
    expect(status.endpoints.find((e) => e.network === n!.id)).toMatchObject({ address: expect.stringMatching(/^10\.239\.18\./), cni: { containerId: `${ns}-id` } });
    del(conf, { container: `${ns}-id`, netns: ns });
  });
});
