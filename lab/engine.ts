// A Docker engine of its own for one lab host: dockerd (and the containerd it supervises) in the
// host's network namespace and in a mount namespace of its own, where a private directory is
// bound over /run/docker/plugins (dockerd looks for plugin sockets only there) holds tsnet.sock,
// a link to the host's tsnet daemon's socket. Data root, exec root, pid file, API socket, config
// file and containerd's run directory are the host's own, so engines never see each other.
//
// A reusable unit: enginePaths (pure) says where everything is, startEngine / stopEngine /
// killEngine run and end it (killEngine is a crash or a power cut: SIGKILL to every process of
// the engine, its containers included), dockerCli runs the docker CLI against it. lab.ts records
// the pid and the mount namespace in the lab's state.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnavailableError } from '../core/errors.js';
import { buildBusyboxRootfs } from './busybox-image.js';

/** The plugin name tsnet has in every lab engine: `docker network create -d tsnet`. */
export const ENGINE_PLUGIN = 'tsnet';
/** The image every lab engine has, imported at start (no registry is reachable). */
export const ENGINE_IMAGE = 'tsnet-busybox:latest';
/** How long dockerd gives a container to stop at its own stop before it kills it. */
const SHUTDOWN_TIMEOUT_S = 2;

export interface EnginePaths {
  /** everything of the engine lives below this */
  dir: string;
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  /** the API socket (DOCKER_HOST=unix://...) */
  socket: string;
  /** bound over /run/docker/plugins in the engine's mount namespace */
  pluginDir: string;
  /** the name dockerd finds the tsnet daemon by: a link to its socket (lab/docker-lab.ts) */
  pluginSocket: string;
  /** bound over /run/containerd (containerd's shim sockets), so no engine sees another's */
  containerdRun: string;
  /** where /sys/fs/cgroup is kept while /sys is remounted for the network namespace */
  cgroupKeep: string;
  config: string;
  log: string;
}

/** The engine of the lab host whose state directory is hostDir. */
export function enginePaths(hostDir: string): EnginePaths {
  const dir = join(hostDir, 'engine');
  const pluginDir = join(dir, 'plugins');
  return {
    dir,
    dataRoot: join(dir, 'data'),
    execRoot: join(dir, 'exec'),
    pidfile: join(dir, 'dockerd.pid'),
    socket: join(dir, 'docker.sock'),
    pluginDir,
    pluginSocket: join(pluginDir, `${ENGINE_PLUGIN}.sock`),
    containerdRun: join(dir, 'containerd-run'),
    cgroupKeep: join(dir, 'cgroup'),
    config: join(dir, 'daemon.json'),
    log: join(dir, 'dockerd.log'),
  };
}

/** daemon.json of a lab engine: what `dns` its containers' embedded resolver forwards to, if any. */
export function engineConfig(dns: string[]): Record<string, unknown> {
  return dns.length > 0 ? { dns } : {};
}

export function dockerdArgs(p: EnginePaths): string[] {
  return [
    '--config-file', p.config,
    '--data-root', p.dataRoot,
    '--exec-root', p.execRoot,
    '--pidfile', p.pidfile,
    '-H', `unix://${p.socket}`,
    '--shutdown-timeout', String(SHUTDOWN_TIMEOUT_S),
  ];
}

/**
 * What runs inside the engine's fresh mount namespace before dockerd: /sys is mounted again so
 * that it shows the host's network namespace (as `ip netns exec` does), with the cgroup
 * hierarchies carried over; then the private plugin and containerd directories are bound where
 * dockerd and containerd look. Nothing propagates out of this namespace.
 */
export function engineScript(p: EnginePaths): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return [
    'set -e',
    `mount --rbind /sys/fs/cgroup ${q(p.cgroupKeep)}`,
    'mount -t sysfs sysfs /sys',
    `mount --rbind ${q(p.cgroupKeep)} /sys/fs/cgroup`,
    `umount -l ${q(p.cgroupKeep)}`,
    'mkdir -p /run/docker/plugins /run/containerd',
    `mount --bind ${q(p.pluginDir)} /run/docker/plugins`,
    `mount --bind ${q(p.containerdRun)} /run/containerd`,
    `exec dockerd ${dockerdArgs(p).map(q).join(' ')}`,
  ].join('\n');
}

/** A running engine: dockerd's pid and its mount namespace (which outlives a killed dockerd in its shims). */
export interface EngineProcess {
  pid: number;
  /** readlink of /proc/PID/ns/mnt, e.g. mnt:[4026532871] */
  mntNs: string;
  /** readlink of /proc/PID/ns/net: the host's; with mntNs it tells the engine's processes from any other */
  netNs: string;
}

/**
 * Starts the engine of a host whose network namespace is netns; dns goes to its daemon.json.
 * Returns once dockerd runs in its own mount namespace (not yet answering: waitEngine).
 */
