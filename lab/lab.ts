// The overlay lab: several hosts on one machine, each a network namespace with its own tsnet
// daemon, all on one underlay bridge, sharing an etcd that runs in a namespace of its own.
// Containers are namespaces attached through the hosts' daemons with Docker's own protocol
// (RequestAddress, CreateEndpoint, Join, then the container side as dockerd does it), so what
// the lab shows is what Docker users get.
//
// Layout of lab NAME (every name carries the lab's, so labs coexist):
//   namespace tsl-NAME-ul     bridge ul0, the underlay (198.51.100.0/24)
//   namespace tsl-NAME-etcd   etcd at 198.51.100.2:2379
//   namespace tsl-NAME-hI     host hI at 198.51.100.(10+I), daemon socket /run/tsnet-lab/NAME/hI.sock
//   namespace tsl-NAME-c-C    container C, eth0 on the overlay NAME (10.77.0.0/24 unless given)
// What exists is written to /run/tsnet-lab/NAME/state.json step by step, so `lab down` removes
// whatever an interrupted `lab up` had made.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Netlink } from '../native/netlink/netlink.js';
import { closeFd, openNetnsFd } from '../native/netns.js';
import { configureSandbox } from '../runtime/sandbox.js';
import { PluginClient } from './plugin-client.js';

export const LAB_ROOT = process.env.TSNET_LAB_DIR || '/run/tsnet-lab';
const UNDERLAY_PREFIX = '198.51.100';
const UNDERLAY_LEN = 24;
const ETCD_ADDRESS = `${UNDERLAY_PREFIX}.2`;
const ETCD_PORT = 2379;
export const DEFAULT_OVERLAY_SUBNET = '10.77.0.0/24';
const MAX_HOSTS = 200;
const LAB_NAME = /^[a-z0-9][a-z0-9-]{0,15}$/;
const CONTAINER_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

export class LabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabError';
  }
}

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
  /** CIDR */
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

export interface UpOptions {
  name: string;
  hosts: number;
  leaseTtl: number;
  subnet?: string;
  /** progress lines */
  say?: (line: string) => void;
}

// ---------------------------------------------------------------- state

function labDir(name: string): string {
  return join(LAB_ROOT, name);
}

function statePath(name: string): string {
  return join(labDir(name), 'state.json');
}

export function checkLabName(name: string): void {
  if (!LAB_NAME.test(name)) throw new LabError(`lab name '${name}': use 1-16 lower-case letters, digits and '-', starting with a letter or digit`);
}

export function readState(name: string): LabState | undefined {
  checkLabName(name);
  const p = statePath(name);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as LabState;
}

function requireState(name: string): LabState {
  const s = readState(name);
  if (!s) throw new LabError(`no lab '${name}' is up: start one with tsnet lab up --name ${name}`);
  return s;
}

function save(s: LabState): void {
  writeFileSync(statePath(s.name), JSON.stringify(s, null, 2) + '\n');
}

/**
 * Read-modify-write of the state under a lock, so lab commands run at the same time (attaches on
 * several hosts) never lose each other's changes. The lock is a file holding its owner's pid; one
 * whose owner is dead is taken over.
 */
async function updateState<T>(name: string, change: (s: LabState) => T): Promise<T> {
  const lock = join(labDir(name), 'state.lock');
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lock, { encoding: 'utf8', flag: 'r' }) || 0);
      if (owner && !alive(owner)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new LabError(`lab '${name}' stayed locked by process ${owner} for 30 s`);
      else await new Promise((r) => setTimeout(r, 10));
    }
  }
  try {
    const s = requireState(name);
    const result = change(s);
    save(s);
    return result;
  } finally {
    rmSync(lock, { force: true });
  }
}

// ---------------------------------------------------------------- up

