// The cluster store on etcd (v3 API through the `etcd3` client). The key layout is in keys.ts;
// hosts/<host> is under the host's lease, one live instance per name. An overlay's definition,
// pool and addresses go when its last member leaves (leaveOverlay), or with `tsnet cluster forget`.
// Every write that two hosts could race on is a transaction guarded by the key's create or mod
// revision, so the store, not the hosts' views, decides who wins.
import { Etcd3, type IOptions, type Lease, type Watcher, type IKeyValue } from 'etcd3';
import type {
  AddressKind,
  AnnouncementListener,
  ClusterAddress,
  ClusterPool,
  PoolFamily,
  ClusterStore,
  EndpointAnnouncement,
  HostRecord,
  OverlayDefinition,
  OverlayRequest,
} from './cluster-store.js';
import { UnavailableError, UserError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { shortId } from '../../core/text.js';
import { key, keysOfHost, prefixOf, PREFIX } from './keys.js';
import { describeHolder, reclaimPlan, type AddressHolder, type ContainerAddressKind } from './reclaim.js';
const FIRST_VNI = 4096;
const MAX_VNI = 16_777_215;
const VXLAN_PORT = 4789;
/** Attempts at a guarded write that keeps losing to other hosts. */
const MAX_ATTEMPTS = 20;
/**
 * How long one call to etcd may take. Without it a call waits for ever when the cluster has lost
 * its majority (a member without a leader holds proposals and linearizable reads), and an attach
 * would hang until Docker gave up. Streams (watch, lease keep-alive) have none.
 */
export const CALL_TIMEOUT_MS = 3_000;

/**
 * The client's options: a dial and a call timeout, and gRPC keep-alive pings on the streams, so a
 * connection whose other end went silent (a cut cable) is dropped and dialled again instead of
 * waiting for TCP's retransmissions, which back off to minutes. etcd refuses pings more often
 * than every 5 s (--grpc-keepalive-min-time).
 */
export function etcdClientOptions(hosts: string[]): IOptions {
  return {
    hosts,
    dialTimeout: CALL_TIMEOUT_MS,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    grpcOptions: { 'grpc.keepalive_time_ms': 5_000, 'grpc.keepalive_timeout_ms': 3_000 },
    faultHandling: { host: () => EVERY_CALL },
  };
}

type MemberPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/**
 * Each call goes to the member the client picked, with no circuit breaker in front. etcd3's
 * default breaker skips a member for 5 s after three failures in a row; when a majority came back
 * after an outage, every member had failed meanwhile, so every call was refused for up to 5 s
 * more ("the circuit breaker is open"). A member that is down refuses the connection at once, and
 * the client's retry goes on to the next member.
 */
const EVERY_CALL = {
  execute: async <T>(fn: (context: { signal: AbortSignal; attempt: number }) => T | Promise<T>) => fn({ signal: new AbortController().signal, attempt: 0 }),
} as unknown as MemberPolicy;

export interface EtcdStoreOptions {
  /** client URLs, e.g. ["http://10.0.0.1:2379"] */
  hosts: string[];
  host: string;
  vtep: string;
  /** seconds a dead host's entries live on; default 10 */
  leaseTtl?: number;
  /**
   * Which installation this is (daemon/paths.ts installationId): a daemon restarted before its old
   * lease expired takes its name back, another host with the same name is refused. Default: one
   * shared by every store of this process, for tests.
   */
  instance?: string;
  /**
   * Called when an announcement of this host's could not be put back under a new lease because
   * another endpoint took its address while this host's lease was gone (cut off from the store
   * longer than the lease, and the address freed and given out again): the local endpoint must
   * stop using it. The announcement is not overwritten.
   */
  onAddressTaken?: (taken: AddressTaken) => void;
  /**
   * A local endpoint that gave its address up (daemon/address-taken.ts): it is never announced
   * again, also not after a restart, so it cannot take the address back from its new holder.
   */
  isCutOff?: (endpointId: string) => boolean;
  /**
   * This host's overlay endpoints as the daemon restored them, read at start: claimed again as
   * after a lost lease, so one whose address went to another container while the daemon was down
   * (and the host forgotten) is cut off instead of announced beside its new holder.
   */
  localEndpoints?: () => Omit<EndpointAnnouncement, 'host' | 'vtep'>[];
  log: Logger;
}

/** A local endpoint whose address another endpoint holds in the cluster now. */
export interface AddressTaken {
  overlay: string;
  ip: string;
  endpointId: string;
  /** the endpoint and host that hold the address now (endpointId '' when only its claim is known) */
  holder: AddressHolder;
}

export class EtcdClusterStore implements ClusterStore {
  readonly host: string;
  readonly vtep: string;
  readonly endpoint: string;
  private readonly instance: string;
  private readonly client: Etcd3;
  private readonly ttl: number;
  private readonly log: Logger;
  private readonly onAddressTaken: (taken: AddressTaken) => void;
  private readonly isCutOff: (endpointId: string) => boolean;
  private readonly localEndpoints: () => Omit<EndpointAnnouncement, 'host' | 'vtep'>[];
  private lease: Lease | undefined;
  private leaseId = '';
  private watcher: Watcher | undefined;
  private closed = false;
  /** this host's announcements, re-put under a new lease when the old one is lost */
  private readonly mine = new Map<string, string>();
  /** the overlays this host joined, joined again under a new lease (cluster forget removes memberships) */
  private readonly joined = new Set<string>();
  /** the kind of each address claim (by key) this host made or found its own: a claim put back keeps it (reclaim.ts) */
  private readonly claimKinds = new Map<string, ContainerAddressKind>();

  constructor(opts: EtcdStoreOptions) {
    this.host = opts.host;
    this.vtep = opts.vtep;
    this.endpoint = opts.hosts.join(',');
    this.ttl = opts.leaseTtl ?? 10;
    this.instance = opts.instance ?? `pid:${process.pid}`;
    this.log = opts.log;
    this.onAddressTaken = opts.onAddressTaken ?? (() => undefined);
    this.isCutOff = opts.isCutOff ?? (() => false);
    this.localEndpoints = opts.localEndpoints ?? (() => []);
    this.client = new Etcd3(etcdClientOptions(opts.hosts));
  }

  async start(): Promise<void> {
    for (const a of this.localEndpoints()) if (!this.isCutOff(a.endpointId)) this.mine.set(key.endpoint(a.overlay, a.ip), this.announcementValue(a));
    await this.newLease();
  }

  private announcementValue(a: Omit<EndpointAnnouncement, 'host' | 'vtep'>): string {
    return JSON.stringify({ mac: a.mac, endpointId: a.endpointId, host: this.host, vtep: this.vtep });
  }

  private async newLease(): Promise<void> {
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    let id: string;
    try {
      id = await lease.grant();
    } catch (err) {
      lease.release();
      throw new Error(`cannot reach the cluster store at ${this.endpoint}: ${(err as Error).message}`);
    }
    this.lease = lease;
    this.leaseId = id;
    lease.on('lost', (err) => {
      if (this.closed || this.lease !== lease) return;
      this.log.warn({ err: String(err) }, "lost this host's lease in the cluster store: registering again");
      this.retryNewLease();
    });
    try {
      await this.register(id);
    } catch (err) {
      if (this.lease === lease) this.lease = undefined;
      await lease.revoke().catch(() => undefined);
      throw err;
    }
    // memberships and address claims may have gone meanwhile too (tsnet cluster forget): this
    // host is a member again of what it joined
    for (const overlay of this.joined) await this.putMembership(overlay);
    // announcements made under a lost lease are gone from the store: put them back with their
    // addresses' claims, unless another endpoint or host took one meanwhile (then the local
    // endpoint gives it up)
    const lost = new Set<string>();
    for (const [k, v] of [...this.mine]) {
      const { overlay, ip } = parseEndpointKey(k) ?? { overlay: '', ip: k }; // mine holds endpoint keys only
      const { endpointId } = JSON.parse(v) as { endpointId: string };
      const holder = await this.reclaim(k, v, endpointId);
      if (!holder) continue;
      this.mine.delete(k);
      lost.add(endpointId);
      this.log.error({ overlay, ip, endpoint: endpointId, holder }, `address ${ip} on overlay '${overlay}' went to ${describeHolder(holder)} while this host's lease was gone: not announced again`);
      this.onAddressTaken({ overlay, ip, endpointId, holder });
    }
    // a dual-stack endpoint that lost one address is cut off: its other one is not announced either
    for (const [k, v] of [...this.mine]) {
      const { endpointId } = JSON.parse(v) as { endpointId: string };
      const where = parseEndpointKey(k);
      if (lost.has(endpointId) && where) await this.withdraw(where.overlay, where.ip, endpointId);
    }
  }

  /**
   * One announcement of this host's after a lost lease (reclaim.ts): the announcement under the
   * new lease and, in the same transaction, its address's claim in the overlay's cluster pool when
   * that was freed meanwhile; nothing when another endpoint or host holds either, then its holder.
   */
  private async reclaim(k: string, value: string, endpointId: string): Promise<AddressHolder | undefined> {
    const { overlay, ip } = parseEndpointKey(k) ?? { overlay: '', ip: '' };
    const claimKey = key.address(overlay, ip);
    const poolKey = key.pool(overlay, ip.includes(':') ? 6 : 4);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = await this.client
        .if(k, 'Version', '>', -1) // always true: one consistent read of the three keys
        .then(this.client.get(k), this.client.get(claimKey), this.client.get(poolKey))
        .commit();
      const [announced, claimed, pool] = read.responses.map((r) => r.response_range?.kvs[0]);
      const claim = claimed && (JSON.parse(claimed.value.toString()) as { kind: AddressKind; host: string });
      if (claim && claim.host === this.host && claim.kind !== 'gateway') this.claimKinds.set(claimKey, claim.kind);
      const plan = reclaimPlan({
        host: this.host,
        endpointId,
        announcement: announced && (JSON.parse(announced.value.toString()) as AddressHolder),
        claim,
        pooled: pool !== undefined,
        claimedAs: this.claimKinds.get(claimKey),
      });
      if (plan.taken) return plan.taken;
      const r = await this.client
        .if(k, 'Mod', '==', announced?.mod_revision ?? 0)
        .and(claimKey, 'Mod', '==', claimed?.mod_revision ?? 0)
        .and(poolKey, 'Mod', '==', pool?.mod_revision ?? 0)
        .then(this.client.put(k).value(value).lease(this.leaseId), ...(plan.claim ? [this.client.put(claimKey).value(JSON.stringify({ kind: plan.claim, host: this.host }))] : []))
        .commit();
      if (r.succeeded) {
        this.mine.set(k, value);
        if (plan.claim) this.log.info({ overlay, ip, endpoint: endpointId }, `claimed address ${ip} on overlay '${overlay}' again: it was freed while this host's lease was gone`);
        return undefined;
      }
    }
    throw new Error(`could not announce ${k.slice(`${PREFIX}endpoints/`.length)} again: other hosts kept changing the store`);
  }

  /**
   * Puts an announcement of this host's under the current lease when the address is free or
   * already this endpoint's; otherwise leaves it and returns who holds it.
   */
  private async putAnnouncement(k: string, value: string, endpointId: string): Promise<{ endpointId: string; host: string } | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const r = await this.client
        .if(k, 'Create', '==', 0)
        .then(this.client.put(k).value(value).lease(this.leaseId))
        .else(this.client.get(k))
        .commit();
      if (r.succeeded) {
        this.mine.set(k, value);
        return undefined;
      }
      const kv = r.responses[0]?.response_range?.kvs[0];
      if (!kv) continue; // deleted in between: try again
      const holder = JSON.parse(kv.value.toString()) as { endpointId: string; host: string };
      if (holder.endpointId !== endpointId) return { endpointId: holder.endpointId, host: holder.host };
      // ours already (a restart, a new lease): put it under the current lease and value
      const u = await this.client.if(k, 'Mod', '==', kv.mod_revision).then(this.client.put(k).value(value).lease(this.leaseId)).commit();
      if (u.succeeded) {
        this.mine.set(k, value);
        return undefined;
      }
    }
    throw new Error(`could not announce ${k.slice(`${PREFIX}endpoints/`.length)}: other hosts kept changing the store`);
  }

  /**
   * Puts hosts/<name> under the lease: created when absent, taken back when this installation
   * left it (a restart before the old lease expired), refused while another one holds it, so two
   * live hosts never share a name (and with it each other's addresses and announcements).
   */
  private async register(leaseId: string): Promise<void> {
    const k = key.host(this.host);
    const record: Omit<HostRecord, 'name'> = { vtep: this.vtep, startedAt: new Date().toISOString(), instance: this.instance };
    const value = JSON.stringify(record);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const created = await this.client.if(k, 'Create', '==', 0).then(this.client.put(k).value(value).lease(leaseId)).commit();
      if (created.succeeded) return;
      const kv = (await this.client.get(k).exec()).kvs[0];
      if (!kv) continue; // its lease expired in between: create it
      const held = JSON.parse(kv.value.toString()) as Omit<HostRecord, 'name'>;
      if (held.instance !== undefined && held.instance !== this.instance) {
        throw new UserError(
          `another tsnet host is registered as '${this.host}' in the cluster store (VTEP ${held.vtep}, since ${held.startedAt}): ` +
            'give each host its own --host-name',
          'conflict',
        );
      }
      const taken = await this.client.if(k, 'Mod', '==', kv.mod_revision).then(this.client.put(k).value(value).lease(leaseId)).commit();
      if (taken.succeeded) return;
    }
    throw new Error(`could not register host '${this.host}' in the cluster store: it kept changing`);
  }

  private retryNewLease(): void {
    this.newLease().catch((err: unknown) => {
      if (this.closed) return;
      this.log.warn({ err: String(err) }, 'cluster store unreachable; trying again in 1 s');
      setTimeout(() => this.retryNewLease(), 1_000).unref();
    });
  }

  async close(opts: { withdraw?: boolean } = {}): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel().catch(() => undefined);
    if (this.lease) {
      if (opts.withdraw) await this.lease.revoke().catch(() => undefined);
      else this.lease.release();
    }
    this.client.close();
  }

  // ---------------------------------------------------------------- hosts

  async listHosts(): Promise<HostRecord[]> {
    const all = await this.client.getAll().prefix(`${PREFIX}hosts/`).strings();
    return Object.entries(all).map(([k, v]) => ({ name: k.slice(`${PREFIX}hosts/`.length), ...(JSON.parse(v) as Omit<HostRecord, 'name'>) }));
  }

  // ---------------------------------------------------------------- overlays

  async defineOverlay(req: OverlayRequest): Promise<OverlayDefinition> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const existing = await this.getOverlay(req.name);
      if (existing) {
        checkSameOverlay(existing, req);
        return existing;
      }
      const all = await this.listOverlays();
      const vni = req.vni ?? firstFreeVni(all);
      const clash = all.find((o) => o.vni === vni);
      if (clash) throw new UserError(`VNI ${vni} is taken by overlay '${clash.name}' in the cluster: choose another -o vni=N or leave it out`);
      const def: OverlayDefinition = {
        name: req.name,
        vni,
        subnet: req.subnet,
        ...(req.subnet6 ? { subnet6: req.subnet6 } : {}),
        port: req.port ?? VXLAN_PORT,
        createdBy: this.host,
        createdAt: new Date().toISOString(),
      };
      const { name, ...value } = def;
      const k = key.overlay(name);
      const r = await this.client.if(k, 'Create', '==', 0).then(this.client.put(k).value(JSON.stringify(value))).commit();
      if (r.succeeded) return def;
    }
    throw new Error(`could not define overlay '${req.name}': other hosts kept changing the store`);
  }

  private async getOverlay(name: string): Promise<OverlayDefinition | undefined> {
    const v = await this.client.get(key.overlay(name)).string();
    return v === null ? undefined : { name, ...(JSON.parse(v) as Omit<OverlayDefinition, 'name'>) };
  }

  async listOverlays(): Promise<OverlayDefinition[]> {
    const all = await this.client.getAll().prefix(`${PREFIX}overlays/`).strings();
    return Object.entries(all).map(([k, v]) => ({ name: k.slice(`${PREFIX}overlays/`.length), ...(JSON.parse(v) as Omit<OverlayDefinition, 'name'>) }));
  }

  // ---------------------------------------------------------------- membership

  async joinOverlay(overlay: string): Promise<void> {
    this.joined.add(overlay);
    await this.putMembership(overlay);
  }

  private async putMembership(overlay: string): Promise<void> {
    // one transaction: the member key, and the joins key every removal checks for a change
    await this.client
      .if(key.joins(overlay), 'Version', '>', -1) // always true: a transaction needs a comparison
      .then(
        this.client.put(key.member(overlay, this.host)).value(JSON.stringify({ since: new Date().toISOString() })),
        this.client.put(key.joins(overlay)).value(this.host),
      )
      .commit();
  }

  async leaveOverlay(overlay: string): Promise<boolean> {
    this.joined.delete(overlay);
    await this.client.delete().key(key.member(overlay, this.host));
    const removed = await removeOverlayIfUnused(this.client, overlay);
    if (removed) this.log.info({ overlay }, "the last member left: removed the overlay's definition, pool and addresses from the cluster store");
    return removed;
  }

  async joinedOverlays(): Promise<string[]> {
    const keys = await this.client.getAll().prefix(prefixOf.members()).keys();
    return keys.map((k) => k.split('/')).filter((p) => p[p.length - 1] === this.host).map((p) => p[p.length - 2]);
  }

  // ---------------------------------------------------------------- endpoint announcements

  async announce(a: Omit<EndpointAnnouncement, 'host' | 'vtep'>): Promise<void> {
    if (this.isCutOff(a.endpointId)) {
      throw new UserError(`endpoint ${shortId(a.endpointId)} is cut off: its address ${a.ip} on overlay '${a.overlay}' went to another container while this host was away; disconnect and connect the container to give it a new address`, 'conflict');
    }
    const k = key.endpoint(a.overlay, a.ip);
    const value = this.announcementValue(a);
    const holder = await this.putAnnouncement(k, value, a.endpointId);
    if (holder) {
      throw new UserError(
        `address ${a.ip} on overlay '${a.overlay}' is in use by endpoint ${shortId(holder.endpointId)} on host ${holder.host}: ` +
          'give each host a different --ip-range, or use --ipam-driver tsnet --ipam-opt overlay=NAME for cluster-wide addresses',
      );
    }
  }

  async withdraw(overlay: string, ip: string, endpointId: string): Promise<void> {
    const k = key.endpoint(overlay, ip);
    this.mine.delete(k);
    const r = await this.client.get(k).exec();
    const kv = r.kvs[0];
    if (!kv) return;
    const holder = JSON.parse(kv.value.toString()) as { endpointId: string; host: string };
    if (holder.endpointId !== endpointId || holder.host !== this.host) return;
    await this.client.if(k, 'Mod', '==', kv.mod_revision).then(this.client.delete().key(k)).commit();
  }

  async listAnnouncements(): Promise<EndpointAnnouncement[]> {
    const r = await this.client.getAll().prefix(`${PREFIX}endpoints/`).exec();
    return r.kvs.map(toAnnouncement).filter((a): a is EndpointAnnouncement => a !== undefined);
  }

  async watchAnnouncements(listener: AnnouncementListener): Promise<void> {
    const prefix = `${PREFIX}endpoints/`;
    const snapshot = async () => {
      const r = await this.client.getAll().prefix(prefix).exec();
      listener.reset(r.kvs.map(toAnnouncement).filter((a): a is EndpointAnnouncement => a !== undefined));
      return r.header.revision;
    };
    const revision = await snapshot();
    const watcher = await this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(BigInt(revision) + 1n))
      .withPreviousKV()
      .create();
    this.watcher = watcher;
    watcher.on('put', (kv) => {
      const a = toAnnouncement(kv);
      if (a) listener.put(a);
    });
    watcher.on('delete', (kv, previous) => {
      const a = previous ? toAnnouncement(previous) : undefined;
      if (a) listener.delete(a);
    });
    // after a reconnect the watch resumes where it stopped; a fresh snapshot also covers a gap
    // the store compacted away in the meantime
    watcher.on('connected', () => {
      if (this.closed) return;
      snapshot().catch((err: unknown) => this.log.warn({ err: String(err) }, 'could not reload the announcements after a reconnect'));
    });
    watcher.on('error', (err) => this.log.warn({ err: String(err) }, 'cluster store watch error'));
  }

  // ---------------------------------------------------------------- cluster IPAM

  async claimPool(overlay: string, want: { subnet: string; subPool: string }, family: PoolFamily = 4): Promise<ClusterPool> {
    const k = key.pool(overlay, family);
    const subnetFlag = family === 6 ? 'IPv6 --subnet' : '--subnet';
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const existing = await this.getPool(overlay, family);
      if (existing) {
        if (want.subnet && want.subnet !== existing.subnet) {
          throw new UserError(`overlay '${overlay}' has subnet ${existing.subnet} in the cluster, not ${want.subnet}: give the same ${subnetFlag} on every host, or none`);
        }
        if (want.subPool && want.subPool !== existing.subPool) {
          throw new UserError(`overlay '${overlay}' has ip-range ${existing.subPool || 'the whole subnet'} in the cluster, not ${want.subPool}: give the same --ip-range on every host, or none`);
        }
        return existing;
      }
      if (!want.subnet) {
        throw new UserError(`overlay '${overlay}' has no ${family === 6 ? 'IPv6 ' : ''}subnet in the cluster yet: the first host to create it must give ${subnetFlag}`);
      }
      const value = JSON.stringify({ subnet: want.subnet, subPool: want.subPool, gateway: '' });
      const r = await this.client.if(k, 'Create', '==', 0).then(this.client.put(k).value(value)).commit();
      if (r.succeeded) return { overlay, subnet: want.subnet, subPool: want.subPool, gateway: '' };
    }
    throw new Error(`could not claim the pool of overlay '${overlay}': other hosts kept changing the store`);
  }

  async getPool(overlay: string, family: PoolFamily = 4): Promise<ClusterPool | undefined> {
    const v = await this.client.get(key.pool(overlay, family)).string();
    return v === null ? undefined : { overlay, ...(JSON.parse(v) as Omit<ClusterPool, 'overlay'>) };
  }

  async setGateway(overlay: string, address: string, family: PoolFamily = 4): Promise<string> {
    const k = key.pool(overlay, family);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const r = await this.client.get(k).exec();
      const kv = r.kvs[0];
      if (!kv) throw new UserError(`overlay '${overlay}' has no pool in the cluster`);
      const pool = JSON.parse(kv.value.toString()) as Omit<ClusterPool, 'overlay'>;
      if (pool.gateway) return pool.gateway;
      const u = await this.client
        .if(k, 'Mod', '==', kv.mod_revision)
        .then(this.client.put(k).value(JSON.stringify({ ...pool, gateway: address })))
        .commit();
      if (u.succeeded) return address;
    }
    throw new Error(`could not set the gateway of overlay '${overlay}': other hosts kept changing the store`);
  }

  async listAddresses(overlay: string): Promise<ClusterAddress[]> {
    const prefix = `${PREFIX}addresses/${overlay}/`;
    const all = await this.client.getAll().prefix(prefix).strings();
    return Object.entries(all).map(([k, v]) => ({ address: k.slice(prefix.length), ...(JSON.parse(v) as Omit<ClusterAddress, 'address'>) }));
  }

  async claimAddress(overlay: string, address: string, kind: AddressKind): Promise<boolean> {
    const k = key.address(overlay, address);
    const r = await this.client
      .if(k, 'Create', '==', 0)
      .then(this.client.put(k).value(JSON.stringify({ kind, host: this.host })))
      .commit();
    if (r.succeeded && kind !== 'gateway') this.claimKinds.set(k, kind);
    return r.succeeded;
  }

  async releaseAddress(overlay: string, address: string): Promise<void> {
    const k = key.address(overlay, address);
    const r = await this.client.get(k).exec();
    const kv = r.kvs[0];
    if (!kv) return;
    const holder = JSON.parse(kv.value.toString()) as { kind: AddressKind; host: string };
    // the gateway is every host's; an address another host holds is not ours to free
    if (holder.kind === 'gateway' || holder.host !== this.host) return;
    await this.client.if(k, 'Mod', '==', kv.mod_revision).then(this.client.delete().key(k)).commit();
    this.claimKinds.delete(k);
  }
}

