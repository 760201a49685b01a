// Boot and restart survival, as functions a test file calls (issue 12 item 2): a scene of
// containers with `--restart always` on a tsnet bridge, macvlan and overlay network, the check that
// they "came back", and a host reboot simulated without rebooting. How tsnet is started and
// stopped is a parameter, so the same simulation runs for the unit-less daemon
// (survival.test.ts) and for the managed Docker plugin, which dockerd starts itself.
//
// A reboot, here: dockerd, its containerd, the shims and every container process die of SIGKILL
// (as on power-off), tsnet too; then what the kernel and the tmpfs /run held goes: tsnet's links
// and tables, Docker's iptables-nft tables (ip/ip6 filter and nat: on these machines they hold
// only Docker's rules and the CNI test plugins' chains, which those plugins make again), docker0,
// every mount under /var/lib/docker and /run/docker (the containers' root filesystems and network
// namespaces), Docker's exec-root /run/docker (plugin sockets of other daemons excepted), its
// socket and pid file, the conntrack entries of the scene's addresses, and IP forwarding (off at
// boot: whoever starts first turns it on, and dockerd sets FORWARD's drop policy only when that is
// itself; the value found is put back at the end of the file). Disks (Docker's
// /var/lib/docker, tsnet's state) stay. The test's own "world" (the outside namespace, the LAN
// behind the macvlan parent) stays too: it stands for other machines.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDaemonKernelState, run, sh, until, wait } from '../test-support/commands.js';
import { BUSYBOX_IMAGE, docker, dockerOk, harnessDockerd, onCleanup, startDockerd, stopDockerdIfStarted } from './harness.js';

// ---------------------------------------------------------------- restarting dockerd

/**
 * Why a file that restarts dockerd must not run here, or '' when it may: a dockerd answers that
 * the harness did not start (a developer's own), which such a file leaves alone.
 */
export function dockerdRestartSkipReason(file: string): string {
  const foreign = docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 }).code === 0 && !harnessDockerd();
  if (!foreign) return '';
  const reason = `${file} skipped: a dockerd the test harness did not start is running; this file restarts dockerd and leaves a developer's own alone`;
  console.warn(reason);
  return reason;
}

/** Flags of the dockerd restartDockerd started last. */
let lastFlags: string[] = [];

/** Stops the harness's dockerd (SIGTERM: containers stop, unless live-restore) and starts it with `flags`. */
export async function restartDockerd(flags: string[] = []): Promise<void> {
  if (!harnessDockerd()) throw new Error('the dockerd the harness started is not running');
  await stopDockerdIfStarted();
  await startDockerd(flags);
  lastFlags = flags;
}

/** For afterAll: leaves the harness's dockerd as ensureDockerd starts it (no flags). */
export async function plainDockerdAgain(): Promise<void> {
  if (lastFlags.length > 0 && harnessDockerd()) await restartDockerd([]);
}

// ---------------------------------------------------------------- the scene

/** The outside world: a namespace behind a host veth (OUTSIDE_HOST on the host, OUTSIDE_PEER in it). */
export const OUTSIDE_HOST = '203.0.113.1';
export const OUTSIDE_PEER = '203.0.113.2';
/** The LAN of the macvlan network and its router (in the LAN namespace). */
const LAN_ROUTER = '10.237.1.1';
/** Host ports: the bridge web server (HTTP, then an echo server) and the overlay web server. */
export const PORTS = { web: 18150, echo: 18152, overlayWeb: 18151 } as const;

export interface SceneContainer {
  name: string;
  network: string;
  ip: string;
}

export interface Scene {
  prefix: string;
  plugin: string;
  outsideNs: string;
  lanNs: string;
  /** web and cli on the bridge, mv1 and mv2 on the macvlan, ov1 and ov2 on the overlay */
  containers: Record<'web' | 'cli' | 'mv1' | 'mv2' | 'ov1' | 'ov2', SceneContainer>;
  /** the addresses whose conntrack entries a reboot forgets */
  addresses: string[];
}

/** A container's command: serves what `serve` starts, and ends at once on SIGTERM (dockerd's stop). */
function keepAlive(serve: string): string[] {
  return ['sh', '-c', `trap 'exit 0' TERM; ${serve} sleep 100000 & wait`];
}

const WEB = (name: string) => `mkdir -p /www && echo hello-from-${name} > /www/index.html && httpd -p 80 -h /www &&`;

