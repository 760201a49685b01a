// Networks, endpoints and published ports as the drivers recorded them. Docker never replays
// CreateNetwork or CreateEndpoint, so these rows are the only memory tsnet has of what exists.
//
// Crash safety: a row is written with state 'creating' before the kernel is touched and flipped to
// 'ready' when everything is in place; 'deleting' is set before teardown starts. The daemon's start-up
// reconcile rolls back 'creating' rows and finishes 'deleting' ones, so a kill -9 at any point
// leaves nothing the next start does not clean up.
import type { Db } from './db.js';
import type { DriverType, IpamData, PortBinding, Proto } from '../core/protocol.js';

export type RecordState = 'creating' | 'ready' | 'deleting';

export interface NetworkRecord<Config = unknown> {
  id: string;
  driver: DriverType;
  state: RecordState;
  /** driver-specific settings, derived once at create time (bridge name, MTU, ...) */
  config: Config;
  ipv4: IpamData[];
  ipv6: IpamData[];
  createdAt: string;
}

export interface EndpointRecord<Config = unknown> {
  id: string;
  networkId: string;
  state: RecordState;
  /** CIDR or '' */
  address: string;
  addressIpv6: string;
  mac: string;
  /** driver-specific: link names and the like */
  config: Config;
  /** set by Join, cleared by Leave */
  sandboxKey: string | null;
  createdAt: string;
}

export interface PublishedPort extends PortBinding {
  endpointId: string;
  networkId: string;
  /** the runtime holds the host port itself (CNI): tsnet never binds it, also not after a restart */
  heldByRuntime?: boolean;
}

interface NetworkRow {
  id: string;
  driver: DriverType;
  state: RecordState;
  config: string;
  ipv4: string;
  ipv6: string;
  created_at: string;
}

interface EndpointRow {
  id: string;
  network_id: string;
  state: RecordState;
  address: string;
  address_ipv6: string;
  mac: string;
  config: string;
  sandbox_key: string | null;
  created_at: string;
}

