// Drift repair: when another process changes what tsnet made (its nftables tables deleted or
// flushed, as a firewall reload's `nft flush ruleset` does; its accepts taken out of Docker's
// chains; a bridge or a container's host-side veth deleted; an address removed from a bridge),
// the daemon puts it back within a second, without a restart.
//
// Event-driven, not polled: child processes watch the daemon's network namespace, `nft monitor
// tables`, `nft monitor rules`, a reader of element deletions (element-events.ts) and `ip -o
// monitor link address`. They sleep in the kernel while
// nothing changes, so an idle daemon spends no CPU on this. The pure parsers below pick the lines
// that may concern tsnet; the watcher debounces them (100 ms) into one repair pass, run on the
// daemon's serial queue so it never meets a request half-way.
//
// Not the plain `nft monitor`: nft 1.0.6 reads past the end of a deleted element of a
// concatenated interval set (tsnet's subnets4) when it prints one, printing garbage or dying of
// SIGSEGV; the filtered monitors never print elements. They print no "new generation ... by
// process" lines either, so an event does not say who made it (element deletions excepted: their
// reader names the process, and only another process's start a pass). Hence every pass only reads until
// it finds something missing: the tables are compared with what a full sync would write (chains,
// sets, rule counts: firewall/shape.ts), Docker's chains with the accepts tsnet wants, deleted
// links and addresses with the store and the kernel (a link the store no longer owns, or one that
// is back, is no drift). The daemon's own changes end in a pass that finds nothing, and a repair's
// own events in one more such pass: no endless repairs. Passes that do repair are rate-limited.
//
// What cannot be put back: a container's host-side veth. Deleting either end of a veth deletes the
// pair, so the container's interface is gone with it, and the container side (its name, addresses
// and routes inside the container) is set up by the runtime, not by tsnet. The repair logs that the
// container is cut off from the network; detaching and attaching it again (docker network
// disconnect/connect, a restart, CNI DEL/ADD) brings it back. The endpoint's record stays, so that
// the runtime's later detach succeeds as usual.
//
// A veth also goes when its container goes: `docker rm -f` deletes the container's namespace,
// taking the pair with it, before dockerd sends DeleteEndpoint. So a deleted link that had a peer
// (`name@ifN` in ip monitor's line) is looked at only PEER_GRACE_MS later: by then the runtime's
// detach has removed the endpoint, the link is no longer tsnet's, and nothing is drift; a veth
// deleted by hand is still owned then, and repaired (or reported cut off) as before.
//
// Each repair is counted in tsnet_repairs_total by kind: links rebuilt by the controller's
// restore (controller.ts counts those, at start-up and here alike), addresses, tables and Docker's
// chains here.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../core/log.js';
import type { Firewall } from '../firewall/firewall.js';
import { DOCKER_NFT_TABLE } from '../firewall/docker-firewall.js';
import { isPortChain } from '../firewall/rules/spoofing.js';
import type { Netlink } from '../native/netlink/netlink.js';
import type { Controller } from './controller.js';
import { countRepairs } from '../core/metrics.js';
import { READER_PY, isOwnThread, parseElementEventLine } from './element-events.js';

// ---------------------------------------------------------------- events (pure)

/** What a repair pass must look at. */
export interface Drift {
  /** tsnet's nftables tables (inet and bridge) were changed by another process */
  tables: boolean;
  /** Docker's DOCKER-USER / FORWARD chains (or their filter table) were changed by another process */
  dockerChains: boolean;
  /** links deleted (by name) that may be tsnet's */
  links: Set<string>;
  /** addresses removed ("link cidr") from links that may be tsnet's */
  addresses: Set<string>;
  /** sets ("family name") of tsnet's tables whose elements another process deleted; 'overrun': maybe some */
  elements: Set<string>;
}

export function noDrift(): Drift {
  return { tables: false, dockerChains: false, links: new Set(), addresses: new Set(), elements: new Set() };
}

export function isEmpty(d: Drift): boolean {
  return !d.tables && !d.dockerChains && d.links.size === 0 && d.addresses.size === 0 && d.elements.size === 0;
}

/** What a line of `nft monitor tables` or `nft monitor rules` may have changed, or null. */
export type NftMonitorLine = 'tables' | 'dockerChains' | null;

/**
 * Docker's chains whose changes may drop tsnet's accepts or move where they belong
 * (firewall/docker-compat.ts): DOCKER-USER, and FORWARD (its policy, its jump to DOCKER-USER).
 * Docker 28's DOCKER-FORWARD runs after DOCKER-USER, so its changes move nothing.
 */
