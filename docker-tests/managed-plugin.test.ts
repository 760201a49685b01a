// tsnet as a managed Docker plugin (make plugin, scripts/plugin.sh) through the real engine: built
// offline from this machine's files, enabled by dockerd, and serving the bridge driver's main
// promises (names, NAT, published ports, IPAM, isolation between networks), then keeping every
// network and running container across disable/enable and an upgrade to another version.
//
// The plugin under test is "tsnet-mp" (driver tsnet-mp:latest), with its state and log in
// temporary folders, so a tsnet of the user's own ("tsnet") is never touched. afterAll removes
// what the tests made, requires that the plugin's daemon let go of everything (its table
// elements, links, rules in Docker's chains, status rows, held ports), then removes the plugin and
// its kernel state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, run, runCleanups, until, type CommandResult } from '../test-support/commands.js';
import { daemonStatus, internalErrors, leftoversOf, type HostPort } from '../test-support/daemon-leftovers.js';
import { BUSYBOX_IMAGE, docker, dockerOk as ok, ensureBusyboxImage, ensureDockerd, onCleanup, uniqueName } from './harness.js';
import {
  connect,
  createNetwork,
  expectConnectDropped,
  expectPingDropped,
  httpGetFrom,
  ipOf,
  makeOutside,
  ping,
  sleeper,
  webServer,
  type Outside,
} from './containers.js';
import { testPlugin } from './managed-plugin.js';

const plugin = testPlugin('tsnet-mp');
const { name: NAME, driver: DRIVER, table: TABLE } = plugin;
const PUBLISHED: HostPort = { proto: 'tcp', port: 18480 };

const runId = uniqueName('mp');
let outside: Outside;
const makePlugin = (version?: string): CommandResult => plugin.make(version);
const pluginId = (): string => plugin.id();
const network = (name: string, args: string[]): string => createNetwork(DRIVER, name, args);

beforeAll(async () => {
  await ensureDockerd();
  await ensureBusyboxImage(BUSYBOX_IMAGE);
  outside = await makeOutside(`${runId}-out`, { routeBack: '10.232.0.0/16' });
}, 120_000);

afterAll(async () => {
  await runCleanups();
  await plugin.finish([PUBLISHED]);
}, 300_000);

