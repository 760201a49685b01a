// What the Docker end-to-end tests do with containers, for any tsnet driver name (the daemon under
// test "tsnet-e2e", the managed plugin "tsnet-mp:latest"): networks and containers that clean up
// after themselves, pings, TCP connections and HTTP gets with the outcome a user would see, and an
// "outside" namespace behind a veth of the host that stands for the world beyond the host.
// Everything made here is registered with onCleanup (harness.ts) and removed by finishE2e or
// runCleanups, even when a test fails.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { run as runCommand, sh, until } from '../test-support/commands.js';
import { BUSYBOX_IMAGE, docker, dockerOk, onCleanup } from './harness.js';

/** What a command in a container printed (stdout and stderr) and its exit code. */
export interface Outcome {
  out: string;
  code: number;
}

/** `docker network create -d DRIVER ARGS NAME`, removed at clean-up; returns the network's ID. */
export function createNetwork(driver: string, name: string, args: string[]): string {
  dockerOk(['network', 'create', '-d', driver, ...args, name]);
  onCleanup(() => docker(['network', 'rm', name]));
  return dockerOk(['network', 'inspect', '-f', '{{.Id}}', name]);
}

/** `docker run -d --name NAME ARGS IMAGE CMD`, removed at clean-up; returns the name. */
export function runContainer(name: string, args: string[], cmd: string[]): string {
  dockerOk(['run', '-d', '--name', name, ...args, BUSYBOX_IMAGE, ...cmd]);
  onCleanup(() => docker(['rm', '-f', name]));
  return name;
}

/** A container that only sleeps, on one network. */
export function sleeper(name: string, net: string, extra: string[] = []): string {
  return runContainer(name, ['--network', net, ...extra], ['sleep', '3600']);
}

