// One CNI ADD+DEL cycle on a fresh network namespace: tsnet's plugin (a C client of the running
// daemon) beside the reference `bridge` plugin with `host-local` IPAM from Debian's
// containernetworking-plugins, both run as a runtime runs them (CNI_* variables, stdin), cycles
// interleaved in random order. CYCLES=30 by default (median of at least 20 wanted).
// Then where tsnet's ADD spends its time: the client alone (VERSION, answered without the daemon),
// a round trip through the daemon that does nothing (STATUS), the daemon's own time per ADD and
// its steps, from its log at debug level (cni-service.ts logs "CNI ADD steps");
// KEEP_DAEMON_LOG=FILE keeps a copy of that log.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, benchDaemon, median, percentile, report, runCni, seededRandom, sh, shuffled, table, type CniCall } from './lib.js';

const CYCLES = Number(process.env.CYCLES ?? 30);
const REFERENCE_DIR = '/usr/lib/cni';
const TSNET_PLUGIN = join(import.meta.dirname, '..', 'cni', 'tsnet');
const SOCKET = '/run/tsnet-bench/cni-bench.sock';

interface Case {
  label: string;
  plugin: string;
  conf: object;
  env: Record<string, string>;
}

function invoke(c: Case, command: CniCall['command'], netns: string, id: string): number {
  return runCni({ plugin: c.plugin, conf: c.conf, env: c.env, command, netns, containerId: id }).ms;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The daemon's log lines (pino JSON) with this message. */
function logLines(path: string, msg: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`"msg":"${msg}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Where one tsnet ADD spends its time: outside the daemon, in it, and its steps there. */
function breakdown(c: Case, addMedian: number, logPath: string): void {
  const ns = 'tsnet-bench-cni-probe';
  sh('ip', ['netns', 'add', ns]);
  let version: number[];
  let status: number[];
  try {
    version = Array.from({ length: CYCLES }, () => invoke(c, 'VERSION', ns, 'probe'));
    // STATUS is a CNI 1.1 command
    const c11 = { ...c, conf: { ...c.conf, cniVersion: '1.1.0' } };
    status = Array.from({ length: CYCLES }, () => invoke(c11, 'STATUS', ns, 'probe'));
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
  // the measured ADDs: the keeper's (it made the network) and the warm-up's come first
  const calls = logLines(logPath, 'Cni.Exec ADD').slice(2);
  if (process.env.KEEP_DAEMON_LOG) copyFileSync(logPath, process.env.KEEP_DAEMON_LOG);
  const stepLines = logLines(logPath, 'CNI ADD steps').slice(2);
  const inDaemon = median(calls.map((l) => Number(l.ms)));
  const stepNames = [...new Set(stepLines.flatMap((l) => Object.keys(l.ms as Record<string, number>)))];
  const stepMedian = (name: string) => median(stepLines.map((l) => (l.ms as Record<string, number>)[name] ?? 0));
  const stepsTotal = stepNames.reduce((sum, n) => sum + stepMedian(n), 0);
  const rows: (string | number)[][] = [
    ['ADD end to end (runtime spawns the client until it exits)', addMedian.toFixed(2)],
    ['  client start and exit alone (VERSION: no daemon)', median(version).toFixed(2)],
    ['  client + socket + HTTP round trip, no work (STATUS)', median(status).toFixed(2)],
    ['  the daemon, request in to reply out (its log)', inDaemon.toFixed(2)],
    ...stepNames.map((n) => [`    ${n}`, stepMedian(n).toFixed(2)]),
    ['    HTTP parsing, CNI parsing, reply (the rest)', (inDaemon - stepsTotal).toFixed(2)],
    ['  outside the daemon (end to end minus the daemon)', (addMedian - inDaemon).toFixed(2)],
  ];
  console.log(`\nwhere tsnet's ADD spends its time (medians of ${calls.length} ADDs; a step's median each, so the parts need not add up exactly)`);
  console.log(table(['part', 'ms'], rows));
  report({ bench: 'cni-cycle', measure: 'CNI ADD inside the daemon, median', tsnet: round(inDaemon), peer: null, unit: 'ms', ratio: null, goal: '', met: null });
}

const cleanup = new Cleanup();
try {
  if (!Number.isInteger(CYCLES) || CYCLES < 1 || CYCLES > 1000) throw new Error('CYCLES must be 1..1000');
  // debug: the daemon logs each ADD's steps (and each call's body, a little more log to write)
  process.env.TSNET_LOG_LEVEL = 'debug';
  const daemon = await benchDaemon(cleanup, SOCKET);
  const hostLocalDir = mkdtempSync(join(tmpdir(), 'tsnet-bench-hostlocal-'));
  cleanup.add(() => rmSync(hostLocalDir, { recursive: true, force: true }));
  cleanup.add(() => spawnSync('ip', ['link', 'del', 'cnibench0']));

  const cases: Case[] = [
    {
      label: 'reference bridge + host-local',
      plugin: join(REFERENCE_DIR, 'bridge'),
      conf: { cniVersion: '1.0.0', name: 'bench-ref', type: 'bridge', bridge: 'cnibench0', isGateway: true, ipMasq: true, ipam: { type: 'host-local', subnet: '10.239.200.0/24', dataDir: hostLocalDir } },
      env: {},
    },
    {
      label: 'tsnet (bridge mode, tsnet IPAM)',
      plugin: TSNET_PLUGIN,
      conf: { cniVersion: '1.0.0', name: 'bench-tsnet', type: 'tsnet', mode: 'bridge', ipam: { type: 'tsnet', subnet: '10.239.201.0/24' } },
      env: { TSNET_SOCKET: SOCKET },
    },
  ];
  const add = new Map(cases.map((c) => [c.label, [] as number[]]));
  const del = new Map(cases.map((c) => [c.label, [] as number[]]));
  const rand = seededRandom();
  // a container that stays attached through all cycles, as on any network in use: without it
  // tsnet would make its network at each ADD and remove it at each DEL (it drops a CNI network
  // with its last attachment), which the cycles are not about; those two are timed here once
  const keeper = (c: Case) => `tsnet-bench-cni-keep-${cases.indexOf(c)}`;
  const firstAdd = new Map<string, number>();
  for (const c of cases) {
    sh('ip', ['netns', 'add', keeper(c)]);
    cleanup.add(() => spawnSync('ip', ['netns', 'del', keeper(c)]));
    firstAdd.set(c.label, invoke(c, 'ADD', keeper(c), 'bench-keeper'));
  }
  // one warm-up cycle each, then the measured ones
  for (let i = -1; i < CYCLES; i++) {
    for (const c of shuffled(cases, rand)) {
      const ns = `tsnet-bench-cni-${cases.indexOf(c)}-${i + 1}`;
      const id = `bench-${i + 1}`;
      sh('ip', ['netns', 'add', ns]);
      let a: number;
      let d: number;
      try {
        a = invoke(c, 'ADD', ns, id);
        d = invoke(c, 'DEL', ns, id);
      } finally {
        spawnSync('ip', ['netns', 'del', ns]);
      }
      if (i >= 0) {
        add.get(c.label)!.push(a);
        del.get(c.label)!.push(d);
      }
    }
  }
  const cycle = (label: string) => add.get(label)!.map((a, i) => a + del.get(label)![i]);
  console.log(`\nCNI ADD+DEL on a fresh namespace, ${CYCLES} cycles each, interleaved`);
  console.log(
    table(
      ['plugin', 'ADD median ms', 'DEL median ms', 'cycle median ms', 'cycle p90 ms'],
      cases.map((c) => [c.label, median(add.get(c.label)!).toFixed(1), median(del.get(c.label)!).toFixed(1), median(cycle(c.label)).toFixed(1), percentile(cycle(c.label), 90).toFixed(1)]),
    ),
  );
  const ratio = median(cycle(cases[1].label)) / median(cycle(cases[0].label));
  console.log(`tsnet's cycle takes ${ratio.toFixed(2)} of the reference plugin's`);
  report({ bench: 'cni-cycle', measure: 'CNI ADD+DEL cycle, median', tsnet: round(median(cycle(cases[1].label))), peer: round(median(cycle(cases[0].label))), unit: 'ms', ratio: round(ratio), goal: 'ratio <= 0.3', met: ratio <= 0.3 });
  report({ bench: 'cni-cycle', measure: 'CNI ADD, median', tsnet: round(median(add.get(cases[1].label)!)), peer: round(median(add.get(cases[0].label)!)), unit: 'ms', ratio: null, goal: '', met: null });
  breakdown(cases[1], median(add.get(cases[1].label)!), daemon.logPath);
  const lastDel = new Map(cases.map((c) => [c.label, invoke(c, 'DEL', keeper(c), 'bench-keeper')]));
  console.log('\nthe ADD that makes the network and the DEL of the last attachment (tsnet removes the network then), once each');
  console.log(table(['plugin', 'first ADD ms', 'last DEL ms'], cases.map((c) => [c.label, firstAdd.get(c.label)!.toFixed(1), lastDel.get(c.label)!.toFixed(1)])));
} finally {
  await cleanup.run();
}
