// Host names in the cluster store, against a real etcd: one live host per name. Two hosts given
// the same --host-name used to overwrite each other's registration and could release each
// other's cluster addresses; a daemon restarted before its lease expired must still get its own
// name back at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdClusterStore } from '../store/cluster/etcd-store.js';
import { silentLogger } from '../core/log.js';
import { startEtcd, type TestEtcd } from './etcd.js';

let etcd: TestEtcd;
const opened: EtcdClusterStore[] = [];

function store(host: string, instance: string, vtep: string): EtcdClusterStore {
  const s = new EtcdClusterStore({ hosts: [etcd.url], host, vtep, leaseTtl: 10, instance, log: silentLogger });
  opened.push(s);
  return s;
}

beforeAll(async () => {
  etcd = await startEtcd();
});

afterAll(async () => {
  for (const s of opened) await s.close().catch(() => undefined);
  await etcd?.stop();
});

describe('host names in the cluster store', () => {
  it('refuses a second live host with the same name, and leaves the first one registered', async () => {
    const first = store('same', 'installation-a', '198.51.100.1');
    await first.start();
    const second = store('same', 'installation-b', '198.51.100.2');
    await expect(second.start()).rejects.toThrow(
      /^another tsnet host is registered as 'same' in the cluster store \(VTEP 198\.51\.100\.1, since .*\): give each host its own --host-name$/,
    );
    expect((await first.listHosts()).filter((h) => h.name === 'same').map((h) => h.vtep)).toEqual(['198.51.100.1']);
    // the positive: another name registers beside it
    const other = store('other', 'installation-b', '198.51.100.2');
    await other.start();
    expect((await first.listHosts()).map((h) => h.name).sort()).toEqual(expect.arrayContaining(['other', 'same']));
  });

  it('gives a restarted daemon its own name back before the old lease expires', async () => {
    const before = store('restarted', 'installation-c', '198.51.100.3');
    await before.start();
    // kill -9: the old lease lives on for its TTL; the same installation starts again at once
    const after = store('restarted', 'installation-c', '198.51.100.3');
    await after.start();
    expect((await after.listHosts()).filter((h) => h.name === 'restarted')).toHaveLength(1);
  });
});
