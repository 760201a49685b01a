// `docker rm -f` is no drift (daemon/drift.ts PEER_GRACE_MS). Removing a container deletes its
// network namespace, and with it both ends of its veth, before dockerd's DeleteEndpoint reaches
// tsnet; drift repair used to take the host end's deletion for tampering, warn that the container
// was cut off and run a full reconcile. Now a deleted veth is judged after a grace, when the
// endpoint is gone. The positive, in the same run and after it: a live container's host veth
// deleted by hand is still reported cut off, with the reconcile's line. The two deletions wait out
// the same grace in order, so the second's report proves the first was judged already.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { run, sh, until } from '../test-support/commands.js';
import { BUSYBOX_IMAGE, E2E_PLUGIN as PLUGIN, docker, dockerOk, finishE2e, onCleanup, startE2e, uniqueName, type E2eDaemon } from './harness.js';

const p = uniqueName('rd');
const net = `${p}-net`;
const removed = `${p}-x`;
const live = `${p}-y`;
let e2e: E2eDaemon;

/** The host end of a container's veth on `net`: the link whose index is its eth0's peer. */
function hostVeth(container: string): string {
  const index = Number(dockerOk(['exec', container, 'cat', '/sys/class/net/eth0/iflink']));
  const links = JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifindex: number; ifname: string }[];
  const found = links.find((l) => l.ifindex === index);
  if (!found) throw new Error(`no host link with index ${index} for ${container}`);
  return found.ifname;
}

function endpointOf(container: string): string {
  return dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").EndpointID}}`, container]);
}

/** The daemon's log lines (JSON) of repairs and of the reconcile's endpoint checks. */
function driftLines(): { msg: string; link?: string; endpoint?: string }[] {
  return readFileSync(e2e.daemon.logPath, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; link?: string; endpoint?: string })
    .filter((l) => l.msg.startsWith('repair:') || l.msg.startsWith('endpoint host link missing') || l.msg.startsWith('endpoint link gone'));
}

beforeAll(async () => {
  e2e = await startE2e('tsnet-e2e-rd');
  dockerOk(['network', 'create', '-d', PLUGIN, '--subnet', '10.239.7.0/24', net]);
  onCleanup(() => docker(['network', 'rm', net]));
  for (const name of [removed, live]) {
    dockerOk(['run', '-d', '--name', name, '--network', net, BUSYBOX_IMAGE, 'sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"]);
    onCleanup(() => docker(['rm', '-f', name]));
  }
}, 120_000);

afterAll(async () => {
  await finishE2e(e2e);
}, 120_000);

it('docker rm -f: no "cut off" warning and no reconcile for it; a live container\'s host veth deleted by hand still is reported', async () => {
  const x = { veth: hostVeth(removed), endpoint: endpointOf(removed) };
  const y = { veth: hostVeth(live), endpoint: endpointOf(live) };
  expect(driftLines()).toEqual([]);

  dockerOk(['rm', '-f', removed]);
  await until('the removed container\'s endpoint gone from tsnet', () => !e2e.status().endpoints.some((e) => e.id === x.endpoint), 20_000);
  expect(run('ip', ['link', 'show', x.veth]).code).not.toBe(0);
  // the positive: tampering with a live container's veth, after the removal
  sh('ip', ['link', 'del', y.veth]);
  await until('the hand-deleted veth reported', () => driftLines().some((l) => l.link === y.veth && /cut off/.test(l.msg)), 20_000);

  const lines = driftLines();
  expect(lines.filter((l) => l.link === x.veth || l.endpoint === x.endpoint)).toEqual([]);
  expect(lines.filter((l) => l.link === y.veth || l.endpoint === y.endpoint).map((l) => l.msg.replace(/:.*/, ''))).toEqual(['endpoint host link missing while its sandbox exists', 'repair']);
  // what the log tells the operator to do for y works: detached and attached again, it reaches the gateway
  dockerOk(['network', 'disconnect', net, live]);
  dockerOk(['network', 'connect', net, live]);
  await until(`${live} reaching its gateway again`, () => docker(['exec', live, 'ping', '-c', '1', '-W', '2', '10.239.7.1']).code === 0, 20_000);
}, 120_000);
