// For unit tests of clients of the plugin socket (lab/*.test.ts): the daemon's own protocol server (plugin-api/server.ts, schemas and
// translation included) on a unix socket in a temporary folder, in front of a network driver and
// an IPAM that record the typed requests they get. What the lab sends is then checked where it
// lands, after the real validation and translation, with no kernel and no root.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.js';
import type { NetworkDriver } from '../drivers/driver.js';
import type { IpamService } from '../ipam/types.js';
import { buildServer, listenUnix } from '../plugin-api/server.js';

/** One call as the driver or IPAM saw it: its name there and its typed request. */
export interface Received {
  call: string;
  req: unknown;
}

export interface FakeDaemon {
  socket: string;
  received: Received[];
  /** the next call of this name fails with a UserError carrying message */
  failNext(call: string, message: string): void;
  close(): Promise<void>;
}

export const FAKE_MAC = '02:42:0a:4d:00:07';
export const FAKE_LINK = 'tsv0a1b2c3';

export async function startFakeDaemon(): Promise<FakeDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-lab-fake-'));
  const received: Received[] = [];
  const failing = new Map<string, string>();
  let next = 2;
  const seen = (call: string, req: unknown) => {
    received.push({ call, req });
    const message = failing.get(call);
    failing.delete(call);
    if (message !== undefined) throw new UserError(message);
  };
  const network: NetworkDriver = {
    async createNetwork(req) { seen('createNetwork', req); },
    async deleteNetwork(id) { seen('deleteNetwork', id); },
    async createEndpoint(req) { seen('createEndpoint', req); return { macAddress: FAKE_MAC }; },
    async deleteEndpoint(ref) { seen('deleteEndpoint', ref); },
    async endpointOperInfo(ref) { seen('endpointOperInfo', ref); return { details: {}, portBindings: [], exposedPorts: [] }; },
    async join(req) {
      seen('join', req);
      return { srcName: FAKE_LINK, dstPrefix: 'eth', gateway: '10.77.0.1', gatewayIpv6: '', staticRoutes: [], disableGatewayService: false };
    },
    async leave(ref) { seen('leave', ref); },
    async programExternalConnectivity(req) { seen('programExternalConnectivity', req); },
    async revokeExternalConnectivity(ref) { seen('revokeExternalConnectivity', ref); },
  };
  const ipam: IpamService = {
    getDefaultAddressSpaces: () => ({ localDefaultAddressSpace: 'local', globalDefaultAddressSpace: 'global' }),
    requestPool(req) { seen('requestPool', req); return { poolId: `overlay/${req.pool}`, pool: req.pool, data: {} }; },
    releasePool(id) { seen('releasePool', id); },
    requestAddress(req) {
      seen('requestAddress', req);
      const gateway = Object.keys(req.options).length > 0;
      return { address: `10.77.0.${gateway ? 1 : next++}/24`, data: {} };
    },
    releaseAddress(poolId, address) { seen('releaseAddress', { poolId, address }); },
  };
  const app = buildServer({ network, ipam });
  const socket = join(dir, 'h1.sock');
  await listenUnix(app, socket);
  return {
    socket,
    received,
    failNext: (call, message) => void failing.set(call, message),
    close: async () => {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
