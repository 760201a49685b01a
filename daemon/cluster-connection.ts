// The daemon's link to its cluster store, made in the background. A daemon whose etcd cannot be
// reached at start serves everything local at once (bridge and macvlan networks, the kernel state
// of existing overlays) and keeps trying the store with a growing delay (1, 2, 4 ... 30 s); until
// it is connected, overlay work that needs the store (creating or joining a cluster overlay,
// attaching to one, cluster IPAM) is refused with an UnavailableError that says so. Once the host
// is registered, the overlay control plane starts as on a normal start (announce, watch, reconcile).
//
// The connection's state is written to <stateDir>/cluster-store.json on every change, so
// `tsnet status` and `tsnet doctor` show the daemon's own view (connected, or connecting since
// when and why not) without asking the daemon.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterStore } from '../store/cluster/cluster-store.js';
import { UnavailableError, UserError, errorText } from '../core/errors.js';
import type { Logger } from '../core/log.js';

/** Seconds before the next attempt: 1, 2, 4 ... doubling, never more than `cap`. */
export function retryDelaySeconds(failedAttempts: number, cap = 30): number {
  return Math.min(cap, 2 ** Math.max(0, failedAttempts - 1));
}

export type ConnectionPhase = 'connecting' | 'connected' | 'refused';

/** What status and doctor show, and what the state file holds. */
export interface ConnectionState {
  store: string;
  host: string;
  phase: ConnectionPhase;
  /** ISO 8601: when the phase began */
  since: string;
  /** failed attempts in this phase */
  attempts: number;
  /** the last attempt's error, '' when none */
  lastError: string;
  /** the daemon that wrote the file (status checks it still runs) */
  pid: number;
}

export function clusterStatePath(stateDir: string): string {
  return join(stateDir, 'cluster-store.json');
}

/** The state file of the daemon of `stateDir`; undefined when none was written. */
export function readClusterState(stateDir: string): ConnectionState | undefined {
  try {
    return JSON.parse(readFileSync(clusterStatePath(stateDir), 'utf8')) as ConnectionState;
  } catch {
    return undefined;
  }
}

export interface ClusterConnectionDeps {
  store: ClusterStore;
  stateDir: string;
  log: Logger;
  /** seconds before attempt n+1 after n failures (tests shorten it) */
  delay?: (failedAttempts: number) => number;
}

export class ClusterConnection {
  private state: ConnectionState;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  /** the host is registered: the store may be used (the control plane's start uses it too) */
  private registered = false;
  /** settles when the first attempt at registering did (or on stop): requests right after start wait for it */
  private settleFirst: () => void = () => undefined;
  private readonly first = new Promise<void>((resolve) => (this.settleFirst = resolve));

  constructor(private readonly d: ClusterConnectionDeps) {
    this.state = { store: d.store.endpoint, host: d.store.host, phase: 'connecting', since: new Date().toISOString(), attempts: 0, lastError: '', pid: process.pid };
    this.save();
  }

  /** the store may be used: the host is registered */
  get connected(): boolean {
    return this.registered;
  }

  snapshot(): ConnectionState {
    return { ...this.state };
  }

  /**
   * Throws until connected: `what` completes the message, e.g. "overlay 'blue' cannot be created
   * on this host".
   */
  require(what: string): void {
    if (this.registered) return;
    if (this.state.phase === 'refused') throw new UnavailableError(`the cluster store at ${this.state.store} refused this host: ${what} (${this.state.lastError})`);
    const why = this.state.lastError ? `; last error: ${this.state.lastError}` : '';
    throw new UnavailableError(`the cluster store at ${this.state.store} is not reachable yet (retrying since ${this.state.since}${why}): ${what} until it is`);
  }