const DOCKER_CHAINS = new Set(['DOCKER-USER', 'FORWARD']);

/**
 * Classifies a line of `nft monitor` for the daemon whose tables are named `table`, e.g.
 * `delete table inet tsnet`, `delete rule ip filter DOCKER-USER handle 7`.
 */
export function parseNftMonitorLine(line: string, table: string): NftMonitorLine {
  // verb object family table [chain or set name] ...
  const [verb, object, family, tableName, name] = line.trim().split(/\s+/);
  if (!verb || !['add', 'create', 'delete', 'flush', 'replace', 'insert', 'destroy'].includes(verb)) return null;
  if ((family === 'inet' || family === 'bridge') && tableName === table) {
    // a container port's own chain: the daemon makes, flushes and removes one with every attach and
    // detach, and a pass for each would list both whole tables, O(endpoints) per attach, blocking
    // the daemon (bench/scale.ts). The table deleted or flushed, or a base chain's rules, still count.
    if (family === 'bridge' && (object === 'chain' || object === 'rule') && name !== undefined && isPortChain(name)) return null;
    return 'tables';
  }
  if ((family === 'ip' || family === 'ip6') && tableName === 'filter') {
    if (object === 'table' || ((object === 'chain' || object === 'rule') && DOCKER_CHAINS.has(name))) return 'dockerChains';
  }
  // Docker 29's nftables backend coming or going (firewall/docker-firewall.ts): a switch of backend
  // may leave or drop a DOCKER-USER and FORWARD's drop policy, so the accepts are looked at again
  if ((family === 'ip' || family === 'ip6') && tableName === DOCKER_NFT_TABLE && (object === 'table' || name === 'filter-FORWARD')) return 'dockerChains';
  return null;
}

/**
 * One line of `ip -o monitor link address`: a deleted link (`peer` when it was one end of a pair
 * whose other end is elsewhere: a veth) or address, or anything else (null).
 */
export type IpMonitorLine = { type: 'link'; link: string; peer?: true } | { type: 'address'; link: string; cidr: string } | null;

/**
 * Classifies a line of `ip -o monitor link address`; only deletions matter:
 * `Deleted 12: br-x: <BROADCAST,...> ...` (a link; a veth shows as `name@ifN`) and
 * `Deleted 12: br-x    inet 10.1.0.1/24 scope global br-x\ ...` (an address).
 * A link moved to another namespace is reported as deleted too, with `new-netnsid N`: that is a
 * runtime moving a container's end of a veth into the container (dockerd, CNI), not drift.
 */
export function parseIpMonitorLine(line: string): IpMonitorLine {
  const m = /^Deleted (?:\[\w+\]\s*)?\d+: ([^\s:@]+)(@\S+?)?(:?)\s+(.*)$/.exec(line.trim());
  if (!m) return null;
  const [, link, peer, colon, rest] = m;
  if (colon === ':') return / new-netnsid \S+/.test(rest) ? null : { type: 'link', link, ...(peer ? { peer: true as const } : {}) };
  const addr = /^inet6? (\S+)/.exec(rest);
  return addr ? { type: 'address', link, cidr: addr[1] } : null;
}

// ---------------------------------------------------------------- the repair pass

/** What a repair pass uses; the daemon wires the real controller, firewall and netlink. */
export interface RepairOps {
  /** names of every link the store says tsnet owns */
  ownedLinks(): string[];
  linkExists(name: string): boolean;
  /** the addresses (kernel's CIDR text) on a link */
  addresses(name: string): string[];
  /** the full reconcile: rebuilds bridges and addresses, re-enslaves veths, replaces the tables */
  restore(): void;
  /** how tsnet's tables differ from what the store says they hold ([] when they match) */
  tablesDiff(): string[];
  /** replaces tsnet's nftables tables with what the store says */
  syncFirewall(): void;
  /** puts tsnet's accepts back into Docker's chains; whether anything changed */
  refreshDockerCompat(): boolean;
  log: Pick<Logger, 'warn'>;
}