/**
 * Removes the overlay's definition, pool and addresses when it has no member left. The joins key
 * is read before the members: a host that joins after that read changes the key's revision and the
 * removal's transaction fails (then the next round sees the new member); one that joined before is
 * among the members read.
 */
async function removeOverlayIfUnused(client: Etcd3, overlay: string): Promise<boolean> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const joins = (await client.get(key.joins(overlay)).exec()).kvs[0];
    const members = await client.getAll().prefix(prefixOf.members(overlay)).keys();
    if (members.length > 0) return false;
    const r = await client
      .if(key.joins(overlay), 'Mod', '==', joins ? joins.mod_revision : 0)
      .then(
        client.delete().key(key.overlay(overlay)),
        client.delete().key(key.pool(overlay)),
        client.delete().key(key.pool(overlay, 6)),
        client.delete().prefix(prefixOf.addresses(overlay)),
        client.delete().key(key.joins(overlay)),
      )
      .commit();
    if (r.succeeded) return true;
  }
  throw new Error(`could not remove overlay '${overlay}' from the cluster store: other hosts kept joining and leaving it`);
}

export interface ForgetResult {
  host: string;
  /** false: the host was not registered (it had no live lease) */
  wasLive: boolean;
  endpoints: number;
  addresses: number;
  /** overlays the host was a member of */
  overlays: string[];
  /** of those, the ones that had no member left and went from the store */
  removedOverlays: string[];
}

