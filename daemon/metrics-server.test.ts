// The metrics listener and its state sources: ADDR:PORT parsing, counts with a zero per known
// value, pool capacity by the allocator's rules, remote VTEPs of a VXLAN device, and the listener
// itself on loopback (GET /metrics only; a taken port refused with a message naming it).
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { parseListenAddress, type ListenAddress } from './settings.js';
import { countBy, poolCapacity, remoteVteps, startMetricsServer, stateSources, type MetricsServer, type StateDeps } from './metrics-server.js';
import { silentLogger } from '../core/log.js';

describe('parseListenAddress', () => {
  it('takes an IPv4 or bracketed IPv6 address and a port', () => {
    expect(parseListenAddress('127.0.0.1:9469')).toEqual({ host: '127.0.0.1', port: 9469 });
    expect(parseListenAddress('[::1]:9469')).toEqual({ host: '::1', port: 9469 });
    expect(parseListenAddress('0.0.0.0:1')).toEqual({ host: '0.0.0.0', port: 1 });
  });

  it('refuses names, missing parts, unbracketed IPv6 and ports out of range, naming the flag', () => {
    for (const bad of ['9469', ':9469', 'localhost:9469', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:9469', '[127.0.0.1]:9469', '300.1.1.1:80', '127.0.0.1:80x']) {
      expect(() => parseListenAddress(bad), bad).toThrow(/^--metrics '.*': give ADDRESS:PORT/);
    }
  });
});

describe('state sources', () => {
  it('counts by label with a zero for each known value', () => {
    expect(countBy([{ d: 'bridge' }, { d: 'bridge' }], 'driver', (x) => x.d, ['bridge', 'macvlan'])).toEqual([
      { labels: { driver: 'bridge' }, value: 2 },
      { labels: { driver: 'macvlan' }, value: 0 },
    ]);
  });

  it("gives a pool's assignable addresses by the allocator's rules", () => {
    expect(poolCapacity('10.1.0.0/24')).toBe(254);
    expect(poolCapacity('10.1.0.0/31')).toBe(2);
    expect(poolCapacity('fd00::/120')).toBe(255);
  });

  it('counts the distinct remote VTEPs of a VXLAN device, not this host nor entries without one', () => {
    expect(remoteVteps([{ dst: '198.51.100.2' }, { dst: '198.51.100.2' }, { dst: '198.51.100.3' }, { dst: '198.51.100.1' }, {}], '198.51.100.1')).toBe(2);
  });

  it('reads ready networks, their ready endpoints, ports, pools and the store connection', () => {
    const networks = [
      { id: 'n1', driver: 'bridge', state: 'ready', config: {} },
      { id: 'n2', driver: 'overlay', state: 'ready', config: { overlay: { name: 'blue', vxlan: 'vx-1', local: '198.51.100.1' } } },
      { id: 'n3', driver: 'bridge', state: 'creating', config: {} },
    ];
    const deps = {
      repo: {
        listNetworks: (driver?: string) => networks.filter((n) => !driver || n.driver === driver),
        listEndpoints: () => [
          { networkId: 'n1', state: 'ready' },
          { networkId: 'n1', state: 'deleting' },
          { networkId: 'n2', state: 'ready' },
          { networkId: 'n3', state: 'ready' },
        ],
        listPorts: () => [{ proto: 'tcp' }, { proto: 'udp' }, { proto: 'tcp' }],
      },
      ipam: { listPools: () => [{ id: 'local/10.1.0.0/24', pool: '10.1.0.0/24' }], loadPoolState: () => ({ addresses: ['10.1.0.1', '10.1.0.2'], cursor: null }) },
      netlink: { listFdb: () => [{ dst: '198.51.100.2' }] },
      cluster: { connected: true },
    } as unknown as StateDeps;
    const s = stateSources(deps);
    expect(s.networks()).toEqual([
      { labels: { driver: 'bridge' }, value: 1 },
      { labels: { driver: 'macvlan' }, value: 0 },
      { labels: { driver: 'overlay' }, value: 1 },
    ]);
    expect(s.endpoints().map((x) => x.value)).toEqual([1, 0, 1]);
    expect(s.publishedPorts()).toEqual([
      { labels: { proto: 'tcp' }, value: 2 },
      { labels: { proto: 'udp' }, value: 1 },
      { labels: { proto: 'sctp' }, value: 0 },
    ]);
    expect(s.ipamAllocated()).toEqual([{ labels: { pool: 'local/10.1.0.0/24' }, value: 2 }]);
    expect(s.ipamCapacity()).toEqual([{ labels: { pool: 'local/10.1.0.0/24' }, value: 254 }]);
    expect(s.overlayPeers()).toEqual([{ labels: { network: 'blue' }, value: 1 }]);
    expect(s.storeUp()).toEqual([{ labels: {}, value: 1 }]);
    expect(stateSources({ ...deps, cluster: undefined }).storeUp()).toEqual([]);
  });
});

describe('the listener', () => {
  const open: { close(): unknown }[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  /** A port the kernel says is free now. */
  const freePort = () =>
    new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
  const get = (at: ListenAddress, path: string, method = 'GET') =>
    fetch(`http://${at.host}:${at.port}${path}`, { method }).then(async (r) => ({ status: r.status, type: r.headers.get('content-type'), body: await r.text() }));

  it('answers GET /metrics with the text format, and nothing else', async () => {
    const m: MetricsServer = await startMetricsServer({ host: '127.0.0.1', port: await freePort() }, silentLogger);
    open.push(m);
    const ok = await get(m.address, '/metrics');
    expect(ok.status).toBe(200);
    expect(ok.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(ok.body).toMatch(/^# TYPE tsnet_requests_total counter$/m);
    expect(ok.body).toMatch(/^# TYPE process_resident_memory_bytes gauge$/m);
    expect((await get(m.address, '/')).status).toBe(404);
    expect((await get(m.address, '/metrics', 'POST')).status).toBe(405);
  });

  it('refuses a port another process listens on, saying so', async () => {
    const port = await freePort();
    const other: Server = createServer();
    await new Promise<void>((r) => other.listen(port, '127.0.0.1', () => r()));
    open.push({ close: () => new Promise((r) => other.close(r)) });
    await expect(startMetricsServer({ host: '127.0.0.1', port }, silentLogger)).rejects.toThrow(`--metrics 127.0.0.1:${port}: cannot listen: the port is in use by another process`);
  });

  it('refuses an address that is not one of this host (a documentation address, nothing is sent)', async () => {
    await expect(startMetricsServer({ host: '198.51.100.7', port: 9469 }, silentLogger)).rejects.toThrow('--metrics 198.51.100.7:9469: cannot listen: the address is not one of this host');
  });
});
