// Prometheus metrics through the real Docker engine (issue 15 item 1): a daemon started with
// `--metrics 127.0.0.1:PORT` is scraped while a network (tsnet's IPAM) and containers come and
// go, and the counters and gauges must move with them and come back down when they go; every
// scrape passes `promtool check metrics` (Debian's prometheus package). The per-call log lines
// are checked against the counters, and a bad or taken --metrics address must stop the start.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run as runCommand, repoRoot } from '../test-support/commands.js';
import { E2E_PLUGIN as PLUGIN, docker, finishE2e, onCleanup, startE2e, uniqueName, type E2eDaemon } from './harness.js';
import { createNetwork, sleeper, webServer } from './containers.js';

const SUBNET = '10.243.0.0/24';
const POOL = `local/${SUBNET}`;
const HOST_PORT = 18469;

let e2e: E2eDaemon;
let port: number;
const run = uniqueName('e2e-metrics');

/** A TCP port of 127.0.0.1 that is free now. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });

/** One scrape: the text, checked by promtool, and its samples by series ("name{labels}"). */
async function scrape(): Promise<Map<string, number>> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  expect(r.status).toBe(200);
  const text = await r.text();
  const lint = runCommand('promtool', ['check', 'metrics'], { input: text });
  expect(`${lint.stdout}${lint.stderr}`.trim(), 'promtool check metrics').toBe('');
  expect(lint.code).toBe(0);
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1], Number(m[2]));
  }
  return samples;
}

/** A series' value; 0 for a counter or histogram series that was never touched. */
const v = (s: Map<string, number>, series: string) => s.get(series) ?? 0;
const requests = (method: string, outcome = 'ok') => `tsnet_requests_total{method="${method}",outcome="${outcome}"}`;

