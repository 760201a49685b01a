import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipam, type IpamConfig } from './ipam.js';
import { RepoConflictError, type AllocationRecord, type IpamRepo, type PoolRecord, type PoolState } from '../store/ipam-records.js';
import { GATEWAY_REQUEST, REQUEST_ADDRESS_TYPE, type RequestPoolRequest } from './types.js';
import { openDatabase, type Db } from '../store/db.js';
import { SqliteIpamRepo } from '../store/ipam-repo.js';
import { UserError } from '../core/errors.js';

const GW = { [REQUEST_ADDRESS_TYPE]: GATEWAY_REQUEST };
const MACHINE = () => '0123456789abcdef0123456789abcdef';

function poolReq(pool: string, extra: Partial<RequestPoolRequest> = {}): RequestPoolRequest {
  return { addressSpace: 'local', pool, subPool: '', options: {}, v6: pool.includes(':'), ...extra };
}

let dbs: Db[] = [];
let dirs: string[] = [];

function memoryIpam(config: IpamConfig = {}): { ipam: Ipam; repo: SqliteIpamRepo } {
  const db = openDatabase(':memory:');
  dbs.push(db);
  const repo = new SqliteIpamRepo(db);
  return { ipam: new Ipam(repo, { machineId: MACHINE, ...config }), repo };
}

afterEach(() => {
  for (const db of dbs) if (db.open) db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dbs = [];
  dirs = [];
});

describe('address spaces', () => {
  it('are local and global', () => {
    expect(memoryIpam().ipam.getDefaultAddressSpaces()).toEqual({ localDefaultAddressSpace: 'local', globalDefaultAddressSpace: 'global' });
  });
});

describe('RequestPool with a Pool', () => {
  let ipam: Ipam;
  beforeEach(() => {
    ipam = memoryIpam().ipam;
  });

  it('returns a self-describing pool ID and the canonical pool', () => {
    expect(ipam.requestPool(poolReq('10.1.0.0/24'))).toEqual({ poolId: 'local/10.1.0.0/24', pool: '10.1.0.0/24', data: {} });
    expect(ipam.requestPool(poolReq('10.2.0.0/24', { subPool: '10.2.0.128/25' })).poolId).toBe('local/10.2.0.0/24,range=10.2.0.128/25');
    expect(ipam.requestPool(poolReq('FD00:0001::/64'))).toEqual({ poolId: 'local/fd00:1::/64', pool: 'fd00:1::/64', data: {} });
    expect(ipam.requestPool(poolReq('10.3.0.0/24', { addressSpace: '' })).poolId).toBe('local/10.3.0.0/24');
  });

  it.each<[string, Partial<RequestPoolRequest>, string]>([
    ['10.1.0.0/33', {}, "'10.1.0.0/33' is not a valid CIDR"],
    ['banana', {}, "'banana' is not a valid CIDR"],
    ['10.1.0.5/24', {}, 'subnet 10.1.0.5/24 is not a network address (host bits are set): use 10.1.0.0/24'],
    ['10.1.0.0/24', { subPool: '10.2.0.0/25' }, 'ip-range 10.2.0.0/25 is not inside subnet 10.1.0.0/24'],
    ['10.1.0.0/24', { subPool: '10.1.0.0/16' }, 'ip-range 10.1.0.0/16 is not inside subnet 10.1.0.0/24'],
    ['10.1.0.0/24', { subPool: '10.1.0.128/33' }, "'10.1.0.128/33' is not a valid CIDR"],
    ['10.1.0.0/24', { subPool: '10.1.0.129/25' }, 'ip-range 10.1.0.129/25 is not a network address (host bits are set): use 10.1.0.128/25'],
    ['10.1.0.0/24', { subPool: 'fd00::/120' }, 'ip-range fd00::/120 is not inside subnet 10.1.0.0/24'],
    ['10.1.0.0/24', { subPool: '10.1.0.255/32' }, 'ip-range 10.1.0.255/32 holds no assignable address of subnet 10.1.0.0/24: use a larger --ip-range'],
    ['10.1.0.0/24', { v6: true }, 'subnet 10.1.0.0/24 is IPv4 but the request is for an IPv6 pool'],
    ['fd00::/64', { v6: false }, 'subnet fd00::/64 is IPv6 but the request is for an IPv4 pool'],
    ['', { subPool: '10.1.0.128/25' }, 'ip-range 10.1.0.128/25 was given without a subnet: give --subnet together with --ip-range'],
  ])('refuses %j %j', (pool, extra, message) => {
    expect(() => ipam.requestPool(poolReq(pool, extra))).toThrow(new UserError(message));
    expect(ipam.listPools()).toEqual([]);
  });

  it('refuses a pool overlapping another in the same address space', () => {
    ipam.requestPool(poolReq('10.1.0.0/16'));
    expect(() => ipam.requestPool(poolReq('10.1.0.0/24'))).toThrow(
      new UserError('subnet 10.1.0.0/24 overlaps 10.1.0.0/16 of another tsnet network: choose a different --subnet'),
    );
    expect(() => ipam.requestPool(poolReq('10.0.0.0/8'))).toThrow('subnet 10.0.0.0/8 overlaps 10.1.0.0/16 of another tsnet network');
    expect(() => ipam.requestPool(poolReq('10.1.0.0/16'))).toThrow('overlaps');
    ipam.requestPool(poolReq('fd00::/64'));
    expect(() => ipam.requestPool(poolReq('fd00::/48'))).toThrow('subnet fd00::/48 overlaps fd00::/64 of another tsnet network');
    // another address space is another world
    expect(ipam.requestPool(poolReq('10.1.0.0/24', { addressSpace: 'global' })).poolId).toBe('global/10.1.0.0/24');
    // adjacent is fine
    expect(ipam.requestPool(poolReq('10.2.0.0/16')).pool).toBe('10.2.0.0/16');
  });

  it('keeps the request options, known or not', () => {
    const options = { 'com.docker.network.ipam.serial': 'true', foo: '1' };
    const { poolId } = ipam.requestPool(poolReq('10.1.0.0/24', { options }));
    expect(ipam.listPools().find((p) => p.id === poolId)?.options).toEqual(options);
    // Docker may send Options: null
    expect(ipam.requestPool(poolReq('10.2.0.0/24', { options: null as unknown as Record<string, string> })).pool).toBe('10.2.0.0/24');
  });
});

