// Starting tsnet never opens Docker's unpublished ports, whatever the start order (daemon/
// forward-posture.ts). After a reboot IP forwarding is off; when tsnet starts first it turns it on
// (restoring its networks), so dockerd 20.10 finds it on and does not set FORWARD's drop policy,
// which it sets only when it turns forwarding on itself. tsnet therefore sets it, as dockerd would
// have. The test reboots (docker-tests/reboot.ts, forwarding reset to 0), starts tsnet, then
// dockerd, and requires: a Docker container's unpublished port unreachable from a tsnet container
// and from a routed neighbour outside, while its published port answers both (the positives).
//
// It restarts dockerd, so it runs only against the dockerd the harness started (DOCKERD_MARKER);
// a dockerd someone else started is never touched: the file is skipped, saying so.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { run, sh, until } from '../test-support/commands.js';
import { BUSYBOX_IMAGE, E2E_PLUGIN as PLUGIN, TEST_PLUGIN_SOCKET as SOCKET, docker, dockerOk, finishE2e, onCleanup, startE2e, uniqueName, type E2eDaemon } from './harness.js';
import { dockerdRestartSkipReason, plainDockerdAgain, simulateReboot } from './reboot.js';

const SKIP = dockerdRestartSkipReason('forward-posture.test.ts');
const p = uniqueName('fp');
const OUTSIDE_HOST = '203.0.113.1';
const OUTSIDE_PEER = '203.0.113.2';
const DOCKER_SUBNET = '10.239.6.0/24';
const DOCKER_IP = '10.239.6.10';
const PUBLISHED = 18163;
const outsideNs = `${p}-out`;
const names = { tsnetNet: `${p}-ts`, dockerNet: `${p}-dk`, tsnetBox: `${p}-tc`, dockerBox: `${p}-dc` };

let e2e: E2eDaemon | undefined;

/** Serves hello on 80 (published) and 81 (unpublished); exits at once on SIGTERM. */
const SERVE = ['sh', '-c', "trap 'exit 0' TERM; mkdir -p /www && echo hello > /www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www; sleep 100000 & wait"];

function fromTsnetContainer(ip: string, port: number): string {
  const r = docker(['exec', names.tsnetBox, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} ${port}`]);
  return r.stdout.includes('hello') ? 'answered' : 'no answer';
}

function fromOutside(ip: string, port: number): string {
  const r = run('ip', ['netns', 'exec', outsideNs, 'curl', '-s', '--max-time', '3', `http://${ip}:${port}/`]);
  return r.stdout.trim() === 'hello' ? 'answered' : 'no answer';
}

function running(name: string): boolean {
  return docker(['inspect', '-f', '{{.State.Status}}', name]).stdout.trim() === 'running';
}

beforeAll(async () => {
  if (SKIP) return;
  e2e = await startE2e('tsnet-e2e-fp');
  // a routed neighbour: it reaches the host at OUTSIDE_HOST and routes Docker's subnet through it
  sh('ip', ['netns', 'add', outsideNs]);
  onCleanup(() => run('ip', ['netns', 'del', outsideNs]));
  sh('ip', ['link', 'add', `${p}o`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs]);
  onCleanup(() => run('ip', ['link', 'del', `${p}o`]));
  sh('ip', ['addr', 'add', `${OUTSIDE_HOST}/24`, 'dev', `${p}o`]);
  sh('ip', ['link', 'set', `${p}o`, 'up']);
  for (const args of [['addr', 'add', `${OUTSIDE_PEER}/24`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up'], ['route', 'add', DOCKER_SUBNET, 'via', OUTSIDE_HOST]]) {
    sh('ip', ['netns', 'exec', outsideNs, 'ip', ...args]);
  }
  const network = (name: string, args: string[]) => {
    dockerOk(['network', 'create', ...args, name]);
    onCleanup(() => docker(['network', 'rm', name]));
  };
  network(names.tsnetNet, ['-d', PLUGIN, '--subnet', '10.239.5.0/24']);
  network(names.dockerNet, ['-d', 'bridge', '--subnet', DOCKER_SUBNET]);
  const container = (name: string, args: string[]) => {
    dockerOk(['run', '-d', '--restart', 'always', '--name', name, ...args]);
    onCleanup(() => docker(['rm', '-f', name]));
  };
  container(names.tsnetBox, ['--network', names.tsnetNet, BUSYBOX_IMAGE, 'sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"]);
  container(names.dockerBox, ['--network', names.dockerNet, '--ip', DOCKER_IP, '-p', `${PUBLISHED}:80`, BUSYBOX_IMAGE, ...SERVE]);
}, 300_000);

afterAll(async () => {
  if (SKIP) return;
  try {
    await plainDockerdAgain();
  } finally {
    await finishE2e(e2e, [{ proto: 'tcp', port: PUBLISHED }]);
  }
}, 300_000);

it.skipIf(SKIP)("after a reboot with tsnet started before dockerd, Docker's unpublished port stays closed to tsnet's containers and the outside; its published port answers", async () => {
  await simulateReboot({
    order: 'tsnet-first',
    killTsnet: async () => void (await e2e!.daemon.kill9()),
    startTsnet: async () => void (await e2e!.daemon.restart()),
    instance: PLUGIN,
    socketPath: SOCKET,
    addresses: [OUTSIDE_HOST, DOCKER_IP],
  });
  await until('both containers running again', () => running(names.tsnetBox) && running(names.dockerBox), 90_000);
  // the positives first, polled: Docker's published port through a host address, from both
  await until('the published port answering the outside', () => fromOutside(OUTSIDE_HOST, PUBLISHED) === 'answered', 60_000);
  await until('the published port answering the tsnet container', () => fromTsnetContainer(OUTSIDE_HOST, PUBLISHED) === 'answered', 30_000);
  expect({
    forwarding: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
    publishedFromOutside: fromOutside(OUTSIDE_HOST, PUBLISHED),
    publishedFromTsnet: fromTsnetContainer(OUTSIDE_HOST, PUBLISHED),
    unpublishedFromOutside: fromOutside(DOCKER_IP, 81),
    unpublishedFromTsnet: fromTsnetContainer(DOCKER_IP, 81),
    // the same port from Docker's own side (its container to itself) answers: the server runs
    unpublishedFromItself: docker(['exec', names.dockerBox, 'sh', '-c', "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 81"]).stdout.includes('hello') ? 'answered' : 'no answer',
  }).toEqual({
    forwarding: '1',
    publishedFromOutside: 'answered',
    publishedFromTsnet: 'answered',
    unpublishedFromOutside: 'no answer',
    unpublishedFromTsnet: 'no answer',
    unpublishedFromItself: 'answered',
  });
  expect(readFileSync(e2e!.daemon.logPath, 'utf8')).toContain('IP forwarding was off and tsnet turned it on: FORWARD policy set to drop');
}, 300_000);
