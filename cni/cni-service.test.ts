// CniService.add as named steps with one rollback, against tsnet's real IPAM and stores (in-memory
// SQLite), a recording network driver that can be told to fail at a step, and shell-script IPAM
// plugins: a failed ADD leaves nothing (no pool, address, network or attachment), undone newest
// first; a delegated plugin runs outside the daemon's queue, and its address is handed back on
// rollback.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CNI_POOL_OPTION, CniService } from './cni-service.js';
import type { NetworkDriver } from '../drivers/driver.js';
import { Ipam } from '../ipam/ipam.js';
import type { Netlink } from '../native/netlink/netlink.js';
import { SerialQueue } from '../plugin-api/queue.js';
import { openDatabase, type Db } from '../store/db.js';
import { SqliteIpamRepo } from '../store/ipam-repo.js';
import { CniRepo } from '../store/cni-repo.js';
import { NetworkRepo } from '../store/network-repo.js';
import { UserError } from '../core/errors.js';
import { silentLogger } from '../core/log.js';

let db: Db;
let dir: string;
let ipamRepo: SqliteIpamRepo;
let cniRepo: CniRepo;
let calls: string[];
let failAt: string | undefined;
let queue: SerialQueue;
let service: CniService;

/** A driver that records its calls and throws a UserError at the method named in failAt. */
const driver = new Proxy({} as NetworkDriver, {
  get: (_t, method: string) => async () => {
    calls.push(method);
    if (method === failAt) throw new UserError(`${method} refused`);
    if (method === 'createEndpoint') return { macAddress: '02:42:0a:ef:3c:02' };
    if (method === 'join') return { srcName: 'tsc0', dstPrefix: 'eth', gateway: '10.239.60.1', gatewayIpv6: '', staticRoutes: [], disableGatewayService: false };
    return undefined;
  },
});

beforeEach(() => {
  db = openDatabase(':memory:');
  dir = mkdtempSync(join(tmpdir(), 'tsnet-cnisvc-'));
  ipamRepo = new SqliteIpamRepo(db);
  cniRepo = new CniRepo(db);
  calls = [];
  failAt = undefined;
  queue = new SerialQueue();
  const ipam = new Ipam(ipamRepo, { machineId: () => '0123456789abcdef0123456789abcdef' });
  // netlink is reached only after the steps these tests fail at
  service = new CniService({ network: driver, ipam, repo: new NetworkRepo(db), cni: cniRepo, netlink: {} as Netlink, log: silentLogger, queue });
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** CNI_* for an ADD or DEL of container c1; the "namespace" is a path that exists. */
function env(command: string): Record<string, string> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: dir, CNI_IFNAME: 'eth0', CNI_PATH: dir };
}

function config(ipam: object): string {
  return JSON.stringify({ cniVersion: '1.0.0', name: 'n1', type: 'tsnet', ipam });
}

function nothingLeft(): void {
  expect(ipamRepo.listPools()).toEqual([]);
  expect(cniRepo.listNetworks()).toEqual([]);
  expect(cniRepo.listAttachments()).toEqual([]);
}

describe('CNI ADD rollback', () => {
  it('a refused join undoes every earlier step, newest first, and the refusal reaches the runtime', async () => {
    failAt = 'join';
    const r = await service.exec(env('ADD'), config({ type: 'tsnet', subnet: '10.239.60.0/24' }));
    expect(r.exitCode).toBe(1);
    expect(JSON.parse(r.output)).toMatchObject({ code: 100, msg: 'join refused' });
    expect(calls).toEqual(['createNetwork', 'createEndpoint', 'join', 'deleteEndpoint', 'deleteNetwork']);
    nothingLeft();
    // and the same ADD works once the driver does
    failAt = undefined;
    calls = [];
    const first = service.exec(env('ADD'), config({ type: 'tsnet', subnet: '10.239.60.0/24' }));
    // configureSandbox needs a real netlink: the run stops there, past every driver step
    expect((await first).output).toMatch(/"code":999/);
    expect(calls).toEqual(['createNetwork', 'createEndpoint', 'join', 'leave', 'deleteEndpoint', 'deleteNetwork']);
    nothingLeft();
  });

  it('a delegated plugin runs outside the queue, and a failed ADD hands its address back', async () => {
    const log = join(dir, 'plugin.log');
    const release = join(dir, 'release');
    writeFileSync(
      join(dir, 'gate'),
      `#!/bin/sh
cat >/dev/null
echo "$CNI_COMMAND" >> ${log}
[ "$CNI_COMMAND" = ADD ] || exit 0
# gone with the test's folder if the test fails first
while [ ! -e ${release} ] && [ -d ${dir} ]; do sleep 0.05; done
echo '{"cniVersion":"1.0.0","ips":[{"address":"10.239.61.5/24","gateway":"10.239.61.1"}]}'
`,
    );
    chmodSync(join(dir, 'gate'), 0o755);
    failAt = 'createEndpoint';
    const add = service.exec(env('ADD'), config({ type: 'gate' }));
    for (let i = 0; i < 400 && !existsSync(log); i++) await new Promise((r) => setTimeout(r, 25));
    expect(readFileSync(log, 'utf8')).toBe('ADD\n');
    // the plugin holds its ADD; the queue is free for Docker's calls meanwhile
    await expect(queue.run(() => 'a Docker call')).resolves.toBe('a Docker call');
    expect(calls).toEqual([]);
    writeFileSync(release, '');
    const r = await add;
    expect(JSON.parse(r.output)).toMatchObject({ code: 100, msg: 'createEndpoint refused' });
    expect(calls).toEqual(['createNetwork', 'createEndpoint', 'deleteNetwork']);
    expect(readFileSync(log, 'utf8')).toBe('ADD\nDEL\n');
    nothingLeft();
  });
});

