// One CNI ADD+DEL cycle on a fresh network namespace: tsnet's plugin (a C client of the running
// daemon) beside the reference `bridge` plugin with `host-local` IPAM from Debian's
// containernetworking-plugins, both run as a runtime runs them (CNI_* variables, stdin), cycles
// interleaved in random order. CYCLES=30 by default (median of at least 20 wanted).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup, benchDaemon, median, percentile, seededRandom, sh, shuffled, table } from './lib.js';

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

function invoke(c: Case, command: 'ADD' | 'DEL', netns: string, id: string): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(c.plugin, [], {
    input: JSON.stringify(c.conf),
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...c.env, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: REFERENCE_DIR },
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${c.label} ${command} failed: ${r.stdout}${r.stderr}`);
  return ms;
}

const cleanup = new Cleanup();
try {
  if (!Number.isInteger(CYCLES) || CYCLES < 1 || CYCLES > 1000) throw new Error('CYCLES must be 1..1000');
  await benchDaemon(cleanup, SOCKET);
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
  // one warm-up cycle each (the first ADD also makes the network), then the measured ones
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
} finally {
  await cleanup.run();
}
