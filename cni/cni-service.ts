// CNI inside the daemon: each command a runtime runs through the `tsnet` plugin executable arrives
// here (plugin-api/server.ts, route Cni.Exec) and is carried out with the same parts Docker's calls
// use: the Ipam service for addresses, the controller and its drivers for links and ports, and
// runtime/sandbox.ts for the container side, which dockerd would do for Docker. So a CNI network
// is a tsnet network like any other: it shows in `tsnet status`, shares the address pools and the
// nftables table, and survives daemon restarts.
//
// Every change to tsnet's own state runs through the daemon's serial queue, the one Docker's calls
// use; a delegated IPAM plugin (delegated-ipam.ts), someone else's program with a time limit of its
// own, runs outside it, so Docker never waits behind it.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type EndpointRef, type NetworkDriver, type PortBindingRequest } from '../drivers/driver.js';
import { GATEWAY_REQUEST, REQUEST_ADDRESS_TYPE, type IpamService } from '../ipam/types.js';
import { formatCidr, parseCidr, toNetwork } from '../ipam/address.js';
import { Netlink } from '../native/netlink/netlink.js';
import { configureSandbox } from '../runtime/sandbox.js';
import type { CniAttachment, CniNetworkRecord, CniRepo } from '../store/cni-repo.js';
import type { NetworkRepo } from '../store/network-repo.js';
import {
  CniError,
  ERR,
  buildResult,
  errorOutput,
  parseConfig,
  parseEnv,
  toCniError,
  versionOf,
  versionOutput,
  type CniEnv,
  type NetConf,
  type Result,
  type TsnetIpam,
} from './spec.js';
import { delegatedAdd, delegatedDel, type DelegateOptions, type Lease } from './delegated-ipam.js';
import type { Logger } from '../core/log.js';
import { withUndoAsync, type Undo } from '../core/undo.js';
import { bareIp, shortId } from '../core/text.js';
import { ConflictError, NotFoundError } from '../core/errors.js';
import { faultPoint } from '../core/fault-points.js';

/** Pool option naming the CNI network a tsnet pool was made for: start-up finds a pool a crash left unrecorded. */
export const CNI_POOL_OPTION = 'tsnet.cni.network';

/** What start-up reads of the local IPAM's records to find what a crash left allocated (store/ipam-repo.ts). */
export interface IpamRecords {
  listPools(): { id: string; options: Record<string, string> }[];
  listAllocations(poolId: string): { address: string; kind: string }[];
}

export interface CniReply {
  exitCode: number;
  output: string;
}

export interface CniServiceDeps {
  network: NetworkDriver;
  ipam: IpamService;
  repo: NetworkRepo;
  cni: CniRepo;
  /** the daemon's netlink handle, in the namespace where drivers make links */
  netlink: Netlink;
  /** debug (pino has it; optional for tests' loggers): an ADD's time per step, for bench/cni-cycle.ts and slow-ADD hunts */
  log: Logger & { debug?: Logger['info'] };
  /** the lock Docker's calls run under (plugin-api's SerialQueue): every change to tsnet's state goes through it */
  queue: { run<T>(fn: () => Promise<T> | T): Promise<T> };
  /** delegated IPAM plugins: default time limit DELEGATED_IPAM_TIMEOUT_MS */
  delegate?: DelegateOptions;
  /** the local IPAM's records, for the start-up sweep of what a crash left allocated; none: no sweep */
  ipamRecords?: IpamRecords;
}

export class CniService {
  constructor(private readonly d: CniServiceDeps) {}

