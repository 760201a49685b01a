// What a lab is and the file that records it. The layout of lab NAME (every name carries the lab's,
// so labs coexist):
//   namespace tsl-NAME-ul     bridge ul0, the underlay (198.51.100.0/24)
//   namespace tsl-NAME-etcd   etcd at 198.51.100.2:2379 (with --etcd N: member K in tsl-NAME-etcdK
//                             at 198.51.100.(1+K), member 1 as here; peers talk on the underlay)
//   namespace tsl-NAME-hI     host hI at 198.51.100.(10+I), daemon socket /run/tsnet-lab/NAME/hI.sock
//   namespace tsl-NAME-c-C    container C, eth0 on the overlay NAME (10.77.0.0/24 unless given)
// What exists is written to /run/tsnet-lab/NAME/state.json step by step, so `lab down` removes
// whatever an interrupted `lab up` had made; commands that change it (attaches on several hosts at
// once) read-modify-write it under a lock. The layout and the changes are pure functions of the
// state; readState, saveState and updateState are the only file I/O.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, NotFoundError, UserError } from '../core/errors.js';
import { alive, type EtcdSpec } from './processes.js';
import { holderOf, tryLockFile, type FileLock } from '../native/flock.js';

export const LAB_ROOT = process.env.TSNET_LAB_DIR || '/run/tsnet-lab';
const UNDERLAY_PREFIX = '198.51.100';
const UNDERLAY_LEN = 24;
const ETCD_PORT = 2379;
const ETCD_PEER_PORT = 2380;
/** members at .2 to .8, below the hosts (.11 on) */
export const MAX_ETCD_MEMBERS = 7;
export const DEFAULT_OVERLAY_SUBNET = '10.77.0.0/24';
export const MAX_HOSTS = 200;
const LAB_NAME = /^[a-z0-9][a-z0-9-]{0,15}$/;
const CONTAINER_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
const LOCK_WAIT_MS = 30_000;

export interface LabHost {
  name: string;
  netns: string;
  /** CIDR */
  underlay: string;
  socket: string;
  stateDir: string;
  log: string;
  pid?: number;
  networkId?: string;
  poolId?: string;
  gateway?: string;
  /** its underlay is cut (lab cut): its port on the underlay bridge is down */
  cut?: boolean;
  /** its Docker engine (lab up --docker): API socket, and dockerd's process once started (lab/engine.ts) */
  docker?: { socket: string; pid?: number; mntNs?: string; netNs?: string };
}

export interface LabContainer {
  name: string;
  host: string;
  netns: string;
  /** CIDR; '' while the attach is under way */
  address: string;
  endpointId: string;
}

export interface LabState {
  name: string;
  dir: string;
  underlayNs: string;
  /** member 1's namespace (etcdOf names the others') */
  etcdNs: string;
  /** how many etcd members; absent in a lab made before clusters: 1 */
  etcdMembers?: number;
  /** pid of member K at K-1 (0: not started) */
  etcdPids?: number[];
  store: string;
  overlay: string;
  subnet: string;
  leaseTtl: number;
  hosts: LabHost[];
  containers: LabContainer[];
}

/** What `tsnet lab status --json` prints. */
export interface LabStatus {
  hosts: { name: string; netns: string; underlay: string; docker?: string }[];
  containers: { name: string; host: string; netns: string; address: string }[];
}

// ---------------------------------------------------------------- names and layout (pure)

export function checkLabName(name: string): void {
  if (!LAB_NAME.test(name)) throw new UserError(`lab name '${name}': use 1-16 lower-case letters, digits and '-', starting with a letter or digit`);
}

export function checkContainerName(name: string): void {
  if (!CONTAINER_NAME.test(name)) throw new UserError(`container name '${name}': use 1-32 lower-case letters, digits and '-'`);
}

export function checkEtcdCount(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_ETCD_MEMBERS) throw new UserError(`--etcd ${n}: give 1 to ${MAX_ETCD_MEMBERS} members (3 tolerates one down)`);
}

export function checkHostCount(hosts: number): void {
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > MAX_HOSTS) throw new UserError(`--hosts ${hosts}: give 1 to ${MAX_HOSTS}`);
}

export function labDir(name: string): string {
  return join(LAB_ROOT, name);
}

/** Every namespace of lab NAME starts with this, the ones an interrupted attach left unrecorded too. */
export function netnsPrefix(labName: string): string {
  return `tsl-${labName}-`;
}

export function containerNetns(labName: string, container: string): string {
  return `${netnsPrefix(labName)}c-${container}`;
}

