// `tsnet serve --metrics ADDR:PORT`: the HTTP listener Prometheus scrapes (GET /metrics, nothing
// else), and where the state gauges of core/metrics.ts read from: the store's rows (networks,
// endpoints, published ports, IPAM pools), the kernel (an overlay's VXLAN forwarding entries) and
// the cluster connection. Read at every scrape, so the numbers are the store's, never a count kept
// beside it that could drift. Off unless the setting is given: a listener is one more port open.
import { createServer, type Server } from 'node:http';
import { collectProcessMetrics, exposition, observeState, type Sample, type StateSources } from '../core/metrics.js';
import type { Logger } from '../core/log.js';
import { DRIVER_TYPES, PROTOS } from '../core/protocol.js';
import { shortId } from '../core/text.js';
import { errorText } from '../core/errors.js';
import type { NetworkRepo } from '../store/network-repo.js';
import type { IpamRepo } from '../store/ipam-records.js';
import type { Netlink } from '../native/netlink/netlink.js';
import type { OverlayConfig } from '../drivers/overlay/plan.js';
import { PoolAllocator } from '../ipam/allocator.js';
import { parseCidr } from '../ipam/address.js';
import { SettingError, type ListenAddress } from './settings.js';

// ---------------------------------------------------------------- the state gauges' sources (pure)

/** Counts by a label over `items`, with a 0 for every value of `all` (a series never vanishes when its count drops to 0). */
export function countBy<T>(items: readonly T[], label: string, valueOf: (item: T) => string, all: readonly string[] = []): Sample[] {
  const counts = new Map<string, number>(all.map((v) => [v, 0]));
  for (const item of items) {
    const v = valueOf(item);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  return [...counts].map(([v, value]) => ({ labels: { [label]: v }, value }));
}

/** Assignable addresses of a pool (CIDR), by the allocator's own rules (network and broadcast addresses reserved...). */
export function poolCapacity(cidr: string): number {
  const a = new PoolAllocator(parseCidr(cidr));
  return Number(a.usableHi - a.usableLo + 1n);
}

/** The other hosts a VXLAN device sends to: the distinct remote VTEPs of its forwarding entries. */
export function remoteVteps(fdb: readonly { dst?: string }[], local: string): number {
  return new Set(fdb.map((e) => e.dst).filter((d) => d && d !== local)).size;
}

export interface StateDeps {
  repo: Pick<NetworkRepo, 'listNetworks' | 'listEndpoints' | 'listPorts'>;
  ipam: Pick<IpamRepo, 'listPools' | 'loadPoolState'>;
  netlink: Pick<Netlink, 'listFdb'>;
  /** undefined: the daemon has no cluster store */
  cluster?: { readonly connected: boolean };
}

/** Exports the state gauges, read from the daemon's store, kernel and cluster connection at each scrape. */
export function exportState(d: StateDeps): void {
  observeState(stateSources(d));
}

/** Where each state gauge reads from. */
export function stateSources(d: StateDeps): StateSources {
  const readyNetworks = () => d.repo.listNetworks().filter((n) => n.state === 'ready');
  return {
    networks: () => countBy(readyNetworks(), 'driver', (n) => n.driver, DRIVER_TYPES),
    endpoints: () => {
      const driverOf = new Map(readyNetworks().map((n) => [n.id, n.driver]));
      const endpoints = d.repo.listEndpoints().filter((e) => e.state === 'ready' && driverOf.has(e.networkId));
      return countBy(endpoints, 'driver', (e) => driverOf.get(e.networkId)!, DRIVER_TYPES);
    },
    publishedPorts: () => countBy(d.repo.listPorts(), 'proto', (p) => p.proto, PROTOS),
    ipamAllocated: () => d.ipam.listPools().map((p) => ({ labels: { pool: p.id }, value: d.ipam.loadPoolState(p.id).addresses.length })),
    ipamCapacity: () => d.ipam.listPools().map((p) => ({ labels: { pool: p.id }, value: poolCapacity(p.pool) })),
    overlayPeers: () =>
      d.repo.listNetworks<OverlayConfig>('overlay').flatMap((n) => {
        if (n.state !== 'ready') return [];
        let fdb;
        try {
          fdb = d.netlink.listFdb(n.config.overlay.vxlan);
        } catch {
          return []; // its VXLAN device is missing: drift repair puts it back, then it counts again
        }
        return [{ labels: { network: n.config.overlay.name || shortId(n.id) }, value: remoteVteps(fdb, n.config.overlay.local) }];
      }),
    storeUp: () => (d.cluster ? [{ labels: {}, value: d.cluster.connected ? 1 : 0 }] : []),
  };
}

// ---------------------------------------------------------------- the listener

export interface MetricsServer {
  /** where it listens (the port the kernel chose when 0 was asked) */
  readonly address: ListenAddress;
  close(): Promise<void>;
}

/**
 * Starts the listener, with the process defaults; the state gauges join once exportState() is
 * called. Rejects with a message naming the address when it cannot listen (taken, not an address
 * of this host), so the daemon refuses to start rather than run unobserved.
 */
export async function startMetricsServer(at: ListenAddress, log: Pick<Logger, 'warn'>): Promise<MetricsServer> {
  collectProcessMetrics();
  const server = createServer((req, res) => {
    const path = (req.url ?? '').replace(/\?.*$/, '');
    if (path !== '/metrics') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('tsnet serves only GET /metrics here\n');
    if (req.method !== 'GET') return void res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain' }).end('GET /metrics only\n');
    exposition().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: unknown) => {
        log.warn({ err: errorText(err) }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${errorText(err)}\n`);
      },
    );
  });
  // a scraper that opens connections and sends nothing does not hold them for ever
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await listen(server, at);
  server.on('error', (err) => log.warn({ err: errorText(err) }, 'metrics listener error'));
  const a = server.address();
  const port = a && typeof a === 'object' ? a.port : at.port;
  return {
    address: { host: at.host, port },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function listen(server: Server, at: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const where = at.host.includes(':') ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`;
      const why =
        err.code === 'EADDRINUSE'
          ? 'the port is in use by another process'
          : err.code === 'EADDRNOTAVAIL'
            ? 'the address is not one of this host'
            : err.code === 'EACCES'
              ? 'not allowed to listen there'
              : err.message;
      reject(new SettingError(`--metrics ${where}: cannot listen: ${why}`));
    });
    server.listen(at.port, at.host, () => resolve());
  });
}
