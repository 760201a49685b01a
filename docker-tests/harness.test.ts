// Smoke test of the docker harness itself: dockerd answers (a newer docker CLI negotiating with
// Debian's 20.10 engine), the busybox image runs, cleanups run newest first, and a tsnet daemon
// under test starts, restarts, survives kill -9 and stops.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeExit, docker, dockerOk, ensureBusyboxImage, ensureDockerd, onCleanup, pluginAnswers, runCleanups, startTsnetDaemon, uniqueName } from './harness.js';
import { removeDaemonKernelState } from '../test-support/commands.js';

const IMAGE = 'tsnet-busybox:latest';

beforeAll(async () => {
  await ensureDockerd();
  await ensureBusyboxImage(IMAGE);
});
afterAll(runCleanups);

describe('docker harness', () => {
  it('reaches the engine through API version negotiation', () => {
    const v = JSON.parse(dockerOk(['version', '--format', '{{json .}}'])) as { Client: { ApiVersion: string }; Server: { ApiVersion: string } };
    expect(v.Server.ApiVersion).toMatch(/^1\.\d+$/);
    // the client speaks the server's version (negotiated down when the CLI is newer)
    expect(v.Client.ApiVersion).toBe(v.Server.ApiVersion);
  });

  it('runs the imported busybox image with its applets', () => {
    const name = uniqueName('hx');
    onCleanup(() => docker(['rm', '-f', name]));
    const r = docker(['run', '--name', name, '--network', 'none', IMAGE, 'sh', '-c', 'echo hello from $(uname -s); ls /bin/nc /bin/ping']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('hello from Linux');
  });

  it('makes short unique names and runs cleanups newest first', async () => {
    const names = new Set(Array.from({ length: 50 }, () => uniqueName('x')));
    expect(names.size).toBeGreaterThan(45);
    for (const n of names) expect(n).toMatch(/^x[0-9a-f]{4}$/);
    const order: number[] = [];
    onCleanup(() => order.push(1));
    onCleanup(() => {
      throw new Error('a failing cleanup does not stop the others');
    });
    onCleanup(async () => order.push(3));
    await runCleanups();
    expect(order).toEqual([3, 1]);
  });

  it('starts, restarts, kills and stops a tsnet daemon of its own', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tsnet-harness-'));
    onCleanup(() => rmSync(stateDir, { recursive: true, force: true }));
    // a socket outside /run/docker/plugins: Docker never sees this daemon. Its nftables table is
    // named after the socket (daemon/paths.ts instanceOf) and removed at the end.
    const plugin = uniqueName('tsnet-hx');
    const socketPath = join(stateDir, `${plugin}.sock`);
    onCleanup(() => removeDaemonKernelState(plugin));
    const d = await startTsnetDaemon({ stateDir, socketPath });
    onCleanup(() => d.stop());
    expect(await pluginAnswers(socketPath)).toBe(true);
    const first = d.pid;
    expect(await d.kill9()).toEqual({ code: null, signal: 'SIGKILL', hung: false });
    expect(d.pid).toBeUndefined();
    await d.restart();
    expect(d.pid).not.toBe(first);
    expect(await pluginAnswers(socketPath)).toBe(true);
    expect(existsSync(d.logPath)).toBe(true);
    expect(describeExit(await d.stop())).toBe('exited with 0');
    expect(d.pid).toBeUndefined();
    expect(await pluginAnswers(socketPath)).toBe(false);
  });
});
