// What each call leaves for an operator: one log line with its duration, and on failure the
// message the caller got, its kind and its cause; and the same call counted and timed for
// Prometheus, under a method label from a fixed set and an outcome that is 'ok' or the error kind.
// Docker's calls and CNI's alike.
import { beforeEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { buildServer, CNI_CONTENT_TYPE, cniErrorKind, metricMethod } from './server.js';
import type { NetworkDriver } from '../drivers/driver.js';
import type { IpamService } from '../ipam/types.js';
import { ConflictError } from '../core/errors.js';
import { exposition, registry } from '../core/metrics.js';
import { ERR } from '../cni/spec.js';

const NET = 'f3c1a2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80';
const createNetwork = (id = NET) => JSON.stringify({ NetworkID: id, Options: {}, IPv4Data: [{ AddressSpace: 'local', Gateway: '10.220.0.1/24', Pool: '10.220.0.0/24' }], IPv6Data: [] });

/** createNetwork: ok for NET, a conflict for ...01, a kernel error (internal) for anything else. */
const network = {
  async createNetwork(req: { networkId: string }) {
    if (req.networkId === NET) return;
    if (req.networkId.endsWith('01')) throw new ConflictError('subnet 10.220.0.0/24 overlaps network abc');
    const e = new Error('create bridge link br-x: File exists');
    e.name = 'NetlinkError';
    throw e;
  },
} as unknown as NetworkDriver;

function server() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const cni = {
    removeNetworkByName: async (name: string) => {
      if (name !== 'gone') throw new ConflictError(`CNI network '${name}' has 1 attachment: remove its containers first`);
    },
    exec: async (env: Record<string, string | undefined>) =>
      env.CNI_COMMAND === 'ADD' ? { exitCode: 1, output: JSON.stringify({ cniVersion: '1.0.0', code: ERR.TRY_AGAIN_LATER, msg: 'the cluster store is not reachable yet', details: 'etcd: connection refused' }) } : { exitCode: 0, output: '' },
  };
  const app = buildServer({ network, ipam: {} as IpamService, logger: pino(stream), cni });
  return { app, lines: () => lines.filter((l) => typeof l.ms === 'number') };
}

async function sample(line: string): Promise<number | undefined> {
  const { body } = await exposition();
  const hit = body.split('\n').find((l) => l.startsWith(`${line} `));
  return hit === undefined ? undefined : Number(hit.slice(line.length + 1));
}

