// CNI configurations that once took the daemon down or held it up, against a real daemon of the
// test's own (as cni-plugin.test.ts starts one): a delegated IPAM plugin that exits without reading
// its stdin (EPIPE on its pipe killed the daemon), one that blocks (it ran inside the serial queue,
// so Docker's IpamDriver calls waited behind it), and a GC without its list of valid attachments
// (it removed everything). Each case checks the daemon is alive and still working afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginAnswers, startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import { assertNoLeaks, makeNetns, onCleanup, runCleanups, sh, uniqueName, until } from './harness.js';
import { removeDaemonKernelState } from '../test-support/commands.js';

const PLUGIN = join(import.meta.dirname, '..', 'dist', 'cni', 'tsnet');
const run = uniqueName('ch');
const socket = `/run/tsnet-cni-tests/${run}.sock`;
let daemon: TsnetDaemon;
let stateDir: string;
/** delegated IPAM plugins written by the tests */
let pluginDir: string;

interface Reply {
  code: number;
  out: Record<string, unknown> | undefined;
  raw: string;
}

interface Call {
  command: string;
  conf: object;
  container?: string;
  netns?: string;
  /** CNI_PATH: where tsnet looks for a delegated IPAM plugin */
  path?: string;
}

function envOf(c: Call): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    TSNET_SOCKET: socket,
    CNI_COMMAND: c.command,
    CNI_CONTAINERID: c.container ?? '',
    CNI_NETNS: c.netns ? `/run/netns/${c.netns}` : '',
    CNI_IFNAME: 'eth0',
    CNI_PATH: c.path ?? pluginDir,
  };
}

function parse(code: number | null, raw: string): Reply {
  let out: Record<string, unknown> | undefined;
  try {
    out = raw.trim() ? (JSON.parse(raw) as Record<string, unknown>) : undefined;
  } catch {
    out = undefined;
  }
  return { code: code ?? 1, out, raw };
}

/** Runs the tsnet plugin as a runtime does and waits for it. */
function cni(c: Call): Reply {
  const r = spawnSync(PLUGIN, [], { input: JSON.stringify(c.conf), encoding: 'utf8', env: envOf(c) });
  return parse(r.status, r.stdout ?? '');
}

/** Starts the tsnet plugin without waiting: `done` settles when it exits. */
function cniStarted(c: Call): { done: Promise<Reply>; exited: () => boolean } {
  const child = spawn(PLUGIN, [], { env: envOf(c), stdio: ['pipe', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const done = new Promise<Reply>((resolve) => child.on('close', (code) => resolve(parse(code, stdout))));
  child.stdin.end(JSON.stringify(c.conf));
  return { done, exited: () => child.exitCode !== null || child.signalCode !== null };
}

function net(name: string, extra: object = {}, version = '1.0.0'): Record<string, unknown> & { name: string } {
  return { cniVersion: version, name: `${run}-${name}`, type: 'tsnet', mode: 'bridge', ...extra };
}

/** A "container": a namespace of the test's own. */
const container = () => makeNetns(run);

/** The host end of an attachment's veth (the bridge driver names it after the endpoint ID). */
function hostLink(network: string, containerId: string): string {
  return `tsv${createHash('sha256').update(`cni:${network}/${containerId}/eth0`).digest('hex').slice(0, 12)}`;
}

function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

/** One Docker plugin call on the daemon's socket, as Docker sends it; fails when no answer comes within 20 s. */
function dockerCall(method: string, body: object): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: `/${method}`, method: 'POST', timeout: 20_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve(JSON.parse(text) as Record<string, unknown>));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${method} got no answer within 20 s: it waits behind something`)));
    req.end(JSON.stringify(body));
  });
}

/** A plugin that is a shell script in the test's plugin folder. */
function writePlugin(name: string, script: string): void {
  const path = join(pluginDir, name);
  writeFileSync(path, `#!/bin/sh\n${script}\n`);
  chmodSync(path, 0o755);
}

/** The daemon still runs and still answers Docker. */
async function alive(): Promise<boolean> {
  return daemon.pid !== undefined && (await pluginAnswers(socket));
}

/** A plain ADD with tsnet's own IPAM works, and its DEL: the daemon is not just alive but serving. */
function stillServes(name: string, subnet: string): void {
  const ns = container();
  const conf = net(name, { ipam: { type: 'tsnet', subnet } });
  const r = cni({ command: 'ADD', conf, container: `${ns}-id`, netns: ns });
  expect(r.code, r.raw).toBe(0);
  expect(cni({ command: 'DEL', conf, container: `${ns}-id`, netns: ns }).code).toBe(0);
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'tsnet-cnih-'));
  pluginDir = mkdtempSync(join(tmpdir(), 'tsnet-cnih-plugins-'));
  daemon = await startTsnetDaemon({ stateDir, socketPath: socket });
}, 60_000);