  /** Runs fn under the daemon's queue: after every Docker call and CNI step queued before it. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.d.queue.run(fn);
  }

  /** One plugin invocation: the CNI_* environment and stdin in, stdout and exit code out. */
  async exec(rawEnv: Record<string, string | undefined>, stdin: string): Promise<CniReply> {
    let version = versionOf(stdin);
    try {
      const env = parseEnv(rawEnv);
      if (env.command === 'VERSION') return { exitCode: 0, output: versionOutput() };
      const conf = parseConfig(stdin, env.command);
      version = conf.cniVersion;
      switch (env.command) {
        case 'ADD':
          return { exitCode: 0, output: JSON.stringify(await this.add(env, conf)) + '\n' };
        case 'DEL':
          await this.remove(env, conf);
          return { exitCode: 0, output: '' };
        case 'CHECK':
          await this.serial(() => this.check(env, conf));
          return { exitCode: 0, output: '' };
        case 'GC':
          await this.gc(env, conf);
          return { exitCode: 0, output: '' };
        case 'STATUS':
          return { exitCode: 0, output: '' };
      }
    } catch (err) {
      const e = toCniError(err);
      // the stack goes to the log; the runtime gets the message
      if (e.code === ERR.INTERNAL) this.d.log.error({ err, command: rawEnv.CNI_COMMAND }, 'CNI command failed inside tsnet');
      return { exitCode: 1, output: errorOutput(version, e) };
    }
    return { exitCode: 1, output: errorOutput(version, new CniError(ERR.INVALID_ENV, 'unknown command')) };
  }

  // ---------------------------------------------------------------- ADD

  private async add(env: CniEnv, conf: NetConf): Promise<Result> {
    const steps = new Steps();
    const result = await this.addSteps(env, conf, steps);
    this.d.log.debug?.({ command: 'ADD', network: conf.name, container: env.containerId, ms: steps.ms }, 'CNI ADD steps');
    return result;
  }

  private async addSteps(env: CniEnv, conf: NetConf, steps: Steps): Promise<Result> {
    const existing = await this.serial(() => this.d.cni.getAttachment(conf.name, env.containerId, env.ifName));
    steps.mark('lookup (queue and store)');
    // ADD again without DEL: the attachment is there, say so with the same result
    if (existing?.state === 'ready') return JSON.parse(existing.result) as Result;
    // half made by an ADD whose rollback could not finish: undo what is left, then start afresh
    if (existing) await this.remove(env, conf);
    if (!existsSync(env.netns)) throw new CniError(ERR.CONTAINER_UNKNOWN, `network namespace ${env.netns} does not exist`);
    if (conf.ipam.type === 'tsnet') {
      return this.serial(() => {
        steps.mark('queue');
        return withUndoAsync(this.d.log, (undo) => this.attach(env, conf, undefined, undo, steps));
      });
    }
    // delegated IPAM first, outside the queue: its address tells the subnet of a network made on this first ADD
    return withUndoAsync(this.d.log, async (undo) => {
      const lease = await delegatedAdd(env, conf, this.d.delegate);
      undo.push(`release ${lease.address} through IPAM plugin '${conf.ipam.type}'`, () => delegatedDel(env, conf, this.d.delegate));
      steps.mark('delegated IPAM');
      return this.serial(() => {
        steps.mark('queue');
        return withUndoAsync(this.d.log, (inner) => this.attach(env, conf, lease, inner, steps));
      });
    });
  }

  /** tsnet's part of ADD, under the queue: each step pushes its undo, so a failure leaves nothing of tsnet's behind. */
  private async attach(env: CniEnv, conf: NetConf, lease: Lease | undefined, undo: Undo, steps: Steps): Promise<Result> {
    const net = await this.ensureNetwork(conf, lease, undo);
    steps.mark('network (lookup, or made on the first ADD)');
    const ref = this.recordAttachment(env, conf, net, undo);
    faultPoint('cni.add.attachment-recorded');
    steps.mark('store (attachment rows)');
    const address = lease?.address ?? (await this.allocateAddress(env, conf, net, undo));
    steps.mark('address');
    // a crash before this line leaves an allocation no row names: restore() sweeps the pool for it
    faultPoint('cni.add.address-allocated');
    this.d.cni.updateAttachment({ network: conf.name, containerId: env.containerId, ifName: env.ifName, address });
    steps.mark('store (attachment rows)');
    const { mac, gateway, link } = await this.createEndpoint(env, conf, ref, address, undo, steps);
    const inside = configureSandbox(this.d.netlink, { link, netnsPath: env.netns, ifName: env.ifName, addresses: [address], gateway4: gateway || undefined, mac });
    steps.mark('container side (address, routes, up)');
    faultPoint('cni.add.sandbox-configured');
    await this.publishPorts(conf, ref, undo);
    steps.mark('published ports');
    faultPoint('cni.add.ports-published');
    const result = buildResult(
      conf.cniVersion,
      { hostInterfaces: await this.hostInterfaces(ref), ifName: env.ifName, mac: inside.mac, mtu: inside.mtu, netns: env.netns, address, gateway },
      conf.prevResult,
    );
    steps.mark('result');
    this.d.cni.updateAttachment({ network: conf.name, containerId: env.containerId, ifName: env.ifName, state: 'ready', result: JSON.stringify(result) });
    steps.mark('store (attachment rows)');
    return result;
  }