/**
 * `tsnet cluster forget HOST`: removes a dead host's announcements, addresses and memberships, and
 * then every overlay it was the last member of. Refused while the host is registered (its lease
 * is alive) unless `force`, which also removes its registration.
 */
export async function forgetHost(endpoints: string[], host: string, opts: { force?: boolean } = {}): Promise<ForgetResult> {
  const client = new Etcd3(etcdClientOptions(endpoints));
  try {
    const live = await client.get(key.host(host)).string();
    if (live !== null && !opts.force) {
      const { vtep, startedAt } = JSON.parse(live) as HostRecord;
      throw new UserError(
        `host '${host}' is registered live in the cluster store (VTEP ${vtep}, since ${startedAt}): stop its daemon and wait for its lease to expire, or give --force`,
        'conflict',
      );
    }
    const all = Object.entries(await client.getAll().prefix(PREFIX).strings()).map(([k, value]) => ({ key: k, value }));
    const mine = keysOfHost(all, host);
    const keys = [...mine.endpoints, ...mine.addresses, ...mine.members, ...(live !== null ? [key.host(host)] : [])];
    for (const k of keys) await client.delete().key(k);
    const removedOverlays: string[] = [];
    for (const overlay of mine.overlays) if (await removeOverlayIfUnused(client, overlay)) removedOverlays.push(overlay);
    return { host, wasLive: live !== null, endpoints: mine.endpoints.length, addresses: mine.addresses.length, overlays: mine.overlays, removedOverlays };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UnavailableError(`cannot reach the cluster store at ${endpoints.join(',')}: ${(err as Error).message}`);
  } finally {
    client.close();
  }
}