describe('the managed Docker plugin', () => {
  it('is built offline and enabled by make plugin; a second run with the same build changes nothing', () => {
    const made = makePlugin();
    expect(made.code, made.stdout + made.stderr).toBe(0);
    expect(made.stdout).toContain(`the managed plugin ${DRIVER}`);
    const listed = ok(['plugin', 'ls', '--format', '{{.Name}} {{.Enabled}}']).split('\n');
    expect(listed).toContain(`${DRIVER} true`);
    const id = pluginId();
    const again = makePlugin();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('is installed and enabled');
    expect(pluginId()).toBe(id);
  }, 300_000);

  it('refuses a plugin name that could not name a tsnet instance, and changes nothing', () => {
    const bad = run('env', ['PLUGIN=ts_net', join(repoRoot(), 'scripts/plugin.sh')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("PLUGIN 'ts_net': start with a letter, then letters, digits and '-'");
    expect(docker(['plugin', 'inspect', 'ts_net:latest']).code).not.toBe(0);
  });

  describe('bridge networks through it: names, NAT, published ports, IPAM, isolation', () => {
    beforeAll(() => {
      network(`${runId}-web`, ['--ipam-driver', DRIVER, '--subnet', '10.232.1.0/24']);
      network(`${runId}-other`, ['--subnet', '10.232.2.0/24']);
      webServer(`${runId}-site`, `${runId}-web`, [`${PUBLISHED.port}:80`]);
      sleeper(`${runId}-a`, `${runId}-web`);
      sleeper(`${runId}-x`, `${runId}-other`);
    }, 120_000);

    it('containers reach each other by name', () => {
      const r = ping(`${runId}-a`, `${runId}-site`);
      expect(r.code, r.out).toBe(0);
    });

    it('traffic leaving the network is masqueraded: the outside sees the host address', () => {
      expect(connect(`${runId}-a`, outside.peerIp, outside.port).out).toBe(outside.hostIp);
    });

    it('a published port answers from outside and from 127.0.0.1', () => {
      const hello = `hello-from-${runId}-site`;
      expect(httpGetFrom(outside.ns, outside.hostIp, PUBLISHED.port)).toBe(hello);
      expect(httpGetFrom(null, '127.0.0.1', PUBLISHED.port)).toBe(hello);
    });

    it('tsnet IPAM hands out addresses of the subnet, each once, and a chosen subnet when none is given', () => {
      const site = ipOf(`${runId}-site`, `${runId}-web`);
      const a = ipOf(`${runId}-a`, `${runId}-web`);
      expect(site).toMatch(/^10\.232\.1\.\d+$/);
      expect(a).toMatch(/^10\.232\.1\.\d+$/);
      expect(a).not.toBe(site);
      network(`${runId}-auto`, ['--ipam-driver', DRIVER]);
      const subnet = ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', `${runId}-auto`]);
      expect(subnet).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    });

    it('isolates networks from each other both ways (ICMP and TCP), while each reaches its own', () => {
      const site = ipOf(`${runId}-site`, `${runId}-web`);
      const x = ipOf(`${runId}-x`, `${runId}-other`);
      expect(ping(`${runId}-a`, site).out).toContain('1 packets received');
      expectPingDropped(ping(`${runId}-x`, site));
      expectConnectDropped(connect(`${runId}-x`, site, 80));
      expectPingDropped(ping(`${runId}-a`, x));
    });

    it('keeps networks and running containers across disable and enable', async () => {
      const site = ipOf(`${runId}-site`, `${runId}-web`);
      ok(['plugin', 'disable', '--force', DRIVER]);
      try {
        // the kernel holds the network while its plugin is away
        expect(ping(`${runId}-a`, site).out).toContain('1 packets received');
        expect(httpGetFrom(outside.ns, outside.hostIp, PUBLISHED.port)).toBe(`hello-from-${runId}-site`);
      } finally {
        ok(['plugin', 'enable', DRIVER]);
      }
      sleeper(`${runId}-b`, `${runId}-web`);
      await until('the new container reaches the web server by name', () => ping(`${runId}-b`, `${runId}-site`).code === 0, 20_000);
      expect(daemonStatus(plugin.stateDir).networks.map((n) => n.id)).toContain(ok(['network', 'inspect', '-f', '{{.Id}}', `${runId}-web`]));
    }, 120_000);

    it('an upgrade to another version keeps every network, address and published port', async () => {
      const before = { site: ipOf(`${runId}-site`, `${runId}-web`), id: pluginId() };
      const upgraded = makePlugin(`9.9.9-test.${runId}`);
      expect(upgraded.code, upgraded.stdout + upgraded.stderr).toBe(0);
      expect(upgraded.stdout).toContain(`removed the managed plugin ${DRIVER}`);
      expect(ok(['plugin', 'inspect', '--format', '{{.Config.Description}}', DRIVER])).toContain(`9.9.9-test.${runId}`);
      expect(pluginId()).not.toBe(before.id);
      expect(ipOf(`${runId}-site`, `${runId}-web`)).toBe(before.site);
      expect(httpGetFrom(outside.ns, outside.hostIp, PUBLISHED.port)).toBe(`hello-from-${runId}-site`);
      sleeper(`${runId}-c`, `${runId}-web`);
      await until('a container made after the upgrade reaches the web server by name', () => ping(`${runId}-c`, `${runId}-site`).code === 0, 20_000);
      expect(ipOf(`${runId}-c`, `${runId}-web`)).not.toBe(before.site);
    }, 300_000);
  });

  it('runs a swarm service on a swarm-scoped tsnet network: tasks get tsnet addresses and reach each other', async () => {
    const service = `${runId}-svc`;
    const swarmNet = `${runId}-swarm`;
    const swarmConfig = `${runId}-swcfg`;
    // a single-node swarm, advertised on the outside veth's host end (an address of this host);
    // removed here, not with the file's clean-ups, which the uninstall test below runs early
    ok(['swarm', 'init', '--advertise-addr', outside.hostIp, '--listen-addr', `${outside.hostIp}:2377`]);
    try {
      // the swarm manager allocates nothing for a local-scope driver: the subnet comes from a
      // config-only network, as for Docker's macvlan on swarm (README "Swarm services")
      ok(['network', 'create', '--config-only', '--subnet', '10.232.7.0/24', swarmConfig]);
      ok(['network', 'create', '-d', DRIVER, '--scope', 'swarm', '--config-from', swarmConfig, swarmNet]);
      ok(['service', 'create', '--detach', '--no-resolve-image', '--name', service, '--network', swarmNet, '--endpoint-mode', 'dnsrr', '--replicas', '2', BUSYBOX_IMAGE, 'sleep', '3600']);
      const tasks = () => ok(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]).split('\n').filter(Boolean);
      await until('both tasks of the service run', () => tasks().length === 2, 90_000);
      const [first, second] = tasks();
      const addressOf = (c: string) => ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${swarmNet}").IPAddress}}`, c]);
      expect(addressOf(first)).toMatch(/^10\.232\.7\.\d+$/);
      expect(addressOf(second)).toMatch(/^10\.232\.7\.\d+$/);
      expect(addressOf(first)).not.toBe(addressOf(second));
      expect(ping(first, addressOf(second)).out).toContain('1 packets received');
      expect(ping(second, addressOf(first)).out).toContain('1 packets received');
      // the tasks' endpoints are tsnet's: its record of the network holds both, with their addresses
      const swarmNetId = ok(['network', 'inspect', '-f', '{{.Id}}', swarmNet]);
      const endpoints = daemonStatus(plugin.stateDir).endpoints.filter((e) => e.network === swarmNetId);
      expect(endpoints.map((e) => e.address.split('/')[0]).sort()).toEqual([addressOf(first), addressOf(second)].sort());
    } finally {
      docker(['service', 'rm', service]);
      const gone = () => docker(['ps', '-aq', '--filter', `label=com.docker.swarm.service.name=${service}`]).stdout.trim() === '';
      await until("the service's tasks are gone", gone, 60_000).catch(() => undefined);
      await until('the swarm network is removed', () => docker(['network', 'rm', swarmNet]).code === 0 || docker(['network', 'inspect', swarmNet]).code !== 0, 30_000).catch(() => undefined);
      await until('the config-only network is removed', () => docker(['network', 'rm', swarmConfig]).code === 0 || docker(['network', 'inspect', swarmConfig]).code !== 0, 30_000).catch(() => undefined);
      docker(['swarm', 'leave', '--force']);
      // what swarm mode made and leaving keeps: its gateway bridge network
      docker(['network', 'rm', 'docker_gwbridge']);
    }
  }, 300_000);

  it('make uninstall refuses while its networks exist, then removes the plugin and its kernel state', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'tsnet-mp-root-'));
    onCleanup(() => rmSync(staging, { recursive: true, force: true }));
    const uninstall = () =>
      run('env', [`DESTDIR=${staging}`, `PLUGIN=${NAME}`, `TSNET_STATE_DIR=${plugin.stateDir}`, `TSNET_LOG=${join(plugin.logDir, 'tsnet.log')}`, join(repoRoot(), 'scripts/uninstall.sh')], { timeoutMs: 120_000 });
    const refused = uninstall();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`uninstall: tsnet (${NAME}, ${plugin.stateDir}) still has networks`);
    expect(refused.stderr).toContain(`${runId}-web (bridge)`);
    expect(ok(['plugin', 'inspect', '--format', '{{.Enabled}}', DRIVER])).toBe('true');

    // containers and networks go the way a user removes them; the daemon must let go of all of it
    await runCleanups();
    expect(await leftoversOf({ instance: NAME, table: TABLE, stateDir: plugin.stateDir }, [PUBLISHED])).toEqual([]);
    expect(internalErrors(join(plugin.logDir, 'tsnet.log'))).toEqual([]);
    expect(run('nft', ['list', 'table', 'inet', TABLE]).code).toBe(0);

    const removed = uninstall();
    expect(removed.code, removed.stdout + removed.stderr).toBe(0);
    expect(removed.stdout).toContain(`removed the managed Docker plugin ${DRIVER}`);
    expect(docker(['plugin', 'inspect', DRIVER]).code).not.toBe(0);
    for (const family of ['inet', 'bridge']) expect(run('nft', ['list', 'table', family, TABLE]).code).not.toBe(0);
  }, 300_000);
});
