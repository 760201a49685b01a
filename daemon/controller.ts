// Routes each NetworkDriver call to the driver that owns the network (chosen at create time by
// `-o type=bridge|macvlan|overlay`, bridge by default) and runs the start-up reconcile across
// drivers. Holds no state of its own: the store says who owns what.
import { type CreateEndpointRequest, type CreateEndpointResult, type CreateNetworkRequest, type EndpointOperInfo, type EndpointRef, type JoinRequest, type JoinResult, type KernelView, type ManagedDriver, type NetworkDriver, type ProgramExternalConnectivityRequest } from '../drivers/driver.js';
import type { NetworkRepo } from '../store/network-repo.js';
import type { LinkInfo } from '../native/netlink/links.js';
import type { LinkOwner } from '../drivers/owner.js';
import type { FirewallState } from '../firewall/model.js';
import { unknownNetwork } from '../drivers/records.js';
import { UserError } from '../core/errors.js';
import { TYPE_OPTION, type DriverType } from '../core/protocol.js';
import type { Logger } from '../core/log.js';
import { faultPoint } from '../core/fault-points.js';
import { countRepairs } from '../core/metrics.js';


/** The kernel and firewall operations the start-up sweep needs. */
export interface SweepOps {
  listLinks(): LinkInfo[];
  deleteLink(name: string, opts?: { ignoreMissing?: boolean }): void;
}

export interface FirewallSync {
  sync(networks: FirewallState['networks'], mappings: FirewallState['mappings'], endpoints: FirewallState['endpoints']): void;
  /** sync() by a child process, the caller going on meanwhile (firewall.ts); sync() when absent */
  syncDetached?(networks: FirewallState['networks'], mappings: FirewallState['mappings'], endpoints: FirewallState['endpoints']): Promise<void>;
}

/**
 * Milliseconds of each phase of restore(): read (the kernel and the store), drivers, leftovers,
 * firewall; restoreAtStart() begins with firewallStart (its state read, its text built, the child
 * started), and its firewall is the wait for the child after the leftovers.
 */
export type RestoreTimes = Record<string, number>;

/** Marks the end of each named phase; `times` holds each one's ms since the end of the one before. */
function phaseTimer(): ((name: string) => void) & { times: RestoreTimes } {
  let last = performance.now();
  const times: RestoreTimes = {};
  const mark = (name: string) => {
    const now = performance.now();
    times[name] = Math.round(now - last);
    last = now;
  };
  return Object.assign(mark, { times });
}

export class Controller implements NetworkDriver {
  private readonly drivers = new Map<DriverType, ManagedDriver>();