/**
 * Makes the scene for `plugin` (the plugin name networks are created with): the outside namespace,
 * a LAN namespace behind a veth whose host end is the macvlan parent, three networks and six
 * containers with `--restart always`, each with `--ip`: "the same address" after a restart is
 * Docker's promise only for those (without one, its IPAM hands addresses out again in the order
 * the containers restart, with any driver). Every piece registers its clean-up.
 */
export function makeScene(prefix: string, plugin: string): Scene {
  const outsideNs = `${prefix}-out`;
  const lanNs = `${prefix}-lan`;
  const outsideIf = `${prefix}o`;
  const parent = `${prefix}p`;
  sh('ip', ['netns', 'add', outsideNs]);
  onCleanup(() => run('ip', ['netns', 'del', outsideNs]));
  sh('ip', ['link', 'add', outsideIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs]);
  onCleanup(() => run('ip', ['link', 'del', outsideIf]));
  sh('ip', ['addr', 'add', `${OUTSIDE_HOST}/24`, 'dev', outsideIf]);
  sh('ip', ['link', 'set', outsideIf, 'up']);
  const inOut = (args: string[]) => sh('ip', ['netns', 'exec', outsideNs, ...args]);
  inOut(['ip', 'addr', 'add', `${OUTSIDE_PEER}/24`, 'dev', 'eth0']);
  inOut(['ip', 'link', 'set', 'eth0', 'up']);
  inOut(['ip', 'link', 'set', 'lo', 'up']);

  sh('ip', ['netns', 'add', lanNs]);
  onCleanup(() => run('ip', ['netns', 'del', lanNs]));
  sh('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', lanNs]);
  onCleanup(() => run('ip', ['link', 'del', parent]));
  sh('ip', ['link', 'set', parent, 'up']);
  const inLan = (args: string[]) => sh('ip', ['netns', 'exec', lanNs, ...args]);
  inLan(['ip', 'addr', 'add', `${LAN_ROUTER}/24`, 'dev', 'lan0']);
  inLan(['ip', 'link', 'set', 'lan0', 'up']);

  const network = (name: string, args: string[]) => {
    dockerOk(['network', 'create', '-d', plugin, ...args, name]);
    onCleanup(() => docker(['network', 'rm', name]));
    return name;
  };
  const br = network(`${prefix}-br`, ['--subnet', '10.237.0.0/24']);
  const mv = network(`${prefix}-mv`, ['-o', 'type=macvlan', '-o', `parent=${parent}`, '--subnet', '10.237.1.0/24', '--gateway', LAN_ROUTER]);
  const ov = network(`${prefix}-ov`, ['-o', 'type=overlay', '--subnet', '10.237.2.0/24']);

  const container = (name: string, net: string, extra: string[], serve = ''): SceneContainer => {
    dockerOk(['run', '-d', '--restart', 'always', '--name', name, '--network', net, ...extra, BUSYBOX_IMAGE, ...keepAlive(serve)]);
    onCleanup(() => docker(['rm', '-f', name]));
    return { name, network: net, ip: ipOf(name, net) };
  };
  const containers: Scene['containers'] = {
    web: container(`${prefix}-web`, br, ['--ip', '10.237.0.10', '-p', `${PORTS.web}:80`, '-p', `${PORTS.echo}:81`], `${WEB(`${prefix}-web`)} nc -ll -p 81 -e cat &`),
    cli: container(`${prefix}-cli`, br, ['--ip', '10.237.0.11']),
    mv1: container(`${prefix}-mv1`, mv, ['--ip', '10.237.1.10']),
    mv2: container(`${prefix}-mv2`, mv, ['--ip', '10.237.1.11']),
    ov1: container(`${prefix}-ov1`, ov, ['--ip', '10.237.2.10', '-p', `${PORTS.overlayWeb}:80`], WEB(`${prefix}-ov1`)),
    ov2: container(`${prefix}-ov2`, ov, ['--ip', '10.237.2.11']),
  };
  return { prefix, plugin, outsideNs, lanNs, containers, addresses: [OUTSIDE_HOST, ...Object.values(containers).map((c) => c.ip)] };
}

export function ipOf(name: string, net: string): string {
  return dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
}