/** What one pass did, in the words it logged. */
export function repairDrift(d: Drift, ops: RepairOps): string[] {
  const done: string[] = [];
  const warn = (msg: string, obj: object = {}) => {
    ops.log.warn(obj, msg);
    done.push(msg);
  };
  const owned = d.links.size > 0 || d.addresses.size > 0 ? new Set(ops.ownedLinks()) : new Set<string>();
  const lostLinks = [...d.links].filter((l) => owned.has(l) && !ops.linkExists(l));
  const lostAddresses = [...d.addresses]
    .map((a) => a.split(' ') as [string, string])
    .filter(([link, cidr]) => owned.has(link) && ops.linkExists(link) && !ops.addresses(link).includes(cidr));
  let tablesDone = false;
  if (lostLinks.length > 0 || lostAddresses.length > 0) {
    ops.restore();
    tablesDone = true;
    for (const link of lostLinks) {
      if (ops.linkExists(link)) warn(`repair: link ${link} was deleted by another process: rebuilt`, { link });
      else {
        warn(
          `repair: link ${link} was deleted by another process and cannot be put back: it was a container's host-side veth, ` +
            'the container is cut off from its network until it is detached and attached again',
          { link },
        );
      }
    }
    for (const [link, cidr] of lostAddresses) {
      const back = ops.addresses(link).includes(cidr);
      if (back) countRepairs('address');
      warn(`repair: address ${cidr} was removed from ${link} by another process: ${back ? 'put back' : 'could not be put back'}`, { link, cidr });
    }
  }
  if (d.elements.size > 0 && !tablesDone) {
    // the deletion was another process's (element-events.ts): no compare needed, the sync writes every element
    ops.syncFirewall();
    tablesDone = true;
    countRepairs('nftables');
    const sets = [...d.elements].sort();
    warn(`repair: elements of tsnet's nftables sets deleted by another process (${sets.join(', ')}): tables written again`, { sets });
  }
  if (d.tables && !tablesDone) {
    const diff = ops.tablesDiff();
    if (diff.length > 0) {
      ops.syncFirewall();
      countRepairs('nftables');
      warn('repair: nftables tables changed by another process (deleted or flushed): put back', { diff: diff.slice(0, 20) });
    }
  }
  if (d.dockerChains && ops.refreshDockerCompat()) {
    countRepairs('docker-chains');
    warn("repair: tsnet's accept rules put back into Docker's iptables chains");
  }
  return done;
}

// ---------------------------------------------------------------- the watcher processes

/** How long events are collected before one repair pass. */
export const DEBOUNCE_MS = 100;
/** How long a deleted veth waits before a pass looks at it: time for its container's DeleteEndpoint. */
export const PEER_GRACE_MS = 2_000;
/** A watcher that dies is started again after this, doubled on every quick death up to MAX. */
const RESTART_MS = 1_000;
const RESTART_MAX_MS = 60_000;
/** A watcher that ran this long before dying starts again after RESTART_MS. */
const STABLE_MS = 10_000;

/** Repair passes that repaired something, at most this many in any WINDOW_MS; then the next waits. */
export const REPAIR_BUDGET = 20;
export const WINDOW_MS = 10_000;

/**
 * The wait before a pass at `now`, given when the recent passes that had to repair something ran
 * (oldest first): DEBOUNCE_MS, or longer once REPAIR_BUDGET of them fall within WINDOW_MS (another
 * process keeps undoing tsnet's work, or a repair keeps failing), so such a fight costs a bounded
 * amount. Pure, exported for tests.
 */
export function delayBefore(now: number, recent: number[]): number {
  const inWindow = recent.filter((t) => t > now - WINDOW_MS);
  if (inWindow.length < REPAIR_BUDGET) return DEBOUNCE_MS;
  return Math.max(DEBOUNCE_MS, inWindow[inWindow.length - REPAIR_BUDGET] + WINDOW_MS - now);
}

export interface DriftWatcherOptions {
  /** tsnet's nftables table name (inet and bridge) */
  table: string;
  /** runs one repair pass (on the daemon's serial queue); what it repaired */
  repair(d: Drift): Promise<string[]>;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** the monitors; tests put stand-ins here */
  monitors?: Monitor[];
  /**
   * The monitors' processes are made, but wait, until release(): the daemon's start makes them
   * while the main thread has nothing else to do (it waits for the firewall's children) and lets
   * them watch once it serves, with one look at the tables and Docker's chains for what changed
   * before (as after a monitor's restart). A process start costs the main thread tens of ms
   * (fork and exec), four of them ~0.1-0.2 s, which a request arriving first would wait for;
   * letting a made process go costs a pipe write. They are not let watch earlier: the start's own
   * write of tens of thousands of elements would be decoded by each of them, on the same cores.
   */
  held?: boolean;
}

