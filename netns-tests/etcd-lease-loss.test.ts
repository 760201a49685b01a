// The cluster store when a host's lease is lost (cut off from etcd for longer than the lease):
// its announcements went with the lease, and once it registers again it puts them back, except
// one whose address another endpoint took meanwhile (freed by `tsnet cluster forget`, or handed
// out by Docker's own IPAM on another host): that one stays the other holder's, and the host is
// told (onAddressTaken) so its container stops using the address. With cluster IPAM it also
// claims again the addresses `tsnet cluster forget` freed meanwhile, and is a member again of its
// overlays; an address another host claimed meanwhile is that host's, announced or not yet.
// Real etcd on loopback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { EtcdClusterStore, type AddressTaken } from '../store/cluster/etcd-store.js';
import { key } from '../store/cluster/keys.js';
import { silentLogger } from '../core/log.js';
import { startEtcd, type TestEtcd } from './etcd.js';
import { until } from './harness.js';

let etcd: TestEtcd;
let raw: Etcd3;
beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.url });
});
afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

describe('a lost lease', () => {
  it("puts back the host's free announcements and leaves one whose address another endpoint took, telling the host", async () => {
    const taken: AddressTaken[] = [];
    const a = new EtcdClusterStore({ hosts: [etcd.url], host: 'tll-a', vtep: '198.51.100.1', leaseTtl: 2, log: silentLogger, onAddressTaken: (t) => taken.push(t) });
    try {
      await a.start();
      await a.announce({ overlay: 'tll', ip: '10.1.0.2', mac: '02:42:0a:01:00:02', endpointId: 'ep-x' });
      await a.announce({ overlay: 'tll', ip: '10.1.0.3', mac: '02:42:0a:01:00:03', endpointId: 'ep-y' });
      const [x, y] = [key.endpoint('tll', '10.1.0.2'), key.endpoint('tll', '10.1.0.3')];
      const lease = (await raw.get(x).exec()).kvs[0]!.lease;
      // the lease expires (as when the host is cut off longer than it), and another host's endpoint takes x's address
      await raw.leaseClient.leaseRevoke({ ID: lease });
      const other = JSON.stringify({ mac: '02:42:0a:01:00:99', endpointId: 'ep-other', host: 'tll-b', vtep: '198.51.100.2' });
      await raw.put(x).value(other);
      await until("host a registered again and put y back", async () => (await raw.get(y).string()) !== null && (await raw.get(key.host('tll-a')).string()) !== null, 15_000);
      await until('host a told that x was taken', () => taken.length > 0, 5_000);
      expect(taken).toEqual([{ overlay: 'tll', ip: '10.1.0.2', endpointId: 'ep-x', holder: { endpointId: 'ep-other', host: 'tll-b' } }]);
      expect(await raw.get(x).string()).toBe(other);
      const back = (await raw.get(y).exec()).kvs[0]!;
      expect(JSON.parse(back.value.toString())).toMatchObject({ endpointId: 'ep-y', host: 'tll-a' });
      expect(back.lease).not.toBe(lease);
      expect(back.lease).not.toBe('0');
    } finally {
      await a.close({ withdraw: true });
      await raw.delete().prefix('/tsnet/');
    }
  }, 30_000);

  it('claims again the addresses and membership cluster forget freed, and gives up an address another host claimed meanwhile', async () => {
    const taken: AddressTaken[] = [];
    const cutOff = new Set<string>();
    const a = new EtcdClusterStore({ hosts: [etcd.url], host: 'tlf-a', vtep: '198.51.100.1', leaseTtl: 2, log: silentLogger, onAddressTaken: (t) => (taken.push(t), cutOff.add(t.endpointId)), isCutOff: (id) => cutOff.has(id) });
    try {
      await a.start();
      await a.joinOverlay('tlf');
      await a.claimPool('tlf', { subnet: '10.2.0.0/24', subPool: '' });
      // x given with --ip (static): it is claimed again as such
      for (const [ip, id, kind] of [['10.2.0.2', 'ep-x', 'static'], ['10.2.0.3', 'ep-y', 'dynamic']] as const) {
        expect(await a.claimAddress('tlf', ip, kind)).toBe(true);
        await a.announce({ overlay: 'tlf', ip, mac: '02:42:0a:02:00:02', endpointId: id });
      }
      const [x, y] = [key.address('tlf', '10.2.0.2'), key.address('tlf', '10.2.0.3')];
      const lease = (await raw.get(key.endpoint('tlf', '10.2.0.2')).exec()).kvs[0]!.lease;
      // what cluster forget removes (its addresses and membership), and host b claiming y through
      // the cluster IPAM before its container is announced; then the lease expires
      await raw.delete().key(x);
      await raw.delete().key(key.member('tlf', 'tlf-a'));
      await raw.put(y).value(JSON.stringify({ kind: 'dynamic', host: 'tlf-b' }));
      await raw.leaseClient.leaseRevoke({ ID: lease });
      await until('host a registered again and put x back', async () => (await raw.get(key.endpoint('tlf', '10.2.0.2')).string()) !== null, 15_000);
      await until('host a told that y was taken', () => taken.length > 0, 5_000);
      // x: announced and claimed again by a; y: b's claim stands, a's endpoint gives it up
      expect(JSON.parse((await raw.get(x).string())!)).toEqual({ kind: 'static', host: 'tlf-a' });
      expect(await raw.get(key.member('tlf', 'tlf-a')).string()).not.toBeNull();
      expect(taken).toEqual([{ overlay: 'tlf', ip: '10.2.0.3', endpointId: 'ep-y', holder: { endpointId: '', host: 'tlf-b' } }]);
      expect(JSON.parse((await raw.get(y).string())!)).toEqual({ kind: 'dynamic', host: 'tlf-b' });
      expect(await raw.get(key.endpoint('tlf', '10.2.0.3')).string()).toBeNull();
      // a cut-off endpoint is never announced again, also when its address is free once more
      await raw.delete().key(y);
      await expect(a.announce({ overlay: 'tlf', ip: '10.2.0.3', mac: '02:42:0a:02:00:03', endpointId: 'ep-y' })).rejects.toThrow(/endpoint ep-y is cut off: its address 10\.2\.0\.3/);
      expect(await raw.get(key.endpoint('tlf', '10.2.0.3')).string()).toBeNull();
    } finally {
      await a.close({ withdraw: true });
      await raw.delete().prefix('/tsnet/');
    }
  }, 30_000);

  it('at a start after the host was forgotten: claims its endpoints\' freed addresses again and gives up one that went to another host', async () => {
    // what etcd holds after cluster forget of tlr-a (pool and gateway kept: another host is a
    // member) and another host's container given 10.3.0.3 while tlr-a's daemon was down
    await raw.put(key.pool('tlr')).value(JSON.stringify({ subnet: '10.3.0.0/24', subPool: '', gateway: '10.3.0.1' }));
    await raw.put(key.address('tlr', '10.3.0.3')).value(JSON.stringify({ kind: 'dynamic', host: 'tlr-b' }));
    await raw.put(key.endpoint('tlr', '10.3.0.3')).value(JSON.stringify({ mac: '02:42:0a:03:00:03', endpointId: 'ep-b', host: 'tlr-b', vtep: '198.51.100.2' }));
    const taken: AddressTaken[] = [];
    const local = [
      { overlay: 'tlr', ip: '10.3.0.2', mac: '02:42:0a:03:00:02', endpointId: 'ep-x' },
      { overlay: 'tlr', ip: '10.3.0.3', mac: '02:42:0a:03:00:03', endpointId: 'ep-y' },
    ];
    const a = new EtcdClusterStore({ hosts: [etcd.url], host: 'tlr-a', vtep: '198.51.100.1', leaseTtl: 2, log: silentLogger, onAddressTaken: (t) => taken.push(t), localEndpoints: () => local });
    try {
      await a.start();
      expect(taken).toEqual([{ overlay: 'tlr', ip: '10.3.0.3', endpointId: 'ep-y', holder: { endpointId: 'ep-b', host: 'tlr-b' } }]);
      expect(JSON.parse((await raw.get(key.address('tlr', '10.3.0.2')).string())!)).toEqual({ kind: 'dynamic', host: 'tlr-a' });
      expect(JSON.parse((await raw.get(key.endpoint('tlr', '10.3.0.2')).string())!)).toMatchObject({ endpointId: 'ep-x', host: 'tlr-a' });
      expect(JSON.parse((await raw.get(key.address('tlr', '10.3.0.3')).string())!)).toEqual({ kind: 'dynamic', host: 'tlr-b' });
      expect(JSON.parse((await raw.get(key.endpoint('tlr', '10.3.0.3')).string())!)).toMatchObject({ endpointId: 'ep-b', host: 'tlr-b' });
    } finally {
      await a.close({ withdraw: true });
      await raw.delete().prefix('/tsnet/');
    }
  }, 30_000);
});
