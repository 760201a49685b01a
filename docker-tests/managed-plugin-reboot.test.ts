// Boot and restart survival with the managed Docker plugin (issue 12 items 2 and 3): dockerd starts
// the plugin itself, before it restores containers, so containers with `--restart always` on a
// tsnet bridge (a published port, --ip, a name another container uses), macvlan and overlay
// network come back after a simulated host reboot and after a dockerd restart (with and without
// live-restore). The scene, the reboot and the "came back" checks are docker-tests/reboot.ts's,
// shared with survival.test.ts (the unit-less daemon).
//
// It restarts dockerd, so it runs only against the dockerd the harness started (DOCKERD_MARKER)
// and leaves it running without extra flags; a dockerd someone else started is never touched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCleanups } from '../test-support/commands.js';
import { BUSYBOX_IMAGE, docker, ensureBusyboxImage, ensureDockerd, uniqueName } from './harness.js';
import { testPlugin, type TestPlugin } from './managed-plugin.js';
import { PORTS, containersComeBack, dockerdRestartSkipReason, makeScene, plainDockerdAgain, restartDockerd, simulateReboot, type Scene } from './reboot.js';

const SKIP = dockerdRestartSkipReason('managed-plugin-reboot.test.ts');

let plugin: TestPlugin;
let scene: Scene;

async function expectComeBack(): Promise<void> {
  expect(await containersComeBack(scene)).toEqual([]);
}

beforeAll(async () => {
  if (SKIP) return;
  await ensureDockerd();
  await ensureBusyboxImage(BUSYBOX_IMAGE);
  plugin = testPlugin('tsnet-mpr');
  const made = plugin.make();
  if (made.code !== 0) throw new Error(`make plugin failed: ${made.stdout}${made.stderr}`);
  scene = makeScene(uniqueName('mr'), plugin.driver);
}, 300_000);

afterAll(async () => {
  if (SKIP || !plugin) return;
  try {
    await plainDockerdAgain();
  } finally {
    await runCleanups();
    await plugin.finish(Object.values(PORTS).map((port) => ({ proto: 'tcp' as const, port })));
  }
}, 300_000);

describe.skipIf(!!SKIP)('the managed plugin: containers come back', () => {
  it('are all up and reachable before anything happens', async () => {
    await expectComeBack();
  });

  it('after a dockerd restart without live-restore: dockerd starts the plugin, then them', async () => {
    await restartDockerd([]);
    await expectComeBack();
  }, 180_000);

  it('after dockerd restarts with live-restore: they keep running, and the plugin serves them after', async () => {
    await restartDockerd(['--live-restore']);
    await expectComeBack();
    await restartDockerd(['--live-restore']);
    await expectComeBack();
  }, 300_000);

  // Not covered: a live-restore dockerd stopped and started again without live-restore. Then
  // dockerd kills the containers and the plugin together, the DeleteEndpoint calls for the
  // macvlan containers are lost, their links stay on the parent with the MAC tsnet derives from
  // the address, and the containers' new endpoints fail with "failed to set link up: address
  // already in use" (a known defect, in the closing note of this change).

  it('after a host reboot (simulated): dockerd starts the plugin before it restores them', async () => {
    await simulateReboot({
      // the plugin dies with Docker's processes, and dockerd starts it again
      killTsnet: async () => undefined,
      startTsnet: async () => undefined,
      order: 'together',
      instance: plugin.name,
      socketPath: `/run/docker/plugins/${plugin.name}.sock`,
      addresses: scene.addresses,
    });
    await expectComeBack();
    expect(docker(['plugin', 'inspect', '--format', '{{.Enabled}}', plugin.driver]).stdout.trim()).toBe('true');
  }, 300_000);
});
