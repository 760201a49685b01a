// What the end-to-end tests need around the real Docker engine: a running dockerd, a busybox
// image (no registry is reachable: built with `docker import`), a tsnet daemon of their own,
// cleanups that run even when a test fails, and at the end a look at what the daemon still holds.
//
// Typical test file:
//   let e2e: E2eDaemon;
//   beforeAll(async () => { e2e = await startE2e('tsnet-e2e-x'); });   // dockerd, image, daemon
//   afterAll(() => finishE2e(e2e, [{ proto: 'tcp', port: 8080 }]));     // cleanups, then leak checks
//   ... network(...) / docker run ... each followed by onCleanup(() => docker(['rm', '-f', name]))
// dockerd, when the harness had to start it, is stopped once at the end of the docker project by
// docker-tests/global-setup.ts (stopDockerdIfStarted).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildBusyboxRootfs } from '../lab/busybox-image.js';
import { onCleanup, removeDaemonKernelState, repoRoot, run, runCleanups, uniqueName, wait, type CommandResult } from '../test-support/commands.js';
import { daemonStatus, internalErrors, leftoversOf, type DaemonStatus, type HostPort } from '../test-support/daemon-leftovers.js';

// commands, cleanups and names are shared with the netns harness (test-support/)
export { onCleanup, runCleanups, uniqueName, type CommandResult };

const REPO = repoRoot();

/**
 * The docker CLI to use. `/usr/local/bin/docker` may be a newer client than Debian's 20.10
 * engine; API version negotiation normally handles that, and ensureDockerd falls back to
 * Debian's own `/usr/bin/docker` when the first one on PATH cannot talk to the engine.
 */
const DOCKER_CANDIDATES = ['docker', '/usr/bin/docker'];
let dockerBin = DOCKER_CANDIDATES[0];

/** Runs the docker CLI (execFile, no shell) and waits for it; never throws. */
export function docker(args: string[], opts: { input?: string; timeoutMs?: number } = {}): CommandResult {
  return runDocker(dockerBin, args, opts);
}

function runDocker(bin: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): CommandResult {
  return run(bin, args, { input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000 });
}

/** docker(), throwing with the command and its output when it fails; returns trimmed stdout. */
export function dockerOk(args: string[]): string {
  const r = docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------- dockerd

/**
 * Where ensureDockerd notes the pid of a dockerd it started. A file, not a variable: every test
 * file runs in its own worker, and the one that stops dockerd (global-setup's teardown) is yet
 * another context.
 */
export const DOCKERD_MARKER = process.env.TSNET_TEST_DOCKERD_MARKER || '/run/tsnet-tests/dockerd.pid';

/** True when an engine answers `docker version`; picks the first CLI that can talk to it. */
function dockerAnswers(): boolean {
  for (const bin of DOCKER_CANDIDATES) {
    if (bin !== 'docker' && !existsSync(bin)) continue;
    if (runDocker(bin, ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 }).code === 0) {
      dockerBin = bin;
      return true;
    }
  }
  return false;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isDockerd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'dockerd';
  } catch {
    return false;
  }
}

/**
 * Starts dockerd in the background when none answers, and waits until it does. It stays up for
 * the rest of the run (later test files use it too); stopDockerdIfStarted() stops it at the end,
 * and only when it was started here. Debian's engine speaks API 1.41; a newer docker CLI
 * negotiates down to it.
 */
export async function ensureDockerd(): Promise<void> {
  if (dockerAnswers()) return;
  await startDockerd();
}

/**
 * Starts `dockerd FLAGS` in the background as ensureDockerd does (its pid and log in
 * DOCKERD_MARKER, so stopDockerdIfStarted stops it at the end) and waits until it answers. For
 * tests that stop the harness's dockerd and start it again (survival.test.ts).
 */
export async function startDockerd(flags: string[] = []): Promise<void> {
  const logPath = join(mkdtempSync(join(tmpdir(), 'tsnet-dockerd-')), 'dockerd.log');
  const log = openSync(logPath, 'a');
  const child = spawn('dockerd', flags, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  const spawned = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!spawned || child.pid === undefined) throw new Error('cannot start dockerd: is docker.io installed? (make test installs it)');
  child.unref();
  mkdirSync(dirname(DOCKERD_MARKER), { recursive: true });
  writeFileSync(DOCKERD_MARKER, `${child.pid}\n${logPath}\n`);
  for (let i = 0; i < 120; i++) {
    await wait(500);
    if (dockerAnswers()) return;
    if (child.exitCode !== null || !alive(child.pid)) break;
  }
  let tail = '';
  try {
    tail = readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    // no log
  }
  throw new Error(`dockerd did not become ready (log ${logPath}):\n${tail}`);
}

/** The dockerd the harness started (DOCKERD_MARKER), when it still runs; undefined otherwise. */
export function harnessDockerd(): { pid: number; logPath?: string } | undefined {
  try {
    const [first, second] = readFileSync(DOCKERD_MARKER, 'utf8').split('\n');
    const pid = Number(first);
    return Number.isInteger(pid) && pid > 0 && isDockerd(pid) ? { pid, logPath: second || undefined } : undefined;
  } catch {
    return undefined;
  }
}