/** A new lab, before anything is made: no hosts yet (newHost adds them one by one). */
export function newLabState(o: { name: string; subnet?: string; leaseTtl: number; etcd?: number }): LabState {
  const members = o.etcd ?? 1;
  return {
    name: o.name,
    dir: labDir(o.name),
    underlayNs: `${netnsPrefix(o.name)}ul`,
    etcdNs: `${netnsPrefix(o.name)}etcd`,
    etcdMembers: members,
    store: `etcd://${range(members).map((k) => `${etcdAddress(k)}:${ETCD_PORT}`).join(',')}`,
    overlay: o.name,
    subnet: o.subnet ?? DEFAULT_OVERLAY_SUBNET,
    leaseTtl: o.leaseTtl,
    hosts: [],
    containers: [],
  };
}

/**
 * The tsnet instance of host `host` of lab `lab` (its daemon's socket name): unique across labs, as
 * the instance names what is the machine's, not the host's (overlay namespaces, the instance lock),
 * so that two labs run side by side.
 */
export function hostInstance(lab: string, host: string): string {
  return `lab-${lab}-${host}`;
}

/** Host hI (i from 1) of lab s, at 198.51.100.(10+i). */
export function newHost(s: LabState, i: number): LabHost {
  const name = `h${i}`;
  return {
    name,
    netns: `${netnsPrefix(s.name)}${name}`,
    underlay: `${UNDERLAY_PREFIX}.${10 + i}/${UNDERLAY_LEN}`,
    socket: join(s.dir, `${hostInstance(s.name, name)}.sock`),
    stateDir: join(s.dir, name),
    log: join(s.dir, `${name}.log`),
  };
}