  constructor(
    drivers: ManagedDriver[],
    private readonly repo: NetworkRepo,
    private readonly links: SweepOps,
    private readonly firewall: FirewallSync,
    private readonly owner: LinkOwner,
    private readonly log: Logger,
  ) {
    for (const d of drivers) this.drivers.set(d.type, d);
  }

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const type = req.options[TYPE_OPTION] || 'bridge';
    const driver = this.drivers.get(type as DriverType);
    if (!driver) {
      throw new UserError(`unknown network type '${type}': tsnet offers ${[...this.drivers.keys()].join(', ')} (-o type=NAME)`);
    }
    await driver.createNetwork(req);
  }

  async deleteNetwork(networkId: string): Promise<void> {
    await this.ownerOf(networkId, false)?.deleteNetwork(networkId);
  }

  async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    return this.ownerOf(req.networkId, true)!.createEndpoint(req);
  }

  async deleteEndpoint(ref: EndpointRef): Promise<void> {
    await this.ownerOf(ref.networkId, false)?.deleteEndpoint(ref);
  }

  async endpointOperInfo(ref: EndpointRef): Promise<EndpointOperInfo> {
    return this.ownerOf(ref.networkId, true)!.endpointOperInfo(ref);
  }

  async join(req: JoinRequest): Promise<JoinResult> {
    const joined = await this.ownerOf(req.networkId, true)!.join(req);
    faultPoint('driver.joined');
    return joined;
  }

  async leave(ref: EndpointRef): Promise<void> {
    await this.ownerOf(ref.networkId, false)?.leave(ref);
  }

  async programExternalConnectivity(req: ProgramExternalConnectivityRequest): Promise<void> {
    await this.ownerOf(req.networkId, true)!.programExternalConnectivity(req);
    faultPoint('driver.ports-published');
  }

  async revokeExternalConnectivity(ref: EndpointRef): Promise<void> {
    await this.ownerOf(ref.networkId, false)?.revokeExternalConnectivity(ref);
  }

  /**
   * Reconcile: each driver restores its networks and endpoints, links carrying this daemon's owner
   * alias that no record owns are removed (leftovers of an operation killed half-way), and the
   * firewall is replaced as a whole with what the store says, in one transaction.
   * The host's links are dumped once and handed to the drivers; the leftovers are found in the same
   * dump (a link the drivers made meanwhile is owned, one they removed is deleted with ignoreMissing).
   * Returns how long each phase took, in ms. Drift repair runs this; the daemon's start runs
   * restoreAtStart().
   */
  restore(): RestoreTimes {
    const run = this.restoreKernel(phaseTimer());
    this.syncFirewall();
    return run.finish();
  }

  /**
   * restore() for the daemon's start. The firewall's transaction (the largest part at thousands of
   * endpoints) is written by a child process (firewall.ts syncDetached) from the store as it is,
   * while the drivers restore the kernel and, after this returns, while the caller prepares to
   * serve. The drivers change the store only to finish an interrupted operation (a network or an
   * endpoint rolled back); when they did, the firewall is written again from the store as it is
   * then. The promise resolves, with each phase's ms for the start-up log line, once the tables
   * are in place: serve only after it.
   */
  async restoreAtStart(): Promise<RestoreTimes> {
    const phase = phaseTimer();
    const changes = this.storeChanges();
    const s = this.firewallState();
    const writing = this.firewall.syncDetached ? this.firewall.syncDetached(s.networks, s.mappings, s.endpoints) : Promise.resolve(this.firewall.sync(s.networks, s.mappings, s.endpoints));
    // awaited below; a failure of the kernel's part first must not leave it unhandled
    writing.catch(() => {});
    phase('firewallStart');
    const run = this.restoreKernel(phase);
    await writing;
    if (this.storeChanges() !== changes) {
      this.log.info({}, 'the store changed while the firewall was written: writing it again');
      this.syncFirewall();
    }
    return run.finish();
  }

  /** Rows this daemon's store connection has changed since it opened (SQLite's total_changes()). */
  private storeChanges(): number {
    return (this.repo.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
  }

  /** The drivers' restore and the leftovers; finish() after the firewall's sync counts the repairs. */
  private restoreKernel(phase: ReturnType<typeof phaseTimer>): { finish(): RestoreTimes } {
    const linksBefore = this.links.listLinks();
    const present = new Set(linksBefore.map((l) => l.name));
    const ownedBefore = this.ownedLinks();
    const changes = this.storeChanges();
    // for tsnet_repairs_total: what was missing or half-done before, and is whole after
    const missing = ownedBefore.filter((name) => !present.has(name));
    const interrupted = this.repo.listNetworks().filter((n) => n.state !== 'ready').length + this.repo.listEndpoints().filter((e) => e.state !== 'ready').length;
    const kernel: KernelView = { links: new Map(linksBefore.map((l) => [l.name, l])) };
    phase('read');
    for (const d of this.drivers.values()) d.restore(kernel);
    phase('drivers');
    // the records own the same links as before unless the drivers changed the store (every record read again: thousands at size)
    const owned = new Set(this.storeChanges() === changes ? ownedBefore : this.ownedLinks());
    let leftovers = 0;
    for (const link of linksBefore) {
      if (this.owner.owns(link.alias) && !owned.has(link.name)) {
        this.log.info({ link: link.name, alias: link.alias }, 'removing a leftover link');
        this.links.deleteLink(link.name, { ignoreMissing: true });
        leftovers++;
      }
    }
    phase('leftovers');
    return {
      finish: () => {
        phase('firewall');
        if (missing.length > 0) {
          const after = new Set(this.links.listLinks().map((l) => l.name));
          countRepairs('link', missing.filter((name) => after.has(name)).length);
        }
        countRepairs('leftover-link', leftovers);
        countRepairs('interrupted-operation', interrupted);
        return phase.times;
      },
    };
  }

  /** Replaces the firewall as a whole with what the store says (start-up, and drift repair). */
  syncFirewall(): void {
    const s = this.firewallState();
    this.firewall.sync(s.networks, s.mappings, s.endpoints);
  }

  /** What the firewall should hold for every driver's networks. */
  firewallState(): FirewallState {
    const states = [...this.drivers.values()].map((d) => d.firewallState());
    return {
      networks: states.flatMap((s) => s.networks),
      mappings: states.flatMap((s) => s.mappings),
      endpoints: states.flatMap((s) => s.endpoints),
    };
  }

  /** Every link the drivers' records own (bridges, host and container ends of veths, ...). */
  ownedLinks(): string[] {
    return [...this.drivers.values()].flatMap((d) => d.ownedLinks());
  }

  private ownerOf(networkId: string, required: boolean): ManagedDriver | undefined {
    const net = this.repo.getNetwork(networkId);
    const driver = net && this.drivers.get(net.driver);
    if (!driver && required) {
      throw unknownNetwork(networkId);
    }
    return driver;
  }
}
