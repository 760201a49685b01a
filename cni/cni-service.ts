// CNI inside the daemon: each command a runtime runs through the `tsnet` plugin executable arrives
// here (plugin-api/server.ts, route Cni.Exec) and is carried out with the same parts Docker's calls
// use: the Ipam service for addresses, the controller and its drivers for links and ports, and
// runtime/sandbox.ts for the container side, which dockerd would do for Docker. So a CNI network
// is a tsnet network like any other: it shows in `tsnet status`, shares the address pools and the
// nftables table, and survives daemon restarts.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type NetworkDriver, type PortBindingRequest } from '../drivers/driver.js';
import { GATEWAY_REQUEST, REQUEST_ADDRESS_TYPE, type IpamService } from '../ipam/types.js';
import { formatCidr, parseCidr, toNetwork } from '../ipam/address.js';
import { Netlink } from '../native/netlink/netlink.js';
import { configureSandbox } from '../runtime/sandbox.js';
import type { CniAttachment, CniNetworkRecord, CniRepo } from '../store/cni-repo.js';
import type { NetworkRepo } from '../store/network-repo.js';
import {
  CniError,
  ERR,
  LATEST_VERSION,
  buildResult,
  errorOutput,
  parseConfig,
  parseEnv,
  versionOutput,
  type CniEnv,
  type NetConf,
  type Result,
  type TsnetIpam,
} from './spec.js';
import { UserError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { shortId } from '../core/text.js';

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
  log: Logger;
}

type Step = () => unknown;