  /**
   * Registers the host (retrying with backoff), then runs `onConnected` (the control plane's
   * start, retried the same way). Resolves when connected, refused or stopped; never rejects.
   */
  async run(onConnected: () => Promise<void>): Promise<void> {
    const register = () =>
      this.d.store
        .start()
        .then(() => void (this.registered = true))
        .finally(() => this.settleFirst());
    if (!(await this.retry('register this host', register))) return;
    if (!(await this.retry('start the overlay control plane', onConnected))) return;
    const waited = this.state.attempts;
    this.set({ phase: 'connected', attempts: 0, lastError: '' });
    this.d.log.info({ store: this.state.store, host: this.state.host, vtep: this.d.store.vtep, failedAttempts: waited }, 'joined the cluster store');
  }

  /**
   * Resolves once the first attempt at registering has settled, so an overlay request that comes
   * in just after the daemon started (etcd fine) waits for it instead of being refused.
   */
  firstAttempt(): Promise<void> {
    return this.first;
  }

  stop(): void {
    this.stopped = true;
    this.settleFirst();
    clearTimeout(this.timer);
    this.wake?.();
  }

  /** Runs `step` until it succeeds: false when stopped, or refused for good (a UserError, e.g. the host name is taken). */
  private async retry(what: string, step: () => Promise<void>): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      try {
        await step();
        return true;
      } catch (err) {
        if (this.stopped) return false;
        if (err instanceof UserError && err.kind !== 'unavailable') {
          this.set({ phase: 'refused', lastError: err.message });
          this.d.log.error({ err: err.message, store: this.state.store }, `the cluster store refused to ${what}; overlay work needing it is refused until the daemon restarts`);
          return false;
        }
        const attempts = this.state.attempts + 1;
        const retryIn = (this.d.delay ?? retryDelaySeconds)(attempts);
        this.set({ attempts, lastError: errorText(err) });
        this.d.log.warn({ err: errorText(err), store: this.state.store, attempt: attempts, retryInS: retryIn }, `could not ${what} in the cluster store; retrying`);
        await this.sleep(retryIn * 1000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }

  private set(change: Partial<ConnectionState>): void {
    const phaseChanged = change.phase !== undefined && change.phase !== this.state.phase;
    this.state = { ...this.state, ...change, ...(phaseChanged ? { since: new Date().toISOString() } : {}) };
    this.save();
  }

  /** Written whole to a temporary name and renamed, so a reader never sees half a file. */
  private save(): void {
    const path = clusterStatePath(this.d.stateDir);
    try {
      writeFileSync(`${path}.tmp`, JSON.stringify(this.state, null, 2));
      renameSync(`${path}.tmp`, path);
    } catch (err) {
      this.d.log.warn({ err: errorText(err), path }, "could not write the cluster store's state for tsnet status");
    }
  }
}

/**
 * The cluster store as the overlay driver and the cluster IPAM see it: until the connection is
 * made, every call that needs the store is refused with the connection's message. Withdrawals and
 * leaving an overlay are skipped instead (with a warning), so removing a container or a network
 * still works locally: the control plane's start withdraws this host's announcements that no
 * endpoint backs, and the overlays left meanwhile are left before the first call that gets
 * through (remembered in memory only: a restart in between keeps this host a member of them
 * until `tsnet cluster forget --force` or its network is made and removed again).
 */
export function gatedClusterStore(store: ClusterStore, conn: Pick<ClusterConnection, 'require' | 'connected' | 'firstAttempt'>, log: Logger): ClusterStore {
  /** overlays whose networks went while the store was unreachable: left once it is reachable */
  const pendingLeaves = new Set<string>();
  const leavePending = async () => {
    for (const overlay of [...pendingLeaves]) {
      pendingLeaves.delete(overlay);
      await store.leaveOverlay(overlay).catch((err: unknown) => log.warn({ err: errorText(err), overlay }, 'could not leave an overlay in the cluster store'));
    }
  };
  const need = async (what: string) => {
    await conn.firstAttempt();
    conn.require(what);
    await leavePending();
  };
  /**
   * A call that needs the store. One that fails for want of an answer (no member reachable, or
   * no majority: every call has a deadline, store/cluster/etcd-store.ts) is refused as unavailable,
   * saying so; the store's own refusals (a conflict, a mismatch) pass as they are.
   */
  const through = <T>(what: string, call: () => Promise<T>): Promise<T> =>
    need(what)
      .then(call)
      .catch((err: unknown) => {
        if (err instanceof UserError) throw err;
        throw new UnavailableError(`the cluster store at ${store.endpoint} did not answer (${errorText(err)}): ${what} until a majority of its members is reachable`);
      });
  const skipped = (what: string) => {
    if (conn.connected) return false;
    log.warn({ store: store.endpoint }, `the cluster store is not reachable yet: ${what} is done when it is`);
    return true;
  };
  return {
    host: store.host,
    vtep: store.vtep,
    endpoint: store.endpoint,
    start: () => store.start(),
    close: (opts) => store.close(opts),
    listHosts: () => through('the cluster hosts cannot be listed', () => store.listHosts()),
    defineOverlay: (req) => through(`overlay '${req.name}' cannot be created on this host`, () => store.defineOverlay(req)),
    listOverlays: () => through('the overlays cannot be listed', () => store.listOverlays()),
    announce: (a) => through(`overlay '${a.overlay}' cannot take endpoint ${a.ip} on this host`, () => store.announce(a)),
    withdraw: async (overlay, ip, endpointId) => (skipped(`withdrawing ${ip} from overlay '${overlay}'`) ? undefined : store.withdraw(overlay, ip, endpointId)),
    listAnnouncements: () => through('the announcements cannot be listed', () => store.listAnnouncements()),
    watchAnnouncements: (listener) => through('the announcements cannot be watched', () => store.watchAnnouncements(listener)),
    joinOverlay: (overlay) => through(`overlay '${overlay}' cannot be joined on this host`, () => store.joinOverlay(overlay)),
    leaveOverlay: async (overlay) => {
      if (!skipped(`leaving overlay '${overlay}'`)) return store.leaveOverlay(overlay);
      pendingLeaves.add(overlay);
      return false;
    },
    joinedOverlays: () => through('the joined overlays cannot be listed', () => store.joinedOverlays()),
    claimPool: (overlay, want, family) => through(`the pool of overlay '${overlay}' cannot be claimed`, () => store.claimPool(overlay, want, family)),
    getPool: (overlay, family) => through(`the pool of overlay '${overlay}' cannot be read`, () => store.getPool(overlay, family)),
    setGateway: (overlay, address, family) => through(`the gateway of overlay '${overlay}' cannot be set`, () => store.setGateway(overlay, address, family)),
    listAddresses: (overlay) => through(`the addresses of overlay '${overlay}' cannot be read`, () => store.listAddresses(overlay)),
    claimAddress: (overlay, address, kind) => through(`overlay '${overlay}' cannot allocate address ${address}`, () => store.claimAddress(overlay, address, kind)),
    releaseAddress: (overlay, address) => through(`address ${address} of overlay '${overlay}' cannot be released`, () => store.releaseAddress(overlay, address)),
  };
}

/** The daemon that wrote `state` still runs (signal 0 reaches it). */
export function writerAlive(state: Pick<ConnectionState, 'pid'>): boolean {
  try {
    process.kill(state.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One line for status and doctor: the daemon's own view of its cluster store. */
export function describeConnection(state: ConnectionState, alive: boolean): string {
  if (!alive) return `daemon not running (pid ${state.pid} last said: ${state.phase} since ${state.since})`;
  const where = `${state.store} as host '${state.host}'`;
  if (state.phase === 'connected') return `connected to ${where} since ${state.since}`;
  const error = state.lastError ? `, last error: ${state.lastError}` : '';
  if (state.phase === 'refused') return `refused by ${where} since ${state.since}${error}; restart the daemon once fixed`;
  return `connecting to ${where} since ${state.since} (${state.attempts} failed attempts${error}); overlay work that needs the store is refused until then`;
}

/** A daemon started without a store removes what one with a store left, so status shows none. */
export function removeClusterState(stateDir: string): void {
  rmSync(clusterStatePath(stateDir), { force: true });
}