describe('RequestPool without a Pool', () => {
  it('gives a different free pool on every call, avoiding host routes', () => {
    let routes = ['172.17.0.0/16', '0.0.0.0/0', 'default', '172.19.0.5', 'not-a-route', '10.0.0.0/8', 'fe80::/64'];
    const { ipam } = memoryIpam({ hostRoutes: () => routes });
    const pools = [1, 2, 3].map(() => ipam.requestPool(poolReq('')).pool);
    expect(pools).toEqual(['172.18.0.0/16', '172.20.0.0/16', '172.21.0.0/16']);
    routes = [];
    const more = [1, 2].map(() => ipam.requestPool(poolReq('')).pool);
    expect(more).toEqual(['172.17.0.0/16', '172.19.0.0/16']);
    expect(new Set([...pools, ...more]).size).toBe(5);
  });

  it('avoids explicit pools and reports exhaustion', () => {
    const { ipam } = memoryIpam({ defaultPools: { local: [{ base: '10.9.0.0/22', size: 24 }] } });
    ipam.requestPool(poolReq('10.9.1.0/24'));
    expect(ipam.requestPool(poolReq('')).pool).toBe('10.9.0.0/24');
    expect(ipam.requestPool(poolReq('')).pool).toBe('10.9.2.0/24');
    expect(ipam.requestPool(poolReq('')).pool).toBe('10.9.3.0/24');
    expect(() => ipam.requestPool(poolReq(''))).toThrow(
      new UserError('no free IPv4 subnet left in the default pools of address space local: give --subnet, or remove networks you no longer need'),
    );
    // releasing one makes it available again
    ipam.releasePool('local/10.9.2.0/24');
    expect(ipam.requestPool(poolReq('')).pool).toBe('10.9.2.0/24');
  });

  it('avoids pools of other address spaces too', () => {
    const { ipam } = memoryIpam();
    ipam.requestPool(poolReq('172.17.0.0/16', { addressSpace: 'global' }));
    expect(ipam.requestPool(poolReq('')).pool).toBe('172.18.0.0/16');
  });

  it('uses 10.0.0.0/8 in /24s for the global address space', () => {
    const { ipam } = memoryIpam();
    const g = ipam.requestPool(poolReq('', { addressSpace: 'global' }));
    expect(g).toEqual({ poolId: 'global/10.0.0.0/24', pool: '10.0.0.0/24', data: {} });
    expect(ipam.requestPool(poolReq('', { addressSpace: 'global' })).pool).toBe('10.0.1.0/24');
  });

  it('gives distinct IPv6 /64s of the host ULA /48', () => {
    const { ipam } = memoryIpam();
    const a = ipam.requestPool(poolReq('', { v6: true })).pool;
    const b = ipam.requestPool(poolReq('', { v6: true })).pool;
    expect(a).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]+\/64$/);
    expect(b).not.toBe(a);
    expect(a.split(':').slice(0, 3)).toEqual(b.split(':').slice(0, 3));
    // stable: another instance on the same host derives the same prefix
    expect(memoryIpam().ipam.requestPool(poolReq('', { v6: true })).pool).toBe(a);
  });

  it('takes a configured IPv6 default list', () => {
    const { ipam } = memoryIpam({ defaultPools: { ipv6: [{ base: 'fd12:3456:789a::/48', size: 64 }] }, hostRoutes: () => ['fd12:3456:789a::/64'] });
    expect(ipam.requestPool(poolReq('', { v6: true })).pool).toBe('fd12:3456:789a:1::/64');
  });
});