/** The container's IPv4 address on a network, as Docker reports it. */
export function ipOf(name: string, net: string): string {
  return dockerOk(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
}

/** Runs a throwaway container on a network and returns its output and exit code. */
export function oneShot(net: string, cmd: string[], extra: string[] = []): Outcome {
  const r = docker(['run', '--rm', '--network', net, ...extra, BUSYBOX_IMAGE, ...cmd]);
  return { out: (r.stdout + r.stderr).trim(), code: r.code };
}

/** A command in a running container. */
export function exec(name: string, cmd: string[]): Outcome {
  const r = docker(['exec', name, ...cmd]);
  return { out: (r.stdout + r.stderr).trim(), code: r.code };
}

/** One ping from a container; its output says whether an answer came ("1 packets received"). */
export function ping(from: string, target: string): Outcome {
  return exec(from, ['ping', '-c', '1', '-W', '2', target]);
}

/** A TCP connection from a container (busybox nc, 3 s); a dropped SYN ends in "nc: timed out". */
export function connect(from: string, ip: string, port: number, send = ''): Outcome {
  const cmd = send ? `printf '${send}' | nc -w 3 ${ip} ${port}` : `nc -w 3 ${ip} ${port} </dev/null`;
  return exec(from, ['sh', '-c', cmd]);
}

/** An HTTP request for `connect`'s `send`. */
export const HTTP_GET = 'GET / HTTP/1.0\\r\\n\\r\\n';

/** What a dropped ping looks like: sent, no answer, no error from the way there. */
export function expectPingDropped(r: Outcome): void {
  expect(r.code, r.out).not.toBe(0);
  expect(r.out).toContain('1 packets transmitted, 0 packets received');
}

/** What a dropped connection looks like: a timeout, not a refusal or an unreachable network. */
export function expectConnectDropped(r: Outcome): void {
  expect(r.code, r.out).not.toBe(0);
  expect(r.out).toContain('nc: timed out');
}

/** The body of http://HOST:PORT/ fetched from a namespace (null: the host), '' when it fails. */
export function httpGetFrom(ns: string | null, host: string, port: number): string {
  const args = ['-s', '--max-time', '5', `http://${host}:${port}/`];
  const r = ns ? runCommand('ip', ['netns', 'exec', ns, 'curl', ...args]) : runCommand('curl', args);
  return r.code === 0 ? r.stdout.trim() : '';
}

/** An HTTP server inside a container: busybox httpd on each port; its page says "hello-from-NAME". */
export function webServer(name: string, net: string, publish: string[], ports = [80], extra: string[] = []): string {
  const starts = ports.map((p) => `httpd -p ${p} -h /www`).join(' && ');
  return runContainer(name, ['--network', net, ...extra, ...publish.flatMap((p) => ['-p', p])], [
    'sh',
    '-c',
    `mkdir -p /www && echo hello-from-${name} > /www/index.html && ${starts} && sleep 3600`,
  ]);
}

export function linkExists(name: string): boolean {
  return runCommand('ip', ['link', 'show', 'dev', name]).code === 0;
}

/** The world beyond the host: a namespace on 203.0.113.0/24 behind a veth of the host. */
export interface Outside {
  readonly ns: string;
  /** the host's end (what masqueraded traffic comes from, where published ports are reached) */
  readonly hostIp: string;
  /** the outside namespace's address, where its server listens on `port` */
  readonly peerIp: string;
  readonly port: number;
  /** source addresses of every connection the outside server accepted, oldest first */
  connections(): string[];
  /** packets that reached the outside from the tallied subnet */
  packetsFromTallied(): number;
}

export const OUTSIDE_HOST_IP = '203.0.113.1';
export const OUTSIDE_PEER_IP = '203.0.113.2';
export const OUTSIDE_PORT = 7000;

/**
 * Makes the outside: a namespace `name` behind a veth of the host, with a route back to `routeBack`
 * (so a packet leaking out of an internal network WOULD get its answer), a server on port 7000
 * that answers each client with the source address it saw and records it, and a counter of packets
 * arriving from `tally` (a subnet that must never get out).
 */
export async function makeOutside(name: string, opts: { routeBack: string; tally?: string }): Promise<Outside> {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-e2e-out-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const hostIf = `o${name.slice(-8)}h`;
  sh('ip', ['netns', 'add', name]);
  onCleanup(() => sh('ip', ['netns', 'del', name]));
  sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
  onCleanup(() => {
    if (linkExists(hostIf)) sh('ip', ['link', 'del', hostIf]);
  });
  const inside = (args: string[]) => sh('ip', ['netns', 'exec', name, ...args]);
  sh('ip', ['addr', 'add', `${OUTSIDE_HOST_IP}/24`, 'dev', hostIf]);
  sh('ip', ['link', 'set', hostIf, 'up']);
  inside(['ip', 'addr', 'add', `${OUTSIDE_PEER_IP}/24`, 'dev', 'eth0']);
  inside(['ip', 'link', 'set', 'eth0', 'up']);
  inside(['ip', 'link', 'set', 'lo', 'up']);
  inside(['ip', 'route', 'add', opts.routeBack, 'via', OUTSIDE_HOST_IP]);
  const tally = opts.tally ? `ip saddr ${opts.tally} ` : 'ip saddr 0.0.0.0/32 ';
  inside(['nft', `add table inet tally; add chain inet tally input { type filter hook input priority 0; }; add rule inet tally input ${tally}counter`]);
  const log = join(dir, 'connections');
  const ready = join(dir, 'ready');
  const server = spawn('ip', [
    'netns',
    'exec',
    name,
    'node',
    '-e',
    `const fs = require('fs'); const [log, ready] = process.argv.slice(1);
     require('net').createServer((s) => { fs.appendFileSync(log, s.remoteAddress + '\\n'); s.end(s.remoteAddress + '\\n'); })
       .listen(${OUTSIDE_PORT}, '0.0.0.0', () => fs.writeFileSync(ready, ''));`,
    log,
    ready,
  ]);
  onCleanup(() => server.kill());
  await until('the outside server listens', () => existsSync(ready));
  return {
    ns: name,
    hostIp: OUTSIDE_HOST_IP,
    peerIp: OUTSIDE_PEER_IP,
    port: OUTSIDE_PORT,
    connections: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
    packetsFromTallied: () => {
      const listing = sh('ip', ['netns', 'exec', name, 'nft', 'list', 'table', 'inet', 'tally']);
      const m = /counter packets (\d+)/.exec(listing);
      if (!m) throw new Error(`no counter in the outside namespace:\n${listing}`);
      return Number(m[1]);
    },
  };
}