  /** The attachment's row, 'creating' until ADD completes (restore() rolls back any left so). */
  private recordAttachment(env: CniEnv, conf: NetConf, net: CniNetworkRecord, undo: Undo): EndpointRef {
    const endpointId = sha256(`cni:${conf.name}/${env.containerId}/${env.ifName}`);
    this.d.cni.insertAttachment({
      network: conf.name,
      containerId: env.containerId,
      ifName: env.ifName,
      state: 'creating',
      networkId: net.networkId,
      endpointId,
      netns: env.netns,
      address: '',
      ipam: conf.ipam.type,
      result: '',
    });
    undo.push(`forget the attachment of ${env.containerId}/${env.ifName}`, () => this.d.cni.deleteAttachment(conf.name, env.containerId, env.ifName));
    return { networkId: net.networkId, endpointId };
  }

  /** tsnet's IPAM: the address the runtime asks for (runtimeConfig.ips, CNI_ARGS IP) or the next free one. */
  private async allocateAddress(env: CniEnv, conf: NetConf, net: CniNetworkRecord, undo: Undo): Promise<string> {
    const wanted = conf.runtime.ips[0] ?? env.args.IP ?? '';
    const r = await this.d.ipam.requestAddress({ poolId: net.poolId, address: wanted.split('/')[0], options: {} });
    undo.push(`release address ${r.address}`, () => this.d.ipam.releaseAddress(net.poolId, r.address));
    return r.address;
  }

  /** The driver's endpoint, joined to the container's namespace as dockerd would: the link to move in, its MAC, the gateway. */
  private async createEndpoint(env: CniEnv, conf: NetConf, ref: EndpointRef, address: string, undo: Undo, steps: Steps): Promise<{ link: string; mac?: string; gateway: string }> {
    const noPorts = { portBindings: [], exposedPorts: [], other: {} };
    const created = await this.d.network.createEndpoint({ ...ref, address, addressIpv6: '', macAddress: conf.runtime.mac || env.args.MAC || '', options: noPorts, netnsHint: env.netns });
    steps.mark('driver endpoint (veth, firewall, store)');
    undo.push(`delete endpoint ${shortId(ref.endpointId)}`, () => this.d.network.deleteEndpoint(ref));
    faultPoint('cni.add.endpoint-created');
    const joined = await this.d.network.join({ ...ref, sandboxKey: env.netns, options: noPorts });
    steps.mark('driver join');
    undo.push(`leave endpoint ${shortId(ref.endpointId)}`, () => this.d.network.leave(ref));
    return { link: joined.srcName, mac: created.macAddress, gateway: joined.gateway };
  }

  /**
   * runtimeConfig.portMappings into tsnet's nftables maps. Runtimes bind the host ports of their
   * containers themselves (podman does), as with the reference portmap plugin: tsnet only programs
   * the mappings.
   */
  private async publishPorts(conf: NetConf, ref: EndpointRef, undo: Undo): Promise<void> {
    if (conf.runtime.portMappings.length === 0) return;
    await this.d.network.programExternalConnectivity({
      ...ref,
      options: { portBindings: conf.runtime.portMappings.map(toBinding), exposedPorts: [], other: {} },
      runtimeHoldsHostPorts: true,
    });
    undo.push(`unpublish the ports of endpoint ${shortId(ref.endpointId)}`, () => this.d.network.revokeExternalConnectivity(ref));
  }