describe('RequestAddress', () => {
  let ipam: Ipam;
  let poolId: string;
  beforeEach(() => {
    ipam = memoryIpam().ipam;
    poolId = ipam.requestPool(poolReq('10.1.0.0/24')).poolId;
  });

  it('gives the gateway the first usable address, then hands out the next ones', () => {
    expect(ipam.requestAddress({ poolId, address: '', options: GW })).toEqual({ address: '10.1.0.1/24', data: {} });
    expect(ipam.requestAddress({ poolId, address: '', options: {} }).address).toBe('10.1.0.2/24');
    expect(ipam.requestAddress({ poolId, address: '', options: null as unknown as Record<string, string> }).address).toBe('10.1.0.3/24');
  });

  it('serves a gateway with an Address exactly', () => {
    expect(ipam.requestAddress({ poolId, address: '10.1.0.254', options: GW }).address).toBe('10.1.0.254/24');
    expect(() => ipam.requestAddress({ poolId, address: '10.1.0.254', options: GW })).toThrow(
      new UserError('address 10.1.0.254 is already in use in pool 10.1.0.0/24'),
    );
    expect(ipam.requestAddress({ poolId, address: '', options: {} }).address).toBe('10.1.0.1/24');
  });

  it('serves exact requests exactly or refuses them', () => {
    expect(ipam.requestAddress({ poolId, address: '10.1.0.5', options: {} }).address).toBe('10.1.0.5/24');
    expect(() => ipam.requestAddress({ poolId, address: '10.1.0.5', options: {} })).toThrow(
      new UserError('address 10.1.0.5 is already in use in pool 10.1.0.0/24'),
    );
    expect(() => ipam.requestAddress({ poolId, address: '10.2.0.5', options: {} })).toThrow(new UserError('address 10.2.0.5 is outside pool 10.1.0.0/24'));
    expect(() => ipam.requestAddress({ poolId, address: '10.1.0.0', options: {} })).toThrow('is the network address of pool 10.1.0.0/24');
    expect(() => ipam.requestAddress({ poolId, address: '10.1.0.255', options: {} })).toThrow('is the broadcast address of pool 10.1.0.0/24');
    expect(() => ipam.requestAddress({ poolId, address: '10.1.0.500', options: {} })).toThrow(new UserError("'10.1.0.500' is not a valid IP address"));
    expect(() => ipam.requestAddress({ poolId, address: 'fd00::1', options: {} })).toThrow('address fd00::1 is IPv6 but pool 10.1.0.0/24 is IPv4');
  });

  it('lets exact addresses lie outside the sub-pool but not outside the pool', () => {
    const sub = ipam.requestPool(poolReq('10.2.0.0/24', { subPool: '10.2.0.128/25' })).poolId;
    expect(ipam.requestAddress({ poolId: sub, address: '', options: GW }).address).toBe('10.2.0.1/24');
    expect(ipam.requestAddress({ poolId: sub, address: '10.2.0.10', options: {} }).address).toBe('10.2.0.10/24'); // aux address
    expect(ipam.requestAddress({ poolId: sub, address: '', options: {} }).address).toBe('10.2.0.128/24');
    expect(ipam.requestAddress({ poolId: sub, address: '', options: {} }).address).toBe('10.2.0.129/24');
    expect(() => ipam.requestAddress({ poolId: sub, address: '10.3.0.1', options: {} })).toThrow('address 10.3.0.1 is outside pool 10.2.0.0/24');
  });

  it('works for IPv6 pools', () => {
    const v6 = ipam.requestPool(poolReq('fd00:1::/64')).poolId;
    expect(ipam.requestAddress({ poolId: v6, address: '', options: GW }).address).toBe('fd00:1::1/64');
    expect(ipam.requestAddress({ poolId: v6, address: '', options: {} }).address).toBe('fd00:1::2/64');
    expect(ipam.requestAddress({ poolId: v6, address: 'FD00:1:0::00AB', options: {} }).address).toBe('fd00:1::ab/64');
    expect(() => ipam.requestAddress({ poolId: v6, address: 'fd00:1::', options: {} })).toThrow('subnet-router anycast address');
  });

  it('refuses unknown pool IDs', () => {
    expect(() => ipam.requestAddress({ poolId: 'local/10.9.0.0/24', address: '', options: {} })).toThrow(
      new UserError("unknown IPAM pool ID 'local/10.9.0.0/24': the pool was released or was not requested from tsnet"),
    );
  });

  it('reports a full pool', () => {
    const small = ipam.requestPool(poolReq('10.3.0.0/30')).poolId;
    ipam.requestAddress({ poolId: small, address: '', options: GW });
    ipam.requestAddress({ poolId: small, address: '', options: {} });
    expect(() => ipam.requestAddress({ poolId: small, address: '', options: {} })).toThrow(/^no free address left in pool 10\.3\.0\.0\/30/);
    expect(() => ipam.requestAddress({ poolId: small, address: '', options: GW })).toThrow(/^no free address left in pool 10\.3\.0\.0\/30/);
  });

  it('does not reuse a released address at once', () => {
    ipam.requestAddress({ poolId, address: '', options: GW });
    ipam.requestAddress({ poolId, address: '', options: {} }); // .2
    ipam.releaseAddress(poolId, '10.1.0.2');
    expect(ipam.requestAddress({ poolId, address: '', options: {} }).address).toBe('10.1.0.3/24');
    // but it can be asked for exactly
    expect(ipam.requestAddress({ poolId, address: '10.1.0.2', options: {} }).address).toBe('10.1.0.2/24');
  });

  it('keeps a /8 pool small in memory', () => {
    const big = ipam.requestPool(poolReq('10.0.0.0/8', { addressSpace: 'global' })).poolId;
    for (let i = 0; i < 200; i++) ipam.requestAddress({ poolId: big, address: '', options: {} });
    ipam.requestAddress({ poolId: big, address: '10.99.0.1', options: {} });
    expect(ipam.usage().find((u) => u.poolId === big)).toMatchObject({ allocated: 201n, ranges: 2 });
  });
});

