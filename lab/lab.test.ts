// The lab's attach and detach as steps: the calls reach the daemon's own server (test-support/fake-daemon.ts) in
// dockerd's order, and an attach that fails at any step unmakes what the steps before it made,
// newest first, leaving the lab's state as it was. Namespaces and the container side are stood in
// for (they are the kernel's: netns-tests/overlay-lab.test.ts drives the real thing).
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConflictError } from '../core/errors.js';
import { FAKE_LINK, FAKE_MAC, startFakeDaemon, type FakeDaemon } from '../test-support/fake-daemon.js';
import { PluginError } from './plugin-client.js';

const root = vi.hoisted(() => {
  // the state module reads its root when it loads
  const dir = `${process.env.TMPDIR ?? '/tmp'}/tsnet-lab-attach-${process.pid}`;
  process.env.TSNET_LAB_DIR = dir;
  return dir;
});

/** What the steps did to namespaces and sandboxes, in order, beside what the daemon received. */
const kernel = vi.hoisted(() => ({ done: [] as string[], failSandbox: false }));

vi.mock('./processes.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('./processes.js')>()),
  addNetns: (ns: string) => void kernel.done.push(`add ${ns}`),
  delNetns: (ns: string) => void kernel.done.push(`del ${ns}`),
  inNetns: <T>(_ns: string, fn: (nl: never) => T): T => fn(undefined as never),
}));
vi.mock('../runtime/sandbox.js', () => ({
  configureSandbox: (_nl: unknown, link: unknown) => {
    if (kernel.failSandbox) throw new Error('link vanished');
    kernel.done.push(`sandbox ${JSON.stringify(link)}`);
    return { mac: FAKE_MAC, mtu: 1450 };
  },
}));

import { labAttach, labDetach } from './lab.js';
import { newHost, newLabState, readState, saveState } from './state.js';

const NET = 'ab'.repeat(32);
const POOL = 'overlay/10.77.0.0/24';

let d: FakeDaemon;
beforeAll(async () => {
  d = await startFakeDaemon();
  const s = newLabState({ name: 'lab1', leaseTtl: 5 });
  s.hosts.push({ ...newHost(s, 1), socket: d.socket, networkId: NET, poolId: POOL, gateway: '10.77.0.1/24' });
  mkdirSync(s.dir, { recursive: true });
  saveState(s);
});
afterAll(async () => {
  await d.close();
  rmSync(root, { recursive: true, force: true });
});
beforeEach(() => {
  d.received.length = 0;
  kernel.done.length = 0;
  kernel.failSandbox = false;
});

const names = () => readState('lab1')!.containers.map((c) => c.name);
const endpointOf = (name: string) => readState('lab1')!.containers.find((c) => c.name === name)!.endpointId;
const calls = () => d.received.map((r) => r.call);

describe('attach', () => {
  it('takes an address, makes the endpoint, joins, sets up the container side, and records the address', async () => {
    const c = await labAttach('lab1', 'h1', 'c1');
    expect(c).toMatchObject({ name: 'c1', host: 'h1', netns: 'tsl-lab1-c-c1', address: '10.77.0.2/24' });
    const ep = endpointOf('c1');
    expect(d.received).toEqual([
      { call: 'requestAddress', req: { poolId: POOL, address: '', options: {} } },
      { call: 'createEndpoint', req: expect.objectContaining({ networkId: NET, endpointId: ep, address: '10.77.0.2/24', macAddress: '' }) },
      { call: 'join', req: expect.objectContaining({ networkId: NET, endpointId: ep, sandboxKey: '/run/netns/tsl-lab1-c-c1' }) },
    ]);
    expect(kernel.done).toEqual([
      'add tsl-lab1-c-c1',
      `sandbox ${JSON.stringify({ link: FAKE_LINK, netnsPath: '/run/netns/tsl-lab1-c-c1', ifName: 'eth0', addresses: ['10.77.0.2/24'], gateway4: '10.77.0.1', mac: FAKE_MAC })}`,
    ]);
    expect(readState('lab1')!.containers.find((x) => x.name === 'c1')!.address).toBe('10.77.0.2/24');
  });

  it('refused at Join: deletes the endpoint, releases the address, removes the namespace and the name, newest first', async () => {
    d.failNext('join', 'the overlay is gone');
    await expect(labAttach('lab1', 'h1', 'c2')).rejects.toThrow(new PluginError('NetworkDriver.Join', 'the overlay is gone', 'invalid'));
    const made = d.received[1]!.req as { endpointId: string; address: string };
    expect(calls()).toEqual(['requestAddress', 'createEndpoint', 'join', 'deleteEndpoint', 'releaseAddress']);
    expect(d.received.slice(3)).toEqual([
      { call: 'deleteEndpoint', req: { networkId: NET, endpointId: made.endpointId } },
      { call: 'releaseAddress', req: { poolId: POOL, address: made.address } },
    ]);
    expect(kernel.done).toEqual(['add tsl-lab1-c-c2', 'del tsl-lab1-c-c2']);
    // c2 is gone, the attached c1 is left alone
    expect(names()).toEqual(['c1']);
  });

  it('failing on the container side: leaves before deleting the endpoint', async () => {
    kernel.failSandbox = true;
    await expect(labAttach('lab1', 'h1', 'c3')).rejects.toThrow('link vanished');
    expect(calls()).toEqual(['requestAddress', 'createEndpoint', 'join', 'leave', 'deleteEndpoint', 'releaseAddress']);
    expect(kernel.done).toEqual(['add tsl-lab1-c-c3', 'del tsl-lab1-c-c3']);
    expect(names()).toEqual(['c1']);
  });

  it('refused at the first call: only the namespace and the name are undone', async () => {
    d.failNext('requestAddress', 'pool is full');
    await expect(labAttach('lab1', 'h1', 'c4')).rejects.toThrow('IpamDriver.RequestAddress: pool is full');
    expect(calls()).toEqual(['requestAddress']);
    expect(kernel.done).toEqual(['add tsl-lab1-c-c4', 'del tsl-lab1-c-c4']);
    expect(names()).toEqual(['c1']);
  });

  it('a name in use is refused before anything is made', async () => {
    await expect(labAttach('lab1', 'h1', 'c1')).rejects.toThrow(new ConflictError("lab 'lab1' already has a container 'c1'"));
    expect(calls()).toEqual([]);
    expect(kernel.done).toEqual([]);
  });
});

describe('detach', () => {
  it('leaves, removes the namespace, deletes the endpoint, releases the address, forgets the name', async () => {
    const { address } = await labAttach('lab1', 'h1', 'c5');
    const ep = endpointOf('c5');
    d.received.length = 0;
    kernel.done.length = 0;
    await labDetach('lab1', 'c5');
    expect(d.received).toEqual([
      { call: 'leave', req: { networkId: NET, endpointId: ep } },
      { call: 'deleteEndpoint', req: { networkId: NET, endpointId: ep } },
      { call: 'releaseAddress', req: { poolId: POOL, address } },
    ]);
    expect(kernel.done).toEqual(['del tsl-lab1-c-c5']);
    expect(names()).toEqual(['c1']);
  });
});
