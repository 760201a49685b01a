// Boot and restart survival of the unit-less daemon (issue 12 item 2): containers with
// `--restart always` on a tsnet bridge (a published port, --ip, a name another container uses),
// macvlan and overlay network come back after a tsnet restart, kill -9 and upgrade (with no lost
// packet and a TCP connection held across), a dockerd restart with and without live-restore, and
// a simulated host reboot with tsnet starting before dockerd, with it, and 20 s after it
// (docker-tests/reboot.ts does the work; the managed plugin's test reuses it).
//
// It restarts dockerd, so it runs only against the dockerd the harness started (DOCKERD_MARKER),
// restarts it the same way and leaves it running without extra flags; a dockerd someone else
// started is never touched: the file is skipped, saying so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../test-support/commands.js';
import { E2E_PLUGIN as PLUGIN, TEST_PLUGIN_SOCKET as SOCKET, dockerOk, finishE2e, harnessDockerd, startE2e, startTsnetDaemon, uniqueName, type E2eDaemon } from './harness.js';
import {
  PORTS,
  containersComeBack,
  dockerdRestartSkipReason,
  makeScene,
  plainDockerdAgain,
  restartDockerd,
  simulateReboot,
  trafficAcross,
  type Scene,
  type StartOrder,
} from './reboot.js';

const SKIP = dockerdRestartSkipReason('survival.test.ts');

let e2e: E2eDaemon | undefined;
let scene: Scene;
let upgradeDir: string | undefined;

function daemon(): E2eDaemon {
  if (!e2e) throw new Error('no daemon under test');
  return e2e;
}

/** The error and warning lines of the harness's dockerd's log (for a failure's message). */
function dockerdLogErrors(): string {
  const log = harnessDockerd()?.logPath;
  if (!log || !existsSync(log)) return '(no log)';
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => /level=(error|warning)/.test(l))
    .slice(-30)
    .join('\n');
}

/** What every case ends with: all containers are back. */
async function expectComeBack(): Promise<void> {
  expect(await containersComeBack(scene)).toEqual([]);
}

async function expectNoLossAcross(action: () => Promise<void>): Promise<void> {
  const r = await trafficAcross(scene, action);
  expect(r.covered, 'the pings still ran when the action ended').toBe(true);
  for (const p of r.pings) expect(p).toMatch(/: 60 packets transmitted, 60 received, 0% packet loss/);
  expect(r.tcp).toBe('after');
  await expectComeBack();
}

beforeAll(async () => {
  if (SKIP) return;
  e2e = await startE2e('tsnet-e2e-sv');
  scene = makeScene(uniqueName('sv'), PLUGIN);
}, 300_000);

afterAll(async () => {
  if (SKIP) return;
  try {
    await plainDockerdAgain();
  } finally {
    await finishE2e(e2e, Object.values(PORTS).map((port) => ({ proto: 'tcp' as const, port })));
    if (upgradeDir) rmSync(upgradeDir, { recursive: true, force: true });
  }
}, 300_000);

describe.skipIf(!!SKIP)('survival: containers come back', () => {
  it('are all up and reachable before anything happens', async () => {
    await expectComeBack();
  });

  describe('while they run, tsnet goes away and comes back without a lost packet', () => {
    it('a restart', async () => {
      await expectNoLossAcross(async () => {
        await daemon().daemon.restart();
      });
    });

    it('a kill -9', async () => {
      await expectNoLossAcross(async () => {
        await daemon().daemon.kill9();
        await daemon().daemon.restart();
      });
    });

    it('an upgrade: the daemon started from another copy of the build', async () => {
      // as make install's versioned copies: dist/ and package.json copied, the same node_modules
      const root = repoRoot();
      upgradeDir = mkdtempSync(join(tmpdir(), 'tsnet-upgrade-'));
      cpSync(join(root, 'dist'), join(upgradeDir, 'dist'), { recursive: true });
      cpSync(join(root, 'package.json'), join(upgradeDir, 'package.json'));
      symlinkSync(join(root, 'node_modules'), join(upgradeDir, 'node_modules'));
      const old = daemon();
      await expectNoLossAcross(async () => {
        await old.daemon.stop();
        const next = await startTsnetDaemon({ stateDir: old.stateDir, socketPath: SOCKET, main: join(upgradeDir!, 'dist/cli/main.js') });
        e2e = { ...old, daemon: next };
      });
    });
  });

  describe('dockerd restarts', () => {
    it('without live-restore: dockerd stops them and starts them again', async () => {
      await restartDockerd([]);
      await expectComeBack();
    }, 180_000);

    it('with live-restore: they keep running across it', async () => {
      const startedAt = () => Object.values(scene.containers).map((c) => `${c.name} ${dockerOk(['inspect', '-f', '{{.State.StartedAt}}', c.name])}`);
      await restartDockerd(['--live-restore']);
      await expectComeBack();
      const before = startedAt();
      await restartDockerd(['--live-restore']);
      await expectComeBack();
      expect(startedAt(), `dockerd's log says:\n${dockerdLogErrors()}`).toEqual(before);
      await restartDockerd([]);
      await expectComeBack();
    }, 300_000);
  });

  describe('a host reboot (simulated), tsnet starting', () => {
    it.each<[string, StartOrder]>([
      ['before dockerd', 'tsnet-first'],
      ['together with dockerd', 'together'],
      ['20 s after dockerd', 'dockerd-first'],
    ])('%s', async (_, order) => {
      await simulateReboot({
        order,
        killTsnet: async () => {
          await daemon().daemon.kill9();
        },
        startTsnet: async () => {
          await daemon().daemon.restart();
        },
        instance: PLUGIN,
        socketPath: SOCKET,
        addresses: scene.addresses,
      });
      await expectComeBack();
    }, 240_000);
  });
});
