// A daemon's refusal seen through the lab's client and CLI: the server names the error's kind in
// a reply header, the client keeps it, and `tsnet lab ...` exits with that kind's code (1, 69,
// 70), as every other tsnet command does. A real server on a unix socket, with doubles behind it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer, listenUnix } from '../plugin-api/server.js';
import { PluginClient, PluginError } from '../lab/plugin-client.js';
import { asCliError } from './lab.js';
import { ConflictError, EXIT_CODE_BY_KIND, errorKind, UnavailableError, UserError } from '../core/errors.js';
import { addressRequest } from '../lab/docker-calls.js';

const dir = mkdtempSync(join(tmpdir(), 'tsnet-lab-client-'));
const socket = join(dir, 'tsnet.sock');
/** what RequestAddress throws next */
let refusal: Error = new Error('unused');
let app: FastifyInstance;

beforeAll(async () => {
  const ipam = { requestAddress: async () => Promise.reject(refusal), getDefaultAddressSpaces: () => ({ localDefaultAddressSpace: 'l', globalDefaultAddressSpace: 'g' }) };
  app = buildServer({ network: {} as never, ipam: ipam as never });
  await listenUnix(app, socket);
});
afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The exit code `tsnet lab attach` ends with when RequestAddress throws err. */
async function exitCodeFor(err: Error): Promise<{ code: number; error: unknown }> {
  refusal = err;
  const error = await new PluginClient(socket).call('IpamDriver.RequestAddress', addressRequest('overlay/x')).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { code: EXIT_CODE_BY_KIND[errorKind(asCliError(error))], error };
}

describe('a daemon refusal through tsnet lab', () => {
  it('exits by the kind of the daemon\'s error, with its message as it is', async () => {
    const unavailable = await exitCodeFor(new UnavailableError('the cluster store at http://x:2379 did not answer'));
    expect(unavailable.error).toBeInstanceOf(PluginError);
    expect((unavailable.error as PluginError).message).toBe('IpamDriver.RequestAddress: the cluster store at http://x:2379 did not answer');
    expect(unavailable.code).toBe(69);
    expect((await exitCodeFor(new ConflictError('address 10.0.0.2 is in use'))).code).toBe(1);
    expect((await exitCodeFor(new UserError('bad option'))).code).toBe(1);
    expect((await exitCodeFor(new Error('a bug'))).code).toBe(70);
  });

  it('exits 69 when no daemon answers on the socket', async () => {
    const err = await new PluginClient(join(dir, 'none.sock')).call('Plugin.Activate', undefined).catch((e: unknown) => e);
    expect((err as PluginError).kind).toBe('unavailable');
    expect(EXIT_CODE_BY_KIND[errorKind(asCliError(err))]).toBe(69);
  });
});
