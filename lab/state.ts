// What a lab is and the file that records it. The layout of lab NAME (every name carries the lab's,
// so labs coexist):
//   namespace tsl-NAME-ul     bridge ul0, the underlay (198.51.100.0/24)
//   namespace tsl-NAME-etcd   etcd at 198.51.100.2:2379
//   namespace tsl-NAME-hI     host hI at 198.51.100.(10+I), daemon socket /run/tsnet-lab/NAME/hI.sock
//   namespace tsl-NAME-c-C    container C, eth0 on the overlay NAME (10.77.0.0/24 unless given)
// What exists is written to /run/tsnet-lab/NAME/state.json step by step, so `lab down` removes
// whatever an interrupted `lab up` had made; commands that change it (attaches on several hosts at
// once) read-modify-write it under a lock. The layout and the changes are pure functions of the
// state; readState, saveState and updateState are the only file I/O.
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError, NotFoundError, UserError } from '../core/errors.js';
import { alive, type EtcdSpec } from './processes.js';

export const LAB_ROOT = process.env.TSNET_LAB_DIR || '/run/tsnet-lab';
const UNDERLAY_PREFIX = '198.51.100';
const UNDERLAY_LEN = 24;
const ETCD_ADDRESS = `${UNDERLAY_PREFIX}.2`;
const ETCD_PORT = 2379;
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
  etcdNs: string;
  etcdPid?: number;
  store: string;
  overlay: string;
  subnet: string;
  leaseTtl: number;
  hosts: LabHost[];
  containers: LabContainer[];
}

/** What `tsnet lab status --json` prints. */
export interface LabStatus {
  hosts: { name: string; netns: string; underlay: string }[];
  containers: { name: string; host: string; netns: string; address: string }[];
}

// ---------------------------------------------------------------- names and layout (pure)

export function checkLabName(name: string): void {
  if (!LAB_NAME.test(name)) throw new UserError(`lab name '${name}': use 1-16 lower-case letters, digits and '-', starting with a letter or digit`);
}

export function checkContainerName(name: string): void {
  if (!CONTAINER_NAME.test(name)) throw new UserError(`container name '${name}': use 1-32 lower-case letters, digits and '-'`);
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
export function newLabState(o: { name: string; subnet?: string; leaseTtl: number }): LabState {
  return {
    name: o.name,
    dir: labDir(o.name),
    underlayNs: `${netnsPrefix(o.name)}ul`,
    etcdNs: `${netnsPrefix(o.name)}etcd`,
    store: `etcd://${ETCD_ADDRESS}:${ETCD_PORT}`,
    overlay: o.name,
    subnet: o.subnet ?? DEFAULT_OVERLAY_SUBNET,
    leaseTtl: o.leaseTtl,
    hosts: [],
    containers: [],
  };
}

/** Host hI (i from 1) of lab s, at 198.51.100.(10+i). */
export function newHost(s: LabState, i: number): LabHost {
  const name = `h${i}`;
  return {
    name,
    netns: `${netnsPrefix(s.name)}${name}`,
    underlay: `${UNDERLAY_PREFIX}.${10 + i}/${UNDERLAY_LEN}`,
    socket: join(s.dir, `${name}.sock`),
    stateDir: join(s.dir, name),
    log: join(s.dir, `${name}.log`),
  };
}

/** Where etcd's underlay port gets its address. */
export function etcdUnderlay(): string {
  return `${ETCD_ADDRESS}/${UNDERLAY_LEN}`;
}

export function etcdOf(s: LabState): EtcdSpec {
  return { name: `tsl-${s.name}`, netns: s.etcdNs, dataDir: join(s.dir, 'etcd'), endpoint: `${ETCD_ADDRESS}:${ETCD_PORT}`, log: join(s.dir, 'etcd.log') };
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
    hosts: s.hosts.map((h) => ({ name: h.name, netns: h.netns, underlay: h.underlay })),
    containers: s.containers.map((c) => ({ name: c.name, host: c.host, netns: c.netns, address: c.address })),
  };
}

/** `tsnet lab status`; isAlive tells whether a recorded pid still runs. */
export function formatStatus(s: LabState, isAlive: (pid: number | undefined) => boolean = alive): string {
  const lines = [`lab ${s.name}: overlay '${s.overlay}' ${s.subnet}, store ${s.store} (namespace ${s.etcdNs}${isAlive(s.etcdPid) ? '' : ', NOT RUNNING'})`, '', 'HOST  NAMESPACE  UNDERLAY  DAEMON'];
  for (const h of s.hosts) lines.push(`${h.name}  ${h.netns}  ${h.underlay}  ${isAlive(h.pid) ? `pid ${h.pid}` : 'not running'}`);
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

export function saveState(s: LabState): void {
  writeFileSync(statePath(s.name), JSON.stringify(s, null, 2) + '\n');
}

/**
 * Read-modify-write of the state under a lock, so lab commands run at the same time (attaches on
 * several hosts) never lose each other's changes. The lock is a file holding its owner's pid; one
 * whose owner is dead is taken over.
 */
export async function updateState<T>(name: string, change: (s: LabState) => T): Promise<T> {
  const lock = join(labDir(name), 'state.lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (!takeLock(lock)) {
    const owner = lockOwner(lock);
    if (owner === undefined) continue; // released between the two looks: try again at once
    if (owner && !alive(owner)) rmSync(lock, { force: true });
    else if (Date.now() > deadline) throw new ConflictError(`lab '${name}' stayed locked by process ${owner} for ${LOCK_WAIT_MS / 1000} s`);
    else await new Promise((r) => setTimeout(r, 10));
  }
  try {
    const s = requireState(name);
    const result = change(s);
    saveState(s);
    return result;
  } finally {
    rmSync(lock, { force: true });
  }
}

/** true: the lock is ours now; false: someone holds it. */
function takeLock(lock: string): boolean {
  try {
    writeFileSync(lock, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** The pid in the lock (0 while its owner has not written it yet), undefined when there is no lock. */
function lockOwner(lock: string): number | undefined {
  try {
    return Number(readFileSync(lock, 'utf8') || 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
