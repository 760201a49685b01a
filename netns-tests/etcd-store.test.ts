// The cluster store against a real etcd (Debian's etcd-server) on loopback: what two hosts see of
// each other's writes, the guarded writes that decide races, and leases that expire.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EtcdClusterStore } from '../store/cluster/etcd-store.js';
import type { EndpointAnnouncement } from '../store/cluster/cluster-store.js';
import { until } from './harness.js';
import { startEtcd, type TestEtcd } from './etcd.js';

let etcd: TestEtcd;

function store(host: string, leaseTtl = 10): EtcdClusterStore {
  return etcd.store(host, leaseTtl);
}

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  await etcd?.stop();
});

describe('etcd cluster store', () => {
  it('registers hosts with their VTEP', async () => {
    const h1 = store('h1');
    await h1.start();
    const hosts = await h1.listHosts();
    expect(hosts.find((h) => h.name === 'h1')).toMatchObject({ vtep: '198.51.100.1' });
  });

  it('defines an overlay once and checks every later definition against it', async () => {
    const h1 = store('h1');
    const h2 = store('h2');
    await Promise.all([h1.start(), h2.start()]);
    const [d1, d2] = await Promise.all([
      h1.defineOverlay({ name: 'blue', subnet: '10.77.0.0/24' }),
      h2.defineOverlay({ name: 'blue', subnet: '10.77.0.0/24' }),
    ]);
    expect(d1.vni).toBe(d2.vni);
    expect(d1.port).toBe(4789);
    await expect(h2.defineOverlay({ name: 'blue', subnet: '10.78.0.0/24' })).rejects.toThrow(/overlay 'blue' exists in the cluster with subnet 10.77.0.0\/24 \(not 10.78.0.0\/24\)/);
    await expect(h2.defineOverlay({ name: 'blue', subnet: '10.77.0.0/24', vni: d1.vni + 1 })).rejects.toThrow(`VNI ${d1.vni} (not ${d1.vni + 1})`);
    await expect(h2.defineOverlay({ name: 'red', subnet: '10.79.0.0/24', vni: d1.vni })).rejects.toThrow(`VNI ${d1.vni} is taken by overlay 'blue'`);
    const red = await h2.defineOverlay({ name: 'red', subnet: '10.79.0.0/24' });
    expect(red.vni).not.toBe(d1.vni);
  });

  it('lets one endpoint hold an address, and tells the others who holds it', async () => {
    const h1 = store('h1');
    const h2 = store('h2');
    await Promise.all([h1.start(), h2.start()]);
    await h1.announce({ overlay: 'green', ip: '10.80.0.2', mac: '02:42:0a:50:00:02', endpointId: 'e1'.padEnd(64, '0') });
    // again (a restarted daemon): fine
    await h1.announce({ overlay: 'green', ip: '10.80.0.2', mac: '02:42:0a:50:00:02', endpointId: 'e1'.padEnd(64, '0') });
    await expect(h2.announce({ overlay: 'green', ip: '10.80.0.2', mac: '02:42:0a:50:00:09', endpointId: 'e2'.padEnd(64, '0') })).rejects.toThrow(
      "address 10.80.0.2 on overlay 'green' is in use by endpoint e10000000000 on host h1",
    );
    // a withdraw by someone else's endpoint ID changes nothing
    await h2.withdraw('green', '10.80.0.2', 'e2'.padEnd(64, '0'));
    expect((await h2.listAnnouncements()).filter((a) => a.overlay === 'green')).toHaveLength(1);
    await h1.withdraw('green', '10.80.0.2', 'e1'.padEnd(64, '0'));
    expect((await h2.listAnnouncements()).filter((a) => a.overlay === 'green')).toHaveLength(0);
  });

  it('streams announcements to watchers and drops a dead host\'s when its lease expires', async () => {
    const watcher = store('h1');
    const mortal = store('h2', 2);
    await Promise.all([watcher.start(), mortal.start()]);
    const seen = new Map<string, EndpointAnnouncement>();
    await watcher.watchAnnouncements({
      reset: (all) => {
        seen.clear();
        for (const a of all) seen.set(`${a.overlay}/${a.ip}`, a);
      },
      put: (a) => seen.set(`${a.overlay}/${a.ip}`, a),
      delete: (a) => seen.delete(`${a.overlay}/${a.ip}`),
    });
    await mortal.announce({ overlay: 'pink', ip: '10.81.0.5', mac: '02:42:0a:51:00:05', endpointId: 'e5'.padEnd(64, '0') });
    await until('the watcher sees the announcement', () => seen.has('pink/10.81.0.5'));
    expect(seen.get('pink/10.81.0.5')).toMatchObject({ host: 'h2', vtep: '198.51.100.2', mac: '02:42:0a:51:00:05' });
    // the host dies: no keep-alive, no revoke
    await mortal.close();
    await until('the announcement expires with the lease', () => !seen.has('pink/10.81.0.5'));
    expect((await watcher.listHosts()).some((h) => h.name === 'h2')).toBe(false);
  });

  it('claims each address once and frees only what a host holds', async () => {
    const h1 = store('h1');
    const h2 = store('h2');
    await Promise.all([h1.start(), h2.start()]);
    const pool = await h1.claimPool('ipam', { subnet: '10.82.0.0/24', subPool: '' });
    expect(await h2.claimPool('ipam', { subnet: '', subPool: '' })).toEqual(pool);
    await expect(h2.claimPool('ipam', { subnet: '10.83.0.0/24', subPool: '' })).rejects.toThrow("overlay 'ipam' has subnet 10.82.0.0/24 in the cluster, not 10.83.0.0/24");
    const wins = await Promise.all([h1.claimAddress('ipam', '10.82.0.7', 'dynamic'), h2.claimAddress('ipam', '10.82.0.7', 'dynamic')]);
    expect(wins.filter(Boolean)).toHaveLength(1);
    const loser = wins[0] ? h2 : h1;
    const winner = wins[0] ? h1 : h2;
    await loser.releaseAddress('ipam', '10.82.0.7');
    expect((await h1.listAddresses('ipam')).map((a) => a.address)).toEqual(['10.82.0.7']);
    await winner.releaseAddress('ipam', '10.82.0.7');
    expect(await h1.listAddresses('ipam')).toEqual([]);
    expect(await h1.setGateway('ipam', '10.82.0.1')).toBe('10.82.0.1');
    expect(await h2.setGateway('ipam', '10.82.0.254')).toBe('10.82.0.1');
  });
});
