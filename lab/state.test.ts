// The lab's layout, its state changes and the state file's lock. The file functions run on a
// folder of this test's own (TSNET_LAB_DIR), the rest is pure.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ConflictError, NotFoundError } from '../core/errors.js';
import { tryLockFile } from '../native/flock.js';

const root = vi.hoisted(() => {
  // the state module reads its root when it loads
  const dir = `${process.env.TMPDIR ?? '/tmp'}/tsnet-lab-state-${process.pid}`;
  process.env.TSNET_LAB_DIR = dir;
  return dir;
});

import {
  checkContainerName,
  checkEtcdCount,
  checkHostCount,
  checkLabName,
  etcdMember,
  etcdOf,
  etcdUnderlay,
  formatStatus,
  hostOf,
  newHost,
  newLabState,
  readState,
  recordAddress,
  removeContainer,
  requireState,
  reserveContainer,
  saveState,
  toStatus,
  updateState,
  type LabState,
} from './state.js';

afterAll(() => rmSync(root, { recursive: true, force: true }));

const EP = 'cd'.repeat(32);

/** A lab of two hosts whose overlay was created on h1 only (h2's creation did not happen). */
function halfLab(name = 'lab1'): LabState {
  const s = newLabState({ name, leaseTtl: 5 });
  s.hosts.push(newHost(s, 1), newHost(s, 2));
  Object.assign(s.hosts[0]!, { pid: 101, networkId: 'ab'.repeat(32), poolId: 'overlay/10.77.0.0/24', gateway: '10.77.0.1/24' });
  return s;
}

describe('layout', () => {
  it('names everything after the lab and puts it where the layout says', () => {
    const s = newLabState({ name: 'lab1', leaseTtl: 5 });
    expect(s).toEqual({
      name: 'lab1',
      dir: join(root, 'lab1'),
      underlayNs: 'tsl-lab1-ul',
      etcdNs: 'tsl-lab1-etcd',
      etcdMembers: 1,
      store: 'etcd://198.51.100.2:2379',
      overlay: 'lab1',
      subnet: '10.77.0.0/24',
      leaseTtl: 5,
      hosts: [],
      containers: [],
    });
    expect(newLabState({ name: 'lab1', leaseTtl: 5, subnet: '10.78.0.0/24' }).subnet).toBe('10.78.0.0/24');
    expect(newHost(s, 3)).toEqual({
      name: 'h3',
      netns: 'tsl-lab1-h3',
      underlay: '198.51.100.13/24',
      socket: join(root, 'lab1', 'lab-lab1-h3.sock'),
      stateDir: join(root, 'lab1', 'h3'),
      log: join(root, 'lab1', 'h3.log'),
    });
  });

  it('puts etcd where the store points the daemons', () => {
    const s = newLabState({ name: 'lab1', leaseTtl: 5 });
    const e = etcdOf(s);
    expect(s.store).toBe(`etcd://${e.endpoint}`);
    expect(etcdUnderlay().split('/')[0]).toBe(e.endpoint.split(':')[0]);
    expect(e).toMatchObject({ netns: s.etcdNs, dataDir: join(s.dir, 'etcd'), log: join(s.dir, 'etcd.log') });
  });

  it('with --etcd 3: three members on the underlay below the hosts, each in its namespace, all in the store and in every initial cluster', () => {
    const s = newLabState({ name: 'lab1', leaseTtl: 5, etcd: 3 });
    expect(s.store).toBe('etcd://198.51.100.2:2379,198.51.100.3:2379,198.51.100.4:2379');
    const cluster = 'tsl-lab1-e1=http://198.51.100.2:2380,tsl-lab1-e2=http://198.51.100.3:2380,tsl-lab1-e3=http://198.51.100.4:2380';
    expect(etcdOf(s, 3)).toEqual({
      name: 'tsl-lab1-e3',
      netns: 'tsl-lab1-etcd3',
      dataDir: join(s.dir, 'etcd3'),
      endpoint: '198.51.100.4:2379',
      peer: 'http://198.51.100.4:2380',
      cluster,
      log: join(s.dir, 'etcd3.log'),
    });
    expect(etcdOf(s, 1)).toMatchObject({ netns: 'tsl-lab1-etcd', cluster });
    expect(etcdUnderlay(3)).toBe('198.51.100.4/24');
    expect(etcdMember(s, 2).netns).toBe('tsl-lab1-etcd2');
    expect(() => etcdMember(s, 4)).toThrow("lab 'lab1' has no etcd member 4: it has members 1 to 3");
    expect(() => etcdMember(s, 0)).toThrow(NotFoundError);
    expect(() => checkEtcdCount(3)).not.toThrow();
    for (const bad of [0, 8, 1.5, NaN]) expect(() => checkEtcdCount(bad)).toThrow(`--etcd ${bad}: give 1 to 7 members`);
  });

  it('takes names that fit namespace and link names, and refuses others saying what fits', () => {
    for (const ok of ['a', 'lab-1', '0123456789abcdef']) expect(() => checkLabName(ok)).not.toThrow();
    for (const bad of ['', '-a', 'Lab', 'a_b', '0123456789abcdefg']) expect(() => checkLabName(bad)).toThrow(/use 1-16 lower-case letters/);
    expect(() => checkContainerName('c-1')).not.toThrow();
    expect(() => checkContainerName('c.1')).toThrow("container name 'c.1': use 1-32 lower-case letters, digits and '-'");
    expect(() => checkHostCount(200)).not.toThrow();
    for (const bad of [0, 201, 1.5, NaN]) expect(() => checkHostCount(bad)).toThrow(`--hosts ${bad}: give 1 to 200`);
  });
});

