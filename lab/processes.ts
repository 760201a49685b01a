// The lab's processes and namespaces: starting etcd and the hosts' tsnet daemons detached inside
// their namespaces, telling whether they live, stopping them, and making, plugging and removing the
// namespaces themselves. The command lines are pure (etcdArgs, daemonArgs); the rest is the thin
// layer over `ip netns`, netlink and signals that lab.ts orchestrates.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '../core/errors.js';
import { bareIp } from '../core/text.js';
import { Netlink } from '../native/netlink/netlink.js';
import { closeFd, openNetnsFd } from '../native/netns.js';
import type { LabHost, LabState } from './state.js';

/** the underlay bridge, in the underlay's namespace */
const UNDERLAY_BRIDGE = 'ul0';

// ---------------------------------------------------------------- namespaces

/** Where `ip netns` keeps a named namespace (the SandboxKey dockerd would pass). */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function listNetns(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter(Boolean);
  } catch {
    return [];
  }
}

export function addNetns(name: string): void {
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function delNetns(name: string): void {
  if (!existsSync(netnsPath(name))) return;
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    // already gone
  }
}

export function inNetns<T>(netns: string, fn: (nl: Netlink) => T): T {
  const nl = Netlink.openInNetns(netnsPath(netns));
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

/** The underlay: one bridge in a namespace of its own; every host and etcd is a port of it. */
export function makeUnderlay(underlayNs: string): void {
  addNetns(underlayNs);
  inNetns(underlayNs, (nl) => {
    nl.setLink('lo', { up: true });
    nl.createLink({ kind: 'bridge', name: UNDERLAY_BRIDGE });
    nl.setLink(UNDERLAY_BRIDGE, { up: true });
  });
}

/** Makes namespace netns with eth0 at cidr, the other end of its veth a port `port` of the underlay bridge. */
export function plugIntoUnderlay(underlayNs: string, netns: string, port: string, cidr: string): void {
  addNetns(netns);
  const fd = openNetnsFd(netnsPath(netns));
  try {
    inNetns(underlayNs, (nl) => {
      nl.createLink({ kind: 'veth', name: port, peerName: 'eth0', peerNetnsFd: fd });
      nl.setLink(port, { master: UNDERLAY_BRIDGE, up: true });
    });
  } finally {
    closeFd(fd);
  }
  inNetns(netns, (nl) => {
    nl.setLink('lo', { up: true });
    nl.addAddress('eth0', cidr);
    nl.setLink('eth0', { up: true });
  });
}

// ---------------------------------------------------------------- etcd and the daemons

/** One etcd member of the lab (state.ts's etcdOf says where). */
export interface EtcdSpec {
  /** member name */
  name: string;
  netns: string;
  dataDir: string;
  /** the client address, ADDRESS:PORT */
  endpoint: string;
  /** the peer URL, http://ADDRESS:PORT */
  peer: string;
  /** every member, NAME=PEER_URL,... (read only at the first start: a restart keeps its data dir's) */
  cluster: string;
  log: string;
}

/** etcd's command line: clients and peers on the member's underlay address. */
export function etcdArgs(e: EtcdSpec): string[] {
  const client = `http://${e.endpoint}`;
  return [
    '--name', e.name,
    '--data-dir', e.dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', e.peer,
    '--initial-advertise-peer-urls', e.peer,
    '--initial-cluster', e.cluster,
    '--initial-cluster-state', 'new',
    '--log-level', 'warn',
  ];
}

export function startEtcd(e: EtcdSpec, program: string): number {
  return spawnDetached(e.netns, program, etcdArgs(e), e.log);
}

/** Until etcd answers its health check; fails at once when the process pid is gone, or after 20 s. */
export async function waitForEtcd(e: EtcdSpec, pid: number | undefined): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      execFileSync('ip', ['netns', 'exec', e.netns, 'etcdctl', '--endpoints', e.endpoint, '--dial-timeout', '1s', 'endpoint', 'health'], {
        stdio: 'ignore',
        env: { ...process.env, ETCDCTL_API: '3' },
      });
      return;
    } catch {
      if (!alive(pid)) throw withLog(new UnavailableError('etcd exited at start'), e.log);
      if (Date.now() > deadline) throw withLog(new UnavailableError('etcd did not become healthy within 20 s'), e.log);
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

/** `tsnet serve` of host h: its own socket, state and log, the lab's store, its underlay address as VTEP. */
export function daemonArgs(s: LabState, h: LabHost): string[] {
  return [
    'serve',
    '--socket', h.socket,
    '--state-dir', h.stateDir,
    '--log', h.log,
    '--store', s.store,
    '--vtep', bareIp(h.underlay),
    '--host-name', h.name,
    '--lease-ttl', String(s.leaseTtl),
    // with an engine: answer its containers' questions for other hosts' names (lab/docker-lab.ts)
    ...(h.docker ? ['--dns', bareIp(h.underlay)] : []),
  ];
}

export function startDaemon(s: LabState, h: LabHost): number {
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  mkdirSync(h.stateDir, { recursive: true });
  return spawnDetached(h.netns, process.execPath, [main, ...daemonArgs(s, h)], h.log, h.docker ? { DOCKER_SOCKET: h.docker.socket } : {});
}

function spawnDetached(netns: string, cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): number {
  const out = openSync(logFile, 'a');
  try {
    // nsenter, not `ip netns exec`: no mount namespace of its own, so the namespaces a daemon
    // names (an overlay network's, /run/netns) are seen by all and outlive the daemon
    const child = spawn('nsenter', [`--net=${netnsPath(netns)}`, '--', cmd, ...args], { detached: true, stdio: ['ignore', out, out], env: { ...process.env, ...env } });
    child.unref();
    if (child.pid === undefined) throw new UnavailableError(`could not start ${cmd}`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

export function findProgram(name: string, pkg: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new UnavailableError(`${name} is not installed: apt-get install ${pkg} (make up installs it)`);
}

/** err with the last lines of the log of the process that failed appended. */
export function withLog(err: unknown, logFile: string): Error {
  let tail = '';
  try {
    tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    // no log
  }
  const e = err instanceof Error ? err : new Error(String(err));
  e.message = `${e.message}${tail ? `\n--- last lines of ${logFile}:\n${tail}` : ''}`;
  return e;
}

// ---------------------------------------------------------------- liveness and signals

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL, as a crash would; waits up to 5 s for the process to be gone. */
export async function killNow(pid: number): Promise<void> {
  signal(pid, 'SIGKILL');
  await untilDead([pid], 5_000, 20);
}

/** SIGTERM to every live one, SIGKILL to those still there after 5 s. */
export async function stopAll(pids: (number | undefined)[]): Promise<void> {
  const live = pids.filter((p): p is number => alive(p));
  for (const p of live) signal(p, 'SIGTERM');
  await untilDead(live, 5_000, 50);
  for (const p of live) if (alive(p)) signal(p, 'SIGKILL');
  await untilDead(live, 5_000, 20);
}

async function untilDead(pids: number[], timeoutMs: number, pollMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, pollMs));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    // `ip netns exec` execs the program, so the pid is the daemon's (or etcd's) own
    process.kill(pid, sig);
  } catch {
    // gone
  }
}
