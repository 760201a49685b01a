import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterConnection, gatedClusterStore, readClusterState, retryDelaySeconds } from './cluster-connection.js';
import type { ClusterStore } from '../store/cluster/cluster-store.js';
import { UnavailableError, UserError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A store whose start() fails (with `error`) until reachable() is called. */
function fakeStore(error: () => Error = () => new Error('connect ECONNREFUSED 127.0.0.1:1')) {
  let up = false;
  const calls: string[] = [];
  const store = {
    host: 'h1',
    vtep: '198.51.100.1',
    endpoint: 'http://127.0.0.1:1',
    start: async () => {
      calls.push('start');
      if (!up) throw error();
    },
    defineOverlay: async () => (calls.push('define'), { name: 'blue' }),
    withdraw: async () => void calls.push('withdraw'),
    leaveOverlay: async (overlay: string) => (calls.push(`leave ${overlay}`), true),
  } as unknown as ClusterStore;
  return { store, calls, reachable: () => void (up = true) };
}

function connection(store: ClusterStore) {
  const stateDir = mkdtempSync(join(tmpdir(), 'tsnet-conn-'));
  dirs.push(stateDir);
  return { conn: new ClusterConnection({ store, stateDir, log: silentLogger, delay: () => 0 }), stateDir };
}

describe('cluster store connection', () => {
  it('waits 1, 2, 4 ... seconds between attempts, never more than 30', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map((n) => retryDelaySeconds(n))).toEqual([1, 2, 4, 8, 16, 30, 30, 30]);
  });

  it('refuses overlay work with the reason once an attempt failed, then runs the control plane once and lets it through', async () => {
    const { store, calls, reachable } = fakeStore();
    const { conn, stateDir } = connection(store);
    const gated = gatedClusterStore(store, conn, silentLogger);
    let controlPlane = 0;
    const running = conn.run(async () => void controlPlane++);
    await conn.firstAttempt();
    const refused = gated.defineOverlay({ name: 'blue', subnet: '10.9.0.0/24' });
    await expect(refused).rejects.toBeInstanceOf(UnavailableError);
    await expect(refused).rejects.toThrow(/^the cluster store at http:\/\/127\.0\.0\.1:1 is not reachable yet \(retrying since .*\): overlay 'blue' cannot be created on this host until it is$/);
    // a withdrawal is skipped (the control plane's start does it), not refused
    await gated.withdraw('blue', '10.9.0.2', 'ep');
    expect(calls).not.toContain('define');
    expect(calls).not.toContain('withdraw');
    expect(readClusterState(stateDir)).toMatchObject({ phase: 'connecting', store: 'http://127.0.0.1:1', host: 'h1' });

    reachable();
    await running;
    expect(controlPlane).toBe(1);
    expect(readClusterState(stateDir)).toMatchObject({ phase: 'connected', attempts: 0, lastError: '', pid: process.pid });
    await gated.defineOverlay({ name: 'blue', subnet: '10.9.0.0/24' });
    expect(calls.filter((c) => c !== 'start')).toEqual(['define']);
  });

  it('leaves an overlay whose network went while the store was unreachable before the first call that gets through', async () => {
    const { store, calls, reachable } = fakeStore();
    const { conn } = connection(store);
    const gated = gatedClusterStore(store, conn, silentLogger);
    const running = conn.run(async () => undefined);
    await conn.firstAttempt();
    expect(await gated.leaveOverlay('gone')).toBe(false);
    expect(calls.filter((c) => c !== 'start')).toEqual([]);
    reachable();
    await running;
    await gated.defineOverlay({ name: 'blue', subnet: '10.9.0.0/24' });
    expect(calls.filter((c) => c !== 'start')).toEqual(['leave gone', 'define']);
  });

  it('makes a request that comes before the first attempt settled wait for it (a daemon just started, etcd fine)', async () => {
    const { store, calls, reachable } = fakeStore();
    reachable();
    const { conn } = connection(store);
    const gated = gatedClusterStore(store, conn, silentLogger);
    const early = gated.defineOverlay({ name: 'blue', subnet: '10.9.0.0/24' });
    await conn.run(async () => undefined);
    await expect(early).resolves.toMatchObject({ name: 'blue' });
    expect(calls).toEqual(['start', 'define']);
  });

  it('refuses a call the connected store does not answer (no majority, a deadline passed) as unavailable, saying so; its own refusals pass as they are', async () => {
    const { store, reachable } = fakeStore();
    reachable();
    let answer: () => Promise<boolean> = async () => {
      throw new Error('4 DEADLINE_EXCEEDED: Deadline exceeded after 3.001s');
    };
    Object.assign(store, { claimAddress: () => answer() });
    const { conn } = connection(store);
    const gated = gatedClusterStore(store, conn, silentLogger);
    await conn.run(async () => undefined);
    const noAnswer = gated.claimAddress('blue', '10.9.0.2', 'dynamic');
    await expect(noAnswer).rejects.toBeInstanceOf(UnavailableError);
    await expect(noAnswer).rejects.toThrow(
      "the cluster store at http://127.0.0.1:1 did not answer (4 DEADLINE_EXCEEDED: Deadline exceeded after 3.001s): overlay 'blue' cannot allocate address 10.9.0.2 until a majority of its members is reachable",
    );
    const conflict = new UserError('address 10.9.0.2 is in use', 'conflict');
    answer = async () => {
      throw conflict;
    };
    await expect(gated.claimAddress('blue', '10.9.0.2', 'dynamic')).rejects.toBe(conflict);
    answer = async () => true;
    await expect(gated.claimAddress('blue', '10.9.0.2', 'dynamic')).resolves.toBe(true);
  });

  it('records each failed attempt and its error while connecting', async () => {
    const { store } = fakeStore();
    const { conn, stateDir } = connection(store);
    const running = conn.run(async () => undefined);
    await expect.poll(() => readClusterState(stateDir)?.attempts ?? 0).toBeGreaterThan(2);
    expect(readClusterState(stateDir)).toMatchObject({ phase: 'connecting', lastError: 'connect ECONNREFUSED 127.0.0.1:1' });
    expect(() => conn.require("overlay 'blue' cannot take endpoint 10.9.0.2 on this host")).toThrow(/last error: connect ECONNREFUSED 127\.0\.0\.1:1\): overlay 'blue' cannot take/);
    conn.stop();
    await running;
  });

  it('stops retrying when the store refuses the host (its name is taken) and says why', async () => {
    const { store, calls } = fakeStore(() => new UserError("another tsnet host is registered as 'h1'", 'conflict'));
    const { conn, stateDir } = connection(store);
    await conn.run(async () => undefined);
    expect(calls).toEqual(['start']);
    expect(readClusterState(stateDir)).toMatchObject({ phase: 'refused', lastError: "another tsnet host is registered as 'h1'" });
    expect(() => conn.require("overlay 'blue' cannot be created on this host")).toThrow(UnavailableError);
  });
});