export async function startEngine(p: EnginePaths, netns: string, dns: string[]): Promise<EngineProcess> {
  if (!existsSync('/usr/sbin/dockerd') && !existsSync('/usr/bin/dockerd')) throw new UnavailableError('dockerd is not installed: apt-get install docker.io');
  for (const d of [p.dir, p.dataRoot, p.execRoot, p.pluginDir, p.containerdRun, p.cgroupKeep]) mkdirSync(d, { recursive: true });
  writeFileSync(p.config, JSON.stringify(engineConfig(dns), null, 2) + '\n');
  const out = openSync(p.log, 'a');
  let pid: number | undefined;
  try {
    // not `ip netns exec`: it mounts a fresh /sys without the cgroup hierarchies dockerd needs
    const child = spawn('nsenter', [`--net=/run/netns/${netns}`, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', engineScript(p)], {
      detached: true,
      stdio: ['ignore', out, out],
    });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(out);
  }
  if (pid === undefined) throw new UnavailableError('could not start dockerd');
  // nsenter, unshare and sh each exec the next: the pid becomes dockerd's once the script has run
  const own = mntNsOf(process.pid);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ns = mntNsOf(pid);
    if (ns && ns !== own && commOf(pid) === 'dockerd') return { pid, mntNs: ns, netNs: netNsOf(pid) ?? '' };
    if (!ns) throw engineError(p, 'dockerd exited at start');
    if (Date.now() > deadline) throw engineError(p, 'dockerd did not start within 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Until the engine answers `docker version`; fails at once when dockerd is gone, or after timeoutMs. */
export async function waitEngine(p: EnginePaths, e: EngineProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (existsSync(p.socket) && dockerCli(p, ['version', '--format', '{{.Server.Version}}'], 5_000).code === 0) return;
    if (commOf(e.pid) !== 'dockerd') throw engineError(p, 'dockerd exited at start');
    if (Date.now() > deadline) throw engineError(p, `dockerd did not answer on ${p.socket} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Imports the lab's busybox image into the engine, unless it has it. */
export function importImage(p: EnginePaths, tag = ENGINE_IMAGE): void {
  if (dockerCli(p, ['image', 'inspect', tag]).code === 0) return;
  const { tar, remove } = buildBusyboxRootfs();
  try {
    const r = dockerCli(p, ['import', '--change', 'CMD ["/bin/sh"]', tar, tag], 120_000);
    if (r.code !== 0) throw engineError(p, `docker import of ${tag} failed: ${r.stderr.trim()}`);
  } finally {
    remove();
  }
}

/**
 * Stops the engine as a shutdown does: SIGTERM to dockerd, which stops its containers and its
 * containerd; whatever is still there after timeoutMs is killed (killEngine).
 */
export async function stopEngine(e: EngineProcess, timeoutMs = 30_000): Promise<void> {
  if (commOf(e.pid) === 'dockerd' && mntNsOf(e.pid) === e.mntNs) {
    try {
      process.kill(e.pid, 'SIGTERM');
    } catch {
      // gone
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && engineProcesses(e).length > 0) await new Promise((r) => setTimeout(r, 100));
  }
  await killEngine(e);
}

/**
 * SIGKILL to every process of the engine at once, as a power cut: dockerd, containerd, the shims
 * (all in its mount namespace) and the containers (the shims' children). Waits until none is left.
 */
export async function killEngine(e: EngineProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = engineProcesses(e);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (Date.now() > deadline) throw new UnavailableError(`processes of the engine survived SIGKILL: ${pids.join(' ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The processes in the engine's mount and network namespaces and all their descendants (the containers). */
export function engineProcesses(e: EngineProcess): number[] {
  const parentOf = new Map<number, number>();
  const members = new Set<number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readOr(`/proc/${pid}/stat`);
    // the parent is the second field after the command, which is in parentheses and may hold spaces
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parentOf.set(pid, ppid);
    if (mntNsOf(pid) === e.mntNs && netNsOf(pid) === e.netNs) members.add(pid);
  }
  if (members.size === 0) return [];
  const all = new Set(members);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (!all.has(pid) && all.has(ppid)) {
        all.add(pid);
        grew = true;
      }
    }
  }
  return [...all];
}

/** Removes what the engine kept on disk (its processes must be gone: stopEngine or killEngine first). */
export function removeEngineFiles(p: EnginePaths): void {
  rmSync(p.dir, { recursive: true, force: true });
}

/** The environment that points the docker CLI at this engine. */
export function engineEnv(p: EnginePaths): NodeJS.ProcessEnv {
  return { ...process.env, DOCKER_HOST: `unix://${p.socket}` };
}

/** Runs the docker CLI against the engine and waits; never throws. */
export function dockerCli(p: EnginePaths, args: string[], timeoutMs = 120_000): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(dockerBinary(), args, { encoding: 'utf8', env: engineEnv(p), timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** The docker CLI: the first on PATH (a newer client negotiates down to the engine's API). */
export function dockerBinary(): string {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) if (existsSync(join(dir, 'docker'))) return join(dir, 'docker');
  throw new UnavailableError('the docker CLI is not installed: apt-get install docker.io');
}

/** Resident memory of the engine's own processes (dockerd, containerd, shims), in KiB. */
export function engineRssKiB(e: EngineProcess): number {
  let total = 0;
  for (const pid of engineProcesses(e)) {
    if (mntNsOf(pid) !== e.mntNs) continue; // the containers' are theirs, not the engine's
    const m = /VmRSS:\s+(\d+)/.exec(readOr(`/proc/${pid}/status`));
    if (m) total += Number(m[1]);
  }
  return total;
}

function engineError(p: EnginePaths, message: string): UnavailableError {
  let tail = '';
  try {
    tail = readFileSync(p.log, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    // no log yet
  }
  return new UnavailableError(`${message}${tail ? `\n--- last lines of ${p.log}:\n${tail}` : ''}`);
}

function mntNsOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

function netNsOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

function commOf(pid: number): string {
  return readOr(`/proc/${pid}/comm`).trim();
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

// what lab.ts shows of an engine that is not running
export function engineRunning(e: EngineProcess | undefined): boolean {
  return !!e && commOf(e.pid) === 'dockerd' && mntNsOf(e.pid) === e.mntNs;
}