interface PortRow {
  endpoint_id: string;
  network_id: string;
  proto: Proto;
  container_ip: string;
  port: number;
  host_ip: string;
  host_port: number;
  held_by_runtime: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS networks (
  id TEXT PRIMARY KEY,
  driver TEXT NOT NULL,
  state TEXT NOT NULL,
  config TEXT NOT NULL,
  ipv4 TEXT NOT NULL,
  ipv6 TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
  id TEXT PRIMARY KEY,
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  address TEXT NOT NULL,
  address_ipv6 TEXT NOT NULL,
  mac TEXT NOT NULL,
  config TEXT NOT NULL,
  sandbox_key TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS endpoints_by_network ON endpoints(network_id);
CREATE TABLE IF NOT EXISTS published_ports (
  endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
  network_id TEXT NOT NULL,
  proto TEXT NOT NULL,
  container_ip TEXT NOT NULL,
  port INTEGER NOT NULL,
  host_ip TEXT NOT NULL,
  host_port INTEGER NOT NULL,
  held_by_runtime INTEGER NOT NULL DEFAULT 0,
  -- one host port, one owner: the store refuses a double booking even if the kernel would not
  UNIQUE (proto, host_ip, host_port, container_ip)
);
CREATE INDEX IF NOT EXISTS ports_by_endpoint ON published_ports(endpoint_id);
CREATE INDEX IF NOT EXISTS ports_by_host_port ON published_ports(proto, host_port);
`;

function toNetwork(row: NetworkRow): NetworkRecord {
  return {
    id: row.id,
    driver: row.driver,
    state: row.state,
    config: JSON.parse(row.config),
    ipv4: JSON.parse(row.ipv4),
    ipv6: JSON.parse(row.ipv6),
    createdAt: row.created_at,
  };
}

function toEndpoint(row: EndpointRow): EndpointRecord {
  return {
    id: row.id,
    networkId: row.network_id,
    state: row.state,
    address: row.address,
    addressIpv6: row.address_ipv6,
    mac: row.mac,
    config: JSON.parse(row.config),
    sandboxKey: row.sandbox_key,
    createdAt: row.created_at,
  };
}

function toPort(row: PortRow): PublishedPort {
  return {
    endpointId: row.endpoint_id,
    networkId: row.network_id,
    proto: row.proto,
    containerIp: row.container_ip,
    port: row.port,
    hostIp: row.host_ip,
    hostPort: row.host_port,
    heldByRuntime: row.held_by_runtime === 1,
  };
}

export class NetworkRepo {
  constructor(readonly db: Db) {
    db.exec(SCHEMA);
    // a state file from before the column existed: its ports were all held by tsnet
    const columns = db.prepare(`PRAGMA table_info(published_ports)`).all() as { name: string }[];
    if (!columns.some((c) => c.name === 'held_by_runtime')) db.exec(`ALTER TABLE published_ports ADD COLUMN held_by_runtime INTEGER NOT NULL DEFAULT 0`);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  // ---- networks

  insertNetwork(n: Omit<NetworkRecord, 'createdAt'>): void {
    this.db
      .prepare(
        `INSERT INTO networks (id, driver, state, config, ipv4, ipv6, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(n.id, n.driver, n.state, JSON.stringify(n.config), JSON.stringify(n.ipv4), JSON.stringify(n.ipv6), new Date().toISOString());
  }

  getNetwork<C = unknown>(id: string): NetworkRecord<C> | undefined {
    const row = this.db.prepare(`SELECT * FROM networks WHERE id = ?`).get(id) as NetworkRow | undefined;
    return row ? (toNetwork(row) as NetworkRecord<C>) : undefined;
  }

  listNetworks<C = unknown>(driver?: DriverType): NetworkRecord<C>[] {
    return this.rowsInOrder<NetworkRow>('networks', 'driver', driver).map((r) => toNetwork(r) as NetworkRecord<C>);
  }

  /** Every row of a table in creation order, or those whose `column` equals `value` when one is given. */
  private rowsInOrder<R>(table: 'networks' | 'endpoints', column: 'driver' | 'network_id', value: string | undefined): R[] {
    return (
      value
        ? this.db.prepare(`SELECT * FROM ${table} WHERE ${column} = ? ORDER BY created_at`).all(value)
        : this.db.prepare(`SELECT * FROM ${table} ORDER BY created_at`).all()
    ) as R[];
  }

  setNetworkState(id: string, state: RecordState): void {
    this.db.prepare(`UPDATE networks SET state = ? WHERE id = ?`).run(state, id);
  }

  /** Removes the network with its endpoints and published ports. */
  deleteNetwork(id: string): void {
    this.db.prepare(`DELETE FROM networks WHERE id = ?`).run(id);
  }

  // ---- endpoints

  insertEndpoint(e: Omit<EndpointRecord, 'createdAt' | 'sandboxKey'>): void {
    this.db
      .prepare(
        `INSERT INTO endpoints (id, network_id, state, address, address_ipv6, mac, config, sandbox_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)`,
      )
      .run(e.id, e.networkId, e.state, e.address, e.addressIpv6, e.mac, JSON.stringify(e.config), new Date().toISOString());
  }

  getEndpoint<C = unknown>(id: string): EndpointRecord<C> | undefined {
    const row = this.db.prepare(`SELECT * FROM endpoints WHERE id = ?`).get(id) as EndpointRow | undefined;
    return row ? (toEndpoint(row) as EndpointRecord<C>) : undefined;
  }

  listEndpoints<C = unknown>(networkId?: string): EndpointRecord<C>[] {
    return this.rowsInOrder<EndpointRow>('endpoints', 'network_id', networkId).map((r) => toEndpoint(r) as EndpointRecord<C>);
  }

  setEndpointState(id: string, state: RecordState): void {
    this.db.prepare(`UPDATE endpoints SET state = ? WHERE id = ?`).run(state, id);
  }

  setSandbox(id: string, sandboxKey: string | null): void {
    this.db.prepare(`UPDATE endpoints SET sandbox_key = ? WHERE id = ?`).run(sandboxKey, id);
  }

  deleteEndpoint(id: string): void {
    this.db.prepare(`DELETE FROM endpoints WHERE id = ?`).run(id);
  }

  // ---- published ports

  insertPorts(ports: PublishedPort[]): void {
    const stmt = this.db.prepare(
      `INSERT INTO published_ports (endpoint_id, network_id, proto, container_ip, port, host_ip, host_port, held_by_runtime)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.transaction(() => {
      for (const p of ports) stmt.run(p.endpointId, p.networkId, p.proto, p.containerIp, p.port, p.hostIp, p.hostPort, p.heldByRuntime ? 1 : 0);
    });
  }

  /** `heldByTsnet`: only the ports whose host port the daemon holds with a socket (not a runtime). */
  listPorts(filter: { endpointId?: string; networkId?: string; heldByTsnet?: boolean } = {}): PublishedPort[] {
    let rows: PortRow[];
    if (filter.heldByTsnet) {
      rows = this.db.prepare(`SELECT * FROM published_ports WHERE held_by_runtime = 0 ORDER BY rowid`).all() as PortRow[];
    } else if (filter.endpointId) {
      rows = this.db.prepare(`SELECT * FROM published_ports WHERE endpoint_id = ? ORDER BY rowid`).all(filter.endpointId) as PortRow[];
    } else if (filter.networkId) {
      rows = this.db.prepare(`SELECT * FROM published_ports WHERE network_id = ? ORDER BY rowid`).all(filter.networkId) as PortRow[];
    } else {
      rows = this.db.prepare(`SELECT * FROM published_ports ORDER BY rowid`).all() as PortRow[];
    }
    return rows.map(toPort);
  }

  /** The published ports on one protocol and host port, whatever the host address: for the one-owner check. */
  portsOn(proto: Proto, hostPort: number): PublishedPort[] {
    const rows = this.db.prepare(`SELECT * FROM published_ports WHERE proto = ? AND host_port = ? ORDER BY rowid`).all(proto, hostPort) as PortRow[];
    return rows.map(toPort);
  }

  deletePorts(endpointId: string): void {
    this.db.prepare(`DELETE FROM published_ports WHERE endpoint_id = ?`).run(endpointId);
  }
}