describe('per-call log lines and request metrics', () => {
  beforeEach(() => registry.resetMetrics());

  it('Docker calls: ok, a refusal by kind, an internal error with its cause; one line each with its duration', async () => {
    const { app, lines } = server();
    for (const id of [NET, NET.slice(0, -2) + '01', NET.slice(0, -2) + '02']) await app.inject({ method: 'POST', url: '/NetworkDriver.CreateNetwork', payload: createNetwork(id) });
    await app.inject({ method: 'POST', url: '/NetworkDriver.NoSuchMethod', payload: '' });
    expect(await sample('tsnet_requests_total{method="NetworkDriver.CreateNetwork",outcome="ok"}')).toBe(1);
    expect(await sample('tsnet_requests_total{method="NetworkDriver.CreateNetwork",outcome="conflict"}')).toBe(1);
    expect(await sample('tsnet_requests_total{method="NetworkDriver.CreateNetwork",outcome="internal"}')).toBe(1);
    // an unknown method is one label, whatever its name
    expect(await sample('tsnet_requests_total{method="unknown",outcome="invalid"}')).toBe(1);
    expect(await sample('tsnet_request_duration_seconds_count{method="NetworkDriver.CreateNetwork"}')).toBe(3);

    const [ok, conflict, internal, unknown] = lines();
    expect(ok).toMatchObject({ method: 'NetworkDriver.CreateNetwork', outcome: 'ok', networkId: NET, msg: 'NetworkDriver.CreateNetwork' });
    expect(ok.error).toBeUndefined();
    expect(conflict).toMatchObject({ outcome: 'error', kind: 'conflict', error: 'subnet 10.220.0.0/24 overlaps network abc', msg: 'NetworkDriver.CreateNetwork failed' });
    // a refusal's message is its cause: not said twice
    expect(conflict.cause).toBeUndefined();
    expect(internal).toMatchObject({ kind: 'internal', cause: 'NetlinkError: create bridge link br-x: File exists' });
    expect(internal.error).toMatch(/^tsnet internal error in NetworkDriver.CreateNetwork: create bridge link br-x: File exists \(see the tsnet log\)$/);
    expect(unknown).toMatchObject({ kind: 'invalid', error: 'tsnet does not implement NetworkDriver.NoSuchMethod' });
    for (const l of [ok, conflict, internal, unknown]) expect(l.ms).toBeGreaterThanOrEqual(0);
  });

  it('CNI calls: labelled by command, the outcome from the CNI error code, the line naming command and container', async () => {
    const { app, lines } = server();
    const exec = (command: string) =>
      app.inject({ method: 'POST', url: '/Cni.Exec', headers: { 'content-type': CNI_CONTENT_TYPE, 'x-cni-command': command, 'x-cni-containerid': 'ctr1' }, payload: '{"cniVersion":"1.0.0","name":"n","type":"tsnet"}' });
    await exec('ADD');
    await exec('DEL');
    await exec('BOGUS');
    expect(await sample('tsnet_requests_total{method="Cni.ADD",outcome="unavailable"}')).toBe(1);
    expect(await sample('tsnet_requests_total{method="Cni.DEL",outcome="ok"}')).toBe(1);
    expect(await sample('tsnet_requests_total{method="Cni.unknown",outcome="ok"}')).toBe(1);
    const [add, del] = lines();
    expect(add).toMatchObject({ method: 'Cni.Exec', command: 'ADD', containerId: 'ctr1', kind: 'unavailable', error: 'the cluster store is not reachable yet', cause: 'etcd: connection refused', msg: 'Cni.Exec ADD failed' });
    expect(del).toMatchObject({ command: 'DEL', outcome: 'ok', msg: 'Cni.Exec DEL' });
  });

  it('tsnet cni rm: a refusal is logged and counted as one, a removal as ok', async () => {
    const { app, lines } = server();
    await app.inject({ method: 'POST', url: '/Tsnet.CniRemove', payload: JSON.stringify({ Name: 'busy' }) });
    await app.inject({ method: 'POST', url: '/Tsnet.CniRemove', payload: JSON.stringify({ Name: 'gone' }) });
    expect(await sample('tsnet_requests_total{method="Tsnet.CniRemove",outcome="conflict"}')).toBe(1);
    expect(await sample('tsnet_requests_total{method="Tsnet.CniRemove",outcome="ok"}')).toBe(1);
    expect(lines()[0]).toMatchObject({ outcome: 'error', kind: 'conflict', error: "CNI network 'busy' has 1 attachment: remove its containers first", msg: 'Tsnet.CniRemove failed' });
    expect(lines()[1]).toMatchObject({ outcome: 'ok', msg: 'Tsnet.CniRemove' });
  });

  it('maps CNI error codes to kinds and keeps method labels to a fixed set', () => {
    expect([ERR.TRY_AGAIN_LATER, ERR.CONTAINER_UNKNOWN, ERR.INTERNAL, ERR.INVALID_CONFIG].map(cniErrorKind)).toEqual(['unavailable', 'not-found', 'internal', 'invalid']);
    const known = new Set(['NetworkDriver.Join']);
    expect(metricMethod('NetworkDriver.Join', known)).toBe('NetworkDriver.Join');
    expect(metricMethod('x'.repeat(300), known)).toBe('unknown');
    expect(metricMethod('Cni.Exec', known, 'GC')).toBe('Cni.GC');
    expect(metricMethod('Cni.Exec', known, 'rm -rf')).toBe('Cni.unknown');
  });
});
