// The cluster-wide IPAM of overlay pools (ipam/cluster-ipam.ts) over the real etcd store
// (store/cluster/etcd-store.ts), on a throwaway etcd: several hosts' IPAMs share one pool, and
// what decides ownership, the shared gateway and races is etcd's guarded writes, not a test
// double (ipam/cluster-ipam.test.ts covers the IPAM's own choices over an in-memory table). Every
// test uses an overlay of its own; the addresses are checked as etcd holds them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterIpam } from '../ipam/cluster-ipam.js';
import { GATEWAY_REQUEST, REQUEST_ADDRESS_TYPE } from '../ipam/types.js';
import type { EtcdClusterStore } from '../store/cluster/etcd-store.js';
import { startEtcd, type TestEtcd } from './etcd.js';

let etcd: TestEtcd;

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  await etcd?.stop();
});

interface Host {
  name: string;
  store: EtcdClusterStore;
  ipam: ClusterIpam;
}

/** Hosts h1..hN, each with its own connection to etcd and its own IPAM. */
async function hosts(n: number): Promise<Host[]> {
  const made = Array.from({ length: n }, (_, i) => {
    const name = `h${i + 1}`;
    const store = etcd.store(name);
    return { name, store, ipam: new ClusterIpam(store) };
  });
  await Promise.all(made.map((h) => h.store.start()));
  return made;
}

let overlays = 0;
/** A fresh overlay name and its pool ID. */
function overlay(): { name: string; poolId: string } {
  const name = `ov${overlays++}`;
  return { name, poolId: `overlay/${name}` };
}

const pool = (name: string, subnet: string) => ({ addressSpace: 'local', pool: subnet, subPool: '', options: { overlay: name }, v6: false });
const gateway = (poolId: string, address = '') => ({ poolId, address, options: { [REQUEST_ADDRESS_TYPE]: GATEWAY_REQUEST } });
const addr = (poolId: string, address = '') => ({ poolId, address, options: {} });

/** The addresses etcd holds for an overlay, as "address kind host", sorted. */
async function held(h: Host, name: string): Promise<string[]> {
  return (await h.store.listAddresses(name)).map((a) => `${a.address} ${a.kind} ${a.host}`).sort();
}

describe('cluster IPAM over etcd', () => {
  it('shares one pool and one gateway between hosts; a different subnet or gateway is refused', async () => {
    const [h1, h2] = await hosts(2);
    const o = overlay();
    expect(await h1.ipam.requestPool(pool(o.name, '10.237.0.0/24'))).toEqual({ poolId: o.poolId, pool: '10.237.0.0/24', data: {} });
    // a later host may leave the subnet out, and gets the cluster's
    expect((await h2.ipam.requestPool(pool(o.name, ''))).pool).toBe('10.237.0.0/24');
    await expect(h2.ipam.requestPool(pool(o.name, '10.237.1.0/24'))).rejects.toThrow(`overlay '${o.name}' has subnet 10.237.0.0/24 in the cluster, not 10.237.1.0/24`);

    expect((await h1.ipam.requestAddress(gateway(o.poolId))).address).toBe('10.237.0.1/24');
    expect((await h2.ipam.requestAddress(gateway(o.poolId))).address).toBe('10.237.0.1/24');
    // naming the gateway the cluster has is fine; another one is refused
    expect((await h2.ipam.requestAddress(gateway(o.poolId, '10.237.0.1'))).address).toBe('10.237.0.1/24');
    await expect(h2.ipam.requestAddress(gateway(o.poolId, '10.237.0.254'))).rejects.toThrow(
      `overlay '${o.name}' has gateway 10.237.0.1 in the cluster, not 10.237.0.254`,
    );
    // the gateway is held once, and no host hands it out
    expect((await h1.ipam.requestAddress(addr(o.poolId))).address).toBe('10.237.0.2/24');
    expect((await h2.ipam.requestAddress(addr(o.poolId))).address).toBe('10.237.0.3/24');
    expect(await held(h1, o.name)).toEqual(['10.237.0.1 gateway h1', '10.237.0.2 dynamic h1', '10.237.0.3 dynamic h2']);
  });

  it("frees an address only for the host that holds it, and the gateway for nobody", async () => {
    const [h1, h2] = await hosts(2);
    const o = overlay();
    await h1.ipam.requestPool(pool(o.name, '10.237.2.0/24'));
    await h1.ipam.requestAddress(gateway(o.poolId));
    const mine = await h1.ipam.requestAddress(addr(o.poolId, '10.237.2.9'));
    expect(mine.address).toBe('10.237.2.9/24');
    const before = await held(h1, o.name);
    expect(before).toEqual(['10.237.2.1 gateway h1', '10.237.2.9 static h1']);

    // another host's release of h1's address, and anyone's release of the gateway, change nothing
    await h2.ipam.releaseAddress(o.poolId, '10.237.2.9/24');
    await h2.ipam.releaseAddress(o.poolId, '10.237.2.1');
    await h1.ipam.releaseAddress(o.poolId, '10.237.2.1');
    expect(await held(h2, o.name)).toEqual(before);
    await expect(h2.ipam.requestAddress(addr(o.poolId, '10.237.2.9'))).rejects.toThrow('address 10.237.2.9 is already in use');

    // the holder's own release frees it, and then another host may take it
    await h1.ipam.releaseAddress(o.poolId, '10.237.2.9/24');
    expect(await held(h2, o.name)).toEqual(['10.237.2.1 gateway h1']);
    expect((await h2.ipam.requestAddress(addr(o.poolId, '10.237.2.9'))).address).toBe('10.237.2.9/24');
    expect(await held(h1, o.name)).toEqual(['10.237.2.1 gateway h1', '10.237.2.9 static h2']);
  });

  it('hands out each address once when hosts claim at the same time', async () => {
    const all = await hosts(3);
    const o = overlay();
    // a /27 holds 30 hosts: the gateway and 24 claims leave 5 free, so the claims crowd each other
    await Promise.all(all.map((h) => h.ipam.requestPool(pool(o.name, '10.237.3.0/27'))));
    await Promise.all(all.map((h) => h.ipam.requestAddress(gateway(o.poolId))));
    const claims = all.flatMap((h) => Array.from({ length: 8 }, () => h.ipam.requestAddress(addr(o.poolId)).then((r) => ({ host: h.name, address: r.address.split('/')[0] }))));
    const got = await Promise.all(claims);
    const addresses = got.map((g) => g.address);
    expect(new Set(addresses).size).toBe(24);
    expect(addresses).not.toContain('10.237.3.1');
    // etcd holds exactly these, each for the host that was given it, and the one gateway
    const inEtcd = await held(all[0], o.name);
    expect(inEtcd.filter((l) => l.includes(' gateway '))).toEqual([expect.stringMatching(/^10\.237\.3\.1 gateway h[123]$/)]);
    expect(inEtcd.filter((l) => !l.includes(' gateway '))).toEqual(got.map((g) => `${g.address} dynamic ${g.host}`).sort());
  });
});