describe('changes', () => {
  it('reserves a container name on a host with its overlay, before anything is made', () => {
    const s = halfLab();
    const r = reserveContainer(s, 'h1', 'c1', EP);
    expect(r).toEqual({ host: s.hosts[0], networkId: 'ab'.repeat(32), poolId: 'overlay/10.77.0.0/24' });
    expect(s.containers).toEqual([{ name: 'c1', host: 'h1', netns: 'tsl-lab1-c-c1', address: '', endpointId: EP }]);
  });

  it('refuses a second container of one name, a host without its overlay, and an unknown host', () => {
    const s = halfLab();
    reserveContainer(s, 'h1', 'c1', EP);
    expect(() => reserveContainer(s, 'h1', 'c1', EP)).toThrow(new ConflictError("lab 'lab1' already has a container 'c1'"));
    expect(() => reserveContainer(s, 'h2', 'c2', EP)).toThrow(/host h2 of lab 'lab1' has no overlay network: the lab came up only half/);
    expect(() => reserveContainer(s, 'h9', 'c2', EP)).toThrow(new NotFoundError("lab 'lab1' has no host 'h9': it has h1, h2"));
    expect(s.containers.map((c) => c.name)).toEqual(['c1']);
  });

  it('records the address that ends an attach, and forgets a container', () => {
    const s = halfLab();
    reserveContainer(s, 'h1', 'c1', EP);
    reserveContainer(s, 'h1', 'c2', EP);
    expect(recordAddress(s, 'c2', '10.77.0.3/24')).toMatchObject({ name: 'c2', address: '10.77.0.3/24' });
    removeContainer(s, 'c1');
    expect(s.containers).toEqual([{ name: 'c2', host: 'h1', netns: 'tsl-lab1-c-c2', address: '10.77.0.3/24', endpointId: EP }]);
    expect(() => recordAddress(s, 'c1', '10.77.0.4/24')).toThrow(NotFoundError);
    expect(hostOf(s, 'h2').name).toBe('h2');
  });
});

