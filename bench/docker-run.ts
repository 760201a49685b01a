// (a) Time a network adds to `docker run --rm IMAGE true` over `--network none`: Docker's own
// bridge (its default `bridge` network and a user-defined one) and macvlan beside tsnet's, runs
// interleaved in one go so drift hits all alike. `docker events` tells which phase the time goes to. The macvlan parents are veth ends whose peers
// sit in a namespace of the benchmark's own, so no traffic leaves the machine.
import { spawn } from 'node:child_process';
import { docker, ensureBusyboxImage } from '../docker-tests/harness.js';
import { Cleanup, benchDaemon, makeNs, median, report, seededRandom, sh, shuffled, table, timed, useDockerd } from './lib.js';

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const IMAGE = 'tsnet-busybox:latest';
const PLUGIN = 'tsnet-bench';

if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 1000) throw new Error('ROUNDS must be 1..1000');

/** `docker events` as JSON lines, for as long as it runs. */
class DockerEvents {
  readonly lines: string[] = [];
  private readonly child = spawn('docker', ['events', '--format', '{{json .}}'], { stdio: ['ignore', 'pipe', 'ignore'] });
  private buffered = '';

  constructor() {
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      const parts = (this.buffered + chunk).split('\n');
      this.buffered = parts.pop()!;
      this.lines.push(...parts.filter((l) => l.trim()));
    });
  }

  /** Stops the stream after a moment, so the last run's events are in. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    await new Promise((r) => setTimeout(r, 500));
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill();
    await exited;
  }
}

interface Phases {
  connect: number[];
  start: number[];
  start2die: number[];
  teardown: number[];
  destroy: number[];
}

/** Durations (ms) between a run's container and network events, per network. */
function phasesByNetwork(lines: string[], runNet: Map<string, string>): Map<string, Phases> {
  interface Ev {
    Type: string;
    Action: string;
    timeNano: number;
    Actor: { ID: string; Attributes: Record<string, string> };
  }
  const byContainer = new Map<string, Map<string, number>>();
  const nameOf = new Map<string, string>();
  for (const line of lines) {
    let e: Ev;
    try {
      e = JSON.parse(line) as Ev;
    } catch {
      continue;
    }
    const id = e.Type === 'container' ? e.Actor.ID : e.Type === 'network' ? e.Actor.Attributes.container : undefined;
    if (!id) continue;
    if (e.Type === 'container' && e.Actor.Attributes.name) nameOf.set(id, e.Actor.Attributes.name);
    const key = `${e.Type} ${e.Action}`;
    const times = byContainer.get(id) ?? new Map<string, number>();
    if (!times.has(key)) times.set(key, e.timeNano / 1e6);
    byContainer.set(id, times);
  }
  const out = new Map<string, Phases>();
  for (const [id, t] of byContainer) {
    const net = runNet.get(nameOf.get(id) ?? '');
    const need = ['container create', 'network connect', 'container start', 'container die', 'network disconnect', 'container destroy'];
    if (!net || !need.every((k) => t.has(k))) continue;
    const at = (k: string) => t.get(k)!;
    const p = out.get(net) ?? { connect: [], start: [], start2die: [], teardown: [], destroy: [] };
    p.connect.push(at('network connect') - at('container create'));
    p.start.push(at('container start') - at('network connect'));
    p.start2die.push(at('container die') - at('container start'));
    p.teardown.push(at('network disconnect') - at('container die'));
    p.destroy.push(at('container destroy') - at('network disconnect'));
    out.set(net, p);
  }
  return out;
}