describe('release', () => {
  it('is idempotent and succeeds for unknown IDs', () => {
    const { ipam } = memoryIpam();
    const { poolId } = ipam.requestPool(poolReq('10.1.0.0/24'));
    ipam.requestAddress({ poolId, address: '10.1.0.7', options: {} });
    ipam.releaseAddress(poolId, '10.1.0.7/24'); // CIDR form accepted
    ipam.releaseAddress(poolId, '10.1.0.7');
    ipam.releaseAddress(poolId, '10.1.0.8');
    ipam.releaseAddress(poolId, '');
    ipam.releaseAddress(poolId, 'fd00::1');
    ipam.releaseAddress('local/10.200.0.0/24', '10.200.0.1');
    ipam.releaseAddress('local/10.200.0.0/24', 'garbage');
    expect(() => ipam.releaseAddress(poolId, 'garbage')).toThrow(new UserError("'garbage' is not a valid IP address"));
    ipam.releasePool('local/10.200.0.0/24');
    ipam.releasePool(poolId);
    ipam.releasePool(poolId);
    ipam.releaseAddress(poolId, '10.1.0.7');
    expect(ipam.listPools()).toEqual([]);
  });

  it('drops the allocations of a released pool', () => {
    const { ipam, repo } = memoryIpam();
    const { poolId } = ipam.requestPool(poolReq('10.1.0.0/24'));
    ipam.requestAddress({ poolId, address: '', options: GW });
    ipam.requestAddress({ poolId, address: '10.1.0.5', options: {} });
    ipam.releasePool(poolId);
    expect(repo.loadPoolState(poolId)).toEqual({ addresses: [], cursor: null });
    const again = ipam.requestPool(poolReq('10.1.0.0/24')).poolId;
    expect(again).toBe(poolId);
    expect(ipam.requestAddress({ poolId, address: '10.1.0.5', options: {} }).address).toBe('10.1.0.5/24');
    expect(ipam.requestAddress({ poolId, address: '', options: GW }).address).toBe('10.1.0.1/24');
  });
});

