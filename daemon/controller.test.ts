// The controller's start-up reconcile (restoreAtStart): the firewall's transaction is the
// firewall's detached sync, started before the drivers restore the kernel, and the promise settles
// only when that sync has: the daemon serves after it, so no request meets a table half-written.
// When the drivers changed the store meanwhile (an interrupted operation finished), the table is
// written again from the store as it is then.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import { openDatabase } from '../store/db.js';
import { NetworkRepo } from '../store/network-repo.js';
import { LinkOwner } from '../drivers/owner.js';
import type { ManagedDriver } from '../drivers/driver.js';
import type { FirewallState } from '../firewall/model.js';
import type { LinkInfo } from '../native/netlink/links.js';
import { Controller, type FirewallSync } from './controller.js';

const STATE: FirewallState = {
  networks: [{ id: 'n1', bridge: 'br-n1', subnets: ['10.1.0.0/24'], masquerade: true, internal: false }],
  mappings: [],
  endpoints: [],
};

/** A controller over one fake driver; `events` records the order of what it did. */
function controller(firewall: FirewallSync, events: string[], driverRestore: (repo: NetworkRepo) => void = () => {}) {
  const repo = new NetworkRepo(openDatabase(':memory:'));
  const driver = {
    type: 'bridge',
    restore: () => {
      events.push('driver restore');
      driverRestore(repo);
    },
    ownedLinks: () => [],
    firewallState: () => STATE,
  } as unknown as ManagedDriver;
  const sweep = { listLinks: () => [], deleteLink: () => {} };
  return new Controller([driver], repo, sweep, firewall, new LinkOwner('tsnet'), silentLogger);
}

/** A promise settled from outside. */
function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('restoreAtStart', () => {
  it('starts the detached sync, restores the kernel, and settles only when the sync has', async () => {
    const events: string[] = [];
    const write = deferred();
    const c = controller(
      {
        sync: () => void events.push('sync in process'),
        syncDetached: (networks) => {
          events.push(`detached sync of ${networks.map((n) => n.bridge).join(',')}`);
          return write.promise;
        },
      },
      events,
    );
    let settled = false;
    const restored = c.restoreAtStart().then((t) => ((settled = true), t));
    expect(events).toEqual(['detached sync of br-n1', 'driver restore']);
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    write.resolve();
    const times = await restored;
    expect(Object.keys(times)).toEqual(['firewallStart', 'read', 'drivers', 'leftovers', 'firewall']);
    expect(events).not.toContain('sync in process');
  });

  it('fails when the detached sync fails', async () => {
    const write = deferred();
    const c = controller({ sync: () => {}, syncDetached: () => write.promise }, []);
    const restored = c.restoreAtStart();
    write.reject(new Error('nftables refused the transaction'));
    await expect(restored).rejects.toThrow('nftables refused the transaction');
  });

  it('syncs in process when the firewall has no detached sync', async () => {
    const events: string[] = [];
    await controller({ sync: () => void events.push('sync in process') }, events).restoreAtStart();
    expect(events).toEqual(['sync in process', 'driver restore']);
  });

  it('writes the table again when the drivers changed the store meanwhile, not otherwise', async () => {
    const events: string[] = [];
    const firewall: FirewallSync = {
      sync: () => void events.push('sync in process'),
      syncDetached: async () => void events.push('detached sync'),
    };
    await controller(firewall, events).restoreAtStart();
    expect(events).toEqual(['detached sync', 'driver restore']);
    events.length = 0;
    // a network whose create was interrupted: the driver removes it
    const rollBack = (repo: NetworkRepo) => {
      repo.insertNetwork({ id: 'n2', driver: 'bridge', state: 'creating', config: {}, ipv4: [], ipv6: [] });
      repo.deleteNetwork('n2');
    };
    await controller(firewall, events, rollBack).restoreAtStart();
    expect(events).toEqual(['detached sync', 'driver restore', 'sync in process']);
  });

  it('removes the links of records the drivers removed, and keeps those of records that stay', async () => {
    const owner = new LinkOwner('tsnet');
    const repo = new NetworkRepo(openDatabase(':memory:'));
    for (const id of ['n1', 'n2']) repo.insertNetwork({ id, driver: 'bridge', state: id === 'n1' ? 'ready' : 'creating', config: {}, ipv4: [], ipv6: [] });
    const driver = {
      type: 'bridge',
      // an interrupted create rolled back: its record goes (the records are read before and after)
      restore: () => repo.deleteNetwork('n2'),
      ownedLinks: () => repo.listNetworks().map((n) => `br-${n.id}`),
      firewallState: () => STATE,
    } as unknown as ManagedDriver;
    const deleted: string[] = [];
    const sweep = { listLinks: () => ['br-n1', 'br-n2'].map((name) => ({ name, alias: owner.alias(name) }) as LinkInfo), deleteLink: (name: string) => void deleted.push(name) };
    await new Controller([driver], repo, sweep, { sync: () => {} }, owner, silentLogger).restoreAtStart();
    expect(deleted).toEqual(['br-n2']);
  });
});