/** Stops the dockerd that ensureDockerd started, if it did; a dockerd found running is left alone. */
export async function stopDockerdIfStarted(): Promise<void> {
  let pid: number;
  let logPath: string | undefined;
  try {
    const [first, second] = readFileSync(DOCKERD_MARKER, 'utf8').split('\n');
    pid = Number(first);
    logPath = second || undefined;
  } catch {
    return;
  }
  let stopped = true;
  // the pid is checked to still be a dockerd: a stale marker must not kill another process
  if (Number.isInteger(pid) && pid > 0 && isDockerd(pid)) {
    process.kill(pid, 'SIGTERM');
    // dockerd stops its containers (10 s each at most, in parallel) and its containerd
    for (let i = 0; i < 600 && alive(pid); i++) await wait(100);
    if (alive(pid)) {
      console.warn(`dockerd (pid ${pid}) did not stop within 60 s of SIGTERM; killing it (its log: ${logPath})`);
      process.kill(pid, 'SIGKILL');
      stopped = false;
    }
  }
  rmSync(DOCKERD_MARKER, { force: true });
  // the log is kept only when dockerd had to be killed
  if (stopped && logPath?.includes('tsnet-dockerd-')) rmSync(dirname(logPath), { recursive: true, force: true });
}

// ---------------------------------------------------------------- the image

/**
 * A tiny image with busybox and its applets in /bin, made with `docker import` (no registry is
 * reachable; the root file system is lab/busybox-image.ts's, which the lab's engines import too).
 * Skipped when the image exists.
 */
export async function ensureBusyboxImage(tag = 'tsnet-busybox:latest'): Promise<void> {
  if (docker(['image', 'inspect', tag]).code === 0) return;
  const { tar, remove } = buildBusyboxRootfs();
  try {
    const imp = docker(['import', '--change', 'CMD ["/bin/sh"]', tar, tag]);
    if (imp.code !== 0) throw new Error(`docker import failed: ${imp.stderr}`);
  } finally {
    remove();
  }
}

// ---------------------------------------------------------------- the tsnet daemon under test

/** The plugin the tests register: "tsnet-e2e", so a tsnet started by `make up` is left alone. */
export const TEST_PLUGIN_SOCKET = '/run/docker/plugins/tsnet-e2e.sock';

/** How the daemon's process ended; `hung`: it did not exit on its own and was killed. */
export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  hung: boolean;
}

/** How long a daemon may take to exit after a signal before it counts as hung and is killed. */
const EXIT_GRACE_MS = 30_000;

export interface TsnetDaemon {
  readonly logPath: string;
  readonly socketPath: string;
  readonly stateDir: string;
  /** pid of the running daemon, undefined when stopped */
  readonly pid: number | undefined;
  /** SIGTERM and wait for it to exit (clean: code 0, not hung) */
  stop(): Promise<DaemonExit>;
  /** SIGKILL and wait: a crash, for recovery tests */
  kill9(): Promise<DaemonExit>;
  /** Starts it again with the same state (stopping it first if it runs); how the stop went. */
  restart(): Promise<DaemonExit>;
}

/** True when POST /Plugin.Activate answers 200 on the socket. */
export function pluginAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/Plugin.Activate', method: 'POST', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * Spawns `node dist/cli/main.js serve --state-dir DIR --socket PATH --log DIR/tsnet.log` (the
 * build must be current: make test builds first) and waits until the socket answers.
 */
export async function startTsnetDaemon(opts: {
  stateDir: string;
  socketPath?: string;
  /** network namespace to run it in (ip netns exec; same pid) */
  netns?: string;
  /** the build's cli/main.js to run: another copy of the build (an upgrade); dist/ by default */
  main?: string;
  /** more arguments for serve, e.g. ['--metrics', '127.0.0.1:PORT'] */
  args?: string[];
}): Promise<TsnetDaemon> {
  const socketPath = opts.socketPath ?? TEST_PLUGIN_SOCKET;
  const { stateDir } = opts;
  mkdirSync(stateDir, { recursive: true });
  const logPath = join(stateDir, 'tsnet.log');
  const outPath = join(stateDir, 'daemon.out');
  const main = opts.main ?? join(REPO, 'dist/cli/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run make build`);
  let child: ChildProcess | undefined;

  const exited = (c: ChildProcess) =>
    new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));
  const exitOf = (c: ChildProcess, hung: boolean): DaemonExit => ({ code: c.exitCode, signal: c.signalCode, hung });

  const start = async () => {
    const out = openSync(outPath, 'a');
    const argv = ['node', main, 'serve', '--state-dir', stateDir, '--socket', socketPath, '--log', logPath, ...(opts.args ?? [])];
    const c = spawn(opts.netns ? 'ip' : 'node', opts.netns ? ['netns', 'exec', opts.netns, ...argv] : argv.slice(1), {
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child = c;
    for (let i = 0; i < 150; i++) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`tsnet daemon exited (${c.exitCode ?? c.signalCode}); ${outPath}:\n${tail(outPath)}\n${logPath}:\n${tail(logPath)}`);
      }
      if (await pluginAnswers(socketPath)) return;
      await wait(100);
    }
    c.kill('SIGKILL');
    throw new Error(`tsnet daemon did not answer on ${socketPath} within 15 s; ${outPath}:\n${tail(outPath)}`);
  };

  const signal = async (sig: NodeJS.Signals): Promise<DaemonExit> => {
    const c = child;
    if (!c) return { code: null, signal: null, hung: false };
    if (c.exitCode !== null || c.signalCode !== null) return exitOf(c, false);
    const done = exited(c);
    c.kill(sig);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), EXIT_GRACE_MS)));
    const inTime = await Promise.race([done.then(() => true), late]);
    clearTimeout(timer);
    if (!inTime) {
      c.kill('SIGKILL');
      await done;
    }
    return exitOf(c, !inTime);
  };

  await start();
  return {
    logPath,
    socketPath,
    stateDir,
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    stop: () => signal('SIGTERM'),
    kill9: () => signal('SIGKILL'),
    restart: async () => {
      const exit = await signal('SIGTERM');
      await start();
      return exit;
    },
  };
}

