// (b) Starting and removing a container that publishes a range of ports: Docker's bridge (one
// iptables rule per port per chain and one docker-proxy process per port and family) beside tsnet
// (map elements in one nftables transaction, no process), in one run, the two sides alternating.
// Counts the extra processes each leaves running while the container runs.
import { docker, ensureBusyboxImage } from '../docker-tests/harness.js';
import { Cleanup, benchDaemon, countDescendants, countProcesses, median, report, table, timed, useDockerd } from './lib.js';

const IMAGE = 'tsnet-busybox:latest';
const PLUGIN = 'tsnet-bench';
const SIZES = (process.env.PORTS ?? '100,1000').split(',').map(Number);
const BASE = 20000;

if (SIZES.some((n) => !Number.isInteger(n) || n < 1 || n > 10_000)) throw new Error('PORTS must be a comma-separated list of 1..10000');

type Who = 'Docker' | 'tsnet';

interface Samples {
  start: number[];
  remove: number[];
  procs: number;
}

export async function main(): Promise<void> {
  const cleanup = new Cleanup();
  try {
    await useDockerd(cleanup);
    await ensureBusyboxImage(IMAGE);
    const daemon = await benchDaemon(cleanup, `/run/docker/plugins/${PLUGIN}.sock`);
    const nets: Record<Who, string> = { Docker: 'bench-ports-docker', tsnet: 'bench-ports-tsnet' };
    for (const [name, args] of [
      [nets.Docker, ['--subnet', '10.231.202.0/24']],
      [nets.tsnet, ['-d', PLUGIN, '--subnet', '10.231.203.0/24']],
    ] as const) {
      const r = docker(['network', 'create', ...args, name]);
      if (r.code !== 0) throw new Error(`docker network create ${name}: ${r.stderr}`);
      cleanup.add(() => docker(['network', 'rm', name]));
    }
    const container = (who: Who) => `bench-ports-${who.toLowerCase()}`;
    for (const who of ['Docker', 'tsnet'] as const) cleanup.add(() => docker(['rm', '-f', container(who)]));
    // docker-proxy processes, and anything the tsnet daemon may have started
    const extraProcesses = () => countProcesses('docker-proxy') + countDescendants(daemon.pid);

    /** `samples` start + remove cycles per side, the sides alternating (and which goes first). */
    const measure = (publish: string[], samples: number): Record<Who, Samples> => {
      const out: Record<Who, Samples> = { Docker: { start: [], remove: [], procs: 0 }, tsnet: { start: [], remove: [], procs: 0 } };
      for (let i = 0; i < samples; i++) {
        for (const who of (i % 2 ? ['tsnet', 'Docker'] : ['Docker', 'tsnet']) as Who[]) {
          const before = extraProcesses();
          out[who].start.push(timed('docker', ['run', '-d', '--name', container(who), '--network', nets[who], ...publish, IMAGE, 'sleep', '600'], 600_000));
          out[who].procs = extraProcesses() - before;
          out[who].remove.push(timed('docker', ['rm', '-f', container(who)], 600_000));
        }
      }
      return out;
    };

    // the same container with no published port: what starting and removing costs anyway
    const base = measure([], 3);
    const rows: (string | number)[][] = [
      ['0 ports', 'Docker bridge', median(base.Docker.start), median(base.Docker.remove), '0', '', ''],
      ['0 ports', 'tsnet', median(base.tsnet.start), median(base.tsnet.remove), '0', '', ''],
    ];
    for (const size of SIZES) {
      // Docker takes about a minute and a half for 1,000 ports: one sample there, three for fewer
      const samples = size >= 1000 ? 1 : 3;
      const range = `${BASE}-${BASE + size - 1}`;
      const r = measure(['-p', `${range}:${range}`], samples);
      const d = r.Docker;
      const t = r.tsnet;
      // what the ports themselves add over the same container without them
      const added = (who: Who) => ({
        start: Math.max(median(r[who].start) - median(base[who].start), 0),
        remove: Math.max(median(r[who].remove) - median(base[who].remove), 0),
      });
      const ratio = (a: number, b: number) => (a / b).toFixed(3);
      for (const phase of ['start', 'remove'] as const) {
        const r = median(t[phase]) / median(d[phase]);
        report({
          bench: 'ports',
          measure: `docker ${phase === 'start' ? 'run -d' : 'rm -f'} with ${size} published ports (whole command)`,
          tsnet: Math.round(median(t[phase])),
          peer: Math.round(median(d[phase])),
          unit: 'ms',
          ratio: Math.round(r * 1000) / 1000,
          goal: 'ratio <= 0.05, no extra process',
          met: r <= 0.05 && t.procs === 0,
        });
      }
      rows.push(
        [`${size} ports`, 'Docker bridge', median(d.start), median(d.remove), String(d.procs), '', ''],
        [
          `${size} ports`,
          'tsnet',
          median(t.start),
          median(t.remove),
          String(t.procs),
          `start ${ratio(median(t.start), median(d.start))}, remove ${ratio(median(t.remove), median(d.remove))}`,
          `start ${ratio(added('tsnet').start, added('Docker').start)}, remove ${ratio(added('tsnet').remove, added('Docker').remove)}`,
        ],
      );
    }
    console.log(`docker run -d -p A-B:A-B, then docker rm -f; medians of 3 runs (1 at 1,000 ports and more)`);
    console.log(table(['published', 'network', 'start ms', 'remove ms', 'extra processes', 'tsnet / Docker, whole command', 'tsnet / Docker, time the ports add'], rows));
    console.log('target: tsnet <= 1/20 of Docker, no extra processes');
  } finally {
    await cleanup.run();
  }
}

await main();