export class CniService {
  constructor(private readonly d: CniServiceDeps) {}

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
          await this.del(env, conf);
          return { exitCode: 0, output: '' };
        case 'CHECK':
          this.check(env, conf);
          return { exitCode: 0, output: '' };
        case 'GC':
          await this.gc(conf);
          return { exitCode: 0, output: '' };
        case 'STATUS':
          return { exitCode: 0, output: '' };
      }
    } catch (err) {
      const e = toCniError(err);
      if (e.code === ERR.INTERNAL) this.d.log.error({ err }, 'CNI command failed inside tsnet');
      return { exitCode: 1, output: errorOutput(version, e) };
    }
    return { exitCode: 1, output: errorOutput(version, new CniError(ERR.INVALID_ENV, 'unknown command')) };
  }

  // ---------------------------------------------------------------- ADD

  private async add(env: CniEnv, conf: NetConf): Promise<Result> {
    const existing = this.d.cni.getAttachment(conf.name, env.containerId, env.ifName);
    if (existing?.state === 'ready') {
      // ADD again without DEL: the attachment is there, say so with the same result
      return JSON.parse(existing.result) as Result;
    }
    if (existing) await this.remove(existing, conf);
    if (!existsSync(env.netns)) throw new CniError(ERR.CONTAINER_UNKNOWN, `network namespace ${env.netns} does not exist`);

    const undo: Step[] = [];
    try {
      // delegated IPAM first: its address tells the subnet of a network made on this first ADD
      let address = '';
      let delegatedGateway = '';
      if (conf.ipam.type !== 'tsnet') {
        const r = await this.delegate('ADD', env, conf);
        undo.push(() => this.delegate('DEL', env, conf));
        const ip = (r.ips ?? []).find((i) => !i.address.includes(':'));
        if (!ip) throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${conf.ipam.type}' returned no IPv4 address`);
        address = ip.address;
        delegatedGateway = ip.gateway ?? '';
      }
      const net = await this.ensureNetwork(conf, address, delegatedGateway, undo);
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
      undo.push(() => this.d.cni.deleteAttachment(conf.name, env.containerId, env.ifName));

      if (conf.ipam.type === 'tsnet') {
        const wanted = conf.runtime.ips[0] ?? env.args.IP ?? '';
        const r = await this.d.ipam.requestAddress({ poolId: net.poolId, address: wanted.split('/')[0], options: {} });
        address = r.address;
        undo.push(() => this.d.ipam.releaseAddress(net.poolId, r.address));
      }
      this.d.cni.updateAttachment({ network: conf.name, containerId: env.containerId, ifName: env.ifName, address });

      const ref = { networkId: net.networkId, endpointId };
      const created = await this.d.network.createEndpoint({
        ...ref,
        address,
        addressIpv6: '',
        macAddress: conf.runtime.mac || env.args.MAC || '',
        options: { portBindings: [], exposedPorts: [], other: {} },
        netnsHint: env.netns,
      });
      undo.push(() => this.d.network.deleteEndpoint(ref));
      const joined = await this.d.network.join({ ...ref, sandboxKey: env.netns, options: { portBindings: [], exposedPorts: [], other: {} } });
      undo.push(() => this.d.network.leave(ref));
      const inside = configureSandbox(this.d.netlink, {
        link: joined.srcName,
        netnsPath: env.netns,
        ifName: env.ifName,
        addresses: [address],
        gateway4: joined.gateway || undefined,
        mac: created.macAddress,
      });
      if (conf.runtime.portMappings.length > 0) {
        // runtimes bind the host ports of their containers themselves (podman does), as with the
        // reference portmap plugin: tsnet only programs the mappings
        await this.d.network.programExternalConnectivity({
          ...ref,
          options: { portBindings: conf.runtime.portMappings.map(toBinding), exposedPorts: [], other: {} },
          runtimeHoldsHostPorts: true,
        });
        undo.push(() => this.d.network.revokeExternalConnectivity(ref));
      }
      const result = buildResult(
        conf.cniVersion,
        { hostInterfaces: await this.hostInterfaces(ref), ifName: env.ifName, mac: inside.mac, mtu: inside.mtu, netns: env.netns, address, gateway: joined.gateway },
        conf.prevResult,
      );
      this.d.cni.updateAttachment({ network: conf.name, containerId: env.containerId, ifName: env.ifName, state: 'ready', result: JSON.stringify(result) });
      return result;
    } catch (err) {
      for (const step of undo.reverse()) {
        try {
          await step();
        } catch (e) {
          this.d.log.warn({ err: e }, 'CNI ADD rollback step failed; the start-up reconcile will retry');
        }
      }
      throw err;
    }
  }

  /** The tsnet network behind a CNI network name: made on the first ADD, checked on every later one. */
  private async ensureNetwork(conf: NetConf, delegatedAddress: string, delegatedGateway: string, undo: Step[]): Promise<CniNetworkRecord> {
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
    // a record whose network is gone (its state was reset): start afresh
    if (existing) this.d.cni.deleteNetwork(conf.name);

    const networkId = sha256(`cni:${conf.name}`);
    let poolId = '';
    let pool: string;
    let gateway: string;
    if (conf.ipam.type === 'tsnet') {
      const ipam = conf.ipam as TsnetIpam;
      const p = await this.d.ipam.requestPool({ addressSpace: 'local', pool: ipam.subnet, subPool: ipam.ipRange, options: ipam.overlay ? { overlay: ipam.overlay } : {}, v6: false });
      poolId = p.poolId;
      pool = p.pool;
      undo.push(() => this.d.ipam.releasePool(p.poolId));
      const gw = await this.d.ipam.requestAddress({ poolId, address: ipam.gateway, options: { [REQUEST_ADDRESS_TYPE]: GATEWAY_REQUEST } });
      gateway = gw.address;
      undo.push(() => this.d.ipam.releaseAddress(poolId, gw.address));
    } else {
      const c = parseCidr(delegatedAddress);
      pool = formatCidr(toNetwork(c));
      gateway = delegatedGateway ? `${delegatedGateway}/${c.prefix}` : '';
      if (!gateway) throw new CniError(ERR.INVALID_CONFIG, `IPAM plugin '${conf.ipam.type}' gave no gateway: give one in its configuration (tsnet networks route through a gateway)`);
    }
    await this.d.network.createNetwork({
      networkId,
      options: conf.options,
      enableIpv6: false,
      internal: false,
      ipv4: [{ addressSpace: 'local', pool, gateway, auxAddresses: {} }],
      ipv6: [],
    });
    undo.push(() => this.d.network.deleteNetwork(networkId));
    const record = { name: conf.name, networkId, mode: conf.mode, signature, poolId, gateway };
    this.d.cni.insertNetwork(record);
    undo.push(() => this.d.cni.deleteNetwork(conf.name));
    return this.d.cni.getNetwork(conf.name)!;
  }

  /** The bridge and the host end of the veth, as the driver reports them (none for macvlan). */
  private async hostInterfaces(ref: { networkId: string; endpointId: string }): Promise<{ name: string; mac: string }[]> {
    const details = (await this.d.network.endpointOperInfo(ref)).details;
    const out: { name: string; mac: string }[] = [];
    for (const name of [details.bridge, details.hostInterface]) {
      const link = name ? this.d.netlink.getLink(name) : undefined;
      if (link) out.push({ name: link.name, mac: link.mac });
    }
    return out;
  }

  // ---------------------------------------------------------------- DEL, CHECK, GC

  private async del(env: CniEnv, conf: NetConf): Promise<void> {
    const a = this.d.cni.getAttachment(conf.name, env.containerId, env.ifName);
    if (a) {
      await this.remove(a, conf, env);
    } else if (conf.ipam.type !== 'tsnet') {
      // the spec asks plugins to pass DEL on to their IPAM plugin even when they hold nothing
      await this.delegate('DEL', env, conf);
    }
  }

  /** Undoes an attachment, whatever is left of it; the container's namespace may be gone. */
  private async remove(a: CniAttachment, conf: NetConf, env?: CniEnv): Promise<void> {
    const ref = { networkId: a.networkId, endpointId: a.endpointId };
    await this.d.network.revokeExternalConnectivity(ref);
    await this.d.network.leave(ref);
    this.releaseIfName(a);
    await this.d.network.deleteEndpoint(ref);
    if (a.ipam === 'tsnet') {
      const net = this.d.cni.getNetwork(a.network);
      if (net && a.address) await this.d.ipam.releaseAddress(net.poolId, a.address);
    } else {
      await this.delegate('DEL', env ?? { command: 'DEL', containerId: a.containerId, netns: a.netns, ifName: a.ifName, args: {}, path: [] }, conf);
    }
    this.d.cni.deleteAttachment(a.network, a.containerId, a.ifName);
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

  private async gc(conf: NetConf): Promise<void> {
    const valid = new Set((conf.validAttachments ?? []).map((v) => `${v.containerId}/${v.ifName}`));
    for (const a of this.d.cni.listAttachments(conf.name)) {
      if (valid.has(`${a.containerId}/${a.ifName}`)) continue;
      this.d.log.info({ network: a.network, container: a.containerId, ifName: a.ifName }, 'CNI GC: removing an attachment the runtime no longer has');
      await this.remove(a, conf);
    }
  }

  // ---------------------------------------------------------------- start-up

  /**
   * After the drivers' restore: rolls back attachments an interrupted ADD left half-made, and
   * removes endpoints of CNI networks no attachment owns.
   */
  async restore(): Promise<void> {
    for (const a of this.d.cni.listAttachments()) {
      if (a.state === 'ready') continue;
      this.d.log.info({ network: a.network, container: a.containerId }, 'rolling back an interrupted CNI ADD');
      const ref = { networkId: a.networkId, endpointId: a.endpointId };
      await this.d.network.leave(ref);
      await this.d.network.deleteEndpoint(ref);
      const net = this.d.cni.getNetwork(a.network);
      if (a.ipam === 'tsnet' && net && a.address) await this.d.ipam.releaseAddress(net.poolId, a.address);
      this.d.cni.deleteAttachment(a.network, a.containerId, a.ifName);
    }
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

  // ---------------------------------------------------------------- delegated IPAM

  /** Runs the configured IPAM plugin as a runtime would: same environment, the network configuration on stdin. */
  private async delegate(command: 'ADD' | 'DEL', env: CniEnv, conf: NetConf): Promise<Result> {
    const type = conf.ipam.type;
    if (!/^[A-Za-z0-9_.-]+$/.test(type)) throw new CniError(ERR.INVALID_CONFIG, `IPAM type '${type}' is not a plugin name`);
    const dirs = env.path.length > 0 ? env.path : ['/opt/cni/bin', '/usr/lib/cni'];
    const binary = dirs.map((d) => join(d, type)).find((p) => existsSync(p));
    if (!binary) throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' not found in CNI_PATH (${dirs.join(':')})`);
    const childEnv: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: env.containerId,
      CNI_NETNS: env.netns,
      CNI_IFNAME: env.ifName,
      CNI_ARGS: Object.entries(env.args)
        .map(([k, v]) => `${k}=${v}`)
        .join(';'),
      CNI_PATH: dirs.join(':'),
    };
    const { code, stdout } = await run(binary, childEnv, JSON.stringify(conf.raw));
    if (code !== 0) {
      let msg = stdout.trim();
      try {
        const e = JSON.parse(stdout) as { msg?: string; details?: string };
        msg = [e.msg, e.details].filter(Boolean).join(': ');
      } catch {
        // not JSON: pass the text on
      }
      throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' ${command} failed: ${msg || `exit ${code}`}`);
    }
    if (command === 'DEL' || !stdout.trim()) return { cniVersion: conf.cniVersion };
    try {
      return JSON.parse(stdout) as Result;
    } catch {
      throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' printed no JSON result`);
    }
  }
}

