// What both kernel test harnesses (netns-tests/harness.ts and docker-tests/harness.ts) need
// underneath: running a command and reading what it said, a stack of clean-ups that runs even
// when a test fails, short unique names, the repository root and polling for a condition.
// One module, so the two layers cannot drift apart (issue 9, item 8). No test framework here:
// the benchmarks in bench/ import the docker harness, and with it this file.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listNamedNetns } from '../native/named-netns.js';
import { overlayNetnsName } from '../drivers/overlay/plan.js';

// ---------------------------------------------------------------- commands

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** exit code; 1 when the command could not be started or was killed */
  code: number;
}

export interface RunOptions {
  /** written to the command's stdin */
  input?: string;
  /** killed after this long (default: no limit) */
  timeoutMs?: number;
}

/** Runs a command (no shell) and waits for it; never throws. Output is returned as it came. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): CommandResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs, maxBuffer: 64 << 20 });
  return { stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), code: r.status ?? 1 };
}

/** A command that failed: the message names it and quotes its stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly status: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`${command} failed (${status ?? 'signal'}): ${stderr.trim() || stdout.trim()}`);
  }
}

/** Runs a command and returns its trimmed stdout; throws a CommandError when it fails. */
export function sh(cmd: string, args: string[], opts: RunOptions = {}): string {
  const r = run(cmd, args, opts);
  if (r.code !== 0) throw new CommandError(`${cmd} ${args.join(' ')}`, r.code, r.stdout, r.stderr);
  return r.stdout.trim();
}

// ---------------------------------------------------------------- cleanups

const cleanups: (() => unknown)[] = [];

/** Registers an undo; runCleanups runs them newest first, each on its own. */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn);
}

/** For afterAll: runs every registered undo, newest first; a failing one does not stop the rest. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      console.warn('cleanup step failed:', err);
    }
  }
}

// ---------------------------------------------------------------- names, paths, time

/** Short and unique (interface names have at most 15 characters): prefix + 4 hex digits. */
export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(2).toString('hex')}`;
}

/** The repository root, from the sources (tests) or from dist/ (benchmarks) alike. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    if (dirname(dir) === dir) throw new Error('cannot find the tsnet repository root');
    dir = dirname(dir);
  }
  return dir;
}

export function wait(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls check until it holds; throws naming what was awaited when timeoutMs passes first. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await wait(50);
  }
}

/**
 * Everything about a link that must survive a network on it (a macvlan parent): state, MAC, MTU,
 * promiscuity, addresses and routes, from `ip -j` in the namespace ns (null: this one).
 */
export function linkSnapshot(ns: string | null, name: string): unknown {
  const ip = (args: string[]) => (ns ? sh('ip', ['netns', 'exec', ns, 'ip', ...args]) : sh('ip', args));
  const [l] = JSON.parse(ip(['-j', '-d', 'link', 'show', 'dev', name])) as Record<string, unknown>[];
  const [a] = JSON.parse(ip(['-j', 'addr', 'show', 'dev', name])) as { addr_info: { local: string; prefixlen: number }[] }[];
  return {
    flags: l.flags,
    operstate: l.operstate,
    address: l.address,
    mtu: l.mtu,
    promiscuity: l.promiscuity,
    allmulti: l.allmulti,
    addresses: a.addr_info.map((i) => `${i.local}/${i.prefixlen}`),
    routes: ip(['route', 'show', 'dev', name]),
  };
}

/** A rule a daemon put in one of Docker's chains (firewall/docker-compat.ts), by its comment. */
export interface DockerChainRule {
  family: 'ip' | 'ip6';
  chain: string;
  handle: number;
  comment: string;
}

/**
 * The rules tagged "<instance>:" in Docker's DOCKER-USER and FORWARD chains (both families).
 * They outlive a daemon that stops with networks left, and are not in its own tables.
 */
export function dockerChainRulesTaggedBy(instance: string): DockerChainRule[] {
  const found: DockerChainRule[] = [];
  for (const family of ['ip', 'ip6'] as const) {
    for (const chain of ['DOCKER-USER', 'FORWARD']) {
      const r = spawnSync('nft', ['-j', 'list', 'chain', family, 'filter', chain], { encoding: 'utf8' });
      if (r.status !== 0) continue;
      for (const o of (JSON.parse(r.stdout) as { nftables: { rule?: { handle: number; comment?: string } }[] }).nftables) {
        const comment = o.rule?.comment;
        if (o.rule && comment?.startsWith(`${instance}:`)) found.push({ family, chain, handle: o.rule.handle, comment });
      }
    }
  }
  return found;
}

/**
 * Removes what a daemon instance leaves in the kernel (for the end of a test or benchmark, after
 * any leftover check has looked): both of its nftables tables, the inet one and the bridge-family
 * one of the same name, its rules in Docker's chains, and every link tagged with its name
 * ("<instance>:<id>"). Best effort.
 */
export function removeDaemonKernelState(instance: string, table = instance.replace(/-/g, '_')): void {
  for (const family of ['inet', 'bridge']) spawnSync('nft', ['delete', 'table', family, table]);
  for (const r of dockerChainRulesTaggedBy(instance)) spawnSync('nft', ['delete', 'rule', r.family, 'filter', r.chain, 'handle', String(r.handle)]);
  for (const l of JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; ifalias?: string }[]) {
    if (l.ifalias?.startsWith(`${instance}:`)) spawnSync('ip', ['link', 'del', l.ifname]);
  }
  // its overlays' own namespaces (drivers/overlay/netns-layout.ts), with what is inside
  for (const ns of listNamedNetns()) if (ns.startsWith(overlayNetnsName(instance, ''))) spawnSync('ip', ['netns', 'delete', ns]);
}