/** A stop that went as it should: exit code 0, by itself. */
export function describeExit(exit: DaemonExit): string {
  if (exit.hung) return `did not exit within ${EXIT_GRACE_MS / 1000} s and was killed`;
  return exit.code === 0 ? 'exited with 0' : `exited with ${exit.code ?? exit.signal}`;
}

// ---------------------------------------------------------------- one daemon per test file

/** The plugin name of the daemon under test, and its nftables table (daemon/paths.ts instanceOf). */
export const E2E_PLUGIN = 'tsnet-e2e';
export const E2E_TABLE = 'tsnet_e2e';
export const BUSYBOX_IMAGE = 'tsnet-busybox:latest';

export interface E2eDaemon {
  readonly daemon: TsnetDaemon;
  readonly stateDir: string;
  /** runs the tsnet CLI on this daemon's state; never throws */
  tsnet(args: string[]): CommandResult;
  status(): DaemonStatus;
}

/**
 * What every Docker test file starts with: dockerd, the busybox image, and a daemon under test
 * registered as "tsnet-e2e" with a state folder of its own. finishE2e belongs in afterAll.
 */
export async function startE2e(prefix: string, opts: { /** more arguments for serve */ args?: string[] } = {}): Promise<E2eDaemon> {
  await ensureDockerd();
  await ensureBusyboxImage(BUSYBOX_IMAGE);
  const stateDir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  try {
    const daemon = await startTsnetDaemon({ stateDir, socketPath: TEST_PLUGIN_SOCKET, args: opts.args });
    return {
      daemon,
      stateDir,
      tsnet: (args) => run('node', [join(REPO, 'dist/cli/main.js'), ...args, '--state-dir', stateDir]),
      status: () => daemonStatus(stateDir),
    };
  } catch (err) {
    rmSync(stateDir, { recursive: true, force: true });
    throw err;
  }
}

/** The host ports the daemon's state says it holds (none when there is no state yet). */
function heldPorts(stateDir: string): HostPort[] {
  try {
    return daemonStatus(stateDir).ports.map((p) => ({ proto: p.proto === 'udp' ? 'udp' : 'tcp', port: p.hostPort, host: p.hostIp || undefined }));
  } catch {
    return [];
  }
}

/**
 * For afterAll: removes what the tests registered (containers, networks, namespaces), then
 * requires that the daemon let go of everything (test-support/daemon-leftovers.ts: table
 * elements, tagged links, status rows, the host ports it held at the end and `ports`), that it
 * exits with 0 on SIGTERM by itself, and that its log has no internal error. Only then are its
 * table and state removed (the state, with the log, is kept when something was wrong). Throws
 * listing every problem.
 */
export async function finishE2e(e2e: E2eDaemon | undefined, ports: HostPort[] = []): Promise<void> {
  const held = e2e ? heldPorts(e2e.stateDir) : [];
  await runCleanups();
  if (!e2e) return;
  const problems: string[] = [];
  try {
    if (e2e.daemon.pid === undefined) problems.push('the daemon was not running at the end of the file');
    problems.push(...(await leftoversOf({ instance: E2E_PLUGIN, table: E2E_TABLE, stateDir: e2e.stateDir }, [...ports, ...held])));
  } catch (err) {
    problems.push(`could not look for leftovers: ${String(err)}`);
  } finally {
    const exit = await e2e.daemon.stop();
    if (exit.code !== 0 || exit.hung) problems.push(`on SIGTERM the daemon ${describeExit(exit)}`);
    problems.push(...internalErrors(e2e.daemon.logPath).map((l) => `log: ${l}`));
    removeDaemonKernelState(E2E_PLUGIN, E2E_TABLE);
    if (problems.length === 0) rmSync(e2e.stateDir, { recursive: true, force: true });
  }
  if (problems.length > 0) throw new Error(`the daemon under test (state and log kept in ${e2e.stateDir}):\n  ${problems.join('\n  ')}`);
}
