// tsnet beside the firewalls of Docker 28 (iptables with DOCKER-FORWARD) and Docker 29 (nftables,
// table docker-bridges), issue 15 item 2. Only Docker 20.10 installs here, so the rules those
// versions write are fixtures (test-support/docker28-iptables.ts, docker29-nftables.ts, with their
// sources), loaded into the namespace a built tsnet daemon runs in (its "host"). Docker's network
// is a bridge named docker0 in that namespace with a "container" namespace serving port 80
// (published as host port 18090) and 81 (not published, reached at a second address of the
// container that nothing is published on); tsnet's is a CNI network with a container
// serving its published port; "outside" is a namespace behind the host's uplink.
//
// Each case loads one firewall and requires the same flows, positives paired with negatives:
// the outside reaches tsnet's published port and a tsnet container the outside; Docker's isolation
// holds both ways (no tsnet container reaches a Docker container's port, published or not, by its
// address, nor a Docker container an unpublished tsnet port), while each side's published port
// answers the other through a host address. `tsnet doctor` in the namespace names the firewall and
// says whether tsnet's traffic is admitted. The firewalls follow one another the way a host's
// Docker is upgraded, under a running daemon: drift repair must follow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import type { DockerBridge } from '../test-support/docker-iptables.js';
import { docker28Iptables } from '../test-support/docker28-iptables.js';
import { docker29Nftables } from '../test-support/docker29-nftables.js';
import { repoRoot } from '../test-support/commands.js';
import { Namespaces, execIn, onCleanup, runCleanups, sh, tryIn, uniqueName, until, vethBetween } from './harness.js';
import { daemonLogErrors } from './leftovers.js';

const REPO = repoRoot();
const PLUGIN = join(REPO, 'dist', 'cni', 'tsnet');
const run = uniqueName('dfw');
const socket = `/run/tsnet-dfw-tests/${run}.sock`;
const namespaces = new Namespaces();
const host = `${run}-host`;
const outside = `${run}-out`;
const docker = `${run}-dk`;
const HOST = '203.0.113.1';
const OUTSIDE = '203.0.113.2';
const DOCKER_CTR = '10.53.0.2';
/**
 * A second address of Docker's container, with nothing published on it: Docker's raw-table drop of
 * packets for a published container's address does not cover it, so only Docker's filter rules
 * (and whatever tsnet's mark makes them accept) decide whether a tsnet container reaches it.
 */
const DOCKER_CTR_UNPUBLISHED = '10.53.0.3';
const HOST_PORT = 18190;
const DOCKER_PORT = 18090;
const DOCKER0: DockerBridge = { name: 'docker0', subnet: '10.53.0.0/24', published: [{ containerIp: DOCKER_CTR, containerPort: 80, hostPort: DOCKER_PORT }] };

let daemon: TsnetDaemon;
let stateDir: string;
/** tsnet's container: its namespace and address, and its network's bridge */
let tsnet: { ns: string; ip: string; bridge: string };
const servers: ChildProcess[] = [];

