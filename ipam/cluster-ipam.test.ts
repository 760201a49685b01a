// The cluster IPAM's own choices (which address to ask for, retrying when another host wins,
// what it refuses before asking) over an in-memory stand-in for the store. The rules the store
// itself enforces (who may free an address, the one gateway, races between hosts) are tested
// against the real etcd in netns-tests/cluster-ipam.test.ts: the stand-in's versions prove nothing.
import { describe, expect, it } from 'vitest';
import { ClusterIpam, withClusterPools } from './cluster-ipam.js';
import type { AddressKind, ClusterAddress, ClusterPool, ClusterStore } from '../store/cluster/cluster-store.js';
import type { IpamService } from './types.js';

/** The IPAM half of a cluster store, in memory: one shared table, a view per host. */
class SharedTable {
  pools = new Map<string, ClusterPool>();
  addresses = new Map<string, Map<string, ClusterAddress>>();
  /** addresses other hosts take between a host's read and its claim */
  stealNext: string[] = [];
  /** joins and leaves, in order, as 'host join|leave overlay' */
  membership: string[] = [];
}

/** the stand-in's pools by family and overlay: the IPv4 pool under the overlay's bare name */
const poolKey = (overlay: string, family: 4 | 6) => (family === 6 ? `${overlay} v6` : overlay);

function hostView(table: SharedTable, host: string): ClusterStore {
  const addrs = (o: string) => table.addresses.get(o) ?? table.addresses.set(o, new Map()).get(o)!;
  const ipamOnly = {
    host,
    async claimPool(overlay: string, want: { subnet: string; subPool: string }, family: 4 | 6 = 4) {
      const k = poolKey(overlay, family);
      const p = table.pools.get(k);
      if (p) {
        if (want.subnet && want.subnet !== p.subnet) throw new Error(`subnet mismatch ${p.subnet}`);
        return p;
      }
      if (!want.subnet) throw new Error('no subnet');
      const created = { overlay, subnet: want.subnet, subPool: want.subPool, gateway: '' };
      table.pools.set(k, created);
      return created;
    },
    async getPool(overlay: string, family: 4 | 6 = 4) {
      return table.pools.get(poolKey(overlay, family));
    },
    async setGateway(overlay: string, address: string, family: 4 | 6 = 4) {
      const p = table.pools.get(poolKey(overlay, family))!;
      p.gateway ||= address;
      return p.gateway;
    },
    async listAddresses(overlay: string) {
      const list = [...addrs(overlay).values()];
      for (const a of table.stealNext.splice(0)) addrs(overlay).set(a, { address: a, kind: 'dynamic', host: 'thief' });
      return list;
    },
    async claimAddress(overlay: string, address: string, kind: AddressKind) {
      if (addrs(overlay).has(address)) return false;
      addrs(overlay).set(address, { address, kind, host });
      return true;
    },
    async releaseAddress(overlay: string, address: string) {
      addrs(overlay).delete(address);
    },
    async joinOverlay(overlay: string) {
      table.membership.push(`${host} join ${overlay}`);
    },
    async leaveOverlay(overlay: string) {
      table.membership.push(`${host} leave ${overlay}`);
      return false;
    },
  };
  return ipamOnly as unknown as ClusterStore;
}

const local: IpamService = {
  getDefaultAddressSpaces: () => ({ localDefaultAddressSpace: 'local', globalDefaultAddressSpace: 'global' }),
  requestPool: () => ({ poolId: 'local/10.1.0.0/24', pool: '10.1.0.0/24', data: {} }),
  releasePool: () => undefined,
  requestAddress: () => ({ address: '10.1.0.2/24', data: {} }),
  releaseAddress: () => undefined,
};

const gatewayRequest = { RequestAddressType: 'com.docker.network.gateway' };

