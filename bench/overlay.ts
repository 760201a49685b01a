// Overlay benchmarks, each beside its reference in the same run:
//  (1) throughput between containers on two lab hosts beside the bare underlay between those hosts
//      (iperf3 TCP), with the hosts' fragmentation counters read before and after, in rounds that
//      alternate the paths; each path's ratio is also taken per round (against the underlay's run
//      of the same round) and as CPU seconds per GB, which the other load on a shared machine
//      moves far less than Gbit/s; LAYOUTS=1 and STEPS=1 (or STEPS='step;step') add hand-built paths to the rounds;
//  (2) endpoint propagation: attach a container on h2 until h1 holds its entries and the attach is
//      done (so h1's containers reach it), p50 and p99 over ATTACHES attaches;
//  (3) time added to `docker run --rm IMAGE true` over `--network none`: tsnet's overlay beside
//      Docker's own overlay on a single-node swarm, runs interleaved in random order.
// The lab is all namespaces of its own; nothing leaves the machine.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Netlink } from '../native/netlink/netlink.js';
import { labAttach, readState } from '../lab/lab.js';
import { hostInstance } from '../lab/state.js';
import { docker, ensureBusyboxImage } from '../docker-tests/harness.js';
import { LAYOUTS, buildLayout } from './overlay-layouts.js';
import { buildStep, chosenSteps } from './overlay-costs.js';
import { overlayNetnsName } from '../drivers/overlay/plan.js';
import { Cleanup, benchDaemon, inNs, median, percentile, report, seededRandom, sh, shuffled, table, timed, useDockerd } from './lib.js';

const ATTACHES = Number(process.env.ATTACHES ?? 50);
const SECONDS = Number(process.env.SECONDS ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 15);
/** throughput runs per path, alternating */
const RUNS = Number(process.env.RUNS ?? 3);
const LAB = 'bench-ov';
const IMAGE = 'tsnet-busybox:latest';
const PLUGIN = 'tsnet-bench';
const MAIN = join(import.meta.dirname, '..', 'cli', 'main.js');

function tsnetLab(args: string[]): string {
  return sh(process.execPath, [MAIN, 'lab', ...args, '--name', LAB], undefined, 120_000);
}

/** One iperf3 run: Gbit/s received, and CPU seconds per GB carried (both ends' processes). */
interface Run {
  gbits: number;
  /**
   * user + system time of the sender and the receiver per GB. The kernel here does not account
   * softirq time apart (no CONFIG_IRQ_TIME_ACCOUNTING), and the path's softirq work runs in those
   * processes' context, so this is the path's CPU work per byte, and other sessions' load, which
   * moves Gbit/s by a factor of two, moves it far less (within ~10% across one session's runs).
   */
  cpuPerGB: number;
}

