// (b) Starting and removing a container that publishes a range of ports: Docker's bridge (one
// iptables rule and one docker-proxy process per port) beside tsnet (map elements in one nftables
// transaction, no process), in one run. Counts the extra processes each leaves running.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureBusyboxImage, ensureDockerd, startTsnetDaemon } from '../docker-tests/harness.js';
import { spawnSync } from 'node:child_process';
import { Cleanup, countProcesses, median, table, timed } from './lib.js';

const IMAGE = 'tsnet-busybox:latest';
const PLUGIN = 'tsnet-bench';
const SIZES = (process.env.PORTS ?? '100,1000').split(',').map(Number);
const BASE = 20000;

export async function main(): Promise<void> {
  const cleanup = new Cleanup();
  try {
    await ensureDockerd();
    await ensureBusyboxImage(IMAGE);
    const stateDir = mkdtempSync(join(tmpdir(), 'tsnet-bench-'));
    cleanup.add(() => rmSync(stateDir, { recursive: true, force: true }));
    // the daemon's table outlives it by design (networks keep working); the benchmark's goes
    cleanup.add(() => spawnSync('nft', ['delete', 'table', 'inet', PLUGIN.replace(/-/g, '_')]));
    const daemon = await startTsnetDaemon({ stateDir, socketPath: `/run/docker/plugins/${PLUGIN}.sock` });
    cleanup.add(() => daemon.stop());
    const nets = { Docker: 'bench-ports-docker', tsnet: 'bench-ports-tsnet' };
    for (const [name, args] of [
      [nets.Docker, ['--subnet', '10.231.202.0/24']],
      [nets.tsnet, ['-d', PLUGIN, '--subnet', '10.231.203.0/24']],
    ] as const) {
      const r = docker(['network', 'create', ...args, name]);
      if (r.code !== 0) throw new Error(r.stderr);
      cleanup.add(() => docker(['network', 'rm', name]));
    }

    // the same container with no published port: what starting and removing costs anyway
    const baseline: Record<string, { start: number[]; remove: number[] }> = {};
    for (const [who, net] of Object.entries(nets)) {
      baseline[who] = { start: [], remove: [] };
      for (let i = 0; i < 3; i++) {
        const name = `bench-ports-${who.toLowerCase()}`;
        cleanup.add(() => docker(['rm', '-f', name]));
        baseline[who].start.push(timed('docker', ['run', '-d', '--name', name, '--network', net, IMAGE, 'sleep', '600']));
        baseline[who].remove.push(timed('docker', ['rm', '-f', name]));
      }
    }
    const base = (who: string) => ({ start: median(baseline[who].start), remove: median(baseline[who].remove) });

    const rows: (string | number)[][] = [
      ['0 ports', 'Docker bridge', base('Docker').start, base('Docker').remove, 0, '', ''],
      ['0 ports', 'tsnet', base('tsnet').start, base('tsnet').remove, 0, '', ''],
    ];
    for (const size of SIZES) {
      // Docker takes about a minute and a half for 1,000 ports: one sample there, three for fewer
      const samples = size >= 1000 ? 1 : 3;
      const range = `${BASE}-${BASE + size - 1}:${BASE}-${BASE + size - 1}`;
      const result: Record<string, { start: number[]; remove: number[]; procs: number }> = {};
      for (const [who, net] of Object.entries(nets)) {
        result[who] = { start: [], remove: [], procs: 0 };
        for (let i = 0; i < samples; i++) {
          const name = `bench-ports-${who.toLowerCase()}`;
          cleanup.add(() => docker(['rm', '-f', name]));
          const before = countProcesses('docker-proxy');
          result[who].start.push(timed('docker', ['run', '-d', '--name', name, '--network', net, '-p', range, IMAGE, 'sleep', '600']));
          result[who].procs = countProcesses('docker-proxy') - before;
          result[who].remove.push(timed('docker', ['rm', '-f', name]));
        }
      }
      const d = result.Docker;
      const t = result.tsnet;
      const added = (who: string, r: { start: number[]; remove: number[] }) => ({
        start: median(r.start) - base(who).start,
        remove: median(r.remove) - base(who).remove,
      });
      const da = added('Docker', d);
      const ta = added('tsnet', t);
      const ratio = (a: number, b: number) => (a / b).toFixed(3);
      rows.push(
        [`${size} ports`, 'Docker bridge', median(d.start), median(d.remove), d.procs, '', ''],
        [
          `${size} ports`,
          'tsnet',
          median(t.start),
          median(t.remove),
          t.procs,
          `start ${ratio(median(t.start), median(d.start))}, remove ${ratio(median(t.remove), median(d.remove))}`,
          `start ${ratio(Math.max(ta.start, 0), da.start)}, remove ${ratio(Math.max(ta.remove, 0), da.remove)}`,
        ],
      );
    }
    console.log(`docker run -d -p A-B:A-B, then docker rm -f (target: tsnet <= 1/20 of Docker, no extra processes)`);
    console.log(table(['published', 'network', 'start ms', 'remove ms', 'extra processes', 'ratio tsnet/Docker', 'ratio of time the ports add'], rows));
  } finally {
    await cleanup.run();
  }
}

await main();