describe('cluster-wide IPAM for overlay pools', () => {
  it('asks for one pool and one gateway, and for a free address in each request', async () => {
    const table = new SharedTable();
    const h1 = new ClusterIpam(hostView(table, 'h1'));
    const h2 = new ClusterIpam(hostView(table, 'h2'));
    const p1 = await h1.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'blue' }, v6: false });
    // a later host may leave the subnet out and gets the cluster's
    const p2 = await h2.requestPool({ addressSpace: 'local', pool: '', subPool: '', options: { overlay: 'blue' }, v6: false });
    expect(p1).toEqual({ poolId: 'overlay/blue', pool: '10.77.0.0/24', data: {} });
    expect(p2.pool).toBe('10.77.0.0/24');
    const g1 = await h1.requestAddress({ poolId: p1.poolId, address: '', options: gatewayRequest });
    const g2 = await h2.requestAddress({ poolId: p2.poolId, address: '', options: gatewayRequest });
    expect(g1.address).toBe('10.77.0.1/24');
    expect(g2.address).toBe('10.77.0.1/24');
    const got = await Promise.all([h1, h2, h1, h2].map((h) => h.requestAddress({ poolId: 'overlay/blue', address: '', options: {} })));
    const addresses = got.map((g) => g.address);
    expect(new Set(addresses).size).toBe(4);
    expect(addresses).not.toContain('10.77.0.1/24');
  });

  it('never hands out the gateway, also while its claim is on its way; a gateway a container took is refused, not shared', async () => {
    const table = new SharedTable();
    const h1 = new ClusterIpam(hostView(table, 'h1'));
    const h2 = new ClusterIpam(hostView(table, 'h2'));
    await h1.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'g' }, v6: false });
    // h1 has set the gateway in the pool but not claimed its address yet: h2 must not take it
    table.pools.get('g')!.gateway = '10.77.0.1';
    expect((await h2.requestAddress({ poolId: 'overlay/g', address: '', options: {} })).address).toBe('10.77.0.2/24');

    // another overlay: a container elsewhere takes the address between the listing and the claim
    await h1.requestPool({ addressSpace: 'local', pool: '10.78.0.0/24', subPool: '', options: { overlay: 'r' }, v6: false });
    table.stealNext = ['10.78.0.1'];
    await expect(h1.requestAddress({ poolId: 'overlay/r', address: '', options: gatewayRequest })).rejects.toThrow(
      "overlay 'r': its gateway 10.78.0.1 is held by a container on host thief",
    );
  });

  it('tries again when another host takes the chosen address first', async () => {
    const table = new SharedTable();
    const h1 = new ClusterIpam(hostView(table, 'h1'));
    await h1.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'o' }, v6: false });
    table.stealNext = ['10.77.0.1'];
    expect((await h1.requestAddress({ poolId: 'overlay/o', address: '', options: {} })).address).toBe('10.77.0.2/24');
  });

  it('gives a dual-stack overlay an IPv6 pool of its own beside the IPv4 one, each address unique across hosts', async () => {
    const table = new SharedTable();
    const h1 = new ClusterIpam(hostView(table, 'h1'));
    const h2 = new ClusterIpam(hostView(table, 'h2'));
    const v4 = await h1.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'ds' }, v6: false });
    const v6 = await h1.requestPool({ addressSpace: 'local', pool: 'fd00:77::/64', subPool: '', options: { overlay: 'ds' }, v6: true });
    expect(v6).toEqual({ poolId: 'overlay6/ds', pool: 'fd00:77::/64', data: {} });
    // a later host may leave the IPv6 subnet out too and gets the cluster's
    expect((await h2.requestPool({ addressSpace: 'local', pool: '', subPool: '', options: { overlay: 'ds' }, v6: true })).pool).toBe('fd00:77::/64');
    expect((await h1.requestAddress({ poolId: v6.poolId, address: '', options: gatewayRequest })).address).toBe('fd00:77::1/64');
    expect((await h2.requestAddress({ poolId: v6.poolId, address: '', options: gatewayRequest })).address).toBe('fd00:77::1/64');
    expect((await h1.requestAddress({ poolId: v4.poolId, address: '', options: gatewayRequest })).address).toBe('10.77.0.1/24');
    const got = await Promise.all([h1, h2, h1, h2].map((h) => h.requestAddress({ poolId: 'overlay6/ds', address: '', options: {} })));
    const addresses = got.map((g) => g.address);
    expect(new Set(addresses).size).toBe(4);
    expect(addresses.every((a) => a.startsWith('fd00:77::') && a.endsWith('/64') && a !== 'fd00:77::1/64')).toBe(true);
    // the IPv4 pool's allocation does not see the IPv6 addresses, and the other way round
    expect((await h2.requestAddress({ poolId: 'overlay/ds', address: '', options: {} })).address).toBe('10.77.0.2/24');
    await h1.releaseAddress('overlay6/ds', addresses[0]);
    expect([...table.addresses.get('ds')!.keys()]).not.toContain(addresses[0].split('/')[0]);
    // a family mix-up is refused with what was asked for
    await expect(h1.requestPool({ addressSpace: 'local', pool: '10.79.0.0/24', subPool: '', options: { overlay: 'x' }, v6: true })).rejects.toThrow(
      'subnet 10.79.0.0/24 is IPv4 where Docker asked for the overlay\'s IPv6 pool',
    );
  });

  it('refuses an exact address another host holds, a different gateway, and a subnet with host bits', async () => {
    const table = new SharedTable();
    const h1 = new ClusterIpam(hostView(table, 'h1'));
    const h2 = new ClusterIpam(hostView(table, 'h2'));
    await h1.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'o' }, v6: false });
    await h1.requestAddress({ poolId: 'overlay/o', address: '10.77.0.9', options: {} });
    await expect(h2.requestAddress({ poolId: 'overlay/o', address: '10.77.0.9', options: {} })).rejects.toThrow('address 10.77.0.9 is already in use');
    await h1.requestAddress({ poolId: 'overlay/o', address: '10.77.0.254', options: gatewayRequest });
    await expect(h2.requestAddress({ poolId: 'overlay/o', address: '10.77.0.1', options: gatewayRequest })).rejects.toThrow(
      "overlay 'o' has gateway 10.77.0.254 in the cluster, not 10.77.0.1",
    );
    await expect(h1.requestPool({ addressSpace: 'local', pool: '10.77.0.1/24', subPool: '', options: { overlay: 'p' }, v6: false })).rejects.toThrow('host bits are set');
  });

  it('says that a shared pool needs the cluster store when the daemon has none', async () => {
    const ipam = withClusterPools(local, new ClusterIpam(undefined));
    await expect(Promise.resolve(ipam.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'o' }, v6: false }))).rejects.toThrow(
      /needs the cluster store: start tsnet with --store etcd:\/\/HOST:2379/,
    );
    // everything else stays with the host's own allocator
    expect(await ipam.requestPool({ addressSpace: 'local', pool: '', subPool: '', options: {}, v6: false })).toMatchObject({ poolId: 'local/10.1.0.0/24' });
    expect(await ipam.requestAddress({ poolId: 'local/10.1.0.0/24', address: '', options: {} })).toMatchObject({ address: '10.1.0.2/24' });
  });

  it('joins the overlay before its pool, and leaves it on release only while this host has no network of it', async () => {
    const table = new SharedTable();
    const networks = new Set<string>();
    const h1 = new ClusterIpam(hostView(table, 'h1'), (name) => networks.has(name));
    const { poolId } = await h1.requestPool({ addressSpace: 'local', pool: '10.77.0.0/24', subPool: '', options: { overlay: 'blue' }, v6: false });
    expect(table.membership).toEqual(['h1 join blue']);
    expect(table.pools.has('blue')).toBe(true);
    // Docker releases the pool of a second create that failed: the first network keeps h1 a member
    networks.add('blue');
    await h1.releasePool(poolId);
    expect(table.membership).toEqual(['h1 join blue']);
    networks.delete('blue');
    await h1.releasePool(poolId);
    expect(table.membership).toEqual(['h1 join blue', 'h1 leave blue']);
  });
});