/** The daemon's per-call log lines of one method. */
function callLines(method: string): { ms: number; outcome: string }[] {
  return readFileSync(e2e.daemon.logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"method":"${method}"`))
    .map((l) => JSON.parse(l) as { ms: number; outcome: string; msg: string })
    .filter((l) => typeof l.ms === 'number');
}

beforeAll(async () => {
  port = await freePort();
  e2e = await startE2e('tsnet-e2e-metrics', { args: ['--metrics', `127.0.0.1:${port}`] });
}, 300_000);

afterAll(() => finishE2e(e2e, [{ proto: 'tcp', port: HOST_PORT }]));

describe('metrics during the Docker end-to-end path', () => {
  it('counters and gauges move as a network and containers come and go, and back down when they go', async () => {
    const s0 = await scrape();
    // the process defaults and the listener's own state gauges are there from the start
    expect(s0.has('process_cpu_user_seconds_total')).toBe(true);
    expect(v(s0, 'tsnet_networks{driver="bridge"}')).toBe(0);
    expect(s0.has('tsnet_store_up')).toBe(false);

    const net = `${run}-net`;
    createNetwork(PLUGIN, net, ['--ipam-driver', PLUGIN, '--subnet', SUBNET]);
    const s1 = await scrape();
    expect(v(s1, 'tsnet_networks{driver="bridge"}')).toBe(1);
    expect(v(s1, requests('NetworkDriver.CreateNetwork')) - v(s0, requests('NetworkDriver.CreateNetwork'))).toBe(1);
    expect(v(s1, requests('IpamDriver.RequestPool')) - v(s0, requests('IpamDriver.RequestPool'))).toBe(1);
    expect(v(s1, `tsnet_ipam_addresses_capacity{pool="${POOL}"}`)).toBe(254);
    expect(v(s1, `tsnet_ipam_addresses_allocated{pool="${POOL}"}`)).toBe(1); // the gateway
    expect(v(s1, 'tsnet_nft_transaction_duration_seconds_count')).toBeGreaterThan(v(s0, 'tsnet_nft_transaction_duration_seconds_count'));
    expect(v(s1, 'tsnet_netlink_duration_seconds_count{op="createLink"}')).toBeGreaterThan(v(s0, 'tsnet_netlink_duration_seconds_count{op="createLink"}'));

    const web = webServer(`${run}-web`, net, [`${HOST_PORT}:80`]);
    const idle = sleeper(`${run}-idle`, net);
    const s2 = await scrape();
    expect(v(s2, 'tsnet_endpoints{driver="bridge"}')).toBe(2);
    expect(v(s2, 'tsnet_published_ports{proto="tcp"}')).toBe(1);
    expect(v(s2, `tsnet_ipam_addresses_allocated{pool="${POOL}"}`)).toBe(3);
    expect(v(s2, requests('NetworkDriver.Join')) - v(s1, requests('NetworkDriver.Join'))).toBe(2);
    expect(v(s2, 'tsnet_request_duration_seconds_count{method="NetworkDriver.Join"}') - v(s1, 'tsnet_request_duration_seconds_count{method="NetworkDriver.Join"}')).toBe(2);

    // a refused request is counted by its kind: the same subnet again (ipam/ipam.ts refuses an
    // overlap as invalid: the user is to choose another --subnet)
    const dup = docker(['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', SUBNET, `${run}-dup`]);
    onCleanup(() => docker(['network', 'rm', `${run}-dup`]));
    expect(dup.code).not.toBe(0);
    const s3 = await scrape();
    const refused = [...s3].filter(([k, n]) => k.startsWith('tsnet_requests_total{method="IpamDriver.RequestPool"') && !k.includes('outcome="ok"') && n > 0);
    expect(refused.map(([k]) => k)).toEqual([requests('IpamDriver.RequestPool', 'invalid')]);
    const failedLine = readFileSync(e2e.daemon.logPath, 'utf8').split('\n').find((l) => l.includes('"msg":"IpamDriver.RequestPool failed"'));
    expect(failedLine).toBeDefined();
    expect(JSON.parse(failedLine!)).toMatchObject({ kind: 'invalid', outcome: 'error', error: expect.stringContaining(`subnet ${SUBNET} overlaps`) });

    for (const c of [web, idle]) expect(docker(['rm', '-f', c]).code).toBe(0);
    const s4 = await scrape();
    expect(v(s4, 'tsnet_endpoints{driver="bridge"}')).toBe(0);
    expect(v(s4, 'tsnet_published_ports{proto="tcp"}')).toBe(0);
    expect(v(s4, `tsnet_ipam_addresses_allocated{pool="${POOL}"}`)).toBe(1);
    expect(v(s4, requests('NetworkDriver.DeleteEndpoint')) - v(s3, requests('NetworkDriver.DeleteEndpoint'))).toBe(2);

    expect(docker(['network', 'rm', net]).code).toBe(0);
    const s5 = await scrape();
    expect(v(s5, 'tsnet_networks{driver="bridge"}')).toBe(0);
    expect(s5.has(`tsnet_ipam_addresses_capacity{pool="${POOL}"}`)).toBe(false);

    // one log line per call, with its duration: as many as the counter says
    const joins = callLines('NetworkDriver.Join');
    expect(joins.length).toBe(v(s5, requests('NetworkDriver.Join')));
    for (const l of joins) expect(l.ms).toBeGreaterThan(0);
  });

  it('refuses to start with a --metrics address that is wrong or taken, saying which', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsnet-metrics-bad-'));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const serve = (metrics: string) =>
      runCommand('node', [join(repoRoot(), 'dist/cli/main.js'), 'serve', '--state-dir', dir, '--socket', join(dir, 'bad.sock'), '--log', join(dir, 'tsnet.log'), '--metrics', metrics], { timeoutMs: 30_000 });
    const bad = serve('127.0.0.1:99999');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--metrics '127\.0\.0\.1:99999': give ADDRESS:PORT/);
    // the running daemon's own port (its start with a free one is the positive case)
    const taken = serve(`127.0.0.1:${port}`);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toContain(`--metrics 127.0.0.1:${port}: cannot listen: the port is in use by another process`);
    expect(runCommand('test', ['-e', join(dir, 'bad.sock')]).code).not.toBe(0);
  });
});