/** endpoints/OVERLAY/IP -> its overlay and IP; undefined for a key of another shape. */
function parseEndpointKey(k: string): { overlay: string; ip: string } | undefined {
  const rest = k.slice(`${PREFIX}endpoints/`.length);
  const slash = rest.lastIndexOf('/');
  return slash <= 0 ? undefined : { overlay: rest.slice(0, slash), ip: rest.slice(slash + 1) };
}

function toAnnouncement(kv: IKeyValue): EndpointAnnouncement | undefined {
  const where = parseEndpointKey(kv.key.toString());
  if (!where) return undefined;
  try {
    const v = JSON.parse(kv.value.toString()) as Omit<EndpointAnnouncement, 'overlay' | 'ip'>;
    return { ...where, mac: v.mac, endpointId: v.endpointId, host: v.host, vtep: v.vtep };
  } catch {
    return undefined;
  }
}

function firstFreeVni(all: OverlayDefinition[]): number {
  const used = new Set(all.map((o) => o.vni));
  for (let v = FIRST_VNI; v <= MAX_VNI; v++) if (!used.has(v)) return v;
  throw new UserError('no free VNI left in the cluster');
}

function checkSameOverlay(existing: OverlayDefinition, req: OverlayRequest): void {
  const problems: string[] = [];
  if (existing.subnet !== req.subnet) problems.push(`subnet ${existing.subnet} (not ${req.subnet})`);
  const [had6, want6] = [existing.subnet6 || '', req.subnet6 || ''];
  if (had6 !== want6) problems.push(`IPv6 subnet ${had6 || 'none'} (not ${want6 || 'none'})`);
  if (req.vni !== undefined && existing.vni !== req.vni) problems.push(`VNI ${existing.vni} (not ${req.vni})`);
  if (req.port !== undefined && existing.port !== req.port) problems.push(`VXLAN port ${existing.port} (not ${req.port})`);
  if (problems.length > 0) {
    throw new UserError(
      `overlay '${existing.name}' exists in the cluster with ${problems.join(', ')}, created by host ${existing.createdBy}: ` +
        'give the same settings on every host, or another overlay name',
    );
  }
}