function etcdAddress(k: number): string {
  return `${UNDERLAY_PREFIX}.${1 + k}`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** How many etcd members lab s has. */
export function etcdCount(s: LabState): number {
  return s.etcdMembers ?? 1;
}

/** Where etcd member k's underlay port gets its address. */
export function etcdUnderlay(k = 1): string {
  return `${etcdAddress(k)}/${UNDERLAY_LEN}`;
}

/** etcd member k (from 1) of lab s: member 1 in namespace tsl-NAME-etcd, member K in tsl-NAME-etcdK. */
export function etcdOf(s: LabState, k = 1): EtcdSpec {
  const suffix = k === 1 ? '' : String(k);
  const peer = (i: number) => `http://${etcdAddress(i)}:${ETCD_PEER_PORT}`;
  return {
    name: `tsl-${s.name}-e${k}`,
    netns: `${s.etcdNs}${suffix}`,
    dataDir: join(s.dir, `etcd${suffix}`),
    endpoint: `${etcdAddress(k)}:${ETCD_PORT}`,
    peer: peer(k),
    cluster: range(etcdCount(s)).map((i) => `tsl-${s.name}-e${i}=${peer(i)}`).join(','),
    log: join(s.dir, `etcd${suffix}.log`),
  };
}

/** Every etcd member of lab s. */
export function etcdMembersOf(s: LabState): EtcdSpec[] {
  return range(etcdCount(s)).map((k) => etcdOf(s, k));
}

/** Member k of lab s, refused with what it has when there is none. */
export function etcdMember(s: LabState, k: number): EtcdSpec {
  if (!Number.isInteger(k) || k < 1 || k > etcdCount(s)) throw new NotFoundError(`lab '${s.name}' has no etcd member ${k}: it has ${etcdCount(s) === 1 ? 'member 1' : `members 1 to ${etcdCount(s)}`}`);
  return etcdOf(s, k);
}

/** The pid of etcd member k (undefined: never started or stopped by lab kill). */
export function etcdPid(s: LabState, k: number): number | undefined {
  return s.etcdPids?.[k - 1] || undefined;
}

// ---------------------------------------------------------------- lookups and changes (pure)

export function hostOf(s: LabState, hostName: string): LabHost {
  const h = s.hosts.find((x) => x.name === hostName);
  if (!h) throw new NotFoundError(`lab '${s.name}' has no host '${hostName}': it has ${s.hosts.map((x) => x.name).join(', ')}`);
  return h;
}

/** The overlay network of host h and its pool, as its creation at lab up recorded them. */
export function overlayOf(s: LabState, h: LabHost): { networkId: string; poolId: string } {
  if (!h.networkId || !h.poolId) throw new ConflictError(`host ${h.name} of lab '${s.name}' has no overlay network: the lab came up only half; run lab down and up again`);
  return { networkId: h.networkId, poolId: h.poolId };
}

/** An attached container: one whose attach is still under way is refused. */
export function attachedContainer(s: LabState, name: string): LabContainer {
  const ct = s.containers.find((c) => c.name === name);
  if (!ct) throw new NotFoundError(`lab '${s.name}' has no container '${name}'`);
  if (!ct.address) throw new ConflictError(`container '${name}' of lab '${s.name}' is still being attached`);
  return ct;
}

/**
 * Takes the name for a container on host hostName before anything is made for it, so two attaches
 * of one name cannot both go ahead; returns the host and its overlay network, which it must have.
 */
export function reserveContainer(s: LabState, hostName: string, name: string, endpointId: string): { host: LabHost; networkId: string; poolId: string } {
  const host = hostOf(s, hostName);
  const overlay = overlayOf(s, host);
  if (s.containers.some((c) => c.name === name)) throw new ConflictError(`lab '${s.name}' already has a container '${name}'`);
  s.containers.push({ name, host: host.name, netns: containerNetns(s.name, name), address: '', endpointId });
  return { host, ...overlay };
}

/** The attach of container name is done: it has its address. */
export function recordAddress(s: LabState, name: string, address: string): LabContainer {
  const ct = s.containers.find((x) => x.name === name);
  if (!ct) throw new NotFoundError(`lab '${s.name}' lost container '${name}' while attaching it`);
  ct.address = address;
  return ct;
}

export function removeContainer(s: LabState, name: string): void {
  s.containers = s.containers.filter((x) => x.name !== name);
}

export function toStatus(s: LabState): LabStatus {
  return {
    hosts: s.hosts.map((h) => ({ name: h.name, netns: h.netns, underlay: h.underlay, ...(h.docker ? { docker: h.docker.socket } : {}) })),
    containers: s.containers.map((c) => ({ name: c.name, host: c.host, netns: c.netns, address: c.address })),
  };
}

/** `tsnet lab status`; isAlive tells whether a recorded pid still runs. */
export function formatStatus(s: LabState, isAlive: (pid: number | undefined) => boolean = alive): string {
  const lines = [`lab ${s.name}: overlay '${s.overlay}' ${s.subnet}, store ${s.store}`, '', 'ETCD  NAMESPACE  CLIENT  PROCESS'];
  for (const [i, e] of etcdMembersOf(s).entries()) lines.push(`${i + 1}  ${e.netns}  ${e.endpoint}  ${isAlive(etcdPid(s, i + 1)) ? `pid ${etcdPid(s, i + 1)}` : 'NOT RUNNING'}`);
  lines.push('', 'HOST  NAMESPACE  UNDERLAY  DAEMON');
  for (const h of s.hosts) lines.push(`${h.name}  ${h.netns}  ${h.underlay}${h.cut ? ' (CUT)' : ''}  ${isAlive(h.pid) ? `pid ${h.pid}` : 'not running'}`);
  lines.push('', 'CONTAINER  HOST  NAMESPACE  ADDRESS');
  for (const c of s.containers) lines.push(`${c.name}  ${c.host}  ${c.netns}  ${c.address}`);
  if (s.containers.length === 0) lines.push('(none: tsnet lab attach --host h1 NAME)');
  return lines.join('\n');
}

// ---------------------------------------------------------------- the file

function statePath(name: string): string {
  return join(labDir(name), 'state.json');
}

export function readState(name: string): LabState | undefined {
  checkLabName(name);
  const p = statePath(name);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as LabState;
}

export function requireState(name: string): LabState {
  const s = readState(name);
  if (!s) throw new NotFoundError(`no lab '${name}' is up: start one with tsnet lab up --name ${name}`);
  return s;
}

/**
 * Writes the state whole or not at all (a file beside it, then renamed over it): commands read the
 * state without the lock (whether a lab is up at all), and must never see it half-written.
 */
export function saveState(s: LabState): void {
  const path = statePath(s.name);
  const next = `${path}.${process.pid}.tmp`;
  writeFileSync(next, JSON.stringify(s, null, 2) + '\n');
  renameSync(next, path);
}

/**
 * Read-modify-write of the state under a lock, so lab commands run at the same time (attaches on
 * several hosts) never lose each other's changes. The lock is a flock on the file state.lock
 * (native/flock.ts), which the kernel drops when its holder ends in any way: a holder that died
 * never needs taking over. (A pid file taken over from a dead owner let two waiters that both saw
 * it dead both take it, one removing the other's fresh lock.) The file stays: removing it would let
 * a waiter that opened it before lock a file nobody else sees.
 */
export async function updateState<T>(name: string, change: (s: LabState) => T): Promise<T> {
  requireState(name); // a lab that is not up has no folder for the lock either
  const path = join(labDir(name), 'state.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  let lock: FileLock | undefined;
  while (!(lock = tryLockFile(path))) {
    if (Date.now() > deadline) throw new ConflictError(`lab '${name}' stayed locked by process ${holderOf(path) ?? '(unknown)'} for ${LOCK_WAIT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    const s = requireState(name);
    const result = change(s);
    saveState(s);
    return result;
  } finally {
    lock.release();
  }
}