/** A monitor process and what its lines mean. */
export interface Monitor {
  argv: [string, ...string[]];
  /** adds what a line may have changed to the pending drift, now or (through `later`) after PEER_GRACE_MS */
  onLine(line: string, pending: Drift, table: string, later: (add: (pending: Drift) => void) => void): void;
}

const nftMonitor = (what: 'tables' | 'rules'): Monitor => ({
  argv: ['nft', 'monitor', what],
  onLine(line, pending, table) {
    const l = parseNftMonitorLine(line, table);
    if (l) pending[l] = true;
  },
});

export const MONITORS: Monitor[] = [
  // tables: a table deleted (flush ruleset); rules: a table or chain flushed, rules deleted or added
  nftMonitor('tables'),
  nftMonitor('rules'),
  {
    argv: ['ip', '-o', 'monitor', 'link', 'address'],
    onLine(line, pending, _table, later) {
      const l = parseIpMonitorLine(line);
      if (l?.type === 'link' && l.peer) later((p) => p.links.add(l.link));
      else if (l?.type === 'link') pending.links.add(l.link);
      else if (l?.type === 'address') pending.addresses.add(`${l.link} ${l.cidr}`);
    },
  },
  // elements deleted by another process (element-events.ts: nft's own monitor of elements crashes)
  {
    argv: ['python3', '-c', READER_PY],
    onLine(line, pending, table) {
      const e = parseElementEventLine(line, table, isOwnThread);
      if (e === 'overrun') pending.elements.add('overrun');
      else if (e) pending.elements.add(`${e.family} ${e.set}`);
    },
  },
];

/**
 * Runs "$@" (exec'd, so the child's pid is the monitor's) with a guard that kills it when the
 * daemon's end of its stdin closes: the daemon exiting in any way, kill -9 included, never leaves a
 * monitor behind. The monitor itself gets no stdin.
 */
const TIED_TO_DAEMON = 'exec 3<&0; (read _ <&3; kill $$ 2>/dev/null) & exec "$@" <&- 3<&-';

/** TIED_TO_DAEMON once a line on stdin says go (DriftWatcherOptions.held); the daemon gone first, nothing. */
const ON_GO = `read _ || exit 0; ${TIED_TO_DAEMON}`;

/**
 * The monitor processes, their parsing, the debounce and the repair passes. A monitor that dies is
 * restarted, followed by a look at the tables and Docker's chains (what changed while it was down
 * went unseen).
 */
export class DriftWatcher {
  private readonly children = new Map<Monitor, ChildProcess>();
  private pending = noDrift();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  /** when the recent passes that repaired something ran, oldest first (at most REPAIR_BUDGET) */
  private recent: number[] = [];
  private readonly restartDelay = new Map<Monitor, number>();
  /** links waiting out PEER_GRACE_MS */
  private readonly graceTimers = new Set<NodeJS.Timeout>();
  /** monitors waiting for go, no pass, until release() (DriftWatcherOptions.held) */
  private held: boolean;

  constructor(private readonly o: DriftWatcherOptions) {
    this.held = o.held ?? false;
  }

  start(): void {
    for (const m of this.o.monitors ?? MONITORS) this.launch(m);
  }

  /** Lets the monitors watch and passes run; the first pass looks at the tables and Docker's chains. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    for (const c of this.children.values()) c.stdin?.write('go\n');
    // what changed before they watched went unseen: look at everything once
    this.pending.tables = true;
    this.pending.dockerChains = true;
    this.schedule();
  }

  /** Stops the watchers and any pass not yet started. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const t of this.graceTimers) clearTimeout(t);
    this.graceTimers.clear();
    for (const c of this.children.values()) {
      c.kill('SIGTERM');
      c.stdin?.end();
    }
    this.children.clear();
  }

  /** pids of the running monitor processes (for tests and status) */
  pids(): number[] {
    return [...this.children.values()].flatMap((c) => (c.pid === undefined ? [] : [c.pid]));
  }

