// Overlay benchmarks, each beside its reference in the same run:
//  (1) throughput between containers on two lab hosts beside the bare underlay between those hosts
//      (iperf3 TCP), with the hosts' fragmentation counters read before and after;
//  (2) endpoint propagation: attach a container on h2 until h1 holds its entries and the attach is
//      done (so h1's containers reach it), p50 and p99 over ATTACHES attaches;
//  (3) time added to `docker run --rm IMAGE true` over `--network none`: tsnet's overlay beside
//      Docker's own overlay on a single-node swarm, runs interleaved in random order.
// The lab is all namespaces of its own; nothing leaves the machine.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Netlink } from '../native/netlink/netlink.js';
import { labAttach, readState } from '../lab/lab.js';
import { docker, ensureBusyboxImage } from '../docker-tests/harness.js';
import { LAYOUTS, buildLayout } from './overlay-layouts.js';
import { overlayNetnsName } from '../drivers/overlay/plan.js';
import { Cleanup, benchDaemon, inNs, median, percentile, seededRandom, sh, shuffled, table, timed, useDockerd } from './lib.js';

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

/** iperf3 TCP for SECONDS from one namespace to a server in another; Gbit/s received. */
async function iperf(fromNs: string, toNs: string, toIp: string): Promise<number> {
  const server = spawn('ip', ['netns', 'exec', toNs, 'iperf3', '-s', '-1', '-B', toIp], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      if (spawnSync('ip', ['netns', 'exec', toNs, 'ss', '-ltn', 'sport = :5201'], { encoding: 'utf8' }).stdout.includes('5201')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const out = JSON.parse(inNs(fromNs, 'iperf3', ['-c', toIp, '-t', String(SECONDS), '-J'], undefined, (SECONDS + 30) * 1000)) as {
      end: { sum_received: { bits_per_second: number } };
    };
    return out.end.sum_received.bits_per_second / 1e9;
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
  // LAYOUTS=1: the hand-built layouts (overlay-layouts.ts) measured in the same alternation
  const paths = [
    { label: 'underlay (host to host)', from: h1.netns, to: h2.netns, toIp: h2.underlay.split('/')[0] },
    { label: 'tsnet overlay (container to container)', from: a.netns, to: b.netns, toIp: b.address.split('/')[0] },
    ...(process.env.LAYOUTS === '1'
      ? LAYOUTS.map((kind) => ({ label: `hand-built: ${kind}`, ...buildLayout(kind, [h1, h2], s.underlayNs.replace(/ul$/, ''), cleanup) }))
      : []),
  ];
  // alternate, so drift hits every path alike
  const gbits = new Map<string, number[]>(paths.map((p) => [p.label, []]));
  for (let i = 0; i < RUNS; i++) for (const p of paths) gbits.get(p.label)!.push(await iperf(p.from, p.to, p.toIp));
  const fragments = fragCounters(h1.netns) + fragCounters(h2.netns) - fragBefore;
  const underlay = median(gbits.get(paths[0].label)!);
  console.log(`\n(1) TCP throughput, h1 -> h2, iperf3, median of ${RUNS} runs of`, SECONDS, 's (every run:', paths.map((p) => gbits.get(p.label)!.map((g) => g.toFixed(1)).join('/')).join(', '), ')');
  console.log(
    table(
      ['path', 'Gbit/s', 'ratio to underlay'],
      paths.map((p) => [p.label, median(gbits.get(p.label)!).toFixed(2), (median(gbits.get(p.label)!) / underlay).toFixed(2)]),
    ),
  );
  console.log(`IP fragments made or reassembled on h1 and h2 during the runs: ${fragments}`);

  if (process.env.THROUGHPUT_ONLY === '1') return;

  // (2) propagation
  // the VXLAN device is in the overlay network's own namespace (drivers/overlay/netns-layout.ts)
  const nl = Netlink.openInNetns(`/run/netns/${overlayNetnsName(h1.name, h1.networkId!)}`);
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