  /** The tsnet network behind a CNI network name: made on the first ADD, checked on every later one. */
  private async ensureNetwork(conf: NetConf, lease: Lease | undefined, undo: Undo): Promise<CniNetworkRecord> {
    const signature = signatureOf(conf);
    const existing = this.d.cni.getNetwork(conf.name);
    if (existing && this.d.repo.getNetwork(existing.networkId)) {
      if (existing.signature !== signature) {
        throw new CniError(
          ERR.INVALID_CONFIG,
          `network '${conf.name}' exists in tsnet with another configuration (${existing.signature}); this one is ${signature}: ` +
            'use another network name, or remove the containers attached to it so tsnet can drop it',
        );
      }
      return existing;
    }
    // a record whose network is gone (its state was reset, or a crash came between them): start afresh
    if (existing) await this.forgetNetwork(existing);
    const networkId = sha256(`cni:${conf.name}`);
    // a network no record names (made by a tsnet that crashed before recording it): it is this name's, remove it
    if (this.d.repo.getNetwork(networkId)) await this.d.network.deleteNetwork(networkId);

    // crash-safe order: the pool (tagged with the name, found by restore() if unrecorded), the
    // record, then the driver's network (restore() removes a record whose network is missing)
    const { poolId, pool, gateway } = lease ? this.delegatedSubnet(conf, lease) : await this.allocateSubnet(conf.name, conf.ipam as TsnetIpam, undo);
    faultPoint('cni.add.pool-allocated');
    this.d.cni.insertNetwork({ name: conf.name, networkId, mode: conf.mode, signature, poolId, gateway });
    undo.push(`forget CNI network '${conf.name}'`, () => this.d.cni.deleteNetwork(conf.name));
    faultPoint('cni.add.network-recorded');
    await this.d.network.createNetwork({
      networkId,
      options: conf.options,
      enableIpv6: false,
      internal: false,
      ipv4: [{ addressSpace: 'local', pool, gateway, auxAddresses: {} }],
      ipv6: [],
    });
    undo.push(`delete network ${shortId(networkId)}`, () => this.d.network.deleteNetwork(networkId));
    faultPoint('cni.add.network-created');
    return this.d.cni.getNetwork(conf.name)!;
  }

  /**
   * Removes a CNI network with no attachment left, in the crash-safe order: the driver's network
   * (bridge, rules), the pool, the record last; restore() finishes one a crash interrupted.
   */
  private async removeNetwork(net: CniNetworkRecord): Promise<void> {
    this.d.log.info({ network: net.name }, 'removing CNI network: no attachment left');
    await this.d.network.deleteNetwork(net.networkId);
    faultPoint('cni.del.network-deleted');
    await this.forgetNetwork(net);
  }

  /** The pool and the record of a CNI network whose driver network is gone. */
  private async forgetNetwork(net: CniNetworkRecord): Promise<void> {
    if (net.poolId) await this.d.ipam.releasePool(net.poolId);
    faultPoint('cni.del.pool-released');
    this.d.cni.deleteNetwork(net.name);
  }

  /**
   * `tsnet cni rm NAME`: removes a CNI network (a conflist renamed or gone leaves one behind
   * whose subnet no other network can take), refused while containers are attached to it.
   */
  async removeNetworkByName(name: string): Promise<void> {
    await this.serial(async () => {
      const net = this.d.cni.getNetwork(name);
      if (!net) throw new NotFoundError(`no CNI network '${name}' in tsnet (\`tsnet status\` lists them)`);
      const attached = this.d.cni.listAttachments(name).length;
      if (attached > 0) {
        throw new ConflictError(`CNI network '${name}' has ${attached} attachment${attached === 1 ? '' : 's'}: remove ${attached === 1 ? 'its container' : 'their containers'} first (the runtime's DEL)`);
      }
      await this.removeNetwork(net);
    });
  }

