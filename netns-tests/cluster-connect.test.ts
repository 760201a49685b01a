// A daemon whose cluster store is down at start, and the cluster's clean-up (issue 12 items 6, 7),
// against a real etcd and the built daemon (dist/). The daemon used to refuse to start without its
// etcd, taking bridge networks down with it; it must now serve them at once, refuse overlay work
// with a message that says why, and join the store in the background once etcd comes up, with no
// restart. An overlay's definition and pool go with the last host's network, not before, and
// `tsnet cluster forget` removes exactly a dead host's keys.
//
// The daemon runs in the host's namespace on its own socket and table; its VTEP is a /32 on a veth
// this file makes. No second host exists, so nothing is ever sent through the VXLAN device.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { freePort, startEtcd, type TestEtcd } from './etcd.js';
import { sh, uniqueName, until } from './harness.js';
import { PluginClient, PluginError } from '../lab/plugin-client.js';
import { addressRequest, createEndpointRequest, createOverlayRequest, endpointRef, gatewayRequest, overlayPoolRequest, releaseAddressRequest } from '../lab/docker-calls.js';
import { OPTION_ENABLE_IPV6, OPTION_GENERIC } from '../plugin-api/translate.js';
import { TYPE_OPTION } from '../core/protocol.js';
import { LOCAL_ADDRESS_SPACE } from '../ipam/ipam.js';
import type { ConnectionState } from '../daemon/cluster-connection.js';
import type { EtcdClusterStore } from '../store/cluster/etcd-store.js';

const MAIN = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const run = uniqueName('tcc');
const VTEP = '198.51.100.77';
const HOST = `${run}-a`;

let etcdPort: number;
let etcd: TestEtcd | undefined;
let daemon: ChildProcess | undefined;
let stateDir: string;
let socket: string;
let plugin: PluginClient;
const veth = `${run}u`.slice(0, 15);

function tsnet(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function statusStore(): (ConnectionState & { daemonRunning: boolean }) | null {
  const out = tsnet(['status', '--json', '--state-dir', stateDir]);
  if (out.code !== 0) throw new Error(`tsnet status: ${out.stderr}`);
  return (JSON.parse(out.stdout) as { clusterStore: (ConnectionState & { daemonRunning: boolean }) | null }).clusterStore;
}

/** Every key under /tsnet/ with its value, read straight from etcd. */
async function storeKeys(): Promise<Record<string, string>> {
  const c = new Etcd3({ hosts: [`http://127.0.0.1:${etcdPort}`] });
  try {
    return await c.getAll().prefix('/tsnet/').strings();
  } finally {
    c.close();
  }
}

async function answers(): Promise<boolean> {
  return plugin.call('Plugin.Activate', undefined, 2_000).then(
    () => true,
    () => false,
  );
}

/** The refusal a call gets while the store is unreachable. */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof PluginError) return err.message;
    throw err;
  }
  return 'succeeded';
}

/** A cluster overlay through the daemon as dockerd creates it, and one container endpoint on it. */
async function createOverlay(name: string, subnet: string) {
  const networkId = uniqueName('net').padEnd(64, '0').slice(0, 64);
  const endpointId = uniqueName('ep').padEnd(64, '0').slice(0, 64);
  const pool = await plugin.call('IpamDriver.RequestPool', overlayPoolRequest(name, subnet));
  const gw = await plugin.call('IpamDriver.RequestAddress', gatewayRequest(pool.PoolID));
  await plugin.call('NetworkDriver.CreateNetwork', createOverlayRequest(networkId, name, pool, gw.Address));
  const addr = await plugin.call('IpamDriver.RequestAddress', addressRequest(pool.PoolID));
  await plugin.call('NetworkDriver.CreateEndpoint', createEndpointRequest(networkId, endpointId, addr.Address));
  return { networkId, endpointId, poolId: pool.PoolID, address: addr.Address };
}

/** What dockerd does on `docker rm` and `docker network rm`. */
async function removeOverlay(o: Awaited<ReturnType<typeof createOverlay>>): Promise<void> {
  await plugin.call('NetworkDriver.DeleteEndpoint', endpointRef(o.networkId, o.endpointId));
  await plugin.call('IpamDriver.ReleaseAddress', releaseAddressRequest(o.poolId, o.address));
  // the lab never removes networks, so these two are not among plugin-api/methods.ts's typed calls
  const untyped = plugin.call.bind(plugin) as (method: string, body: unknown) => Promise<unknown>;
  await untyped('NetworkDriver.DeleteNetwork', { NetworkID: o.networkId });
  await untyped('IpamDriver.ReleasePool', { PoolID: o.poolId });
}

