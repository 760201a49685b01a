// kill -9 at every step (issue 11 item 8): the daemon is started with one test fault point armed
// (core/fault-points.ts) and killed there by its own SIGKILL while a runtime's CNI ADD or DEL
// runs through the real plugin executable; then it is started again without the fault, and
// - nothing half-made is left: no row in any of tsnet's tables (attachments, CNI networks, driver
//   networks and endpoints, pools, allocations, ports), no link tagged by this daemon, no element
//   in its nftables tables, no interface in the container;
// - the runtime's retry works: DEL exits 0, the same ADD gets the same address (so the one the
//   crashed ADD took is free again) and the container reaches its gateway;
// - the network goes with its last DEL (item 9), so the state is empty again at the end.
// Every point an ADD or DEL passes, the drivers' own among them, is run; a point never reached
// fails the test (the daemon would stop cleanly instead of by SIGKILL).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { execIn, onCleanup, pings, sh, uniqueName, until } from './harness.js';
import { KILLED, daemonForFile, everythingLeft, restartWithFault, stateRows } from './crash-support.js';
import { FAULT_POINTS, type FaultPoint } from '../core/fault-points.js';

const PLUGIN = join(import.meta.dirname, '..', 'dist', 'cni', 'tsnet');
const run = uniqueName('cc');
const socket = `/run/tsnet-cni-tests/${run}.sock`;
const file = daemonForFile(run, socket);

/** The points DEL passes (the last attachment's DEL removes the network: the driver's 'network.deleting' too). */
const DEL_POINTS = FAULT_POINTS.filter((p) => p.startsWith('cni.del.') || p === 'network.deleting');
/** Every other point: ADD passes them all (on a network it makes, with a published port). */
const ADD_POINTS = FAULT_POINTS.filter((p) => !DEL_POINTS.includes(p));

interface Reply {
  code: number;
  raw: string;
}

function cni(command: 'ADD' | 'DEL', conf: object, ns: string): Reply {
  const r = spawnSync(PLUGIN, [], {
    input: JSON.stringify(conf),
    encoding: 'utf8',
    env: { PATH: process.env.PATH, TSNET_SOCKET: socket, CNI_COMMAND: command, CNI_CONTAINERID: `${ns}-id`, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_ARGS: '' },
  });
  return { code: r.status ?? 1, raw: r.stdout ?? '' };
}

function container(): string {
  const ns = uniqueName(`${run}-`);
  sh('ip', ['netns', 'add', ns]);
  onCleanup(() => spawnSync('ip', ['netns', 'del', ns]));
  return ns;
}

/** What is left of the daemon's work and in the container: [] when nothing. */
function leftovers(ns: string): string[] {
  const inside = (JSON.parse(execIn(ns, 'ip', ['-j', 'link', 'show'])) as { ifname: string }[]).filter((l) => l.ifname !== 'lo').map((l) => `in ${ns}: ${l.ifname}`);
  return [...everythingLeft(run, file.stateDir, file.linksBefore), ...inside];
}

/** Links are deleted off the request path: wait until nothing is left, or show what is. */
async function nothingLeft(ns: string): Promise<string[]> {
  await until('nothing left', () => leftovers(ns).length === 0, 10_000).catch(() => undefined);
  return leftovers(ns);
}

/**
 * Starts the daemon with `point` armed, runs `request` (which the crash must fail), then starts it
 * again without the fault; returns how the armed daemon ended and what the request got.
 */
async function crashAt(point: FaultPoint, request: () => Reply): Promise<{ ended: unknown; reply: Reply }> {
  await restartWithFault(file.daemon, point);
  const reply = request();
  const ended = await file.daemon.restart();
  return { ended, reply };
}

function network(i: number, prefix: string): { conf: object; address: string; gateway: string } {
  const subnet = `10.241.${i}`;
  return {
    conf: {
      cniVersion: '1.0.0',
      name: `${run}-${prefix}${i}`,
      type: 'tsnet',
      mode: 'bridge',
      ipam: { type: 'tsnet', subnet: `${subnet}.0/24` },
      capabilities: { portMappings: true },
      runtimeConfig: { ips: [`${subnet}.5/24`], portMappings: [{ hostPort: 18300 + i, containerPort: 80, protocol: 'tcp' }] },
    },
    address: `${subnet}.5/24`,
    gateway: `${subnet}.1`,
  };
}

/** ADD that must work: the address asked for, the gateway reachable, state recorded; then DEL, and nothing left. */
async function addWorksThenDel(n: ReturnType<typeof network>, ns: string): Promise<void> {
  const r = cni('ADD', n.conf, ns);
  expect(r.code, r.raw).toBe(0);
  expect((JSON.parse(r.raw) as { ips: { address: string }[] }).ips[0].address).toBe(n.address);
  expect(pings(ns, n.gateway)).toBe(true);
  // the checks below see state when there is some
  expect(stateRows(file.stateDir).some((l) => l.startsWith('cni_networks:'))).toBe(true);
  expect(leftovers(ns).length).toBeGreaterThan(0);
  expect(cni('DEL', n.conf, ns)).toEqual({ code: 0, raw: '' });
  expect(await nothingLeft(ns)).toEqual([]);
}

describe('a CNI ADD killed at any step', () => {
  ADD_POINTS.forEach((point, i) => {
    it(`at ${point}: the next start leaves nothing of it, and the same ADD then works`, async () => {
      const ns = container();
      const n = network(i + 1, 'a');
      const { ended, reply } = await crashAt(point, () => cni('ADD', n.conf, ns));
      expect(ended).toEqual(KILLED);
      expect(reply.code).not.toBe(0);
      expect(await nothingLeft(ns)).toEqual([]);
      await addWorksThenDel(n, ns);
    }, 60_000);
  });
});

describe('a CNI DEL killed at any step', () => {
  DEL_POINTS.forEach((point, i) => {
    it(`at ${point}: the next start finishes it, DEL again exits 0, and a new ADD works`, async () => {
      const ns = container();
      const n = network(100 + i, 'd');
      const added = cni('ADD', n.conf, ns);
      expect(added.code, added.raw).toBe(0);
      const { ended, reply } = await crashAt(point, () => cni('DEL', n.conf, ns));
      expect(ended).toEqual(KILLED);
      expect(reply.code).not.toBe(0);
      expect(await nothingLeft(ns)).toEqual([]);
      expect(cni('DEL', n.conf, ns)).toEqual({ code: 0, raw: '' });
      await addWorksThenDel(n, ns);
    }, 60_000);
  });
});