  /** tsnet's IPAM: the pool (the subnet asked for, or a free one) and its gateway address. */
  private async allocateSubnet(name: string, ipam: TsnetIpam, undo: Undo): Promise<{ poolId: string; pool: string; gateway: string }> {
    const options: Record<string, string> = { [CNI_POOL_OPTION]: name, ...(ipam.overlay ? { overlay: ipam.overlay } : {}) };
    const p = await this.d.ipam.requestPool({ addressSpace: 'local', pool: ipam.subnet, subPool: ipam.ipRange, options, v6: false });
    undo.push(`release pool ${p.poolId}`, () => this.d.ipam.releasePool(p.poolId));
    const gw = await this.d.ipam.requestAddress({ poolId: p.poolId, address: ipam.gateway, options: { [REQUEST_ADDRESS_TYPE]: GATEWAY_REQUEST } });
    undo.push(`release gateway ${gw.address}`, () => this.d.ipam.releaseAddress(p.poolId, gw.address));
    return { poolId: p.poolId, pool: p.pool, gateway: gw.address };
  }

  /** A delegated plugin's subnet: the network of the address it gave, and the gateway it named (tsnet routes through one). */
  private delegatedSubnet(conf: NetConf, lease: Lease): { poolId: string; pool: string; gateway: string } {
    const c = parseCidr(lease.address);
    if (!lease.gateway) throw new CniError(ERR.INVALID_CONFIG, `IPAM plugin '${conf.ipam.type}' gave no gateway: give one in its configuration (tsnet networks route through a gateway)`);
    return { poolId: '', pool: formatCidr(toNetwork(c)), gateway: `${lease.gateway}/${c.prefix}` };
  }

  /** The bridge and the host end of the veth, as the driver reports them (none for macvlan). */
  private async hostInterfaces(ref: EndpointRef): Promise<{ name: string; mac: string }[]> {
    const details = (await this.d.network.endpointOperInfo(ref)).details;
    const out: { name: string; mac: string }[] = [];
    for (const name of [details.bridge, details.hostInterface]) {
      const link = name ? this.d.netlink.getLink(name) : undefined;
      if (link) out.push({ name: link.name, mac: link.mac });
    }
    return out;
  }

  // ---------------------------------------------------------------- DEL, CHECK, GC

  /**
   * DEL: tsnet's part of the attachment under the queue, then the delegated plugin's address
   * outside it. The spec asks plugins to pass DEL on to their IPAM plugin even when they hold
   * nothing, so a DEL retried after a failed plugin DEL reaches the plugin again.
   */
  private async remove(env: CniEnv, conf: NetConf): Promise<void> {
    const removed = await this.serial(() => this.detach(conf.name, env.containerId, env.ifName));
    const delegated = removed ? removed.ipam !== 'tsnet' : conf.ipam.type !== 'tsnet';
    if (delegated) await delegatedDel(env, conf, this.d.delegate);
  }

  /** Undoes tsnet's part of an attachment, whatever is left of it (the container's namespace may be gone); returns what it removed. */
  private async detach(network: string, containerId: string, ifName: string): Promise<CniAttachment | undefined> {
    const a = this.d.cni.getAttachment(network, containerId, ifName);
    if (!a) return undefined;
    // 'deleting' first: restore() finishes a DEL a crash interrupted, whatever step it reached
    if (a.state !== 'deleting') this.d.cni.updateAttachment({ network, containerId, ifName, state: 'deleting' });
    faultPoint('cni.del.marked');
    const ref = { networkId: a.networkId, endpointId: a.endpointId };
    await this.d.network.revokeExternalConnectivity(ref);
    await this.d.network.leave(ref);
    this.releaseIfName(a);
    await this.d.network.deleteEndpoint(ref);
    faultPoint('cni.del.endpoint-deleted');
    const net = this.d.cni.getNetwork(a.network);
    if (a.ipam === 'tsnet' && net && a.address) await this.d.ipam.releaseAddress(net.poolId, a.address);
    faultPoint('cni.del.address-released');
    this.d.cni.deleteAttachment(a.network, a.containerId, a.ifName);
    faultPoint('cni.del.attachment-deleted');
    // as netavark does: a network goes with its last attachment (bridge, rules, pool)
    if (net && this.d.cni.listAttachments(net.name).length === 0) await this.removeNetwork(net);
    return a;
  }