/** "STATE ADDRESS LAST-ERROR" of a container, '' when Docker does not know it. */
function stateOf(c: SceneContainer): string {
  const r = docker(['inspect', '-f', `{{.State.Status}} {{with index .NetworkSettings.Networks "${c.network}"}}{{.IPAddress}}{{end}} {{.State.Error}}`, c.name]);
  return r.code === 0 ? r.stdout.trim() : '';
}

/** Running, with the address it had. */
function isBack(c: SceneContainer): boolean {
  const [status, ip] = stateOf(c).split(' ');
  return status === 'running' && ip === c.ip;
}

function pingsFromContainer(name: string, target: string): boolean {
  return docker(['exec', name, 'ping', '-c', '1', '-W', '2', target]).code === 0;
}

function pingsFromNs(ns: string, target: string): boolean {
  return run('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '2', target]).code === 0;
}

function httpGet(ns: string | null, host: string, port: number): string {
  const args = ['-s', '--max-time', '5', `http://${host}:${port}/`];
  const r = ns ? run('ip', ['netns', 'exec', ns, 'curl', ...args]) : run('curl', args);
  return r.code === 0 ? r.stdout.trim() : '';
}

/** What "came back" means, one named check each. */
function comeBackChecks(s: Scene): { what: string; ok: () => boolean }[] {
  const { web, cli, mv1, mv2, ov1, ov2 } = s.containers;
  const hello = (c: SceneContainer) => `hello-from-${c.name}`;
  return [
    { what: `${cli.name} pings ${web.name} by name (bridge)`, ok: () => pingsFromContainer(cli.name, web.name) },
    { what: `${mv2.name} pings ${mv1.name} by name (macvlan)`, ok: () => pingsFromContainer(mv2.name, mv1.name) },
    { what: `${ov2.name} pings ${ov1.name} by name (overlay)`, ok: () => pingsFromContainer(ov2.name, ov1.name) },
    { what: `${cli.name} reaches the outside`, ok: () => pingsFromContainer(cli.name, OUTSIDE_PEER) },
    { what: `${ov2.name} reaches the outside`, ok: () => pingsFromContainer(ov2.name, OUTSIDE_PEER) },
    { what: `${mv1.name} reaches its LAN's router`, ok: () => pingsFromContainer(mv1.name, LAN_ROUTER) },
    { what: `the LAN reaches ${mv2.name}`, ok: () => pingsFromNs(s.lanNs, mv2.ip) },
    { what: `published port ${PORTS.web} answers from outside`, ok: () => httpGet(s.outsideNs, OUTSIDE_HOST, PORTS.web) === hello(web) },
    { what: `published port ${PORTS.web} answers on 127.0.0.1`, ok: () => httpGet(null, '127.0.0.1', PORTS.web) === hello(web) },
    { what: `published port ${PORTS.overlayWeb} (overlay) answers from outside`, ok: () => httpGet(s.outsideNs, OUTSIDE_HOST, PORTS.overlayWeb) === hello(ov1) },
    { what: `published port ${PORTS.overlayWeb} (overlay) answers on 127.0.0.1`, ok: () => httpGet(null, '127.0.0.1', PORTS.overlayWeb) === hello(ov1) },
  ];
}

/**
 * Waits (up to timeoutMs) until every container of the scene runs with the address it had, then
 * until each come-back check passes; returns what still failed at the deadline (empty: all came
 * back), with each container's state and last error, for the test's message.
 */
export async function containersComeBack(s: Scene, timeoutMs = 90_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  const all = Object.values(s.containers);
  const notBack = () => all.filter((c) => !isBack(c)).map((c) => `${c.name} (${c.ip}) is "${stateOf(c)}"`);
  let down = notBack();
  while (down.length > 0 && Date.now() < deadline) {
    await wait(500);
    down = notBack();
  }
  if (down.length > 0) return down;
  let failing = comeBackChecks(s);
  while (failing.length > 0) {
    failing = failing.filter((c) => !c.ok());
    if (failing.length === 0 || Date.now() > deadline) break;
    await wait(250);
  }
  return failing.map((c) => `${c.what}: no`);
}

// ---------------------------------------------------------------- no loss while tsnet restarts

/** A long ping (iputils, from a namespace): `count` packets 0.2 s apart. */
function longPing(nsArgs: string[], target: string, count: number): { proc: ChildProcess; out: () => string; done: Promise<void> } {
  let out = '';
  const proc = spawn(nsArgs[0], [...nsArgs.slice(1), 'ping', '-n', '-i', '0.2', '-c', String(count), '-W', '2', target], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<void>((r) => proc.once('exit', () => r()));
  return { proc, out: () => out, done };
}

function containerNs(name: string): string[] {
  return ['nsenter', '-t', dockerOk(['inspect', '-f', '{{.State.Pid}}', name]), '-n'];
}

/** A TCP connection from the outside to the published echo port, held open; send() a line and get it back. */
export async function holdTcp(s: Scene): Promise<{ echo(line: string): Promise<string>; close(): void }> {
  const proc = spawn('ip', ['netns', 'exec', s.outsideNs, 'node', '-e', `const c = require('net').connect(${PORTS.echo}, '${OUTSIDE_HOST}'); process.stdin.pipe(c); c.pipe(process.stdout); c.on('close', () => process.exit(0)); c.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  onCleanup(() => proc.kill());
  let got = '';
  proc.stdout!.on('data', (d: Buffer) => (got += d.toString()));
  const echo = async (line: string) => {
    proc.stdin!.write(`${line}\n`);
    try {
      await until(`the echo of ${line}`, () => got.includes(`${line}\n`) || proc.exitCode !== null, 10_000);
    } catch {
      // reported below
    }
    return got.includes(`${line}\n`) ? line : `no echo of ${line} (connection ${proc.exitCode === null ? 'open' : 'closed'}; received ${JSON.stringify(got)})`;
  };
  return { echo, close: () => proc.kill() };
}

/**
 * Runs `action` (a tsnet restart of some kind) while pings 0.2 s apart run on each network type
 * (bridge peer, bridge to the outside, overlay peer, LAN to macvlan) and a TCP connection stays
 * open; returns each ping's summary line and the connection's echo after the action.
 */
export async function trafficAcross(s: Scene, action: () => Promise<void>): Promise<{ pings: string[]; covered: boolean; tcp: string }> {
  const tcp = await holdTcp(s);
  const before = await tcp.echo('before');
  if (before !== 'before') throw new Error(`the held connection does not work before the action: ${before}`);
  const { web, cli, ov1, ov2, mv1 } = s.containers;
  const COUNT = 60; // 12 s
  const pings = [
    { what: 'bridge peer', ...longPing(containerNs(cli.name), web.ip, COUNT) },
    { what: 'bridge to outside', ...longPing(containerNs(cli.name), OUTSIDE_PEER, COUNT) },
    { what: 'overlay peer', ...longPing(containerNs(ov2.name), ov1.ip, COUNT) },
    { what: 'LAN to macvlan', ...longPing(['ip', 'netns', 'exec', s.lanNs], mv1.ip, COUNT) },
  ];
  onCleanup(() => pings.forEach((p) => p.proc.kill()));
  // the action starts once every ping has its first answer
  await until('a first answer to each ping', () => pings.every((p) => / time=/.test(p.out())), 15_000);
  await action();
  const covered = pings.every((p) => p.proc.exitCode === null);
  await Promise.all(pings.map((p) => p.done));
  const after = await tcp.echo('after');
  tcp.close();
  return {
    pings: pings.map((p) => `${p.what}: ${/\d+ packets transmitted.*/.exec(p.out())?.[0] ?? p.out()}`),
    covered,
    tcp: after,
  };
}

// ---------------------------------------------------------------- the reboot

export type StartOrder = 'tsnet-first' | 'together' | 'dockerd-first';

export interface RebootOptions {
  /** kills tsnet as a power-off does; nothing for a managed plugin (it dies with containerd) */
  killTsnet: () => Promise<void>;
  /** starts tsnet; resolves when it answers. A managed plugin: nothing (dockerd starts it) */
  startTsnet: () => Promise<void>;
  /** starts dockerd; resolves when it answers (default: the harness's, as before) */
  startDockerd?: () => Promise<void>;
  order: StartOrder;
  /** 'dockerd-first': how long after dockerd tsnet starts (default 20 s) */
  lateMs?: number;
  /** the daemon instance whose links, tables and rules in Docker's chains go (its plugin name) */
  instance: string;
  /** its plugin socket, which goes with /run */
  socketPath: string;
  /** addresses whose conntrack entries go */
  addresses: string[];
}

/** pid, parent pid and command name of every process. */
function processes(): { pid: number; ppid: number; comm: string; cmdline: string }[] {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (rest[0] === 'Z') continue;
      out.push({ pid: Number(e), ppid: Number(rest[1]), comm, cmdline: readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The processes a power-off of Docker takes: the harness's dockerd, its containerd, the shims
 * of its containerd and everything below them (containers, managed plugins).
 */
export function dockerProcesses(): number[] {
  const dockerd = harnessDockerd();
  if (!dockerd) throw new Error('the reboot simulation needs the dockerd the harness started (DOCKERD_MARKER)');
  const all = processes();
  const roots = all.filter((p) => p.pid === dockerd.pid || (p.comm === 'containerd' && p.ppid === dockerd.pid) || (p.comm.startsWith('containerd-shim') && p.cmdline.includes('/var/run/docker/containerd/')));
  const found = new Set(roots.map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.add(p.pid);
        grew = true;
      }
    }
  }
  return [...found];
}

async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  const alive = () => {
    const live = new Set(processes().map((p) => p.pid));
    return pids.filter((p) => live.has(p));
  };
  await until(`the end of ${pids.length} Docker processes`, () => alive().length === 0, 15_000);
}

/** Mount points under `roots`, deepest first. */
function mountsUnder(roots: string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p) => p && roots.some((r) => p.startsWith(r)));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** What a reboot removes: see the header. The machine's processes are dead already. */
export function forgetWhatRebootForgets(opts: Pick<RebootOptions, 'instance' | 'socketPath' | 'addresses'>): void {
  for (const m of mountsUnder(['/var/lib/docker/', '/run/docker/', '/var/run/docker/'])) run('umount', ['-l', m]);
  // /run is a tmpfs at boot: Docker's exec-root, its socket and pid file, this daemon's socket;
  // other daemons' plugin sockets stay (they are not part of this test)
  for (const e of existsSync('/run/docker') ? readdirSync('/run/docker') : []) {
    if (e !== 'plugins') rmSync(join('/run/docker', e), { recursive: true, force: true });
  }
  for (const e of existsSync('/run/docker/plugins') ? readdirSync('/run/docker/plugins') : []) {
    if (!e.endsWith('.sock')) rmSync(join('/run/docker/plugins', e), { recursive: true, force: true });
  }
  for (const f of [opts.socketPath, '/run/docker.sock', '/run/docker.pid']) rmSync(f, { force: true });
  // the kernel: the daemon's links, tables and rules in Docker's chains; Docker's own tables and docker0
  removeDaemonKernelState(opts.instance);
  for (const [family, table] of [['ip', 'filter'], ['ip', 'nat'], ['ip6', 'filter'], ['ip6', 'nat']]) run('nft', ['delete', 'table', family, table]);
  run('ip', ['link', 'del', 'docker0']);
  for (const a of opts.addresses) {
    run('conntrack', ['-D', '-s', a]);
    run('conntrack', ['-D', '-d', a]);
  }
  forwardingOffAsAtBoot();
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
/** ip_forward as the file found it before its first simulated reboot; put back by its clean-ups */
let forwardingFound: string | undefined;

/** net.ipv4.ip_forward is 0 after a reboot (the kernel's default); the value found first is put back after the file. */
function forwardingOffAsAtBoot(): void {
  if (forwardingFound === undefined) {
    const found = readFileSync(IP_FORWARD, 'utf8').trim();
    forwardingFound = found;
    onCleanup(() => {
      writeFileSync(IP_FORWARD, found);
      forwardingFound = undefined;
    });
  }
  writeFileSync(IP_FORWARD, '0');
}

/**
 * A host reboot: Docker and tsnet die, what a reboot forgets goes, then they start again in
 * `order`. Resolves when both answer; the containers' return is containersComeBack's to check.
 */
export async function simulateReboot(opts: RebootOptions): Promise<void> {
  const pids = dockerProcesses();
  await Promise.all([opts.killTsnet(), killAll(pids)]);
  forgetWhatRebootForgets(opts);
  const startDockerd_ = opts.startDockerd ?? (() => startDockerd().then(() => void (lastFlags = [])));
  switch (opts.order) {
    case 'tsnet-first':
      await opts.startTsnet();
      await startDockerd_();
      break;
    case 'together':
      await Promise.all([opts.startTsnet(), startDockerd_()]);
      break;
    case 'dockerd-first': {
      const dockerd = startDockerd_();
      await wait(opts.lateMs ?? 20_000);
      await Promise.all([dockerd, opts.startTsnet()]);
      break;
    }
  }
}