describe('status', () => {
  const s = halfLab();
  reserveContainer(s, 'h1', 'c1', EP);
  recordAddress(s, 'c1', '10.77.0.2/24');
  s.etcdPids = [100];

  it('--json: hosts and containers by name, namespace and address, nothing internal', () => {
    expect(toStatus(s)).toEqual({
      hosts: [
        { name: 'h1', netns: 'tsl-lab1-h1', underlay: '198.51.100.11/24' },
        { name: 'h2', netns: 'tsl-lab1-h2', underlay: '198.51.100.12/24' },
      ],
      containers: [{ name: 'c1', host: 'h1', netns: 'tsl-lab1-c-c1', address: '10.77.0.2/24' }],
    });
  });

  it('as text: which daemon runs and whether etcd does', () => {
    const running = new Set([101]);
    expect(formatStatus(s, (pid) => pid !== undefined && running.has(pid)).split('\n')).toEqual([
      "lab lab1: overlay 'lab1' 10.77.0.0/24, store etcd://198.51.100.2:2379",
      '',
      'ETCD  NAMESPACE  CLIENT  PROCESS',
      '1  tsl-lab1-etcd  198.51.100.2:2379  NOT RUNNING',
      '',
      'HOST  NAMESPACE  UNDERLAY  DAEMON',
      'h1  tsl-lab1-h1  198.51.100.11/24  pid 101',
      'h2  tsl-lab1-h2  198.51.100.12/24  not running',
      '',
      'CONTAINER  HOST  NAMESPACE  ADDRESS',
      'c1  h1  tsl-lab1-c-c1  10.77.0.2/24',
    ]);
    expect(formatStatus({ ...s, containers: [] }, () => true)).toMatch(/\n1  tsl-lab1-etcd  198\.51\.100\.2:2379  pid 100\n[^]*\(none: tsnet lab attach --host h1 NAME\)$/);
    expect(formatStatus({ ...s, hosts: [{ ...s.hosts[1]!, cut: true }] }, () => false)).toContain('\nh2  tsl-lab1-h2  198.51.100.12/24 (CUT)  not running');
  });
});

describe('the state file', () => {
  let n = 0;
  /** a saved lab of its own for each test */
  function savedLab(): LabState {
    const s = halfLab(`file${++n}`);
    mkdirSync(s.dir, { recursive: true });
    saveState(s);
    return s;
  }
  const lockOf = (s: LabState) => join(s.dir, 'state.lock');

  it('reads back what was saved; a lab never saved is not up', () => {
    const s = savedLab();
    expect(readState(s.name)).toEqual(s);
    expect(readState('never')).toBeUndefined();
    expect(() => requireState('never')).toThrow(new NotFoundError("no lab 'never' is up: start one with tsnet lab up --name never"));
  });

  it('waits while a live process holds the lock; once it lets go, every waiter applies its change to what the others saved', async () => {
    const s = savedLab();
    const held = tryLockFile(lockOf(s))!;
    const names = ['c1', 'c2', 'c3', 'c4', 'c5'];
    let done = 0;
    const updates = names.map((name) => updateState(s.name, (st) => reserveContainer(st, 'h1', name, EP)).then(() => done++));
    // several rounds of the waiters' polling
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(0);
    expect(readState(s.name)!.containers).toEqual([]);
    held.release();
    await Promise.all(updates);
    expect(readState(s.name)!.containers.map((c) => c.name).sort()).toEqual(names);
  });

  it('takes over the lock of a process that died holding it', async () => {
    const s = savedLab();
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid;
    writeFileSync(lockOf(s), String(dead));
    await updateState(s.name, (st) => reserveContainer(st, 'h1', 'c1', EP));
    expect(readState(s.name)!.containers.map((c) => c.name)).toEqual(['c1']);
  });

  it('saves nothing of a change that throws half-way, and lets go of the lock', async () => {
    const s = savedLab();
    const halfWay = updateState(s.name, (st) => {
      reserveContainer(st, 'h1', 'c1', EP);
      reserveContainer(st, 'h1', 'c1', EP);
    });
    await expect(halfWay).rejects.toThrow(new ConflictError(`lab '${s.name}' already has a container 'c1'`));
    expect(readState(s.name)!.containers).toEqual([]);
    await updateState(s.name, (st) => reserveContainer(st, 'h1', 'c2', EP));
    expect(readState(s.name)!.containers.map((c) => c.name)).toEqual(['c2']);
  });

  it('says that a lab is not up, not that its lock cannot be made (an attach on a lab never started)', async () => {
    await expect(updateState('never', () => undefined)).rejects.toThrow(new NotFoundError("no lab 'never' is up: start one with tsnet lab up --name never"));
  });
});