  /**
   * The drivers delete links off the request path (the kernel waits ~20 ms per veth), but a runtime
   * may ADD the same interface name into the same namespace right after DEL: the name is freed
   * now by taking the veth down and renaming it; it goes with its host end moments later.
   */
  private releaseIfName(a: CniAttachment): void {
    if (!existsSync(a.netns)) return;
    let nl: Netlink | undefined;
    try {
      nl = Netlink.openInNetns(a.netns);
      const link = nl.getLink(a.ifName);
      if (!link) return;
      if (link.kind !== 'veth') {
        // a macvlan child lives only in the container: nobody else would remove it
        nl.deleteLink(a.ifName, { ignoreMissing: true });
        return;
      }
      nl.setLink(a.ifName, { up: false });
      nl.setLink(a.ifName, { name: `tsd${shortId(a.endpointId)}` });
    } catch (err) {
      this.d.log.warn({ err, netns: a.netns, ifName: a.ifName }, 'could not free the interface name in the container; it goes with its link');
    } finally {
      nl?.close();
    }
  }

  private check(env: CniEnv, conf: NetConf): void {
    const a = this.d.cni.getAttachment(conf.name, env.containerId, env.ifName);
    if (!a || a.state !== 'ready') throw new CniError(ERR.NOT_ATTACHED, `container ${env.containerId} has no interface ${env.ifName} on network '${conf.name}' in tsnet's state`);
    if (!existsSync(env.netns)) throw new CniError(ERR.CONTAINER_UNKNOWN, `network namespace ${env.netns} does not exist`);
    const nl = Netlink.openInNetns(env.netns);
    try {
      const link = nl.getLink(env.ifName);
      if (!link) throw new CniError(ERR.CHECK_FAILED, `interface ${env.ifName} is missing in ${env.netns}`);
      if (!link.up) throw new CniError(ERR.CHECK_FAILED, `interface ${env.ifName} in ${env.netns} is down`);
      const addresses = nl.listAddresses(env.ifName).map((x) => x.cidr);
      if (!addresses.includes(a.address)) throw new CniError(ERR.CHECK_FAILED, `interface ${env.ifName} in ${env.netns} lacks its address ${a.address} (has ${addresses.join(', ') || 'none'})`);
      if (!this.d.repo.getEndpoint(a.endpointId)) throw new CniError(ERR.CHECK_FAILED, `the endpoint of ${env.ifName} is gone from its tsnet network '${conf.name}'`);
    } finally {
      nl.close();
    }
  }

  /** GC: removes the attachments missing from cni.dev/valid-attachments (parseConfig refuses a GC without the list). */
  private async gc(env: CniEnv, conf: NetConf): Promise<void> {
    const valid = new Set((conf.validAttachments ?? []).map((v) => `${v.containerId}/${v.ifName}`));
    const stale = await this.serial(() => this.d.cni.listAttachments(conf.name).filter((a) => !valid.has(`${a.containerId}/${a.ifName}`)));
    for (const a of stale) {
      this.d.log.info({ network: a.network, container: a.containerId, ifName: a.ifName }, 'CNI GC: removing an attachment the runtime no longer has');
      await this.remove({ command: 'DEL', containerId: a.containerId, netns: a.netns, ifName: a.ifName, args: {}, path: env.path }, conf);
    }
  }

  // ---------------------------------------------------------------- start-up

