// What the end-to-end tests need around the real Docker engine: a running dockerd, a busybox
// image (no registry is reachable: built with `docker import`), a tsnet daemon of their own, and
// cleanups that run even when a test fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, rmSync, mkdirSync, symlinkSync, copyFileSync, closeSync } from 'node:fs';
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

/** Runs the docker CLI; never throws. */
export function docker(args: string[]): CommandResult {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? (r.error ? String(r.error) : ''), code: r.status ?? 1 };
}

// ---------------------------------------------------------------- cleanups

const cleanups: (() => unknown)[] = [];

/** Registers an undo; runCleanups runs them newest first, each on its own. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

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

// ---------------------------------------------------------------- dockerd and the image

function wait(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Starts dockerd when none answers. It is left running for the rest of the run (and for later
 * runs): stopping it would remove the image and networks other test files still use, and CI
 * machines are fresh each time.
 */
export async function ensureDockerd(): Promise<void> {
  if (docker(['info']).code === 0) return;
  const log = openSync(join(tmpdir(), `dockerd-tests-${process.pid}.log`), 'a');
  const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  closeSync(log);
  for (let i = 0; i < 120; i++) {
    await wait(500);
    if (docker(['info']).code === 0) return;
  }
  throw new Error('dockerd did not become ready within 60 s');
}

export async function ensureBusyboxImage(tag = 'tsnet-busybox:latest'): Promise<void> {
  if (docker(['image', 'inspect', tag]).code === 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'busybox-rootfs-'));
  try {
    mkdirSync(join(dir, 'bin'));
    copyFileSync('/bin/busybox', join(dir, 'bin', 'busybox'));
    const list = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const applet of list) if (applet !== 'busybox') symlinkSync('busybox', join(dir, 'bin', applet));
    const tar = spawnSync('sh', ['-c', `tar -C '${dir}' -c . | docker import - ${tag}`], { encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`docker import failed: ${tar.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the tsnet daemon under test

export interface TsnetDaemon {
  readonly logPath: string;
  stop(): Promise<void>;
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

export async function startTsnetDaemon(opts: { stateDir: string; socketPath: string }): Promise<TsnetDaemon> {
  const logPath = join(opts.stateDir, 'tsnet.log');
  const outPath = join(opts.stateDir, 'daemon.out');
  let child: ChildProcess | undefined;

  const exited = (c: ChildProcess) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

  const start = async () => {
    const out = openSync(outPath, 'a');
    child = spawn('node', [join(REPO, 'dist/cli/main.js'), 'serve', '--state-dir', opts.stateDir, '--socket', opts.socketPath, '--log', logPath], {
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    for (let i = 0; i < 150; i++) {
      if (child.exitCode !== null) throw new Error(`tsnet daemon exited with ${child.exitCode}; see ${outPath} and ${logPath}`);
      if (await pluginAnswers(opts.socketPath)) return;
      await wait(100);
    }
    throw new Error(`tsnet daemon did not answer on ${opts.socketPath} within 15 s; see ${outPath}`);
  };

  const signal = async (sig: NodeJS.Signals) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(sig);
    await exited(c);
  };

  await start();
  return {
    logPath,
    stop: () => signal('SIGTERM'),
    kill9: () => signal('SIGKILL'),
    restart: async () => {
      await signal('SIGTERM');
      await start();
    },
  };
}
