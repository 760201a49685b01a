// (a) Time a network adds to `docker run --rm IMAGE true` over `--network none`: Docker's
// built-in bridge and macvlan beside tsnet's, interleaved in one run so drift hits all alike.
// The macvlan parents are veth ends whose peers sit in a namespace of the benchmark's own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureBusyboxImage, ensureDockerd, startTsnetDaemon } from '../docker-tests/harness.js';
import { spawnSync } from 'node:child_process';
import { Cleanup, makeNs, median, sh, table, timed } from './lib.js';

const ROUNDS = Number(process.env.ROUNDS ?? 15);
const IMAGE = 'tsnet-busybox:latest';
const PLUGIN = 'tsnet-bench';

export async function main(): Promise<void> {
  const cleanup = new Cleanup();
  try {
    await ensureDockerd();
    await ensureBusyboxImage(IMAGE);
    const stateDir = mkdtempSync(join(tmpdir(), 'tsnet-bench-'));
    cleanup.add(() => rmSync(stateDir, { recursive: true, force: true }));
    cleanup.add(() => docker(['run', '--rm', '--network', 'none', IMAGE, 'true']));
    // the daemon's table outlives it by design (networks keep working); the benchmark's goes
    cleanup.add(() => spawnSync('nft', ['delete', 'table', 'inet', PLUGIN.replace(/-/g, '_')]));
    const daemon = await startTsnetDaemon({ stateDir, socketPath: `/run/docker/plugins/${PLUGIN}.sock` });
    cleanup.add(() => daemon.stop());
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
      if (r.code !== 0) throw new Error(r.stderr);
      cleanup.add(() => docker(['network', 'rm', name]));
    }
    const runs: Record<string, number[]> = { none: [], 'bench-docker': [], 'bench-tsnet': [], 'bench-docker-mv': [], 'bench-tsnet-mv': [] };
    // one warm-up each, then interleaved rounds
    for (const net of Object.keys(runs)) timed('docker', ['run', '--rm', '--network', net, IMAGE, 'true']);
    for (let i = 0; i < ROUNDS; i++) {
      for (const net of Object.keys(runs)) runs[net].push(timed('docker', ['run', '--rm', '--network', net, IMAGE, 'true']));
    }
    const none = median(runs.none);
    const added = (net: string) => median(runs[net]) - none;
    console.log(`docker run --rm ${IMAGE} true, median of ${ROUNDS} interleaved runs each`);
    console.log(
      table(
        ['network', 'median ms', 'added over none ms'],
        [
          ['none', none, 0],
          ['Docker bridge', median(runs['bench-docker']), added('bench-docker')],
          ['tsnet bridge', median(runs['bench-tsnet']), added('bench-tsnet')],
          ['Docker macvlan', median(runs['bench-docker-mv']), added('bench-docker-mv')],
          ['tsnet macvlan', median(runs['bench-tsnet-mv']), added('bench-tsnet-mv')],
        ],
      ),
    );
    console.log(`ratio tsnet/Docker added time, bridge: ${(added('bench-tsnet') / added('bench-docker')).toFixed(2)} (target <= 0.5)`);
    console.log(`ratio tsnet/Docker added time, macvlan: ${(added('bench-tsnet-mv') / added('bench-docker-mv')).toFixed(2)} (target <= 0.5)`);
  } finally {
    await cleanup.run();
  }
}

await main();
