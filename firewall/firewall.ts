// The nftables firewall behind NetworkFirewall (api.ts, what the drivers see): networks and
// published ports in, one nftables transaction out per call; plus the daemon's start-up sync and
// listings. The rule text comes from ruleset.ts; Docker's iptables gets its accepts from
// docker-compat.ts for every bridge tsnet knows.
import type { NftApi } from '../native/nftables.js';
import { NftError } from '../native/nftables.js';
import { canonicalIPv6 } from './addr.js';
import { COMPAT_TAG, DockerCompat } from './docker-compat.js';
import type { FirewallEndpoint, FirewallNetwork, PortMapping } from './model.js';
import type { NetworkFirewall } from './api.js';
import * as ruleset from './ruleset.js';
import { listingShape, scriptShape, shapeDiff } from './shape.js';
import { stderrLogger, type Logger } from '../core/log.js';
import type { Proto } from '../core/protocol.js';

/** A published port as the table holds it (the table does not know endpoints). */
export interface TableMapping {
  proto: Proto;
  /** '' for every host address of the family */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

/**
 * Which daemon's rules these are. Two daemons on one host (a user's and the test suite's, or
 * several lab hosts) each keep their own table and their own tagged rules in Docker's chains,
 * so neither's start-up sync removes the other's.
 */
export interface FirewallInstance {
  /** nftables table name (letters, digits, '_') */
  table: string;
  /** comment prefix of the rules in Docker's chains */
  compatTag: string;
}

export const DEFAULT_INSTANCE: FirewallInstance = { table: ruleset.TABLE_NAME, compatTag: COMPAT_TAG };

export class Firewall implements NetworkFirewall {
  readonly compat: DockerCompat;
  private readonly rules: ruleset.Ruleset;
  /** the networks the table holds, by bridge: for Docker's chains and for recreating a lost table */
  private readonly networks = new Map<string, FirewallNetwork>();
  /** the container ports under anti-spoofing, by port: for recreating a lost table */
  private readonly endpoints = new Map<string, FirewallEndpoint>();

  constructor(
    private readonly nft: NftApi,
    private readonly log: Pick<Logger, 'warn'> = stderrLogger,
    instance: FirewallInstance = DEFAULT_INSTANCE,
  ) {
    this.rules = ruleset.rulesFor(instance.table);
    this.compat = new DockerCompat(nft, instance.compatTag);
  }

  /** Replaces both tables with exactly these networks, mappings and container ports (start-up reconcile). */
  sync(networks: FirewallNetwork[], mappings: PortMapping[], endpoints: FirewallEndpoint[] = []): void {
    this.nft.run(this.rules.fullTable(networks, mappings, endpoints));
    this.synced(networks, endpoints);
  }

  /**
   * sync(), with the tables written by child `nft` processes where one can (NftApi.runDetached):
   * for the daemon's start, which goes on meanwhile and keeps none of libnftables' memory for the
   * transaction (tens of MB at thousands of endpoints). The two tables are written side by side,
   * each whole in a transaction of its own; when one is refused, the error says which, and the
   * start fails (the next start writes both again).
   */
  async syncDetached(networks: FirewallNetwork[], mappings: PortMapping[], endpoints: FirewallEndpoint[] = []): Promise<void> {
    if (!this.nft.runDetached) return this.sync(networks, mappings, endpoints);
    // the inet table's child starts while the bridge table's text is built
    const inet = this.nft.runDetached(this.rules.inetTable(networks, mappings));
    inet.catch(() => {});
    const bridge = this.nft.runDetached(this.rules.bridgeTable(endpoints));
    await Promise.all([inet, bridge]);
    this.synced(networks, endpoints);
  }

  /** After the tables were written whole: what they hold, and Docker's chains for those bridges. */
  private synced(networks: FirewallNetwork[], endpoints: FirewallEndpoint[]): void {
    this.networks.clear();
    for (const n of networks) this.networks.set(n.bridge, n);
    this.endpoints.clear();
    for (const e of endpoints) this.endpoints.set(e.port, e);
    try {
      this.compat.syncBridges([...this.networks.keys()]);
    } catch (err) {
      // tsnet's own table is in place; only Docker's FORWARD chain may still drop its traffic
      this.log.warn({ err }, 'could not put the accept rules for tsnet bridges into Docker\'s iptables chains: on a host where dockerd runs, traffic of tsnet networks is dropped until this succeeds');
    }
  }

  /** Adds a network (or brings it in line with `n`); creates the table when it is missing. */
  addNetwork(n: FirewallNetwork): void {
    this.runInTable(this.rules.addNetwork(n));
    this.networks.set(n.bridge, n);
    this.compat.allowBridge(n.bridge);
  }

