// TSNET_PROC_SYS is checked when `tsnet serve` starts (daemon/proc-sys.ts): a path that is no
// writable /proc/sys stops the start with the path and the reason on stderr and exit code 1, before
// anything is made; the same daemon with a good path starts and answers (the positive).
import { afterAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon } from '../docker-tests/harness.js';
import { removeDaemonKernelState, repoRoot, uniqueName } from '../test-support/commands.js';
import { linksTaggedBy } from '../test-support/daemon-leftovers.js';

const run = uniqueName('ps');
const socket = `/run/tsnet-procsys-tests/${run}.sock`;
const stateDir = mkdtempSync(join(tmpdir(), `tsnet-${run}-`));

afterAll(() => {
  removeDaemonKernelState(run);
  rmSync(stateDir, { recursive: true, force: true });
});

function serve(procSys: string): { code: number | null; stderr: string } {
  const r = spawnSync('node', [join(repoRoot(), 'dist/cli/main.js'), 'serve', '--state-dir', stateDir, '--socket', socket, '--log', join(stateDir, 'tsnet.log')], {
    env: { ...process.env, TSNET_PROC_SYS: procSys },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, stderr: r.stderr };
}

it('a wrong TSNET_PROC_SYS fails serve at start (exit 1, the path and why), nothing made; /proc/sys starts it', async () => {
  const missing = join(stateDir, 'no-such-proc-sys');
  expect(serve(missing)).toEqual({
    code: 1,
    stderr: `tsnet: the daemon cannot start: TSNET_PROC_SYS '${missing}': cannot be read (ENOENT); give the folder where the host's /proc/sys is mounted writable (default /proc/sys)\n`,
  });
  expect(serve(stateDir)).toMatchObject({ code: 1, stderr: expect.stringContaining(`has no ${stateDir}/net/ipv4/ip_forward (ENOENT): not a /proc/sys`) as string });
  expect({ socket: existsSync(socket), log: existsSync(join(stateDir, 'tsnet.log')), links: linksTaggedBy(run) }).toEqual({ socket: false, log: false, links: [] });

  process.env.TSNET_PROC_SYS = '/proc/sys';
  try {
    const daemon = await startTsnetDaemon({ stateDir, socketPath: socket });
    expect(await daemon.stop()).toEqual({ code: 0, signal: null, hung: false });
  } finally {
    delete process.env.TSNET_PROC_SYS;
  }
}, 60_000);