describe('CNI networks without attachments, and what a crash left allocated', () => {
  /** A CNI network as ADD records it: pool (tagged), gateway, record, the driver's row. */
  async function recorded(name: string, subnet: string): Promise<{ poolId: string }> {
    const ipam = new Ipam(ipamRepo, { machineId: () => '0123456789abcdef0123456789abcdef' });
    const pool = ipam.requestPool({ addressSpace: 'local', pool: subnet, subPool: '', options: { [CNI_POOL_OPTION]: name }, v6: false });
    const gw = ipam.requestAddress({ poolId: pool.poolId, address: '', options: { RequestAddressType: 'com.docker.network.gateway' } });
    cniRepo.insertNetwork({ name, networkId: `id-${name}`, mode: 'bridge', signature: '{}', poolId: pool.poolId, gateway: gw.address });
    new NetworkRepo(db).insertNetwork({ id: `id-${name}`, driver: 'bridge', state: 'ready', config: {}, ipv4: [], ipv6: [] });
    return { poolId: pool.poolId };
  }

  it('tsnet cni rm: refused while attached (naming how many), then removes network, pool and record', async () => {
    await recorded('n1', '10.239.64.0/24');
    const attachment = { network: 'n1', containerId: 'c1', ifName: 'eth0', state: 'ready' as const, networkId: 'id-n1', endpointId: 'e1', netns: dir, address: '10.239.64.2/24', ipam: 'tsnet', result: '{}' };
    cniRepo.insertAttachment(attachment);
    await expect(service.removeNetworkByName('n1')).rejects.toThrow("CNI network 'n1' has 1 attachment");
    expect(calls).toEqual([]);
    cniRepo.deleteAttachment('n1', 'c1', 'eth0');
    await service.removeNetworkByName('n1');
    expect(calls).toEqual(['deleteNetwork']);
    nothingLeft();
    await expect(service.removeNetworkByName('n1')).rejects.toThrow("no CNI network 'n1'");
  });

  it('start-up releases a tagged pool no record names, and addresses of a CNI pool no attachment holds', async () => {
    const { poolId } = await recorded('n1', '10.239.65.0/24');
    const ipam = new Ipam(ipamRepo, { machineId: () => '0123456789abcdef0123456789abcdef' });
    const held = ipam.requestAddress({ poolId, address: '10.239.65.5', options: {} });
    ipam.requestAddress({ poolId, address: '10.239.65.6', options: {} });
    cniRepo.insertAttachment({ network: 'n1', containerId: 'c1', ifName: 'eth0', state: 'ready', networkId: 'id-n1', endpointId: 'e1', netns: dir, address: held.address, ipam: 'tsnet', result: '{}' });
    ipam.requestPool({ addressSpace: 'local', pool: '10.239.66.0/24', subPool: '', options: { [CNI_POOL_OPTION]: 'never-recorded' }, v6: false });
    service = new CniService({ network: driver, ipam, repo: new NetworkRepo(db), cni: cniRepo, netlink: {} as Netlink, log: silentLogger, queue, ipamRecords: ipamRepo });
    await service.restore();
    expect(ipamRepo.listPools().map((p) => p.id)).toEqual([poolId]);
    expect(ipamRepo.listAllocations(poolId).map((a) => a.address).sort()).toEqual(['10.239.65.1', '10.239.65.5']);
  });
});