  /** Removes a network's elements and Docker accepts; no error when they are already gone. */
  removeNetwork(n: FirewallNetwork): void {
    this.networks.delete(n.bridge);
    this.runUnlessTableGone(ruleset.TABLE_FAMILY, this.rules.removeNetwork(n));
    try {
      this.compat.removeBridge(n.bridge);
    } catch (err) {
      // a leftover accept for a bridge that no longer exists matches nothing; sync removes it
      this.log.warn({ err, bridge: n.bridge }, 'could not remove the Docker compatibility rules of a bridge');
    }
  }

  /**
   * Publishes ports: element adds in one transaction. A host port still mapped to another
   * container (left behind by a crash) is taken over, with a warning.
   */
  publish(ms: PortMapping[]): void {
    if (ms.length === 0) return;
    try {
      this.runInTable(this.rules.addMappings(ms));
    } catch (err) {
      if (!(err instanceof NftError) || !/File exists/.test(err.detail)) throw err;
      const stale = this.conflicting(ms, 'other');
      if (stale.length === 0) throw err;
      this.log.warn({ stale }, 'published host ports still mapped to other containers: taking them over');
      this.nft.run(`${this.rules.deleteMappingKeys(stale.map((s) => s.element))}\n${this.rules.addMappings(ms)}`);
    }
  }

  /** Stops publishing ports; a mapping already gone is no error, one now held by another container is left alone. */
  unpublish(ms: PortMapping[]): void {
    if (ms.length === 0) return;
    try {
      this.runUnlessTableGone(ruleset.TABLE_FAMILY, this.rules.removeMappings(ms));
    } catch (err) {
      if (!(err instanceof NftError) || !/File exists/.test(err.detail)) throw err;
      const ours = this.conflicting(ms, 'same');
      if (ours.length > 0) this.nft.run(this.rules.deleteMappingKeys(ours.map((s) => s.element)));
    }
  }

  /** Lets a container port send only from its own MAC and addresses (creates the table when missing). */
  addEndpoint(e: FirewallEndpoint): void {
    // the port's elements are keyed by its values: a port that had others loses those first
    const before = this.endpoints.get(e.port);
    const add = this.rules.addEndpoint(e);
    const script = before && !sameEndpoint(before, e) ? `${this.rules.removeEndpoint(before)}\n${add}` : add;
    try {
      this.nft.run(script);
    } catch (err) {
      if (!isMissing(err) || this.tableExists('bridge')) throw err;
      this.nft.run(this.withSpoofTable(script));
    }
    this.endpoints.set(e.port, e);
  }

  /** Removes a container port's anti-spoofing; no error when it is already gone. */
  removeEndpoint(e: Pick<FirewallEndpoint, 'port'>): void {
    // what this firewall put there (sync or addEndpoint): every element of it goes
    const known = this.endpoints.get(e.port) ?? e;
    this.endpoints.delete(e.port);
    this.runUnlessTableGone('bridge', this.rules.removeEndpoint(known));
  }

  /**
   * How both tables differ from what sync() writes, in chains, named sets and rule counts
   * (shape.ts; elements not compared): [] when they match, e.g. not after a delete or flush by
   * others. The shape is that of the empty tables: networks, published ports and container ports
   * are elements only (rules/networks.ts, ports.ts, spoofing.ts), so no state is read for it. One
   * terse listing of the ruleset: no element is read either (tens of thousands at size, for every
   * drift pass that looks at the tables, the first one after each start among them).
   */
  tablesDiff(): string[] {
    const name = this.rules.tableName;
    const ruleset = (this.nft.listJson('list ruleset', { terse: true }) as { nftables?: Record<string, { family?: string }>[] }).nftables ?? [];
    const live = ruleset.filter((item) => ['inet', 'bridge'].includes(Object.values(item)[0]?.family ?? ''));
    return shapeDiff(scriptShape(this.rules.fullTable([], [], []), name), listingShape(live, name));
  }

  /** Whether `table inet tsnet` exists. */
  ownedTableExists(): boolean {
    return this.tableExists(ruleset.TABLE_FAMILY);
  }

  private tableExists(family: string): boolean {
    const answer = this.nft.listJson('list tables');
    const list = (answer as { nftables?: { table?: { family?: string; name?: string } }[] }).nftables ?? [];
    return list.some((o) => o.table?.family === family && o.table?.name === this.rules.tableName);
  }

  /** The script, preceded by the anti-spoofing table's creation (with every known port) when it is missing. */
  private withSpoofTable(script: string): string {
    if (this.tableExists('bridge')) return script;
    return [this.rules.createSpoofTable(), ...[...this.endpoints.values()].map((e) => this.rules.addEndpoint(e)), script].join('\n');
  }