beforeAll(async () => {
  etcdPort = await freePort();
  stateDir = mkdtempSync(join(tmpdir(), 'tsnet-tcc-'));
  socket = join(stateDir, `${run}.sock`);
  plugin = new PluginClient(socket);
  sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
  sh('ip', ['addr', 'add', `${VTEP}/32`, 'dev', veth]);
  sh('ip', ['link', 'set', veth, 'up']);
});

afterAll(async () => {
  daemon?.kill('SIGTERM');
  if (daemon && daemon.exitCode === null) await new Promise((r) => daemon!.once('exit', r));
  // what the daemon made (its bridges and VXLAN devices are tagged with its instance, the table is its own)
  for (const l of JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; ifalias?: string }[]) {
    if (l.ifalias?.includes(run)) spawnSync('ip', ['link', 'del', l.ifname]);
  }
  for (const family of ['inet', 'bridge']) spawnSync('nft', ['delete', 'table', family, run]);
  spawnSync('ip', ['link', 'del', veth]);
  await etcd?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('a daemon whose cluster store is down at start', () => {
  it('serves a bridge network at once, refuses overlay work saying why, and joins the store when etcd comes up, without a restart', async () => {
    const out = openSync(join(stateDir, 'daemon.out'), 'a');
    daemon = spawn(
      process.execPath,
      [MAIN, 'serve', '--state-dir', stateDir, '--socket', socket, '--log', join(stateDir, 'tsnet.log'), '--store', `etcd://127.0.0.1:${etcdPort}`, '--vtep', VTEP, '--host-name', HOST, '--lease-ttl', '3'],
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
    // etcd is not running: the daemon answers anyway
    await until('the daemon answers with its store down', async () => {
      if (daemon!.exitCode !== null) throw new Error(`the daemon exited ${daemon!.exitCode}: ${readFileSync(join(stateDir, 'daemon.out'), 'utf8')}`);
      return answers();
    });

    // a bridge network and an endpoint on it, made while the store is unreachable
    const bridgeId = uniqueName('br').padEnd(64, '0').slice(0, 64);
    const pool = await plugin.call('IpamDriver.RequestPool', { AddressSpace: LOCAL_ADDRESS_SPACE, Pool: '10.231.77.0/24', SubPool: '', Options: {}, V6: false });
    const gw = await plugin.call('IpamDriver.RequestAddress', gatewayRequest(pool.PoolID));
    await plugin.call('NetworkDriver.CreateNetwork', {
      NetworkID: bridgeId,
      Options: { [OPTION_GENERIC]: { [TYPE_OPTION]: 'bridge' }, [OPTION_ENABLE_IPV6]: false },
      IPv4Data: [{ AddressSpace: LOCAL_ADDRESS_SPACE, Pool: pool.Pool, Gateway: gw.Address, AuxAddresses: {} }],
      IPv6Data: [],
    });
    const bridgeAddr = await plugin.call('IpamDriver.RequestAddress', addressRequest(pool.PoolID));
    const ep = await plugin.call('NetworkDriver.CreateEndpoint', createEndpointRequest(bridgeId, uniqueName('bep').padEnd(64, '0').slice(0, 64), bridgeAddr.Address));
    expect(ep).toBeDefined();
    // its bridge holds the gateway, up
    const bridgeLinks = (JSON.parse(sh('ip', ['-j', 'addr', 'show'])) as { ifname: string; operstate: string; addr_info: { local: string; prefixlen: number }[] }[]).filter((l) =>
      l.addr_info.some((a) => `${a.local}/${a.prefixlen}` === gw.Address),
    );
    expect(bridgeLinks.map((l) => l.ifname)).toEqual([expect.stringMatching(/^tsnet-/)]);

    // overlay work is refused, each with the store's state and what cannot be done
    const unreachable = `the cluster store at http://127.0.0.1:${etcdPort} is not reachable yet \\(retrying since [^)]*\\)`;
    expect(await refusal(plugin.call('IpamDriver.RequestPool', overlayPoolRequest('blue', '10.232.77.0/24')))).toMatch(
      new RegExp(`^IpamDriver.RequestPool: ${unreachable}: overlay 'blue' cannot be joined on this host until it is$`),
    );
    const localPool = await plugin.call('IpamDriver.RequestPool', { AddressSpace: LOCAL_ADDRESS_SPACE, Pool: '10.233.77.0/24', SubPool: '', Options: {}, V6: false });
    const localGw = await plugin.call('IpamDriver.RequestAddress', gatewayRequest(localPool.PoolID));
    expect(await refusal(plugin.call('NetworkDriver.CreateNetwork', createOverlayRequest(uniqueName('ovl').padEnd(64, '0').slice(0, 64), 'blue', localPool, localGw.Address)))).toMatch(
      new RegExp(`^NetworkDriver.CreateNetwork: ${unreachable}: overlay 'blue' cannot be joined on this host until it is$`),
    );
    // status shows the daemon trying, with the error of its last attempt
    await until('status shows a failed attempt', () => (statusStore()?.attempts ?? 0) >= 1);
    expect(statusStore()).toMatchObject({ phase: 'connecting', host: HOST, store: `http://127.0.0.1:${etcdPort}`, daemonRunning: true, lastError: expect.stringMatching(/.+/) });
    expect(tsnet(['status', '--state-dir', stateDir]).stdout).toMatch(new RegExp(`^CLUSTER STORE  connecting to http://127.0.0.1:${etcdPort} as host '${HOST}' since `));

    // etcd comes up: the same daemon joins it and the overlay works
    etcd = await startEtcd(etcdPort);
    await until('the daemon joined the store', () => statusStore()?.phase === 'connected', 60_000);
    expect(tsnet(['status', '--state-dir', stateDir]).stdout).toMatch(new RegExp(`^CLUSTER STORE  connected to http://127.0.0.1:${etcdPort} as host '${HOST}' since `));
    const blue = await createOverlay('blue', '10.232.77.0/24');
    const keys = await storeKeys();
    expect(JSON.parse(keys[`/tsnet/hosts/${HOST}`]).vtep).toBe(VTEP);
    expect(JSON.parse(keys[`/tsnet/endpoints/blue/${blue.address.split('/')[0]}`])).toMatchObject({ host: HOST, endpointId: blue.endpointId });
    expect(keys).toHaveProperty('/tsnet/overlays/blue');
    expect(keys).toHaveProperty(`/tsnet/members/blue/${HOST}`);
    const log = readFileSync(join(stateDir, 'tsnet.log'), 'utf8');
    expect(log).toMatch(/could not register this host in the cluster store; retrying/);
    expect(log).toMatch(/"failedAttempts":[1-9]\d*.*joined the cluster store/);
    // the bridge network is still there after the reconnect
    expect(sh('ip', ['-j', 'addr', 'show', bridgeLinks[0].ifname])).toContain(gw.Address.split('/')[0]);
    await removeOverlay(blue);
  });
});

describe('cluster clean-up', () => {
  let other: EtcdClusterStore;

  it("keeps an overlay's definition and pool while another host has it, and removes them with the last host's network", async () => {
    expect(etcd, 'the first test starts etcd').toBeDefined();
    other = etcd!.store('tcc-b9', 30);
    await other.start();

    // host b joins green and holds an address in it; the daemon's host removes its network first
    const green = await createOverlay('green', '10.234.77.0/24');
    await other.joinOverlay('green');
    await other.claimPool('green', { subnet: '', subPool: '' });
    expect(await other.claimAddress('green', '10.234.77.200', 'static')).toBe(true);
    await removeOverlay(green);
    let keys = await storeKeys();
    expect(Object.keys(keys)).toEqual(expect.arrayContaining(['/tsnet/overlays/green', '/tsnet/pools/green', '/tsnet/members/green/tcc-b9', '/tsnet/addresses/green/10.234.77.200']));
    expect(keys).not.toHaveProperty(`/tsnet/members/green/${HOST}`);
    // the daemon's own address went with its container
    expect(keys).not.toHaveProperty(`/tsnet/addresses/green/${green.address.split('/')[0]}`);

    // b, the last member, leaves: the definition, the pool and every address go
    expect(await other.leaveOverlay('green')).toBe(true);
    keys = await storeKeys();
    expect(Object.keys(keys).filter((k) => k.includes('/green'))).toEqual([]);

    // and through the daemon alone: its network was the last, so the overlay goes with it
    const red = await createOverlay('red', '10.235.77.0/24');
    expect(Object.keys(await storeKeys()).filter((k) => k.includes('/red')).length).toBeGreaterThan(3);
    await removeOverlay(red);
    expect(Object.keys(await storeKeys()).filter((k) => k.includes('/red'))).toEqual([]);
  });

  it('forget removes exactly a dead host\'s keys and the overlays it was the last member of, and refuses a live host', async () => {
    const dead = etcd!.store('tcc-d7', 2);
    await dead.start();
    for (const s of [dead, other]) await s.joinOverlay('teal');
    await dead.claimPool('teal', { subnet: '10.236.77.0/24', subPool: '' });
    await dead.setGateway('teal', '10.236.77.1');
    await dead.claimAddress('teal', '10.236.77.1', 'gateway');
    await dead.claimAddress('teal', '10.236.77.5', 'dynamic');
    await other.claimAddress('teal', '10.236.77.6', 'dynamic');
    await dead.announce({ overlay: 'teal', ip: '10.236.77.5', mac: '02:42:0a:ec:4d:05', endpointId: 'ep-dead' });
    await other.announce({ overlay: 'teal', ip: '10.236.77.6', mac: '02:42:0a:ec:4d:06', endpointId: 'ep-other' });
    // an overlay only the dead host had
    await dead.joinOverlay('plum');
    await dead.defineOverlay({ name: 'plum', subnet: '10.237.77.0/24' });
    await dead.claimPool('plum', { subnet: '10.237.77.0/24', subPool: '' });
    await dead.claimAddress('plum', '10.237.77.9', 'static');
    const store = `etcd://127.0.0.1:${etcdPort}`;

    // while its lease lives, forget is refused (exit 1) and removes nothing
    const before = await storeKeys();
    const refused = tsnet(['cluster', 'forget', 'tcc-d7', '--store', store]);
    expect(refused).toMatchObject({ code: 1 });
    expect(refused.stderr).toMatch(/^tsnet: host 'tcc-d7' is registered live in the cluster store \(VTEP 198\.51\.100\.7, since .*\): stop its daemon and wait for its lease to expire, or give --force\n$/);
    expect(await storeKeys()).toEqual(before);

    // the host dies (its lease is not renewed): its registration and announcement expire, the rest stays
    await dead.close();
    await until('the dead host is no longer registered', async () => !(`/tsnet/hosts/tcc-d7` in (await storeKeys())), 30_000);
    const forgot = tsnet(['cluster', 'forget', 'tcc-d7', '--store', store]);
    expect(forgot.stderr).toBe('');
    expect(forgot).toMatchObject({ code: 0 });
    expect(forgot.stdout).toContain('overlays removed (no member left): plum');

    const after = await storeKeys();
    const gone = Object.keys(before).filter((k) => !(k in after)).sort();
    expect(gone).toEqual(
      [
        '/tsnet/hosts/tcc-d7',
        '/tsnet/endpoints/teal/10.236.77.5',
        '/tsnet/addresses/teal/10.236.77.5',
        '/tsnet/members/teal/tcc-d7',
        '/tsnet/members/plum/tcc-d7',
        '/tsnet/overlays/plum',
        '/tsnet/pools/plum',
        '/tsnet/addresses/plum/10.237.77.9',
        '/tsnet/joins/plum',
      ].sort(),
    );
    // the live host's keys, the shared gateway and teal itself stay
    expect(Object.keys(after)).toEqual(
      expect.arrayContaining(['/tsnet/members/teal/tcc-b9', '/tsnet/addresses/teal/10.236.77.6', '/tsnet/endpoints/teal/10.236.77.6', '/tsnet/addresses/teal/10.236.77.1', '/tsnet/pools/teal', '/tsnet/hosts/tcc-b9']),
    );

    // a live host: refused without --force, forgotten with it
    expect(tsnet(['cluster', 'forget', 'tcc-b9', '--store', store]).code).toBe(1);
    expect(await storeKeys()).toEqual(after);
    const forced = tsnet(['cluster', 'forget', 'tcc-b9', '--force', '--store', store]);
    expect(forced).toMatchObject({ code: 0 });
    expect(forced.stdout).toMatch(/^forgot host 'tcc-b9' \(it was registered live: --force\)/);
    expect(Object.keys(await storeKeys()).filter((k) => k.includes('tcc-b9') || k.includes('/teal'))).toEqual([]);
  });

  it('forget says the store is unavailable (exit 69) when etcd does not answer', () => {
    const r = tsnet(['cluster', 'forget', 'x', '--store', 'etcd://127.0.0.1:1']);
    expect(r.code).toBe(69);
    expect(r.stderr).toMatch(/^tsnet: cannot reach the cluster store at http:\/\/127\.0\.0\.1:1: /);
    expect(existsSync(MAIN)).toBe(true);
  });
});
