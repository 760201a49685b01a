// tsnet_repairs_total: what start-up reconcile (the controller's restore) and drift repair put
// back is counted by kind, once: links the restore rebuilt, leftover links it removed, operations
// it finished; addresses, tables and Docker's chains that a drift pass put back. Nothing is
// counted when nothing was missing.
import { beforeEach, describe, expect, it } from 'vitest';
import { exposition, registry } from '../core/metrics.js';
import { silentLogger } from '../core/log.js';
import { openDatabase } from '../store/db.js';
import { NetworkRepo } from '../store/network-repo.js';
import { LinkOwner } from '../drivers/owner.js';
import type { ManagedDriver } from '../drivers/driver.js';
import { Controller } from './controller.js';
import { noDrift, repairDrift, type RepairOps } from './drift.js';

async function repairs(): Promise<Record<string, number>> {
  const { body } = await exposition();
  return Object.fromEntries([...body.matchAll(/^tsnet_repairs_total\{kind="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

/**
 * A controller over one fake bridge driver whose restore brings back the links in `rebuilds`; it
 * also owns 'ctr-end', a container's end of a veth, never in the host's namespace.
 */
function controller(links: Map<string, string | undefined>, rebuilds: string[]) {
  const repo = new NetworkRepo(openDatabase(':memory:'));
  const owner = new LinkOwner('tsnet');
  const driver = {
    type: 'bridge',
    restore: () => rebuilds.forEach((l) => links.set(l, owner.alias('n1'))),
    ownedLinks: () => ['br-n1', 'veth-a', 'ctr-end'],
    firewallState: () => ({ networks: [], mappings: [], endpoints: [] }),
  } as unknown as ManagedDriver;
  const sweep = {
    listLinks: () => [...links].map(([name, alias], index) => ({ name, alias, index, mtu: 1500, mac: '', up: true, operState: 'up', flags: 0 })),
    deleteLink: (name: string) => void links.delete(name),
  };
  return { repo, c: new Controller([driver], repo, sweep, { sync() {} }, owner, silentLogger) };
}

describe('repairs counted', () => {
  beforeEach(() => registry.resetMetrics());

  it('start-up: a rebuilt bridge (not a link that is elsewhere), a leftover link, an interrupted operation', async () => {
    const links = new Map<string, string | undefined>([
      ['veth-a', 'tsnet:n1'],
      ['veth-left', 'tsnet:old'],
      ['eth0', undefined],
    ]);
    const { repo, c } = controller(links, ['br-n1']);
    repo.insertNetwork({ id: 'n2', driver: 'bridge', state: 'creating', config: {}, ipv4: [], ipv6: [] });
    c.restore();
    expect(await repairs()).toEqual({ link: 1, 'leftover-link': 1, 'interrupted-operation': 1 });
  });

  it('start-up with everything in place counts nothing', async () => {
    const links = new Map<string, string | undefined>([
      ['br-n1', 'tsnet:n1'],
      ['veth-a', 'tsnet:n1'],
    ]);
    controller(links, []).c.restore();
    expect(await repairs()).toEqual({});
  });

  it('drift: an address put back, the tables, Docker chains; not what could not be put back', async () => {
    const addrs: Record<string, string[]> = { 'br-n1': [] };
    const ops: RepairOps = {
      ownedLinks: () => ['br-n1', 'br-n2'],
      linkExists: (n) => n in addrs,
      addresses: (n) => addrs[n] ?? [],
      restore: () => void (addrs['br-n1'] = ['10.1.0.1/24']),
      tablesDiff: () => ['chain forward missing'],
      syncFirewall: () => {},
      refreshDockerCompat: () => true,
      log: silentLogger,
    };
    repairDrift({ ...noDrift(), addresses: new Set(['br-n1 10.1.0.1/24']), tables: true, dockerChains: true }, ops);
    expect(await repairs()).toEqual({ address: 1, 'docker-chains': 1 });
    // no address back, tables alone: the tables count, the address does not
    registry.resetMetrics();
    const stuck = { ...ops, restore: () => {} };
    addrs['br-n1'] = [];
    repairDrift({ ...noDrift(), addresses: new Set(['br-n1 10.1.0.1/24']) }, stuck);
    repairDrift({ ...noDrift(), tables: true }, stuck);
    expect(await repairs()).toEqual({ nftables: 1 });
  });
});