  /**
   * Applies the Docker compatibility rules again for every bridge this firewall holds. Call it
   * when dockerd may have (re)started since: it creates DOCKER-USER and its drop policy then.
   */
  refreshDockerCompat(): void {
    this.compat.syncBridges([...this.networks.keys()]);
  }

  /** The table as `nft list table inet tsnet` prints it, '' when it does not exist. */
  listTable(): string {
    if (!this.ownedTableExists()) return '';
    return this.nft.listText(`list table ${ruleset.TABLE_FAMILY} ${this.rules.tableName}`);
  }

  /** Every published port the table holds. Reads whole maps: for status and repairs, not for the hot path. */
  listMappings(): TableMapping[] {
    if (!this.ownedTableExists()) return [];
    const out: TableMapping[] = [];
    for (const f of [4, 6] as const) {
      for (const e of this.readMap(ruleset.SETS.hostPorts[f])) {
        const [hostIp, proto, hostPort] = e.key;
        const [containerIp, containerPort] = e.value;
        out.push({ proto: proto as Proto, hostIp: String(hostIp), hostPort: Number(hostPort), containerIp: String(containerIp), containerPort: Number(containerPort) });
      }
      for (const e of this.readMap(ruleset.SETS.anyPorts[f])) {
        const [proto, hostPort] = e.key;
        const [containerIp, containerPort] = e.value;
        out.push({ proto: proto as Proto, hostIp: '', hostPort: Number(hostPort), containerIp: String(containerIp), containerPort: Number(containerPort) });
      }
    }
    return out;
  }

  /**
   * Runs a script that needs `table inet <name>`; when the table is missing (the first network, or
   * removed by hand), runs it again after the table's creation. The table is not looked up first:
   * libnftables reads the whole ruleset for any listing, `list tables` too, which at thousands of
   * endpoints costs more than the change itself (bench/scale.ts); a failed transaction changes nothing.
   */
  private runInTable(script: string): void {
    try {
      this.nft.run(script);
    } catch (err) {
      if (!isMissing(err) || this.ownedTableExists()) throw err;
      this.nft.run(this.withTable(script));
    }
  }

  /** Runs a removal; a table already gone (so nothing of it left to remove) is no error. */
  private runUnlessTableGone(family: string, script: string): void {
    try {
      this.nft.run(script);
    } catch (err) {
      if (!isMissing(err) || this.tableExists(family)) throw err;
    }
  }

  /** The script, preceded by the table's creation when the table is missing (first network, or removed by hand). */
  private withTable(script: string): string {
    if (this.ownedTableExists()) return script;
    const known = [...this.networks.values()];
    if (known.length > 0) {
      this.log.warn({ networks: known.length }, `nftables table ${ruleset.TABLE_FAMILY} ${this.rules.tableName} was missing: recreating it; published ports come back at the next start of tsnet`);
    }
    return [this.rules.createTable(), ...known.map((n) => this.rules.addNetwork(n)), script].join('\n');
  }

  /** Mappings whose key the table holds with another value ('other') or with this value ('same'). */
  private conflicting(ms: PortMapping[], which: 'other' | 'same'): { mapping: PortMapping; element: ruleset.MappingElement }[] {
    const current = new Map<string, string>();
    for (const t of this.listMappings()) {
      const e = this.rules.mappingElement({ endpointId: '', ...t });
      current.set(`${e.map} ${e.key}`, e.value);
    }
    const found: { mapping: PortMapping; element: ruleset.MappingElement }[] = [];
    for (const m of ms) {
      const e = this.rules.mappingElement(m);
      const value = current.get(`${e.map} ${e.key}`);
      if (value === undefined) continue;
      if ((value === e.value) === (which === 'same')) found.push({ mapping: m, element: e });
    }
    return found;
  }

  private readMap(name: string): { key: unknown[]; value: unknown[] }[] {
    const answer = this.nft.listJson(`list map ${ruleset.TABLE_FAMILY} ${this.rules.tableName} ${name}`);
    const list = (answer as { nftables?: { map?: { elem?: unknown[] } }[] }).nftables ?? [];
    const elems = list.find((o) => o.map)?.map?.elem ?? [];
    return elems.map((pair) => {
      const [k, v] = pair as [unknown, unknown];
      return { key: concat(k), value: concat(v) };
    });
  }
}

function sameEndpoint(a: FirewallEndpoint, b: FirewallEndpoint): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** libnftables said an object the script names does not exist (the table, or something in it). */
function isMissing(err: unknown): boolean {
  return err instanceof NftError && err.isMissing;
}

function concat(x: unknown): unknown[] {
  const parts = (x as { concat?: unknown[] }).concat;
  return (Array.isArray(parts) ? parts : [x]).map((p) => (typeof p === 'string' && p.includes(':') ? canonicalIPv6(p) : p));
}