  private launch(m: Monitor): void {
    const child = spawn('sh', ['-c', ON_GO, 'sh', ...m.argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    // a monitor gone before its go: its exit says so, not a write error
    child.stdin!.on('error', () => {});
    if (!this.held) child.stdin!.write('go\n');
    // the watchers never keep the daemon's process alive (a start that fails after they began ends
    // the process, and the monitors with it); the server does while it serves
    child.unref();
    for (const pipe of [child.stdin, child.stdout, child.stderr]) (pipe as { unref?: () => void } | null)?.unref?.();
    const started = Date.now();
    this.children.set(m, child);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      // a monitor that has to set itself up first (the element reader) says when it sees events
      if (line === 'ready') return this.o.log.info({ watcher: m.argv[0] }, 'drift watcher ready');
      m.onLine(line, this.pending, this.o.table, (add) => this.afterGrace(add));
      this.schedule();
    });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => void (stderr = (stderr + b.toString()).slice(-500)));
    const died = (why: string) => {
      child.stdin?.end();
      if (this.stopped || this.children.get(m) !== child) return;
      this.children.delete(m);
      const delay = Date.now() - started >= STABLE_MS ? RESTART_MS : (this.restartDelay.get(m) ?? RESTART_MS);
      this.restartDelay.set(m, Math.min(delay * 2, RESTART_MAX_MS));
      this.o.log.warn({ watcher: m.argv.join(' '), why, stderr: stderr.trim(), restartInMs: delay }, 'drift watcher stopped: starting it again; changes made meanwhile are repaired then');
      setTimeout(() => {
        if (this.stopped) return;
        this.launch(m);
        // what changed while it was down went unseen: look at everything once
        this.pending.tables = true;
        this.pending.dockerChains = true;
        this.schedule();
      }, delay).unref();
    };
    child.on('error', (err) => died(err.message));
    child.on('exit', (code, signal) => died(`exited (${code ?? signal})`));
  }

  private afterGrace(add: (pending: Drift) => void): void {
    const t = setTimeout(() => {
      this.graceTimers.delete(t);
      if (this.stopped) return;
      add(this.pending);
      this.schedule();
    }, PEER_GRACE_MS);
    t.unref();
    this.graceTimers.add(t);
  }

  private schedule(): void {
    if (this.held || this.stopped || this.timer || this.running || isEmpty(this.pending)) return;
    this.timer = setTimeout(() => void this.pass(), delayBefore(Date.now(), this.recent));
  }

  private repaired(): void {
    this.recent = [...this.recent, Date.now()].slice(-REPAIR_BUDGET);
  }

  private async pass(): Promise<void> {
    this.timer = undefined;
    const d = this.pending;
    this.pending = noDrift();
    this.running = true;
    try {
      const done = await this.o.repair(d);
      if (done.length > 0) this.repaired();
    } catch (err) {
      this.repaired();
      this.o.log.error({ err }, 'drift repair failed');
    } finally {
      this.running = false;
      // events that came in during the pass (its own among them) get one more, quiet, look
      this.schedule();
    }
  }
}

// ---------------------------------------------------------------- the daemon's wiring

/** What watchDrift needs from the daemon. */
export interface DriftDeps {
  /** tsnet's nftables table name */
  table: string;
  queue: { run<T>(fn: () => T | Promise<T>): Promise<T> };
  controller: Pick<Controller, 'restore' | 'syncFirewall' | 'ownedLinks'>;
  firewall: Pick<Firewall, 'refreshDockerCompat' | 'compat' | 'tablesDiff'>;
  netlink: Pick<Netlink, 'getLink' | 'listAddresses'>;
  log: Logger;
  /** no watching and no repair before release() (DriftWatcherOptions.held): the daemon's start */
  held?: boolean;
}

/** Starts the watchers for the daemon; stop() them on shutdown. */
export function watchDrift(d: DriftDeps): DriftWatcher {
  const compatRules = () => JSON.stringify((['ip', 'ip6'] as const).flatMap((f) => d.firewall.compat.listRules(f)));
  const ops: RepairOps = {
    ownedLinks: () => d.controller.ownedLinks(),
    linkExists: (name) => d.netlink.getLink(name) !== undefined,
    addresses: (name) => d.netlink.listAddresses(name).map((a) => a.cidr),
    restore: () => d.controller.restore(),
    tablesDiff: () => d.firewall.tablesDiff(),
    syncFirewall: () => d.controller.syncFirewall(),
    refreshDockerCompat: () => {
      const before = compatRules();
      d.firewall.refreshDockerCompat();
      return compatRules() !== before;
    },
    log: d.log,
  };
  const watcher = new DriftWatcher({ table: d.table, repair: (drift) => d.queue.run(() => repairDrift(drift, ops)), log: d.log, held: d.held });
  watcher.start();
  return watcher;
}
