// The overlay lab: several hosts on one machine, each a network namespace with its own tsnet
// daemon, all on one underlay bridge, sharing an etcd that runs in a namespace of its own.
// Containers are namespaces attached through the hosts' daemons with Docker's own protocol
// (RequestAddress, CreateEndpoint, Join, then the container side as dockerd does it), so what
// the lab shows is what Docker users get.
//
// This file is the orchestration, one function per `tsnet lab` command. The layout and the state
// file are state.ts's, the processes and namespaces processes.ts's, the requests docker-calls.ts's.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { ConflictError, NotFoundError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';
import { shortId } from '../core/text.js';
import { withUndoAsync } from '../core/undo.js';
import { configureSandbox } from '../runtime/sandbox.js';
import {
  addressRequest,
  createEndpointRequest,
  createOverlayRequest,
  endpointRef,
  gatewayRequest,
  joinRequest,
  overlayPoolRequest,
  releaseAddressRequest,
  sandboxLink,
} from './docker-calls.js';
import { planEngine, startEngines, stopEngines } from './docker-lab.js';
import { etcdPidsOf, removeEtcdNamespaces, startEtcdMembers, waitForEtcdMembers } from './etcd-cluster.js';
import { PluginClient } from './plugin-client.js';
import { overlayNamespacesBehind } from '../drivers/overlay/netns-layout.js';
import { instanceOf } from '../daemon/paths.js';
import {
  addNetns,
  alive,
  delNetns,
  findProgram,
  inNetns,
  killNow,
  listNetns,
  makeUnderlay,
  netnsPath,
  plugIntoUnderlay,
  startDaemon,
  stopAll,
  withLog,
} from './processes.js';
import {
  attachedContainer,
  checkContainerName,
  checkHostCount,
  checkLabName,
  containerNetns,
  checkEtcdCount,
  hostOf,
  netnsPrefix,
  newHost,
  newLabState,
  overlayOf,
  readState,
  recordAddress,
  removeContainer,
  requireState,
  reserveContainer,
  saveState,
  toStatus,
  updateState,
  type LabContainer,
  type LabHost,
  type LabState,
  type LabStatus,
} from './state.js';

// what the benchmarks and the lab's kernel test take from the lab
export { alive } from './processes.js';
export { readState } from './state.js';

export interface UpOptions {
  name: string;
  hosts: number;
  leaseTtl: number;
  /** etcd members (default 1) */
  etcd?: number;
  /** a Docker engine per host (lab/docker-lab.ts) */
  docker?: boolean;
  subnet?: string;
  /** progress lines */
  say?: (line: string) => void;
}

// ---------------------------------------------------------------- up

export async function labUp(o: UpOptions): Promise<LabState> {
  checkLabName(o.name);
  checkHostCount(o.hosts);
  checkEtcdCount(o.etcd ?? 1);
  if (readState(o.name)) throw new ConflictError(`lab '${o.name}' is already up: tsnet lab down --name ${o.name} first, or pick another --name`);
  const etcd = findProgram('etcd', 'etcd-server');
  const say = o.say ?? (() => undefined);
  const s = newLabState(o);
  rmSync(s.dir, { recursive: true, force: true });
  mkdirSync(s.dir, { recursive: true });
  saveState(s);
  try {
    makeUnderlay(s.underlayNs);
    startEtcdMembers(s, etcd);
    for (let i = 1; i <= o.hosts; i++) {
      const host = newHost(s, i);
      if (o.docker) planEngine(host);
      s.hosts.push(host);
      saveState(s);
      plugIntoUnderlay(s.underlayNs, host.netns, host.name, host.underlay);
    }
    await waitForEtcdMembers(s);
    say(`etcd up at ${s.store.replace('etcd://', '')}`);
    for (const h of s.hosts) h.pid = startDaemon(s, h);
    saveState(s);
    await Promise.all(s.hosts.map((h) => new PluginClient(h.socket).waitReady(20_000, () => alive(h.pid)).catch((err) => Promise.reject(withLog(err, h.log)))));
    say(`${s.hosts.length} hosts up: ${s.hosts.map((h) => `${h.name} ${h.underlay}`).join(', ')}`);
    // the same overlay on every host, created as dockerd would create it
    for (const h of s.hosts) {
      await createOverlay(s, h);
      saveState(s);
    }
    say(`overlay '${s.overlay}' ${s.subnet} on every host`);
    if (o.docker) {
      await startEngines(s, () => saveState(s));
      say(`a Docker engine on every host: tsnet lab docker --name ${s.name} --host h1 -- ps`);
    }
    return s;
  } catch (err) {
    await labDown(o.name).catch(() => undefined);
    throw err;
  }
}

/** The calls dockerd makes for `docker network create -d tsnet --ipam-driver tsnet --ipam-opt overlay=NAME -o type=overlay -o overlay=NAME`. */
async function createOverlay(s: LabState, h: LabHost): Promise<void> {
  const c = new PluginClient(h.socket);
  const pool = await c.call('IpamDriver.RequestPool', overlayPoolRequest(s.overlay, s.subnet));
  h.poolId = pool.PoolID;
  const gw = await c.call('IpamDriver.RequestAddress', gatewayRequest(pool.PoolID));
  h.gateway = gw.Address;
  const networkId = dockerId();
  await c.call('NetworkDriver.CreateNetwork', createOverlayRequest(networkId, s.overlay, pool, gw.Address));
  h.networkId = networkId;
}

