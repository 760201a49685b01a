// Requests no well-behaved Docker sends, against the protocol layer with tsnet's real IPAM (an
// in-memory store) and a recording network driver: every hostile body gets a clear error in the
// subsystem's key, never an internal error, and nothing is created by it. Also: an exception
// nobody expected fails only its own request, with a logged stack, on the Docker routes and on
// the CNI route (whose client reads the exit code from a header, so that path must answer in
// CNI's form too).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildServer, errorKey, type ServerOptions } from './server.js';
import { SCHEMAS } from './schemas.js';
import type { NetworkDriver } from '../drivers/driver.js';
import { Ipam } from '../ipam/ipam.js';
import { openDatabase, type Db } from '../store/db.js';
import { SqliteIpamRepo } from '../store/ipam-repo.js';

/** A network driver that records every call reaching it and answers nothing useful. */
function recordingDriver(calls: string[]): NetworkDriver {
  return new Proxy({} as NetworkDriver, {
    get: (_t, method: string) => () => {
      calls.push(method);
      return {};
    },
  });
}

/** Log lines as objects. */
function captureLog(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

let db: Db;
let ipam: Ipam;
let repo: SqliteIpamRepo;
let driverCalls: string[];
let app: FastifyInstance;
let log: ReturnType<typeof captureLog>;

function start(extra: Partial<ServerOptions> = {}): void {
  app = buildServer({ network: recordingDriver(driverCalls), ipam, logger: log.logger, ...extra });
}

beforeEach(() => {
  db = openDatabase(':memory:');
  repo = new SqliteIpamRepo(db);
  ipam = new Ipam(repo, { machineId: () => '0123456789abcdef0123456789abcdef' });
  driverCalls = [];
  log = captureLog();
  start();
});
afterEach(async () => {
  await app.close();
  db.close();
});

/** POST as Docker does (no Content-Type), the body as raw text. */
async function post(method: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await app.inject({ method: 'POST', url: `/${method}`, payload: body });
  return { status: r.statusCode, json: JSON.parse(r.body) as Record<string, unknown> };
}

/** Bodies of the wrong shape for every method that takes arguments. */
const HOSTILE = [
  '',
  'null',
  '{}',
  '[]',
  '[{}]',
  '"text"',
  '0',
  'true',
  'x{',
  '{"NetworkID":null,"EndpointID":null,"PoolID":null,"AddressSpace":null}',
  '{"NetworkID":1,"EndpointID":[],"PoolID":{},"AddressSpace":7}',
  '{"NetworkID":"","EndpointID":"","SandboxKey":"","AddressSpace":""}',
  '{"__proto__":{"NetworkID":"n","PoolID":"p","AddressSpace":"local"}}',
  '{"Pool":"","SubPool":"","Options":{},"V6":false}',
];

describe('hostile IpamDriver.RequestPool bodies', () => {
  // Docker always names the address space it got from GetDefaultAddressSpaces
  for (const body of ['', 'null', '{}', '{"Pool":""}', '{"V6":false}', '{"AddressSpace":""}', '{"AddressSpace":null}', '{"Options":{"overlay":"x"}}']) {
    it(`${body || '(empty)'}: a clear Error and no pool`, async () => {
      const r = await post('IpamDriver.RequestPool', body);
      expect(r.status).toBe(200);
      expect(r.json.Error).toMatch(/^invalid IpamDriver\.RequestPool request: .*AddressSpace|^invalid IpamDriver\.RequestPool request: the request body must be a JSON object/);
      expect(repo.listPools()).toEqual([]);
    });
  }

  it('twenty of them leave the default pools untouched, and a real request still gets the first one', async () => {
    for (let i = 0; i < 20; i++) expect((await post('IpamDriver.RequestPool', i % 2 ? '' : '{}')).json.Error).toBeTruthy();
    const r = await post('IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'local', Pool: '', SubPool: '', Options: {}, V6: false }));
    expect(r.json).toEqual({ PoolID: 'local/172.17.0.0/16', Pool: '172.17.0.0/16', Data: {} });
    expect(repo.listPools().map((p) => p.pool)).toEqual(['172.17.0.0/16']);
  });

  it('releases of unknown IDs stay idempotent: {}', async () => {
    expect((await post('IpamDriver.ReleasePool', '{"PoolID":"local/10.9.9.0/24"}')).json).toEqual({});
    expect((await post('IpamDriver.ReleaseAddress', '{"PoolID":"local/10.9.9.0/24","Address":"10.9.9.9"}')).json).toEqual({});
  });
});

describe('hostile bodies on every method that takes arguments', () => {
  for (const method of Object.keys(SCHEMAS)) {
    it(`${method}: an error for each, never an internal one, nothing created`, async () => {
      const seen: string[] = [];
      for (const body of HOSTILE) {
        const r = await post(method, body);
        const error = r.json[errorKey(method)];
        seen.push(`${body} -> ${String(error)}`);
        expect(r.status, body).toBe(200);
        expect(typeof error === 'string' && error.length > 0, `${method} ${body}: ${JSON.stringify(r.json)}`).toBe(true);
        expect(error, body).not.toMatch(/internal error/);
      }
      expect(driverCalls).toEqual([]);
      expect(repo.listPools()).toEqual([]);
      expect(seen).toHaveLength(HOSTILE.length);
    });
  }
});

describe('an unexpected exception fails only its own request', () => {
  it('a Docker call: an internal error naming the method, the stack in the log, the next call served', async () => {
    const broken = new Proxy({} as NetworkDriver, {
      get: () => () => {
        throw new TypeError("Cannot read properties of undefined (reading 'x')");
      },
    });
    await app.close();
    start({ network: broken });
    const r = await post('NetworkDriver.DeleteNetwork', '{"NetworkID":"n1"}');
    expect(r.json.Err).toMatch(/^tsnet internal error in NetworkDriver\.DeleteNetwork: Cannot read properties/);
    const logged = log.lines.find((l) => l.level === 50 && (l.err as { stack?: string } | undefined)?.stack);
    expect((logged?.err as { stack: string }).stack).toMatch(/TypeError: Cannot read properties.*\n\s+at /);
    expect((await post('Plugin.Activate', '')).json).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
  });

  for (const how of ['rejects', 'throws'] as const) {
    it(`Cni.Exec whose service ${how}: a CNI internal error (999) with a non-zero exit header, the stack in the log`, async () => {
      const boom = new RangeError('tsnet bug in the CNI path');
      const exec = how === 'rejects' ? () => Promise.reject(boom) : () => {
        throw boom;
      };
      await app.close();
      start({ cni: { exec } });
      const r = await app.inject({
        method: 'POST',
        url: '/Cni.Exec',
        payload: '{"cniVersion":"1.0.0","name":"n","type":"tsnet"}',
        headers: { 'content-type': 'application/x-cni-config', 'x-cni-command': 'ADD' },
      });
      expect(r.statusCode).toBe(200);
      expect(r.headers['x-cni-exit']).toBe('1');
      expect(JSON.parse(r.body)).toEqual({ cniVersion: '1.0.0', code: 999, msg: expect.stringMatching(/^tsnet internal error in Cni\.Exec: tsnet bug in the CNI path/) });
      const logged = log.lines.find((l) => l.level === 50 && (l.err as { stack?: string } | undefined)?.stack);
      expect((logged?.err as { stack: string }).stack).toMatch(/RangeError: tsnet bug in the CNI path\n\s+at /);
    });
  }

  it('a Cni.Exec body fastify refuses (over the size limit) is answered in CNI form too', async () => {
    await app.close();
    start({ cni: { exec: () => Promise.resolve({ exitCode: 0, output: '' }) } });
    const r = await app.inject({ method: 'POST', url: '/Cni.Exec', payload: 'x'.repeat((1 << 20) + 1), headers: { 'content-type': 'application/x-cni-config' } });
    expect(r.headers['x-cni-exit']).toBe('1');
    expect(JSON.parse(r.body)).toMatchObject({ code: 7, msg: expect.stringMatching(/^invalid Cni\.Exec request: /) });
  });
});