  /**
   * After the drivers' restore, puts CNI's state back in line with what a crash may have cut
   * short (each step is safe to run again):
   * - attachments not 'ready': an ADD is rolled back, a DEL finished;
   * - networks whose driver network is missing (a crash between record and network, or during
   *   removal): pool and record go; networks with no attachment left go as after their last DEL;
   * - pools made for a CNI network that no record names (a crash before the record) are released;
   * - addresses of a CNI pool that neither an attachment nor its gateway holds (a crash between
   *   allocation and the attachment's row) are released;
   * - endpoints of CNI networks that no attachment owns are removed.
   */
  async restore(): Promise<void> {
    for (const a of this.d.cni.listAttachments()) {
      if (a.state === 'ready') continue;
      this.d.log.info({ network: a.network, container: a.containerId, state: a.state }, a.state === 'deleting' ? 'finishing an interrupted CNI DEL' : 'rolling back an interrupted CNI ADD');
      await this.detach(a.network, a.containerId, a.ifName);
    }
    for (const net of this.d.cni.listNetworks()) {
      if (!this.d.repo.getNetwork(net.networkId)) {
        this.d.log.info({ network: net.name }, 'forgetting a CNI network whose tsnet network is gone');
        await this.forgetNetwork(net);
      } else if (this.d.cni.listAttachments(net.name).length === 0) {
        await this.removeNetwork(net);
      }
    }
    await this.releaseUnrecorded();
    for (const net of this.d.cni.listNetworks()) {
      const owned = new Set(this.d.cni.listAttachments(net.name).map((a) => a.endpointId));
      for (const ep of this.d.repo.listEndpoints(net.networkId)) {
        if (owned.has(ep.id)) continue;
        this.d.log.info({ network: net.name, endpoint: ep.id }, 'removing a CNI endpoint no attachment owns');
        await this.d.network.deleteEndpoint({ networkId: net.networkId, endpointId: ep.id });
        if (net.poolId && ep.address) await this.d.ipam.releaseAddress(net.poolId, ep.address);
      }
    }
  }

  /** The pools and addresses a crash left allocated for CNI with no record naming them. */
  private async releaseUnrecorded(): Promise<void> {
    const records = this.d.ipamRecords;
    if (!records) return;
    const byPool = new Map(this.d.cni.listNetworks().map((n) => [n.poolId, n]));
    for (const pool of records.listPools()) {
      const name = pool.options[CNI_POOL_OPTION];
      if (name === undefined) continue;
      const net = byPool.get(pool.id);
      if (!net) {
        this.d.log.info({ pool: pool.id, network: name }, 'releasing a pool made for a CNI network that was never recorded');
        await this.d.ipam.releasePool(pool.id);
        continue;
      }
      const held = new Set([bareIp(net.gateway), ...this.d.cni.listAttachments(net.name).map((a) => bareIp(a.address))]);
      for (const a of records.listAllocations(pool.id)) {
        if (held.has(a.address)) continue;
        this.d.log.info({ network: net.name, address: a.address }, 'releasing an address allocated by an interrupted CNI ADD');
        await this.d.ipam.releaseAddress(pool.id, a.address);
      }
    }
  }
}

function toBinding(p: NetConf['runtime']['portMappings'][number]): PortBindingRequest {
  return { proto: p.protocol, port: p.containerPort, ip: '', hostIp: p.hostIP, hostPort: p.hostPort, hostPortEnd: p.hostPort };
}

/** What makes two configurations of one network name the same network. */
/** Milliseconds per step of one request, each from the end of the one before (a step named twice adds up). */
class Steps {
  readonly ms: Record<string, number> = {};
  private last = performance.now();

  mark(step: string): void {
    const now = performance.now();
    this.ms[step] = Math.round(((this.ms[step] ?? 0) + now - this.last) * 1000) / 1000;
    this.last = now;
  }
}

function signatureOf(conf: NetConf): string {
  const options = Object.fromEntries(Object.entries(conf.options).sort(([a], [b]) => a.localeCompare(b)));
  const ipam = conf.ipam.type === 'tsnet' ? conf.ipam : { type: conf.ipam.type };
  return JSON.stringify({ mode: conf.mode, options, ipam });
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

