// The firewall as the drivers see it: networks and published ports in, one nftables transaction
// out per call. The rule text comes from ruleset.ts; Docker's iptables gets its accepts from
// docker-compat.ts for every bridge tsnet knows.
import type { NftApi } from '../native/nftables.js';
import { NftError } from '../native/nftables.js';
import { canonicalIPv6 } from './addr.js';
import { DockerCompat } from './docker-compat.js';
import type { FirewallNetwork, PortMapping, Proto } from './model.js';
import * as rules from './ruleset.js';

export interface FirewallLog {
  warn(obj: object, msg: string): void;
}

/** A published port as the table holds it (the table does not know endpoints). */
export interface TableMapping {
  proto: Proto;
  /** '' for every host address of the family */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

const toStderr: FirewallLog = { warn: (obj, msg) => console.warn(msg, obj) };

export class Firewall {
  readonly compat: DockerCompat;
  /** the networks the table holds, by bridge: for Docker's chains and for recreating a lost table */
  private readonly networks = new Map<string, FirewallNetwork>();

  constructor(
    private readonly nft: NftApi,
    private readonly log: FirewallLog = toStderr,
  ) {
    this.compat = new DockerCompat(nft);
  }

  /** Replaces the whole table with exactly these networks and mappings (start-up reconcile). */
  sync(networks: FirewallNetwork[], mappings: PortMapping[]): void {
    this.nft.run(rules.fullTable(networks, mappings));
    this.networks.clear();
    for (const n of networks) this.networks.set(n.bridge, n);
    try {
      this.compat.syncBridges([...this.networks.keys()]);
    } catch (err) {
      // tsnet's own table is in place; only Docker's FORWARD chain may still drop its traffic
      this.log.warn({ err }, 'could not put the accept rules for tsnet bridges into Docker\'s iptables chains: on a host where dockerd runs, traffic of tsnet networks is dropped until this succeeds');
    }
  }

  /** Adds a network (or brings it in line with `n`); creates the table when it is missing. */
  addNetwork(n: FirewallNetwork): void {
    this.nft.run(this.withTable(rules.addNetwork(n)));
    this.networks.set(n.bridge, n);
    this.compat.allowBridge(n.bridge);
  }

  /** Removes a network's elements and Docker accepts; no error when they are already gone. */
  removeNetwork(n: FirewallNetwork): void {
    this.networks.delete(n.bridge);
    if (this.ownedTableExists()) this.nft.run(rules.removeNetwork(n));
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
    const script = this.withTable(rules.addMappings(ms));
    try {
      this.nft.run(script);
    } catch (err) {
      if (!(err instanceof NftError) || !/File exists/.test(err.detail)) throw err;
      const stale = this.conflicting(ms, 'other');
      if (stale.length === 0) throw err;
      this.log.warn({ stale }, 'published host ports still mapped to other containers: taking them over');
      this.nft.run(`${rules.deleteMappingKeys(stale.map((s) => s.element))}\n${rules.addMappings(ms)}`);
    }
  }

  /** Stops publishing ports; a mapping already gone is no error, one now held by another container is left alone. */
  unpublish(ms: PortMapping[]): void {
    if (ms.length === 0 || !this.ownedTableExists()) return;
    try {
      this.nft.run(rules.removeMappings(ms));
    } catch (err) {
      if (!(err instanceof NftError) || !/File exists/.test(err.detail)) throw err;
      const ours = this.conflicting(ms, 'same');
      if (ours.length > 0) this.nft.run(rules.deleteMappingKeys(ours.map((s) => s.element)));
    }
  }

  /** Whether `table inet tsnet` exists. */
  ownedTableExists(): boolean {
    const answer = this.nft.listJson('list tables');
    const list = (answer as { nftables?: { table?: { family?: string; name?: string } }[] }).nftables ?? [];
    return list.some((o) => o.table?.family === rules.TABLE_FAMILY && o.table?.name === rules.TABLE_NAME);
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
    return this.nft.listText(`list table ${rules.TABLE_FAMILY} ${rules.TABLE_NAME}`);
  }

  /** Every published port the table holds. Reads whole maps: for status and repairs, not for the hot path. */
  listMappings(): TableMapping[] {
    if (!this.ownedTableExists()) return [];
    const out: TableMapping[] = [];
    for (const f of [4, 6] as const) {
      for (const e of this.readMap(rules.SETS.hostPorts[f])) {
        const [hostIp, proto, hostPort] = e.key;
        const [containerIp, containerPort] = e.value;
        out.push({ proto: proto as Proto, hostIp: String(hostIp), hostPort: Number(hostPort), containerIp: String(containerIp), containerPort: Number(containerPort) });
      }
      for (const e of this.readMap(rules.SETS.anyPorts[f])) {
        const [proto, hostPort] = e.key;
        const [containerIp, containerPort] = e.value;
        out.push({ proto: proto as Proto, hostIp: '', hostPort: Number(hostPort), containerIp: String(containerIp), containerPort: Number(containerPort) });
      }
    }
    return out;
  }

  /** The script, preceded by the table's creation when the table is missing (first network, or removed by hand). */
  private withTable(script: string): string {
    if (this.ownedTableExists()) return script;
    const known = [...this.networks.values()];
    if (known.length > 0) {
      this.log.warn({ networks: known.length }, `nftables table ${rules.TABLE_FAMILY} ${rules.TABLE_NAME} was missing: recreating it; published ports come back at the next start of tsnet`);
    }
    return [rules.createTable(), ...known.map((n) => rules.addNetwork(n)), script].join('\n');
  }

  /** Mappings whose key the table holds with another value ('other') or with this value ('same'). */
  private conflicting(ms: PortMapping[], which: 'other' | 'same'): { mapping: PortMapping; element: rules.MappingElement }[] {
    const current = new Map<string, string>();
    for (const t of this.listMappings()) {
      const e = rules.mappingElement({ endpointId: '', ...t });
      current.set(`${e.map} ${e.key}`, e.value);
    }
    const found: { mapping: PortMapping; element: rules.MappingElement }[] = [];
    for (const m of ms) {
      const e = rules.mappingElement(m);
      const value = current.get(`${e.map} ${e.key}`);
      if (value === undefined) continue;
      if ((value === e.value) === (which === 'same')) found.push({ mapping: m, element: e });
    }
    return found;
  }

  private readMap(name: string): { key: unknown[]; value: unknown[] }[] {
    const answer = this.nft.listJson(`list map ${rules.TABLE_FAMILY} ${rules.TABLE_NAME} ${name}`);
    const list = (answer as { nftables?: { map?: { elem?: unknown[] } }[] }).nftables ?? [];
    const elems = list.find((o) => o.map)?.map?.elem ?? [];
    return elems.map((pair) => {
      const [k, v] = pair as [unknown, unknown];
      return { key: concat(k), value: concat(v) };
    });
  }
}

function concat(x: unknown): unknown[] {
  const parts = (x as { concat?: unknown[] }).concat;
  return (Array.isArray(parts) ? parts : [x]).map((p) => (typeof p === 'string' && p.includes(':') ? canonicalIPv6(p) : p));
}