function run(binary: string, env: Record<string, string>, input: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (stdout += d));
    child.on('error', (err) => reject(new CniError(ERR.IPAM_PLUGIN, `could not run ${binary}: ${err.message}`)));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout }));
    child.stdin.end(input);
  });
}

function toBinding(p: NetConf['runtime']['portMappings'][number]): PortBindingRequest {
  return { proto: p.protocol, port: p.containerPort, ip: '', hostIp: p.hostIP, hostPort: p.hostPort, hostPortEnd: p.hostPort };
}

/** What makes two configurations of one network name the same network. */
function signatureOf(conf: NetConf): string {
  const options = Object.fromEntries(Object.entries(conf.options).sort(([a], [b]) => a.localeCompare(b)));
  const ipam = conf.ipam.type === 'tsnet' ? conf.ipam : { type: conf.ipam.type };
  return JSON.stringify({ mode: conf.mode, options, ipam });
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The cniVersion of a configuration that may not parse, for the error's own cniVersion. */
function versionOf(stdin: string): string {
  const m = /"cniVersion"\s*:\s*"([0-9A-Za-z.+-]{1,20})"/.exec(stdin);
  return m ? m[1] : LATEST_VERSION;
}

function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof UserError) return new CniError(ERR.REFUSED, err.message);
  return new CniError(ERR.INTERNAL, `tsnet internal error: ${err instanceof Error ? err.message : String(err)} (see the tsnet log)`);
}