/** A 64-hex ID, as dockerd gives networks and endpoints. */
function dockerId(): string {
  return randomBytes(32).toString('hex');
}

// ---------------------------------------------------------------- containers

/**
 * Attaches container `name` on host hostName as dockerd connects a container: each step that makes
 * something names how to unmake it, so an attach that fails part-way leaves nothing behind.
 */
export async function labAttach(labName: string, hostName: string, name: string): Promise<LabContainer> {
  checkContainerName(name);
  const netns = containerNetns(labName, name);
  const endpointId = dockerId();
  return withUndoAsync(silentLogger, async (undo) => {
    const { host: h, networkId, poolId } = await updateState(labName, (s) => reserveContainer(s, hostName, name, endpointId));
    undo.push(`forget container ${name} in the lab's state`, () => updateState(labName, (s) => removeContainer(s, name)));
    const c = new PluginClient(h.socket);

    addNetns(netns);
    undo.push(`remove namespace ${netns}`, () => delNetns(netns));

    const { Address: address } = await c.call('IpamDriver.RequestAddress', addressRequest(poolId));
    undo.push(`release address ${address}`, () => c.call('IpamDriver.ReleaseAddress', releaseAddressRequest(poolId, address)));

    const endpoint = await c.call('NetworkDriver.CreateEndpoint', createEndpointRequest(networkId, endpointId, address));
    undo.push(`delete endpoint ${shortId(endpointId)}`, () => c.call('NetworkDriver.DeleteEndpoint', endpointRef(networkId, endpointId)));

    const joined = await c.call('NetworkDriver.Join', joinRequest(networkId, endpointId, netnsPath(netns)));
    undo.push(`leave endpoint ${shortId(endpointId)}`, () => c.call('NetworkDriver.Leave', endpointRef(networkId, endpointId)));

    inNetns(h.netns, (nl) => configureSandbox(nl, sandboxLink(netnsPath(netns), address, endpoint, joined)));
    return updateState(labName, (s) => recordAddress(s, name, address));
  });
}

/** As dockerd disconnects a stopping container: leave, drop the sandbox, delete the endpoint, free the address. */
export async function labDetach(labName: string, name: string): Promise<void> {
  const s = requireState(labName);
  const ct = attachedContainer(s, name);
  const h = hostOf(s, ct.host);
  const { networkId, poolId } = overlayOf(s, h);
  const c = new PluginClient(h.socket);
  await c.call('NetworkDriver.Leave', endpointRef(networkId, ct.endpointId));
  delNetns(ct.netns);
  await c.call('NetworkDriver.DeleteEndpoint', endpointRef(networkId, ct.endpointId));
  await c.call('IpamDriver.ReleaseAddress', releaseAddressRequest(poolId, ct.address));
  await updateState(labName, (st) => removeContainer(st, name));
}

// ---------------------------------------------------------------- a host's daemon

/** Kills a host's daemon with SIGKILL, as a crash would: its containers keep their links. */
export async function labKill(labName: string, hostName: string): Promise<void> {
  const s = requireState(labName);
  const h = hostOf(s, hostName);
  if (!h.pid || !alive(h.pid)) throw new ConflictError(`the daemon of ${h.name} is not running`);
  await killNow(h.pid);
}

/** Starts a host's daemon again (after lab kill); it reconciles with its state and the cluster. */
export async function labStart(labName: string, hostName: string): Promise<void> {
  const s = requireState(labName);
  const h = hostOf(s, hostName);
  if (alive(h.pid)) throw new ConflictError(`the daemon of ${h.name} is running (pid ${h.pid})`);
  h.pid = startDaemon(s, h);
  await updateState(labName, (st) => (hostOf(st, hostName).pid = h.pid));
  await new PluginClient(h.socket).waitReady(20_000, () => alive(h.pid)).catch((err) => Promise.reject(withLog(err, h.log)));
}

// ---------------------------------------------------------------- status and down

export function labStatus(name: string): LabStatus {
  return toStatus(requireState(name));
}

/** Removes everything the lab made; works on a half-made lab and when nothing is left. */
export async function labDown(name: string): Promise<void> {
  const s = readState(name);
  if (!s) throw new NotFoundError(`no lab '${name}' is up`);
  // engines first (stopping their containers calls the daemons), then daemons (they hold the hosts' sockets and watch etcd), then etcd
  await stopEngines(s);
  // the overlay networks' own namespaces (drivers/overlay/netns-layout.ts), found while the hosts are there
  const overlays = s.hosts.flatMap((h) => (existsSync(netnsPath(h.netns)) ? inNetns(h.netns, (nl) => overlayNamespacesBehind(nl, instanceOf(h.socket).name)) : []));
  await stopAll([...s.hosts.map((h) => h.pid), ...etcdPidsOf(s)]);
  for (const c of s.containers) delNetns(c.netns);
  for (const ns of overlays) delNetns(ns);
  for (const h of s.hosts) delNetns(h.netns);
  removeEtcdNamespaces(s);
  delNetns(s.underlayNs);
  // containers attached by an interrupted attach are not in the state: their names say whose they are
  for (const ns of listNetns()) if (ns.startsWith(netnsPrefix(name))) delNetns(ns);
  rmSync(s.dir, { recursive: true, force: true });
}