/** A web server in ns answering `name`, killed after the file. */
async function serve(ns: string, port: number, name: string): Promise<void> {
  const dir = join(stateDir, `www-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), `${name}\n`);
  servers.push(spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', String(port), '-h', dir], { stdio: 'ignore' }));
  await until(`${name} listening`, () => tryIn(ns, 'sh', ['-c', `ss -ltn | grep -q ':${port} '`]).code === 0);
}

/** What an HTTP GET from ns gets: the page's name, or 'dropped' (timed out) or 'refused'. */
function get(ns: string, ip: string, port: number): string {
  const r = tryIn(ns, 'curl', ['-s', '--max-time', '2', `http://${ip}:${port}/`]);
  if (r.code === 0) return r.stdout;
  return r.code === 28 ? 'dropped' : r.code === 7 ? 'refused' : `curl exit ${r.code}`;
}

/** Every flow the issue names, as one value so a failure shows them all. */
function flows(): Record<string, string> {
  return {
    outsideToTsnetPublished: get(outside, HOST, HOST_PORT),
    tsnetToOutside: get(tsnet.ns, OUTSIDE, 80),
    dockerToTsnetPublished: get(docker, '10.53.0.1', HOST_PORT),
    dockerToTsnetDirect: get(docker, tsnet.ip, 80),
    tsnetToDockerPublished: get(tsnet.ns, HOST, DOCKER_PORT),
    tsnetToDockerDirect: get(tsnet.ns, DOCKER_CTR, 80),
    tsnetToDockerUnpublished: get(tsnet.ns, DOCKER_CTR_UNPUBLISHED, 81),
  };
}
const EXPECTED = {
  outsideToTsnetPublished: 'tsnet',
  tsnetToOutside: 'outside',
  dockerToTsnetPublished: 'tsnet',
  dockerToTsnetDirect: 'dropped',
  tsnetToDockerPublished: 'docker',
  tsnetToDockerDirect: 'dropped',
  tsnetToDockerUnpublished: 'dropped',
};

/** Removes every Docker table (iptables-nft's and Docker 29's) from the host namespace. */
function dockerGone(): void {
  const tables = JSON.parse(execIn(host, 'nft', ['-j', 'list', 'tables'])) as { nftables: { table?: { family: string; name: string } }[] };
  for (const t of tables.nftables.flatMap((o) => (o.table ? [o.table] : []))) {
    if (t.family === 'ip' || t.family === 'ip6') execIn(host, 'nft', ['delete', 'table', t.family, t.name]);
  }
}

/** tsnet's accepts in a chain of ip filter, as "<chain> <iif|oif>". */
function acceptsIn(chain: string): string[] {
  const r = tryIn(host, 'nft', ['list', 'chain', 'ip', 'filter', chain]);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .filter((l) => l.includes(`comment "${run}:${tsnet.bridge}"`))
    .map((l) => `${chain} ${/(iifname|oifname)/.exec(l)?.[1]}`);
}

/** `tsnet doctor`'s line about Docker's firewall, run in the host namespace as the daemon's own. */
function doctorLine(): string {
  const r = tryIn(host, 'node', [join(REPO, 'dist/cli/main.js'), 'doctor', '--socket', socket, '--state-dir', stateDir]);
  return r.stdout.split('\n').find((l) => / Docker firewall /.test(l)) ?? `(no Docker firewall line; exit ${r.code}: ${r.stderr})`;
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'tsnet-dfw-'));
  onCleanup(() => servers.forEach((p) => p.kill('SIGKILL')));
  namespaces.make(host);
  namespaces.make(outside);
  namespaces.make(docker);
  execIn(host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  // Docker leaves br_netfilter on where it needs it; bridged packets then pass the forward hook too
  tryIn(host, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
  vethBetween(host, outside, { nameA: `${run}u`, nameB: `${run}o`, addrA: `${HOST}/24`, addrB: `${OUTSIDE}/24` });
  execIn(host, 'ip', ['link', 'add', 'docker0', 'type', 'bridge']);
  execIn(host, 'ip', ['addr', 'add', '10.53.0.1/24', 'dev', 'docker0']);
  execIn(host, 'ip', ['link', 'set', 'docker0', 'up']);
  const v = vethBetween(host, docker, { nameA: `${run}d`, nameB: `${run}k`, addrB: `${DOCKER_CTR}/24` });
  execIn(host, 'ip', ['link', 'set', v.a, 'master', 'docker0']);
  execIn(docker, 'ip', ['addr', 'add', `${DOCKER_CTR_UNPUBLISHED}/24`, 'dev', v.b]);
  execIn(docker, 'ip', ['route', 'add', 'default', 'via', '10.53.0.1']);

  daemon = await startTsnetDaemon({ stateDir, socketPath: socket, netns: host });
  const ns = namespaces.make(`${run}-t`);
  const conf = { cniVersion: '1.0.0', name: `${run}-net`, type: 'tsnet', mode: 'bridge', ipam: { type: 'tsnet', subnet: '10.238.9.0/24' }, capabilities: { portMappings: true } };
  const add = spawnSync(PLUGIN, [], {
    input: JSON.stringify({ ...conf, runtimeConfig: { portMappings: [{ hostPort: HOST_PORT, containerPort: 80, protocol: 'tcp' }] } }),
    encoding: 'utf8',
    env: { PATH: process.env.PATH, TSNET_SOCKET: socket, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `${ns}-id`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_ARGS: '' },
  });
  if (add.status !== 0) throw new Error(`CNI ADD failed: ${add.stdout}${add.stderr}`);
  const result = JSON.parse(add.stdout) as { interfaces: { name: string }[]; ips: { address: string }[] };
  tsnet = { ns, ip: result.ips[0].address.split('/')[0], bridge: result.interfaces[0].name };

  await serve(outside, 80, 'outside');
  await serve(tsnet.ns, 80, 'tsnet');
  await serve(docker, 80, 'docker');
  await serve(docker, 81, 'docker-unpublished');
}, 60_000);

afterAll(async () => {
  const exit = await daemon?.stop();
  const errors = daemon ? daemonLogErrors(daemon.logPath) : [];
  await runCleanups();
  // the namespace takes the daemon's links and tables, and Docker's fixtures, with it
  namespaces.removeAll();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(dirname(socket), { recursive: true, force: true });
  expect({ errors, exit }).toEqual({ errors: [], exit: { code: 0, signal: null, hung: false } });
});

