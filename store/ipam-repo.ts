// IPAM pools and allocations in the embedded SQLite store (the IpamRepo of ipam/repo.ts).
//
// Allocations are rows keyed by (pool, address), not a bitmap: the table grows with what is
// allocated, never with pool size, and the primary key makes a second allocation of an address
// impossible even if two writers race. Each change is one transaction (BEGIN IMMEDIATE for the
// read-then-write ones), committed before the caller replies to Docker.
import type { Db } from './db.js';
import { RepoConflictError, type AllocationKind, type AllocationRecord, type IpamRepo, type PoolRecord, type PoolState } from './ipam-records.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ipam_pools (
  id TEXT PRIMARY KEY,
  address_space TEXT NOT NULL,
  pool TEXT NOT NULL,
  sub_pool TEXT NOT NULL DEFAULT '',
  v6 INTEGER NOT NULL,
  options TEXT NOT NULL DEFAULT '{}',
  auto INTEGER NOT NULL DEFAULT 0,
  -- last address handed out dynamically; the next one starts after it
  cursor TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ipam_allocations (
  pool_id TEXT NOT NULL REFERENCES ipam_pools(id) ON DELETE CASCADE,
  address TEXT NOT NULL,
  kind TEXT NOT NULL,
  options TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  PRIMARY KEY (pool_id, address)
) WITHOUT ROWID;
`;

interface PoolRow {
  id: string;
  address_space: string;
  pool: string;
  sub_pool: string;
  v6: number;
  options: string;
  auto: number;
  cursor: string | null;
  created_at: string;
}

interface AllocationRow {
  pool_id: string;
  address: string;
  kind: AllocationKind;
  options: string;
  created_at: string;
}

function toPool(r: PoolRow): PoolRecord {
  return {
    id: r.id,
    addressSpace: r.address_space,
    pool: r.pool,
    subPool: r.sub_pool,
    v6: r.v6 !== 0,
    options: JSON.parse(r.options) as Record<string, string>,
    auto: r.auto !== 0,
    createdAt: r.created_at,
  };
}

export class SqliteIpamRepo implements IpamRepo {
  private readonly stmts;

  constructor(private readonly db: Db) {
    db.exec(SCHEMA);
    this.stmts = {
      listPools: db.prepare<[], PoolRow>('SELECT * FROM ipam_pools ORDER BY created_at, id'),
      getPool: db.prepare<[string], PoolRow>('SELECT * FROM ipam_pools WHERE id = ?'),
      insertPool: db.prepare(
        `INSERT INTO ipam_pools (id, address_space, pool, sub_pool, v6, options, auto, cursor, created_at)
         VALUES (@id, @addressSpace, @pool, @subPool, @v6, @options, @auto, NULL, @createdAt)
         ON CONFLICT (id) DO NOTHING`,
      ),
      deleteAllocations: db.prepare<[string]>('DELETE FROM ipam_allocations WHERE pool_id = ?'),
      deletePool: db.prepare<[string]>('DELETE FROM ipam_pools WHERE id = ?'),
      addresses: db.prepare<[string], { address: string }>('SELECT address FROM ipam_allocations WHERE pool_id = ?'),
      cursor: db.prepare<[string], { cursor: string | null }>('SELECT cursor FROM ipam_pools WHERE id = ?'),
      insertAllocation: db.prepare(
        `INSERT INTO ipam_allocations (pool_id, address, kind, options, created_at)
         VALUES (@poolId, @address, @kind, @options, @createdAt)
         ON CONFLICT (pool_id, address) DO NOTHING`,
      ),
      setCursor: db.prepare<[string, string]>('UPDATE ipam_pools SET cursor = ? WHERE id = ?'),
      deleteAllocation: db.prepare<[string, string]>('DELETE FROM ipam_allocations WHERE pool_id = ? AND address = ?'),
      listAllocations: db.prepare<[string], AllocationRow>('SELECT * FROM ipam_allocations WHERE pool_id = ? ORDER BY created_at, address'),
    };
  }

  listPools(): PoolRecord[] {
    return this.stmts.listPools.all().map(toPool);
  }

  getPool(id: string): PoolRecord | undefined {
    const r = this.stmts.getPool.get(id);
    return r && toPool(r);
  }

  createPool(build: (existing: readonly PoolRecord[]) => PoolRecord): PoolRecord {
    const tx = this.db.transaction(() => {
      const record = build(this.listPools());
      const res = this.stmts.insertPool.run({
        id: record.id,
        addressSpace: record.addressSpace,
        pool: record.pool,
        subPool: record.subPool,
        v6: record.v6 ? 1 : 0,
        options: JSON.stringify(record.options),
        auto: record.auto ? 1 : 0,
        createdAt: record.createdAt,
      });
      if (res.changes === 0) throw new RepoConflictError('pool-exists', `pool ${record.id} already exists`);
      return record;
    });
    return tx.immediate();
  }

  deletePool(id: string): void {
    this.db.transaction(() => {
      this.stmts.deleteAllocations.run(id);
      this.stmts.deletePool.run(id);
    })();
  }

  loadPoolState(poolId: string): PoolState {
    const read = this.db.transaction(() => ({
      addresses: this.stmts.addresses.all(poolId).map((r) => r.address),
      cursor: this.stmts.cursor.get(poolId)?.cursor ?? null,
    }));
    return read();
  }

  addAllocation(a: AllocationRecord, cursor: string | null): void {
    const tx = this.db.transaction(() => {
      if (!this.stmts.getPool.get(a.poolId)) throw new RepoConflictError('pool-missing', `pool ${a.poolId} does not exist`);
      const res = this.stmts.insertAllocation.run({
        poolId: a.poolId,
        address: a.address,
        kind: a.kind,
        options: JSON.stringify(a.options),
        createdAt: a.createdAt,
      });
      if (res.changes === 0) throw new RepoConflictError('address-taken', `address ${a.address} is already allocated in pool ${a.poolId}`);
      if (cursor !== null) this.stmts.setCursor.run(cursor, a.poolId);
    });
    tx.immediate();
  }

  removeAllocation(poolId: string, address: string): void {
    this.stmts.deleteAllocation.run(poolId, address);
  }

  /** Every allocation of a pool with its details (for status output and debugging). */
  listAllocations(poolId: string): AllocationRecord[] {
    return this.stmts.listAllocations.all(poolId).map((r) => ({
      poolId: r.pool_id,
      address: r.address,
      kind: r.kind,
      options: JSON.parse(r.options) as Record<string, string>,
      createdAt: r.created_at,
    }));
  }
}