export async function main(): Promise<void> {
  const cleanup = new Cleanup();
  try {
    await useDockerd(cleanup);
    await ensureBusyboxImage(IMAGE);
    await benchDaemon(cleanup, `/run/docker/plugins/${PLUGIN}.sock`);
    const lan = makeNs('tsnet-bench-lan', cleanup);
    for (const parent of ['bmvdocker', 'bmvtsnet']) {
      sh('ip', ['link', 'add', parent, 'type', 'veth', 'peer', 'name', `${parent}l`, 'netns', lan]);
      cleanup.add(() => sh('ip', ['link', 'del', parent]));
      sh('ip', ['link', 'set', parent, 'up']);
    }
    for (const [name, args] of [
      ['bench-docker', ['--subnet', '10.231.200.0/24']],
      ['bench-tsnet', ['-d', PLUGIN, '--subnet', '10.231.201.0/24']],
      ['bench-docker-mv', ['-d', 'macvlan', '-o', 'parent=bmvdocker', '--subnet', '10.231.204.0/24']],
      ['bench-tsnet-mv', ['-d', PLUGIN, '-o', 'type=macvlan', '-o', 'parent=bmvtsnet', '--subnet', '10.231.205.0/24']],
    ] as const) {
      const r = docker(['network', 'create', ...args, name]);
      if (r.code !== 0) throw new Error(`docker network create ${name}: ${r.stderr}`);
      cleanup.add(() => docker(['network', 'rm', name]));
    }
    const nets = ['none', 'bridge', 'bench-docker', 'bench-tsnet', 'bench-docker-mv', 'bench-tsnet-mv'];
    const runs: Record<string, number[]> = Object.fromEntries(nets.map((n) => [n, []]));
    // container name -> network, for the events
    const runNet = new Map<string, string>();
    const run = (net: string, name: string) => {
      runNet.set(name, net);
      return timed('docker', ['run', '--rm', '--name', name, '--network', net, IMAGE, 'true'], 120_000);
    };
    // one warm-up each, then rounds over every network, each round in a fresh random order (no
    // network always runs right after the same other one)
    for (const net of nets) run(net, `tsnet-bench-warmup-${net}`);
    const events = new DockerEvents();
    cleanup.add(() => events.stop());
    const rand = seededRandom();
    for (let i = 0; i < ROUNDS; i++) {
      for (const net of shuffled(nets, rand)) runs[net].push(run(net, `tsnet-bench-${i}-${net}`));
    }
    await events.stop();
    const none = median(runs.none);
    const added = (net: string) => median(runs[net]) - none;
    const ratio = (a: string, b: string) => (added(a) / added(b)).toFixed(2);
    console.log(`docker run --rm ${IMAGE} true, median of ${ROUNDS} interleaved runs each (random order in each round)`);
    console.log(
      table(
        ['network', 'median ms', 'added over none ms', 'tsnet / Docker added'],
        [
          ['none', none, 0, ''],
          ['Docker default `bridge` network', median(runs.bridge), added('bridge'), ''],
          ['Docker bridge (user-defined)', median(runs['bench-docker']), added('bench-docker'), ''],
          ['tsnet bridge', median(runs['bench-tsnet']), added('bench-tsnet'), `${ratio('bench-tsnet', 'bench-docker')} (vs default bridge ${ratio('bench-tsnet', 'bridge')})`],
          ['Docker macvlan', median(runs['bench-docker-mv']), added('bench-docker-mv'), ''],
          ['tsnet macvlan', median(runs['bench-tsnet-mv']), added('bench-tsnet-mv'), ratio('bench-tsnet-mv', 'bench-docker-mv')],
        ],
      ),
    );
    console.log(`target: tsnet's added time <= 0.5 x Docker's`);
    for (const [tsnet, peer, what] of [
      ['bench-tsnet', 'bench-docker', 'bridge (user-defined)'],
      ['bench-tsnet-mv', 'bench-docker-mv', 'macvlan'],
    ] as const) {
      const r = added(tsnet) / added(peer);
      report({ bench: 'docker-run', measure: `time a ${what} network adds to docker run (median)`, tsnet: Math.round(added(tsnet) * 10) / 10, peer: Math.round(added(peer) * 10) / 10, unit: 'ms', ratio: Math.round(r * 100) / 100, goal: 'ratio <= 0.5', met: r <= 0.5 });
    }

    // where the time goes, from dockerd's own events
    const phases = phasesByNetwork(events.lines, runNet);
    const labels: Record<string, string> = {
      bridge: 'Docker default `bridge`',
      'bench-docker': 'Docker bridge (user-defined)',
      'bench-tsnet': 'tsnet bridge',
      'bench-docker-mv': 'Docker macvlan',
      'bench-tsnet-mv': 'tsnet macvlan',
    };
    const phaseNone = phases.get('none');
    if (phaseNone) {
      console.log('');
      console.log('where the added time goes: median ms of each phase over --network none, from `docker events`');
      console.log(
        table(
          ['network', 'create -> network connect', 'network connect -> start', 'die -> network disconnect', 'other phases'],
          Object.entries(labels).map(([net, label]) => {
            const p = phases.get(net);
            if (!p) return [label, '-', '-', '-', '-'];
            const d = (k: keyof Phases) => median(p[k]) - median(phaseNone[k]);
            return [label, d('connect'), d('start'), d('teardown'), d('start2die') + d('destroy')];
          }),
        ),
      );
      console.log(
        'Docker sets up its embedded DNS server for every user-defined network, whatever the driver (remote ones included), ' +
          'and not for its default `bridge`: their difference in "connect -> start" is that set-up.',
      );
    }
  } finally {
    await cleanup.run();
  }
}

await main();
