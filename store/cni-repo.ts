// What CNI runtimes asked for, beside the drivers' own records (network-repo.ts): which tsnet
// network a CNI network name became, and each attachment (network name, container ID, interface
// name), the key the CNI spec gives a runtime to name it in DEL, CHECK and GC.
//
// Crash safety: an attachment row is written with state 'creating' before anything is made and
// set 'ready' when the result goes out; DEL sets it 'deleting' before it undoes anything. The
// daemon's start-up rolls back or finishes every row not 'ready' (cni/cni-service.ts restore()).
import type { Db } from './db.js';

export type AttachmentState = 'creating' | 'ready' | 'deleting';

export interface CniNetworkRecord {
  name: string;
  networkId: string;
  mode: string;
  /** the options and IPAM settings the network was created with, canonical JSON, to refuse a different later config */
  signature: string;
  /** tsnet IPAM pool, '' with a delegated IPAM plugin */
  poolId: string;
  /** CIDR */
  gateway: string;
  createdAt: string;
}

export interface CniAttachment {
  network: string;
  containerId: string;
  ifName: string;
  state: AttachmentState;
  networkId: string;
  endpointId: string;
  netns: string;
  /** CIDR, '' until allocated */
  address: string;
  /** 'tsnet' or the delegated plugin's type */
  ipam: string;
  /** the ADD result as sent, JSON */
  result: string;
  createdAt: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cni_networks (
  name TEXT PRIMARY KEY,
  network_id TEXT NOT NULL,
  mode TEXT NOT NULL,
  signature TEXT NOT NULL,
  pool_id TEXT NOT NULL,
  gateway TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cni_attachments (
  network TEXT NOT NULL,
  container_id TEXT NOT NULL,
  if_name TEXT NOT NULL,
  state TEXT NOT NULL,
  network_id TEXT NOT NULL,
  endpoint_id TEXT NOT NULL,
  netns TEXT NOT NULL,
  address TEXT NOT NULL,
  ipam TEXT NOT NULL,
  result TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (network, container_id, if_name)
);
`;

interface NetworkRow {
  name: string;
  network_id: string;
  mode: string;
  signature: string;
  pool_id: string;
  gateway: string;
  created_at: string;
}

interface AttachmentRow {
  network: string;
  container_id: string;
  if_name: string;
  state: AttachmentState;
  network_id: string;
  endpoint_id: string;
  netns: string;
  address: string;
  ipam: string;
  result: string;
  created_at: string;
}

export class CniRepo {
  constructor(private readonly db: Db) {
    db.exec(SCHEMA);
  }

  getNetwork(name: string): CniNetworkRecord | undefined {
    const row = this.db.prepare('SELECT * FROM cni_networks WHERE name = ?').get(name) as NetworkRow | undefined;
    return row && { name: row.name, networkId: row.network_id, mode: row.mode, signature: row.signature, poolId: row.pool_id, gateway: row.gateway, createdAt: row.created_at };
  }

  listNetworks(): CniNetworkRecord[] {
    return (this.db.prepare('SELECT name FROM cni_networks ORDER BY name').all() as { name: string }[]).map((r) => this.getNetwork(r.name)!);
  }

  insertNetwork(n: Omit<CniNetworkRecord, 'createdAt'>): void {
    this.db
      .prepare('INSERT INTO cni_networks (name, network_id, mode, signature, pool_id, gateway, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(n.name, n.networkId, n.mode, n.signature, n.poolId, n.gateway, new Date().toISOString());
  }

  deleteNetwork(name: string): void {
    this.db.prepare('DELETE FROM cni_networks WHERE name = ?').run(name);
  }

  getAttachment(network: string, containerId: string, ifName: string): CniAttachment | undefined {
    const row = this.db.prepare('SELECT * FROM cni_attachments WHERE network = ? AND container_id = ? AND if_name = ?').get(network, containerId, ifName) as AttachmentRow | undefined;
    return row && toAttachment(row);
  }

  listAttachments(network?: string): CniAttachment[] {
    const rows = (network === undefined
      ? this.db.prepare('SELECT * FROM cni_attachments ORDER BY created_at').all()
      : this.db.prepare('SELECT * FROM cni_attachments WHERE network = ? ORDER BY created_at').all(network)) as AttachmentRow[];
    return rows.map(toAttachment);
  }

  insertAttachment(a: Omit<CniAttachment, 'createdAt'>): void {
    this.db
      .prepare(
        'INSERT INTO cni_attachments (network, container_id, if_name, state, network_id, endpoint_id, netns, address, ipam, result, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(a.network, a.containerId, a.ifName, a.state, a.networkId, a.endpointId, a.netns, a.address, a.ipam, a.result, new Date().toISOString());
  }

  updateAttachment(a: Pick<CniAttachment, 'network' | 'containerId' | 'ifName'> & Partial<Pick<CniAttachment, 'state' | 'address' | 'result'>>): void {
    const cur = this.getAttachment(a.network, a.containerId, a.ifName);
    if (!cur) return;
    this.db
      .prepare('UPDATE cni_attachments SET state = ?, address = ?, result = ? WHERE network = ? AND container_id = ? AND if_name = ?')
      .run(a.state ?? cur.state, a.address ?? cur.address, a.result ?? cur.result, a.network, a.containerId, a.ifName);
  }

  deleteAttachment(network: string, containerId: string, ifName: string): void {
    this.db.prepare('DELETE FROM cni_attachments WHERE network = ? AND container_id = ? AND if_name = ?').run(network, containerId, ifName);
  }
}

function toAttachment(r: AttachmentRow): CniAttachment {
  return {
    network: r.network,
    containerId: r.container_id,
    ifName: r.if_name,
    state: r.state,
    networkId: r.network_id,
    endpointId: r.endpoint_id,
    netns: r.netns,
    address: r.address,
    ipam: r.ipam,
    result: r.result,
    createdAt: r.created_at,
  };
}
