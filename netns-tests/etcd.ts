// A throwaway etcd (Debian's etcd-server) on loopback for the tests of the cluster store and the
// cluster IPAM: free ports, its own data folder, killed and removed by stop(). Each test file
// starts its own, so no test sees another's keys.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { EtcdClusterStore } from '../store/cluster/etcd-store.js';
import { silentLogger } from '../core/log.js';
import { until } from './harness.js';

export interface TestEtcd {
  /** the client URL, http://127.0.0.1:PORT */
  url: string;
  /** a cluster store for host NAME (VTEP 198.51.100.N for hN), closed by stop() */
  store(host: string, leaseTtl?: number): EtcdClusterStore;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Starts etcd (on client port `port`, default a free one) and resolves once a store can register with it. */
export async function startEtcd(port?: number): Promise<TestEtcd> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tsnet-etcd-'));
  const [client, peer] = [port ?? (await freePort()), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const etcd: ChildProcess = spawn('etcd', [
    '--data-dir', dataDir,
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `default=http://127.0.0.1:${peer}`,
    '--log-level', 'error',
  ], { stdio: 'ignore' });
  const stores: EtcdClusterStore[] = [];
  const t: TestEtcd = {
    url,
    store(host, leaseTtl = 10) {
      const s = new EtcdClusterStore({ hosts: [url], host, vtep: `198.51.100.${host.replace(/^\D+/, '')}`, leaseTtl, log: silentLogger });
      stores.push(s);
      return s;
    },
    async stop() {
      for (const s of stores) await s.close().catch(() => undefined);
      etcd.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    const probe = t.store('h0');
    await until('etcd answers', () => probe.start().then(() => true, () => false));
  } catch (err) {
    await t.stop();
    throw err;
  }
  return t;
}
