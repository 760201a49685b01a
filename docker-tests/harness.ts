// What the end-to-end tests need around the real Docker engine: a running dockerd, a busybox
// image (no registry is reachable: built with `docker import`), a tsnet daemon of their own, and
// cleanups that run even when a test fails.
//
// Typical test file:
//   beforeAll(async () => { await ensureDockerd(); await ensureBusyboxImage(); daemon = await startTsnetDaemon({ stateDir }); onCleanup(() => daemon.stop()); });
//   afterAll(runCleanups);
// dockerd, when the harness had to start it, is stopped once at the end of the docker project by
// docker-tests/global-setup.ts (stopDockerdIfStarted).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

/** The repository root, from the sources (tests) or from dist/ (benchmarks) alike. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error('cannot find the tsnet repository root');
    dir = dirname(dir);
  }
  return dir;
}

const REPO = repoRoot();

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

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
  const r = spawnSync(bin, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 });
  return { stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), code: r.status ?? 1 };
}

/** docker(), throwing with the command and its output when it fails; returns trimmed stdout. */
export function dockerOk(args: string[]): string {
  const r = docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------- cleanups

const cleanups: (() => unknown)[] = [];

/** Registers an undo; runCleanups runs them newest first, each on its own. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** For afterAll: runs every registered undo, newest first; a failing one does not stop the rest. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      console.warn('cleanup step failed:', err);
    }
  }
}

/** Short and unique: names end up in interface names, which have 15 characters. */
export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(2).toString('hex')}`;
}

function wait(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
  const logPath = join(mkdtempSync(join(tmpdir(), 'tsnet-dockerd-')), 'dockerd.log');
  const log = openSync(logPath, 'a');
  const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
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

/** busybox applet names, from the static busybox itself. */
function busyboxApplets(busybox: string): string[] {
  const r = spawnSync(busybox, ['--list'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${busybox} --list failed: ${r.stderr || r.error}`);
  return r.stdout.split('\n').filter((a) => a && a !== 'busybox');
}

/**
 * A tiny image with busybox and its applets in /bin, made with `docker import` (no registry is
 * reachable). Skipped when the image exists.
 */
export async function ensureBusyboxImage(tag = 'tsnet-busybox:latest'): Promise<void> {
  if (docker(['image', 'inspect', tag]).code === 0) return;
  const busybox = '/bin/busybox';
  if (!existsSync(busybox)) throw new Error(`${busybox} is missing: install busybox-static (make test does)`);
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-busybox-rootfs-'));
  try {
    mkdirSync(join(dir, 'bin'));
    copyFileSync(busybox, join(dir, 'bin', 'busybox'));
    for (const applet of busyboxApplets(busybox)) symlinkSync('busybox', join(dir, 'bin', applet));
    for (const d of ['etc', 'tmp', 'root']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\n');
    const tarPath = join(dir, '..', `${dir.split('/').pop()}.tar`);
    try {
      const tar = spawnSync('tar', ['-C', dir, '-cf', tarPath, '.'], { encoding: 'utf8' });
      if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
      const imp = docker(['import', '--change', 'CMD ["/bin/sh"]', tarPath, tag]);
      if (imp.code !== 0) throw new Error(`docker import failed: ${imp.stderr}`);
    } finally {
      rmSync(tarPath, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the tsnet daemon under test

/** The plugin the tests register: "tsnet-e2e", so a tsnet started by `make up` is left alone. */
export const TEST_PLUGIN_SOCKET = '/run/docker/plugins/tsnet-e2e.sock';

export interface TsnetDaemon {
  readonly logPath: string;
  readonly socketPath: string;
  readonly stateDir: string;
  /** pid of the running daemon, undefined when stopped */
  readonly pid: number | undefined;
  /** SIGTERM and wait for it to exit */
  stop(): Promise<void>;
  /** SIGKILL and wait: a crash, for recovery tests */
  kill9(): Promise<void>;
  /** Starts it again with the same state (stopping it first if it runs). */
  restart(): Promise<void>;
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
export async function startTsnetDaemon(opts: { stateDir: string; socketPath?: string }): Promise<TsnetDaemon> {
  const socketPath = opts.socketPath ?? TEST_PLUGIN_SOCKET;
  const { stateDir } = opts;
  mkdirSync(stateDir, { recursive: true });
  const logPath = join(stateDir, 'tsnet.log');
  const outPath = join(stateDir, 'daemon.out');
  const main = join(REPO, 'dist/cli/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run make build`);
  let child: ChildProcess | undefined;

  const exited = (c: ChildProcess) =>
    new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

  const start = async () => {
    const out = openSync(outPath, 'a');
    const c = spawn('node', [main, 'serve', '--state-dir', stateDir, '--socket', socketPath, '--log', logPath], {
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

  const signal = async (sig: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = exited(c);
    c.kill(sig);
    await done;
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
      await signal('SIGTERM');
      await start();
    },
  };
}
