// One daemon per instance name (daemon/instance-lock.ts). Two built daemons of one plugin name
// (the same socket file name in two folders), each in a network namespace of its own with a state
// directory of its own: the second used to start and, at its start, remove the first one's overlay
// namespace (`<name>-ov-…` in /run/netns, which every network namespace shares) as a leftover of its
// own. Now the second is refused, naming the instance and the first one's pid, and the first
// one's overlay is untouched; once the first is gone (stopped, or killed with -9) the next starts.
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import { PluginClient } from '../lab/plugin-client.js';
import { Namespaces, uniqueName } from './harness.js';
import { daemonLogErrors } from './leftovers.js';
import { instanceLockPath } from '../daemon/instance-lock.js';

const run = uniqueName('il');
const namespaces = new Namespaces();
const dirs: string[] = [];
const daemons: TsnetDaemon[] = [];
const NETWORK_ID = `${run}n`.padEnd(64, '0');

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), `tsnet-${run}-`));
  dirs.push(d);
  return d;
}

/** A daemon of instance `run` in a namespace of its own: the same name, another socket folder and state. */
async function start(which: string): Promise<TsnetDaemon> {
  const d = await startTsnetDaemon({ stateDir: stateDir(), socketPath: `/run/tsnet-il-tests/${which}/${run}.sock`, netns: namespaces.make(`${run}-${which}`) });
  daemons.push(d);
  return d;
}

/** The overlay namespaces of instance `run`. */
function overlayNamespaces(): string[] {
  return readdirSync('/run/netns').filter((n) => n.startsWith(`${run}-ov-`));
}

afterAll(async () => {
  const exits = [];
  for (const d of daemons) exits.push(await d.stop());
  const errors = daemons.flatMap((d) => daemonLogErrors(d.logPath));
  // the overlay's namespace (its host side goes with the daemon's namespace)
  for (const n of overlayNamespaces()) spawnSync('ip', ['netns', 'del', n]);
  namespaces.removeAll();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  rmSync('/run/tsnet-il-tests', { recursive: true, force: true });
  rmSync(instanceLockPath(run), { force: true });
  expect({ errors, hung: exits.filter((e) => e.hung) }).toEqual({ errors: [], hung: [] });
});

describe('the instance lock', () => {
  it("a second daemon of the same name is refused while the first runs, and leaves the first one's overlay alone; after the first is gone, the next starts", async () => {
    const first = await start('a');
    const client = new PluginClient(`/run/tsnet-il-tests/a/${run}.sock`);
    await client.call('NetworkDriver.CreateNetwork', {
      NetworkID: NETWORK_ID,
      Options: { 'com.docker.network.generic': { type: 'overlay' }, 'com.docker.network.enable_ipv6': false },
      IPv4Data: [{ AddressSpace: 'local', Pool: '10.238.41.0/24', Gateway: '10.238.41.1/24', AuxAddresses: {} }],
      IPv6Data: [],
    });
    const overlay = overlayNamespaces();
    expect(overlay).toHaveLength(1);

    // the second: refused with the instance's name and the holder's pid, and a non-zero exit
    await expect(start('b')).rejects.toThrow(
      new RegExp(`tsnet daemon exited \\([1-9]\\d*\\)[\\s\\S]*another tsnet daemon of instance '${run}' is running \\(pid ${first.pid}\\)`),
    );
    // the first one's overlay namespace is there, and the first still answers
    expect(overlayNamespaces()).toEqual(overlay);
    await client.call('Plugin.Activate', undefined);

    // the first stopped: the next one starts (and finds no overlay of its own to keep or remove)
    await first.stop();
    const second = await start('c');
    await new PluginClient(`/run/tsnet-il-tests/c/${run}.sock`).call('Plugin.Activate', undefined);
    // killed with -9, it leaves its lock to the kernel: the first starts again over its state
    await second.kill9();
    await first.restart();
    expect(overlayNamespaces()).toEqual(overlay);
    await client.call('Plugin.Activate', undefined);
  }, 90_000);
});