describe("tsnet beside Docker 28's and 29's firewalls, one after the other under a running daemon", () => {
  it('Docker 28 iptables, FORWARD policy drop, started after tsnet: the accepts go into DOCKER-USER and every flow is as Docker has it', async () => {
    sh('ip', ['netns', 'exec', host, 'iptables-nft-restore'], { input: docker28Iptables([DOCKER0], { forwardPolicy: 'drop' }) });
    await until("tsnet's accepts in DOCKER-USER", () => acceptsIn('DOCKER-USER').length === 2, 5_000);
    expect(acceptsIn('DOCKER-USER').sort()).toEqual(['DOCKER-USER iifname', 'DOCKER-USER oifname']);
    expect(flows()).toEqual(EXPECTED);
    expect(doctorLine()).toMatch(/^ok +Docker firewall +iptables with DOCKER-FORWARD \(Docker 28\+\): tsnet's traffic is admitted; ip filter FORWARD drops by policy; tsnet's accepts in DOCKER-USER let its 1 bridge\(s\) through$/);
  });

  it('without its accepts the drop policy bites (the fixture is live), and doctor says so; drift repair puts them back', async () => {
    // the daemon stopped (SIGSTOP), so that its drift repair cannot put them back while we look
    process.kill(daemon.pid!, 'SIGSTOP');
    try {
      execIn(host, 'iptables-nft', ['-F', 'DOCKER-USER']);
      expect(doctorLine()).toMatch(/^missing +Docker firewall +iptables with DOCKER-FORWARD \(Docker 28\+\): tsnet's traffic is dropped; ip filter FORWARD drops by policy and tsnet's accepts are missing in DOCKER-USER for /);
      expect({ in: get(outside, HOST, HOST_PORT), out: get(tsnet.ns, OUTSIDE, 80) }).toEqual({ in: 'dropped', out: 'dropped' });
    } finally {
      process.kill(daemon.pid!, 'SIGCONT');
    }
    await until('the accepts back', () => acceptsIn('DOCKER-USER').length === 2, 5_000);
    expect(flows()).toEqual(EXPECTED);
  });

  it('Docker 28 with ip-forward-no-drop (FORWARD policy accept): the same flows', async () => {
    dockerGone();
    sh('ip', ['netns', 'exec', host, 'iptables-nft-restore'], { input: docker28Iptables([DOCKER0], { forwardPolicy: 'accept' }) });
    await until("tsnet's accepts in DOCKER-USER", () => acceptsIn('DOCKER-USER').length === 2, 5_000);
    expect(flows()).toEqual(EXPECTED);
    expect(doctorLine()).toMatch(/^ok +Docker firewall +iptables with DOCKER-FORWARD \(Docker 28\+\): tsnet's traffic is admitted$/);
  });

  it('Docker 29 nftables (after a reboot: no iptables rules at all), without bridge-accept-fwmark: the same flows, no accepts needed', async () => {
    dockerGone();
    sh('ip', ['netns', 'exec', host, 'nft', '-f', '-'], { input: docker29Nftables([DOCKER0]) });
    expect(flows()).toEqual(EXPECTED);
    expect(doctorLine()).toMatch(
      /^ok +Docker firewall +nftables \(Docker 29, table docker-bridges\): tsnet's traffic is admitted; bridge-accept-fwmark for tsnet's mark is not set \("bridge-accept-fwmark": "0x00540000\/0x00540000" in \/etc\/docker\/daemon.json\); tsnet's networks do not need it/,
    );
  });

  it("Docker 29 with bridge-accept-fwmark set to tsnet's mark: Docker's isolation still holds", async () => {
    dockerGone();
    sh('ip', ['netns', 'exec', host, 'nft', '-f', '-'], { input: docker29Nftables([DOCKER0], { acceptFwmark: '0x00540000/0x00540000' }) });
    expect(flows()).toEqual(EXPECTED);
    expect(doctorLine()).toMatch(/^ok +Docker firewall +nftables \(Docker 29, table docker-bridges\): tsnet's traffic is admitted; bridge-accept-fwmark covers tsnet's mark 0x00540000/);
  });

  it('Docker 29 beside what Docker 28 left in iptables (FORWARD drop, a DOCKER-USER no longer jumped to): the accepts go to the top of FORWARD', async () => {
    // Docker's migration to nftables keeps an existing jump; here there is none (an admin removed it)
    sh('ip', ['netns', 'exec', host, 'iptables-nft-restore'], { input: ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]', ':DOCKER-USER - [0:0]', 'COMMIT', ''].join('\n') });
    await until("tsnet's accepts at the top of FORWARD", () => acceptsIn('FORWARD').length === 2, 5_000);
    expect({ forward: acceptsIn('FORWARD').sort(), dockerUser: acceptsIn('DOCKER-USER') }).toEqual({ forward: ['FORWARD iifname', 'FORWARD oifname'], dockerUser: [] });
    // Docker's own traffic meets the leftover drop too (its nftables accepts are not final, as
    // Docker's migration guide warns): tsnet leaves a Docker container's way to its published port
    // to Docker's rules, so that is dropped with the rest of Docker's until the operator clears it
    expect(flows()).toEqual({ ...EXPECTED, dockerToTsnetPublished: 'dropped' });
    expect(doctorLine()).toMatch(/^ok +Docker firewall +nftables \(Docker 29, table docker-bridges\): tsnet's traffic is admitted; ip filter FORWARD drops by policy; tsnet's accepts in FORWARD let its 1 bridge\(s\) through/);
  });
});