describe('persistence', () => {
  function tempDbPath(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tsnet-ipam-'));
    dirs.push(dir);
    return join(dir, 'state', 'tsnet.db');
  }

  function open(path: string): { db: Db; ipam: Ipam; repo: SqliteIpamRepo } {
    const db = openDatabase(path);
    dbs.push(db);
    const repo = new SqliteIpamRepo(db);
    return { db, repo, ipam: new Ipam(repo, { machineId: MACHINE }) };
  }

  it('keeps pools and allocations across a reopen and never reissues an address', () => {
    const path = tempDbPath();
    const first = open(path);
    const { poolId } = first.ipam.requestPool(poolReq('10.1.0.0/24', { options: { foo: '1' } }));
    const auto = first.ipam.requestPool(poolReq('')).pool;
    const handed = [
      first.ipam.requestAddress({ poolId, address: '', options: GW }).address,
      first.ipam.requestAddress({ poolId, address: '', options: {} }).address,
      first.ipam.requestAddress({ poolId, address: '', options: {} }).address,
      first.ipam.requestAddress({ poolId, address: '10.1.0.50', options: {} }).address,
    ];
    expect(handed).toEqual(['10.1.0.1/24', '10.1.0.2/24', '10.1.0.3/24', '10.1.0.50/24']);
    first.ipam.releaseAddress(poolId, '10.1.0.3');
    first.db.close();

    const second = open(path);
    expect(second.ipam.listPools().map((p) => p.id)).toEqual([poolId, `local/${auto}`]);
    expect(second.ipam.listPools()[0]).toMatchObject({ addressSpace: 'local', pool: '10.1.0.0/24', subPool: '', v6: false, options: { foo: '1' }, auto: false });
    expect(second.ipam.listPools()[1]?.auto).toBe(true);
    // still allocated
    expect(() => second.ipam.requestAddress({ poolId, address: '10.1.0.2', options: {} })).toThrow('address 10.1.0.2 is already in use in pool 10.1.0.0/24');
    expect(() => second.ipam.requestAddress({ poolId, address: '10.1.0.50', options: {} })).toThrow('already in use');
    // the cursor survived too: .3 (released just before the restart) is not handed out again at once
    expect(second.ipam.requestAddress({ poolId, address: '', options: {} }).address).toBe('10.1.0.4/24');
    // pools still count for overlap and automatic choice
    expect(() => second.ipam.requestPool(poolReq('10.1.0.0/16'))).toThrow('overlaps 10.1.0.0/24');
    expect(second.ipam.requestPool(poolReq('')).pool).not.toBe(auto);
    expect(second.repo.listAllocations(poolId).map((a) => [a.address, a.kind])).toEqual(
      expect.arrayContaining([
        ['10.1.0.1', 'gateway'],
        ['10.1.0.2', 'dynamic'],
        ['10.1.0.50', 'static'],
        ['10.1.0.4', 'dynamic'],
      ]),
    );
  });

  it('creates its tables once and tolerates a second repo on the same database', () => {
    const path = tempDbPath();
    const { db } = open(path);
    new SqliteIpamRepo(db);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ipam_%' ORDER BY name").all();
    expect(tables).toEqual([{ name: 'ipam_allocations' }, { name: 'ipam_pools' }]);
  });
});

