// (a) Time a network adds to `docker run --rm IMAGE true` over `--network none`: Docker's
// built-in bridge beside a tsnet bridge network, interleaved in one run so drift hits both.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureBusyboxImage, ensureDockerd, startTsnetDaemon } from '../docker-tests/harness.js';
import { spawnSync } from 'node:child_process';
import { Cleanup, median, table, timed } from './lib.js';

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
    for (const [name, args] of [
      ['bench-docker', ['--subnet', '10.231.200.0/24']],
      ['bench-tsnet', ['-d', PLUGIN, '--subnet', '10.231.201.0/24']],
    ] as const) {
      const r = docker(['network', 'create', ...args, name]);
      if (r.code !== 0) throw new Error(r.stderr);
      cleanup.add(() => docker(['network', 'rm', name]));
    }
    const runs: Record<string, number[]> = { none: [], 'bench-docker': [], 'bench-tsnet': [] };
    // one warm-up each, then interleaved rounds
    for (const net of Object.keys(runs)) timed('docker', ['run', '--rm', '--network', net, IMAGE, 'true']);
    for (let i = 0; i < ROUNDS; i++) {
      for (const net of Object.keys(runs)) runs[net].push(timed('docker', ['run', '--rm', '--network', net, IMAGE, 'true']));
    }
    const none = median(runs.none);
    const dockerAdded = median(runs['bench-docker']) - none;
    const tsnetAdded = median(runs['bench-tsnet']) - none;
    console.log(`docker run --rm ${IMAGE} true, median of ${ROUNDS} interleaved runs each`);
    console.log(
      table(
        ['network', 'median ms', 'added over none ms'],
        [
          ['none', none, 0],
          ['Docker bridge', median(runs['bench-docker']), dockerAdded],
          ['tsnet bridge', median(runs['bench-tsnet']), tsnetAdded],
        ],
      ),
    );
    console.log(`ratio tsnet/Docker added time: ${(tsnetAdded / dockerAdded).toFixed(2)} (target <= 0.5)`);
  } finally {
    await cleanup.run();
  }
}

await main();