/** iperf3 TCP for SECONDS from one namespace to a server in another. */
async function iperf(fromNs: string, toNs: string, toIp: string): Promise<Run> {
  const server = spawn('ip', ['netns', 'exec', toNs, 'iperf3', '-s', '-1', '-B', toIp], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      if (spawnSync('ip', ['netns', 'exec', toNs, 'ss', '-ltn', 'sport = :5201'], { encoding: 'utf8' }).stdout.includes('5201')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = JSON.parse(inNs(fromNs, 'iperf3', ['-c', toIp, '-t', String(SECONDS), '-J'], undefined, (SECONDS + 30) * 1000)) as {
      end: { sum_received: { bits_per_second: number; bytes: number; seconds: number }; cpu_utilization_percent: { host_total: number; remote_total: number } };
    };
    const { sum_received: got, cpu_utilization_percent: cpu } = out.end;
    return { gbits: got.bits_per_second / 1e9, cpuPerGB: (((cpu.host_total + cpu.remote_total) / 100) * got.seconds) / (got.bytes / 1e9) };
  } finally {
    server.kill();
  }
}

/** Fragments made and reassemblies asked for, as the namespace's kernel counts them. */
function fragCounters(ns: string): number {
  const out = inNs(ns, 'nstat', ['-saz', 'IpFragCreates', 'IpReasmReqds']);
  return out
    .split('\n')
    .filter((l) => /^Ip(FragCreates|ReasmReqds)\s/.test(l))
    .reduce((sum, l) => sum + Number(l.split(/\s+/)[1]), 0);
}

async function labBenchmarks(cleanup: Cleanup): Promise<void> {
  if (readState(LAB)) tsnetLab(['down']);
  tsnetLab(['up', '--hosts', '2']);
  cleanup.add(() => tsnetLab(['down']));
  const s = readState(LAB)!;
  const [h1, h2] = s.hosts;

  // (1) throughput
  const a = await labAttach(LAB, 'h1', 'tp-a');
  const b = await labAttach(LAB, 'h2', 'tp-b');
  const fragBefore = fragCounters(h1.netns) + fragCounters(h2.netns);
  // LAYOUTS=1: the hand-built layouts (overlay-layouts.ts), STEPS=1 or a list of steps: the overlay's path taken
  // apart (overlay-costs.ts), each measured in the same alternation
  const labPrefix = s.underlayNs.replace(/ul$/, '');
  const paths = [
    { label: 'underlay (host to host)', from: h1.netns, to: h2.netns, toIp: h2.underlay.split('/')[0] },
    { label: 'tsnet overlay (container to container)', from: a.netns, to: b.netns, toIp: b.address.split('/')[0] },
    ...(process.env.LAYOUTS === '1'
      ? LAYOUTS.map((kind) => ({ label: `hand-built: ${kind}`, ...buildLayout(kind, [h1, h2], labPrefix, cleanup) }))
      : []),
    ...chosenSteps(process.env.STEPS).map((step) => ({ label: `step: ${step}`, ...buildStep(step, [h1, h2], labPrefix, cleanup) })),
  ];
  // alternate, so drift hits every path alike
  const runs = new Map<string, Run[]>(paths.map((p) => [p.label, []]));
  for (let i = 0; i < RUNS; i++) for (const p of paths) runs.get(p.label)!.push(await iperf(p.from, p.to, p.toIp));
  const fragments = fragCounters(h1.netns) + fragCounters(h2.netns) - fragBefore;
  const of = (label: string, key: keyof Run) => runs.get(label)!.map((r) => r[key]);
  const underlay = paths[0].label;
  // each run beside the underlay's of the same round: the load of that moment hits both
  const roundRatio = (label: string) => median(of(label, 'gbits').map((g, i) => g / of(underlay, 'gbits')[i]));
  console.log(`\n(1) TCP throughput, h1 -> h2, iperf3, ${RUNS} rounds of`, SECONDS, 's (Gbit/s of every run:', paths.map((p) => of(p.label, 'gbits').map((g) => g.toFixed(1)).join('/')).join(', '), ')');
  console.log(
    table(
      ['path', 'Gbit/s', 'ratio to underlay', 'ratio, median per round', 'CPU s per GB', 'underlay CPU / this'],
      paths.map((p) => [
        p.label,
        median(of(p.label, 'gbits')).toFixed(2),
        (median(of(p.label, 'gbits')) / median(of(underlay, 'gbits'))).toFixed(2),
        roundRatio(p.label).toFixed(2),
        median(of(p.label, 'cpuPerGB')).toFixed(3),
        (median(of(underlay, 'cpuPerGB')) / median(of(p.label, 'cpuPerGB'))).toFixed(2),
      ]),
    ),
  );
  console.log(`IP fragments made or reassembled on h1 and h2 during the runs: ${fragments}`);
  const tsnetPath = paths[1].label;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const ratio = roundRatio(tsnetPath);
  report({ bench: 'overlay', measure: 'TCP throughput container to container across hosts, per-round ratio to the underlay', tsnet: r2(median(of(tsnetPath, 'gbits'))), peer: r2(median(of(underlay, 'gbits'))), unit: 'Gbit/s', ratio: r2(ratio), goal: 'ratio >= 0.9', met: ratio >= 0.9 });
  const cpu = median(of(underlay, 'cpuPerGB')) / median(of(tsnetPath, 'cpuPerGB'));
  report({ bench: 'overlay', measure: 'CPU per GB carried, underlay / overlay', tsnet: r2(median(of(tsnetPath, 'cpuPerGB'))), peer: r2(median(of(underlay, 'cpuPerGB'))), unit: 'CPU s/GB', ratio: r2(cpu), goal: '', met: null });

  if (process.env.THROUGHPUT_ONLY === '1') return;

  // (2) propagation
  // the VXLAN device is in the overlay network's own namespace (drivers/overlay/netns-layout.ts)
  const nl = Netlink.openInNetns(`/run/netns/${overlayNetnsName(hostInstance(LAB, h1.name), h1.networkId!)}`);
  cleanup.add(() => nl.close());
  const vxlan = nl.listLinks().find((l) => l.kind === 'vxlan')!.name;
  const times: number[] = [];
  const entryTimes: number[] = [];
  for (let i = 0; i < ATTACHES; i++) {
    const known = new Set(nl.listNeighbours(vxlan).map((n) => n.ip));
    const t0 = performance.now();
    let entryAt = 0;
    let attachedAt = 0;
    const attach = labAttach(LAB, 'h2', `p${i}`).then((c) => {
      attachedAt = performance.now();
      return c;
    });
    // h1's table, polled every millisecond until the new container's entry is there
    while (!entryAt) {
      if (nl.listNeighbours(vxlan).some((n) => !known.has(n.ip))) entryAt = performance.now();
      else await new Promise((r) => setTimeout(r, 1));
    }
    const c = await attach;
    if (!nl.listNeighbours(vxlan).some((n) => n.ip === c.address.split('/')[0])) throw new Error(`h1 has no entry for ${c.name}`);
    times.push(Math.max(entryAt, attachedAt) - t0);
    entryTimes.push(entryAt - t0);
  }
  const reach = spawnSync('ip', ['netns', 'exec', a.netns, 'ping', '-c', '1', '-W', '2', readState(LAB)!.containers.at(-1)!.address.split('/')[0]]).status === 0;
  console.log(`\n(2) attach on h2 until reachable from h1, ${ATTACHES} attaches (last one pinged from h1: ${reach ? 'ok' : 'FAILED'})`);
  console.log(
    table(
      ['measure', 'p50 ms', 'p99 ms'],
      [
        ['entry on h1 after the attach began', median(entryTimes).toFixed(1), percentile(entryTimes, 99).toFixed(1)],
        ['attach done and entry on h1', median(times).toFixed(1), percentile(times, 99).toFixed(1)],
      ],
    ),
  );
  const p99 = percentile(times, 99);
  report({ bench: 'overlay', measure: 'attach on h2 until reachable from h1, p99', tsnet: Math.round(p99 * 10) / 10, peer: null, unit: 'ms', ratio: null, goal: 'p99 < 100 ms', met: p99 < 100 });
}

/** Added time of `docker run` on tsnet's overlay and on Docker's overlay (single-node swarm). */
async function dockerRun(cleanup: Cleanup): Promise<void> {
  await useDockerd(cleanup);
  await ensureBusyboxImage(IMAGE);
  await benchDaemon(cleanup, `/run/docker/plugins/${PLUGIN}.sock`);

  const swarm = docker(['info', '--format', '{{.Swarm.LocalNodeState}}']).stdout.trim();
  if (swarm !== 'active') {
    const init = docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377']);
    if (init.code !== 0) throw new Error(`docker swarm init: ${init.stderr}`);
    cleanup.add(() => {
      docker(['swarm', 'leave', '--force']);
      // swarm made it for its overlay's way out and leaves it behind
      docker(['network', 'rm', 'docker_gwbridge']);
    });
  }
  const nets = [
    { label: 'none', args: ['--network', 'none'] },
    { label: 'Docker overlay (swarm, attachable)', create: ['-d', 'overlay', '--attachable', '--subnet', '10.236.70.0/24'], name: 'bench-ov-docker' },
    { label: 'tsnet overlay', create: ['-d', PLUGIN, '-o', 'type=overlay', '--subnet', '10.236.71.0/24'], name: 'bench-ov-tsnet' },
  ].map((n) => {
    if (!n.create) return { label: n.label, args: n.args! };
    docker(['network', 'rm', n.name!]);
    const r = docker(['network', 'create', ...n.create, n.name!]);
    if (r.code !== 0) throw new Error(`docker network create ${n.name}: ${r.stderr}`);
    cleanup.add(() => docker(['network', 'rm', n.name!]));
    return { label: n.label, args: ['--network', n.name!] };
  });
  const samples = new Map<string, number[]>(nets.map((n) => [n.label, []]));
  const rand = seededRandom();
  // one warm-up each, then rounds in random order
  for (const n of nets) timed('docker', ['run', '--rm', ...n.args, IMAGE, 'true']);
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of shuffled(nets, rand)) samples.get(n.label)!.push(timed('docker', ['run', '--rm', ...n.args, IMAGE, 'true']));
  }
  const none = median(samples.get('none')!);
  const added = (label: string) => median(samples.get(label)!) - none;
  const dockerAdded = added('Docker overlay (swarm, attachable)');
  const tsnetAdded = added('tsnet overlay');
  console.log(`\n(3) docker run --rm ${IMAGE} true, median of ${ROUNDS} interleaved runs`);
  console.log(
    table(
      ['network', 'run ms', 'added ms'],
      nets.map((n) => [n.label, median(samples.get(n.label)!).toFixed(0), n.label === 'none' ? '-' : added(n.label).toFixed(0)]),
    ),
  );
  console.log(`tsnet overlay adds ${(tsnetAdded / dockerAdded).toFixed(2)} of the time Docker's overlay adds`);
  const runRatio = tsnetAdded / dockerAdded;
  report({ bench: 'overlay', measure: "time an overlay adds to docker run, tsnet / Docker's overlay", tsnet: Math.round(tsnetAdded), peer: Math.round(dockerAdded), unit: 'ms', ratio: Math.round(runRatio * 100) / 100, goal: 'ratio <= 0.2', met: runRatio <= 0.2 });
}

const cleanup = new Cleanup();
try {
  if (!Number.isInteger(ATTACHES) || ATTACHES < 2 || ATTACHES > 500) throw new Error('ATTACHES must be 2..500');
  if (!Number.isInteger(RUNS) || RUNS < 1 || RUNS > 20) throw new Error('RUNS must be 1..20');
  await labBenchmarks(cleanup);
  await cleanup.run();
  // THROUGHPUT_ONLY=1: (1) alone, for comparing layouts
  if (process.env.THROUGHPUT_ONLY !== '1') await dockerRun(cleanup);
} finally {
  await cleanup.run();
}
// the lab's netlink socket and timers are closed; end even if a library keeps a handle open
process.exit(process.exitCode ?? 0);