describe('a store shared with another writer', () => {
  /** Wraps a repo; before the first allocation lets "another host" take the address being asked for. */
  class RacingRepo implements IpamRepo {
    raced = 0;
    constructor(
      readonly inner: IpamRepo,
      private readonly racer: (a: AllocationRecord) => void,
    ) {}
    listPools(): PoolRecord[] {
      return this.inner.listPools();
    }
    getPool(id: string): PoolRecord | undefined {
      return this.inner.getPool(id);
    }
    createPool(build: (existing: readonly PoolRecord[]) => PoolRecord): PoolRecord {
      return this.inner.createPool(build);
    }
    deletePool(id: string): void {
      this.inner.deletePool(id);
    }
    loadPoolState(poolId: string): PoolState {
      return this.inner.loadPoolState(poolId);
    }
    addAllocation(a: AllocationRecord, cursor: string | null): void {
      if (this.raced++ === 0) this.racer(a);
      this.inner.addAllocation(a, cursor);
    }
    removeAllocation(poolId: string, address: string): void {
      this.inner.removeAllocation(poolId, address);
    }
  }

  function setup(racer: (inner: IpamRepo, a: AllocationRecord) => void) {
    const db = openDatabase(':memory:');
    dbs.push(db);
    const inner = new SqliteIpamRepo(db);
    const repo = new RacingRepo(inner, (a) => racer(inner, a));
    const ipam = new Ipam(repo, { machineId: MACHINE });
    const { poolId } = ipam.requestPool(poolReq('10.1.0.0/24'));
    return { ipam, poolId, inner };
  }

  it('retries a dynamic allocation with the next address when another writer took it', () => {
    const { ipam, poolId } = setup((inner, a) => inner.addAllocation({ ...a, createdAt: a.createdAt }, a.address));
    expect(ipam.requestAddress({ poolId, address: '', options: {} }).address).toBe('10.1.0.2/24');
  });

  it('refuses an exact allocation another writer took first', () => {
    const { ipam, poolId } = setup((inner, a) => inner.addAllocation(a, null));
    expect(() => ipam.requestAddress({ poolId, address: '10.1.0.9', options: {} })).toThrow('address 10.1.0.9 is already in use in pool 10.1.0.0/24');
  });

  it('says the pool is unknown when another writer released it', () => {
    const { ipam, poolId } = setup((inner, a) => inner.deletePool(a.poolId));
    expect(() => ipam.requestAddress({ poolId, address: '', options: {} })).toThrow(`unknown IPAM pool ID '${poolId}'`);
  });

  it('sees a pool another writer created', () => {
    const db = openDatabase(':memory:');
    dbs.push(db);
    const repo = new SqliteIpamRepo(db);
    const a = new Ipam(repo, { machineId: MACHINE });
    const b = new Ipam(repo, { machineId: MACHINE });
    const { poolId } = a.requestPool(poolReq('10.1.0.0/24'));
    expect(b.requestAddress({ poolId, address: '', options: {} }).address).toBe('10.1.0.1/24');
    expect(() => b.requestPool(poolReq('10.1.0.0/25'))).toThrow('overlaps');
    expect(RepoConflictError).toBeDefined();
  });
});