export async function labUp(o: UpOptions): Promise<LabState> {
  checkLabName(o.name);
  if (!Number.isInteger(o.hosts) || o.hosts < 1 || o.hosts > MAX_HOSTS) throw new LabError(`--hosts ${o.hosts}: give 1 to ${MAX_HOSTS}`);
  if (readState(o.name)) throw new LabError(`lab '${o.name}' is already up: tsnet lab down --name ${o.name} first, or pick another --name`);
  const etcd = findProgram('etcd', 'etcd-server');
  const say = o.say ?? (() => undefined);
  const dir = labDir(o.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const s: LabState = {
    name: o.name,
    dir,
    underlayNs: `tsl-${o.name}-ul`,
    etcdNs: `tsl-${o.name}-etcd`,
    store: `etcd://${ETCD_ADDRESS}:${ETCD_PORT}`,
    overlay: o.name,
    subnet: o.subnet ?? DEFAULT_OVERLAY_SUBNET,
    leaseTtl: o.leaseTtl,
    hosts: [],
    containers: [],
  };
  save(s);
  try {
    // the underlay: one bridge in a namespace of its own, every host and etcd a port of it
    addNetns(s.underlayNs);
    inNetns(s.underlayNs, (nl) => {
      nl.setLink('lo', { up: true });
      nl.createLink({ kind: 'bridge', name: 'ul0' });
      nl.setLink('ul0', { up: true });
    });
    plugIntoUnderlay(s, s.etcdNs, 'etcd', `${ETCD_ADDRESS}/${UNDERLAY_LEN}`);
    s.etcdPid = startEtcd(s, etcd);
    save(s);
    for (let i = 1; i <= o.hosts; i++) {
      const name = `h${i}`;
      const host: LabHost = {
        name,
        netns: `tsl-${o.name}-${name}`,
        underlay: `${UNDERLAY_PREFIX}.${10 + i}/${UNDERLAY_LEN}`,
        socket: join(dir, `${name}.sock`),
        stateDir: join(dir, name),
        log: join(dir, `${name}.log`),
      };
      s.hosts.push(host);
      save(s);
      plugIntoUnderlay(s, host.netns, name, host.underlay);
    }
    await waitForEtcd(s);
    say(`etcd up at ${ETCD_ADDRESS}:${ETCD_PORT} in namespace ${s.etcdNs}`);
    for (const h of s.hosts) h.pid = startDaemon(s, h);
    save(s);
    await Promise.all(s.hosts.map((h) => new PluginClient(h.socket).waitReady(20_000, () => alive(h.pid)).catch((err) => Promise.reject(withLog(err, h.log)))));
    say(`${s.hosts.length} hosts up: ${s.hosts.map((h) => `${h.name} ${h.underlay}`).join(', ')}`);
    // the same overlay on every host, created as dockerd would create it
    for (const h of s.hosts) {
      await createOverlay(s, h);
      save(s);
    }
    say(`overlay '${s.overlay}' ${s.subnet} on every host`);
    return s;
  } catch (err) {
    await labDown(o.name).catch(() => undefined);
    throw err;
  }
}

function plugIntoUnderlay(s: LabState, netns: string, port: string, cidr: string): void {
  addNetns(netns);
  const fd = openNetnsFd(`/run/netns/${netns}`);
  try {
    inNetns(s.underlayNs, (nl) => {
      nl.createLink({ kind: 'veth', name: port, peerName: 'eth0', peerNetnsFd: fd });
      nl.setLink(port, { master: 'ul0', up: true });
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

function startEtcd(s: LabState, etcd: string): number {
  const data = join(s.dir, 'etcd');
  const client = `http://${ETCD_ADDRESS}:${ETCD_PORT}`;
  return spawnDetached(s.etcdNs, etcd, [
    '--name', `tsl-${s.name}`,
    '--data-dir', data,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', 'http://127.0.0.1:2380',
    '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', `tsl-${s.name}=http://127.0.0.1:2380`,
    '--log-level', 'warn',
  ], join(s.dir, 'etcd.log'));
}

async function waitForEtcd(s: LabState): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      execFileSync('ip', ['netns', 'exec', s.etcdNs, 'etcdctl', '--endpoints', `${ETCD_ADDRESS}:${ETCD_PORT}`, '--dial-timeout', '1s', 'endpoint', 'health'], {
        stdio: 'ignore',
        env: { ...process.env, ETCDCTL_API: '3' },
      });
      return;
    } catch {
      if (!alive(s.etcdPid)) throw withLog(new LabError('etcd exited at start'), join(s.dir, 'etcd.log'));
      if (Date.now() > deadline) throw withLog(new LabError('etcd did not become healthy within 20 s'), join(s.dir, 'etcd.log'));
      await new Promise((r) => setTimeout(r, 150));
    }
  }
}

function startDaemon(s: LabState, h: LabHost): number {
  const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  mkdirSync(h.stateDir, { recursive: true });
  return spawnDetached(h.netns, process.execPath, [
    main, 'serve',
    '--socket', h.socket,
    '--state-dir', h.stateDir,
    '--log', h.log,
    '--store', s.store,
    '--vtep', h.underlay.split('/')[0],
    '--host-name', h.name,
    '--lease-ttl', String(s.leaseTtl),
  ], h.log);
}

/** The calls dockerd makes for `docker network create -d tsnet --ipam-driver tsnet --ipam-opt overlay=NAME -o type=overlay -o overlay=NAME`. */
async function createOverlay(s: LabState, h: LabHost): Promise<void> {
  const c = new PluginClient(h.socket);
  const pool = await c.call<{ PoolID: string; Pool: string }>('IpamDriver.RequestPool', {
    AddressSpace: 'local',
    Pool: s.subnet,
    SubPool: '',
    Options: { overlay: s.overlay },
    V6: false,
  });
  h.poolId = pool.PoolID;
  const gw = await c.call<{ Address: string }>('IpamDriver.RequestAddress', {
    PoolID: pool.PoolID,
    Address: '',
    Options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  h.gateway = gw.Address;
  const networkId = randomBytes(32).toString('hex');
  await c.call('NetworkDriver.CreateNetwork', {
    NetworkID: networkId,
    Options: { 'com.docker.network.generic': { type: 'overlay', overlay: s.overlay }, 'com.docker.network.enable_ipv6': false },
    IPv4Data: [{ AddressSpace: 'local', Pool: pool.Pool, Gateway: gw.Address, AuxAddresses: {} }],
    IPv6Data: [],
  });
  h.networkId = networkId;
}

// ---------------------------------------------------------------- containers

export async function labAttach(labName: string, hostName: string, name: string): Promise<LabContainer> {
  if (!CONTAINER_NAME.test(name)) throw new LabError(`container name '${name}': use 1-32 lower-case letters, digits and '-'`);
  const netns = `tsl-${labName}-c-${name}`;
  const endpointId = randomBytes(32).toString('hex');
  // the name is taken in the state first, so two attaches of one name cannot both go ahead
  const h = await updateState(labName, (s) => {
    const host = hostOf(s, hostName);
    if (!host.networkId || !host.poolId) throw new LabError(`host ${host.name} of lab '${labName}' has no overlay network: the lab came up only half; run lab down and up again`);
    if (s.containers.some((c) => c.name === name)) throw new LabError(`lab '${labName}' already has a container '${name}'`);
    s.containers.push({ name, host: host.name, netns, address: '', endpointId });
    return host;
  });
  const c = new PluginClient(h.socket);
  const undo: (() => Promise<unknown> | unknown)[] = [() => updateState(labName, (s) => (s.containers = s.containers.filter((x) => x.name !== name)))];
  try {
    addNetns(netns);
    undo.push(() => delNetns(netns));
    const addr = await c.call<{ Address: string }>('IpamDriver.RequestAddress', { PoolID: h.poolId, Address: '', Options: {} });
    undo.push(() => c.call('IpamDriver.ReleaseAddress', { PoolID: h.poolId, Address: addr.Address }));
    const ep = await c.call<{ Interface?: { MacAddress?: string } }>('NetworkDriver.CreateEndpoint', {
      NetworkID: h.networkId,
      EndpointID: endpointId,
      Interface: { Address: addr.Address, AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    undo.push(() => c.call('NetworkDriver.DeleteEndpoint', { NetworkID: h.networkId, EndpointID: endpointId }));
    const join = await c.call<{ InterfaceName: { SrcName: string; DstPrefix: string }; Gateway: string }>('NetworkDriver.Join', {
      NetworkID: h.networkId,
      EndpointID: endpointId,
      SandboxKey: `/run/netns/${netns}`,
      Options: {},
    });
    undo.push(() => c.call('NetworkDriver.Leave', { NetworkID: h.networkId, EndpointID: endpointId }));
    inNetns(h.netns, (nl) =>
      configureSandbox(nl, {
        link: join.InterfaceName.SrcName,
        netnsPath: `/run/netns/${netns}`,
        ifName: `${join.InterfaceName.DstPrefix || 'eth'}0`,
        addresses: [addr.Address],
        gateway4: join.Gateway || undefined,
        mac: ep.Interface?.MacAddress || undefined,
      }),
    );
    return await updateState(labName, (s) => {
      const ct = s.containers.find((x) => x.name === name)!;
      ct.address = addr.Address;
      return ct;
    });
  } catch (err) {
    for (const u of undo.reverse()) await Promise.resolve().then(u).catch(() => undefined);
    throw err;
  }
}

export async function labDetach(labName: string, name: string): Promise<void> {
  const s = requireState(labName);
  const ct = s.containers.find((c) => c.name === name);
  if (!ct) throw new LabError(`lab '${labName}' has no container '${name}'`);
  if (!ct.address) throw new LabError(`container '${name}' of lab '${labName}' is still being attached`);
  const h = hostOf(s, ct.host);
  const c = new PluginClient(h.socket);
  // as dockerd does when a container stops: leave, drop the sandbox, delete the endpoint, free the address
  await c.call('NetworkDriver.Leave', { NetworkID: h.networkId, EndpointID: ct.endpointId });
  delNetns(ct.netns);
  await c.call('NetworkDriver.DeleteEndpoint', { NetworkID: h.networkId, EndpointID: ct.endpointId });
  await c.call('IpamDriver.ReleaseAddress', { PoolID: h.poolId, Address: ct.address });
  await updateState(labName, (st) => (st.containers = st.containers.filter((x) => x.name !== name)));
}

// ---------------------------------------------------------------- a host's daemon

/** Kills a host's daemon with SIGKILL, as a crash would: its containers keep their links. */
export async function labKill(labName: string, hostName: string): Promise<void> {
  const s = requireState(labName);
  const h = hostOf(s, hostName);
  if (!alive(h.pid)) throw new LabError(`the daemon of ${h.name} is not running`);
  signal(h.pid!, 'SIGKILL');
  const deadline = Date.now() + 5_000;
  while (alive(h.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Starts a host's daemon again (after lab kill); it reconciles with its state and the cluster. */
export async function labStart(labName: string, hostName: string): Promise<void> {
  const s = requireState(labName);
  const h = hostOf(s, hostName);
  if (alive(h.pid)) throw new LabError(`the daemon of ${h.name} is running (pid ${h.pid})`);
  h.pid = startDaemon(s, h);
  await updateState(labName, (st) => (hostOf(st, hostName).pid = h.pid));
  await new PluginClient(h.socket).waitReady(20_000, () => alive(h.pid)).catch((err) => Promise.reject(withLog(err, h.log)));
}

function hostOf(s: LabState, hostName: string): LabHost {
  const h = s.hosts.find((x) => x.name === hostName);
  if (!h) throw new LabError(`lab '${s.name}' has no host '${hostName}': it has ${s.hosts.map((x) => x.name).join(', ')}`);
  return h;
}

// ---------------------------------------------------------------- status and down

export function labStatus(name: string): LabStatus {
  const s = requireState(name);
  return {
    hosts: s.hosts.map((h) => ({ name: h.name, netns: h.netns, underlay: h.underlay })),
    containers: s.containers.map((c) => ({ name: c.name, host: c.host, netns: c.netns, address: c.address })),
  };
}

export function formatStatus(s: LabState): string {
  const lines = [`lab ${s.name}: overlay '${s.overlay}' ${s.subnet}, store ${s.store} (namespace ${s.etcdNs}${alive(s.etcdPid) ? '' : ', NOT RUNNING'})`, '', 'HOST  NAMESPACE  UNDERLAY  DAEMON'];
  for (const h of s.hosts) lines.push(`${h.name}  ${h.netns}  ${h.underlay}  ${alive(h.pid) ? `pid ${h.pid}` : 'not running'}`);
  lines.push('', 'CONTAINER  HOST  NAMESPACE  ADDRESS');
  for (const c of s.containers) lines.push(`${c.name}  ${c.host}  ${c.netns}  ${c.address}`);
  if (s.containers.length === 0) lines.push('(none: tsnet lab attach --host h1 NAME)');
  return lines.join('\n');
}

/** Removes everything the lab made; works on a half-made lab and when nothing is left. */
export async function labDown(name: string): Promise<void> {
  const s = readState(name);
  if (!s) throw new LabError(`no lab '${name}' is up`);
  // daemons first (they hold the hosts' sockets and watch etcd), then etcd
  await stopAll([...s.hosts.map((h) => h.pid), s.etcdPid]);
  for (const c of s.containers) delNetns(c.netns);
  for (const h of s.hosts) delNetns(h.netns);
  delNetns(s.etcdNs);
  delNetns(s.underlayNs);
  // containers attached by an interrupted attach are not in the state: their names say whose they are
  for (const ns of listNetns()) if (ns.startsWith(`tsl-${name}-`)) delNetns(ns);
  rmSync(s.dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- helpers

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

function addNetns(name: string): void {
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function delNetns(name: string): void {
  if (!existsSync(`/run/netns/${name}`)) return;
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    // already gone
  }
}

function inNetns<T>(netns: string, fn: (nl: Netlink) => T): T {
  const nl = Netlink.openInNetns(`/run/netns/${netns}`);
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}

function spawnDetached(netns: string, cmd: string, args: string[], logFile: string): number {
  const out = openSync(logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', netns, cmd, ...args], { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    if (child.pid === undefined) throw new LabError(`could not start ${cmd}`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopAll(pids: (number | undefined)[]): Promise<void> {
  const live = pids.filter((p): p is number => alive(p));
  for (const p of live) signal(p, 'SIGTERM');
  const deadline = Date.now() + 5_000;
  while (live.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const p of live) if (alive(p)) signal(p, 'SIGKILL');
  const killDeadline = Date.now() + 5_000;
  while (live.some(alive) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 20));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    // `ip netns exec` execs the program, so the pid is the daemon's (or etcd's) own
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

function findProgram(name: string, pkg: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new LabError(`${name} is not installed: apt-get install ${pkg} (make up installs it)`);
}

function withLog(err: unknown, logFile: string): Error {
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