afterAll(async () => {
  await runCleanups();
  await daemon?.stop();
  removeDaemonKernelState(run);
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(pluginDir, { recursive: true, force: true });
  assertNoLeaks(run);
});

describe('CNI requests that must not take the daemon down or hold it up', () => {
  it('a delegated IPAM plugin that exits without reading its stdin is a CNI error naming it, and the daemon lives on', async () => {
    const ns = container();
    const env = { container: `${ns}-id`, netns: ns, path: '/bin' };
    // the finding as reported: "true" exits at once, whatever tsnet writes to it
    const small = cni({ command: 'ADD', conf: net('true', { ipam: { type: 'true' } }), ...env });
    expect(small.code).toBe(1);
    expect(small.out).toMatchObject({ code: 103, msg: expect.stringContaining("IPAM plugin 'true'") });
    // a configuration larger than a pipe's buffer: the write cannot finish before "true" exits,
    // so EPIPE is certain, not a race
    const big = net('truebig', { ipam: { type: 'true', padding: 'x'.repeat(256 * 1024) } });
    const r = cni({ command: 'ADD', conf: big, ...env });
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({ code: 103, msg: expect.stringContaining("IPAM plugin 'true'") });
    expect(await alive()).toBe(true);
    // nothing was attached by the failed ADDs
    expect(cni({ command: 'CHECK', conf: big, ...env }).out).toMatchObject({ code: 101 });
    expect(linkExists(hostLink(big.name, `${ns}-id`))).toBe(false);
    stillServes('after-epipe', '10.239.40.0/24');
  });

  it("Docker's IPAM calls are answered while a delegated IPAM plugin is still running", async () => {
    const started = join(pluginDir, 'gate.started');
    const release = join(pluginDir, 'gate.release');
    onCleanup(() => writeFileSync(release, ''));
    // holds ADD until the test creates the release file; DEL has nothing to free
    writePlugin(
      'gate',
      [
        'cat >/dev/null',
        '[ "$CNI_COMMAND" = ADD ] || exit 0',
        `touch ${started}`,
        `while [ ! -e ${release} ]; do sleep 0.1; done`,
        `echo '{"cniVersion":"1.0.0","ips":[{"address":"10.239.41.5/24","gateway":"10.239.41.1"}]}'`,
      ].join('\n'),
    );
    const ns = container();
    const conf = net('gate', { ipam: { type: 'gate' } });
    const add = cniStarted({ command: 'ADD', conf, container: `${ns}-id`, netns: ns });
    onCleanup(() => add.done);
    await until('the gate plugin to start', () => existsSync(started) || add.exited());
    expect(existsSync(started)).toBe(true);

    // the plugin holds ADD: Docker's calls must not wait behind it
    const pool = await dockerCall('IpamDriver.RequestPool', { AddressSpace: 'local', Pool: '10.239.42.0/24', SubPool: '', Options: {}, V6: false });
    expect(pool).toEqual({ PoolID: 'local/10.239.42.0/24', Pool: '10.239.42.0/24', Data: {} });
    expect(add.exited()).toBe(false);
    expect(existsSync(release)).toBe(false);
    expect(await dockerCall('IpamDriver.ReleasePool', { PoolID: pool.PoolID })).toEqual({});

    // released, the ADD completes with the plugin's address
    writeFileSync(release, '');
    const r = await add.done;
    expect(r.code, r.raw).toBe(0);
    expect((r.out?.ips as { address: string }[])[0].address).toBe('10.239.41.5/24');
    expect(linkExists(hostLink(conf.name, `${ns}-id`))).toBe(true);
    expect(cni({ command: 'DEL', conf, container: `${ns}-id`, netns: ns }).code).toBe(0);
    expect(await alive()).toBe(true);
  });

  it('GC without cni.dev/valid-attachments removes nothing and says why; with the list it removes', async () => {
    const ns = container();
    const conf = net('gc', { ipam: { type: 'tsnet', subnet: '10.239.43.0/24' } }, '1.1.0');
    const added = cni({ command: 'ADD', conf, container: 'gc-id', netns: ns });
    expect(added.code, added.raw).toBe(0);
    const link = hostLink(conf.name, 'gc-id');
    const gc = cni({ command: 'GC', conf });
    expect(gc.code).toBe(1);
    expect(gc.out).toMatchObject({ code: 7, msg: expect.stringContaining('cni.dev/valid-attachments') });
    expect(cni({ command: 'CHECK', conf: { ...conf, prevResult: added.out }, container: 'gc-id', netns: ns }).code).toBe(0);
    expect(linkExists(link)).toBe(true);
    // an empty list is a list: the runtime holds nothing, so everything goes
    expect(cni({ command: 'GC', conf: { ...conf, 'cni.dev/valid-attachments': [] } }).code).toBe(0);
    await until(`${link} to go`, () => !linkExists(link));
    expect(cni({ command: 'CHECK', conf: { ...conf, prevResult: added.out }, container: 'gc-id', netns: ns }).out).toMatchObject({ code: 101 });
  });
});
