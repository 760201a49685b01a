// Helpers shared by the tests that run against the real kernel: namespaces and veth pairs that
// are removed even when a test fails, commands inside namespaces, and a leak check.
//
// Typical test file:
//   const run = uniqueName('fw');                     // prefix of everything this file makes
//   afterAll(async () => { await runCleanups(); assertNoLeaks(run); });
//   const a = makeNetns(run), b = makeNetns(run);
//   vethBetween(a, b, { addrA: '10.240.0.1/24', addrB: '10.240.0.2/24' });
//   expect(pings(a, '10.240.0.2')).toBe(true);
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CommandError, onCleanup, run, runCleanups, sh, uniqueName, until } from '../test-support/commands.js';

// commands, cleanups, names and polling are shared with the docker harness (test-support/)
export { CommandError, onCleanup, runCleanups, sh, uniqueName, until };

/** Runs a command inside a namespace (`ip netns exec`); trimmed stdout, throws on failure. */
export function execIn(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}

/** Older name of execIn, used by the driver tests. */
export const inNs = execIn;

/** Like execIn but never throws: for commands expected to fail. */
export function tryIn(ns: string, cmd: string, args: string[]): { stdout: string; stderr: string; code: number } {
  const r = run('ip', ['netns', 'exec', ns, cmd, ...args]);
  return { stdout: r.stdout.trim(), stderr: r.stderr.trim(), code: r.code };
}

export function pings(ns: string, ip: string): boolean {
  return tryIn(ns, 'ping', ['-c', '1', '-W', '2', ip]).code === 0;
}

// ---------------------------------------------------------------- namespaces and links

let counter = 0;

/** A new namespace named prefix-N (unique within the run when prefix is), lo up, removed by runCleanups. */
export function makeNetns(prefix: string): string {
  const name = `${prefix}-${counter++}`;
  sh('ip', ['netns', 'add', name]);
  onCleanup(() => spawnSync('ip', ['netns', 'del', name]));
  execIn(name, 'ip', ['link', 'set', 'lo', 'up']);
  return name;
}

export interface VethOptions {
  /** interface names, at most 15 characters (default: the first namespace's name + vNa / vNb, so
   * that assertNoLeaks(prefix) sees a host end left behind) */
  nameA?: string;
  nameB?: string;
  /** addresses with prefix length, e.g. 10.240.0.1/24 */
  addrA?: string;
  addrB?: string;
}

/**
 * A veth pair with one end in each namespace (null: the host's), both up. Deleting either end
 * deletes both, and a namespace's removal takes its end along; a host end is deleted by
 * runCleanups. Returns the two names.
 */
export function vethBetween(nsA: string | null, nsB: string | null, opts: VethOptions = {}): { a: string; b: string } {
  const base = `${(nsA ?? nsB ?? 'veth').slice(0, 9)}v${counter++}`;
  const a = opts.nameA ?? `${base}a`;
  const b = opts.nameB ?? `${base}b`;
  sh('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  onCleanup(() => {
    // whichever end is still in the host namespace; nothing to do when both moved away
    spawnSync('ip', ['link', 'del', a]);
    spawnSync('ip', ['link', 'del', b]);
  });
  for (const [ns, name, addr] of [[nsA, a, opts.addrA], [nsB, b, opts.addrB]] as const) {
    if (ns) sh('ip', ['link', 'set', name, 'netns', ns]);
    const run = (args: string[]) => (ns ? execIn(ns, 'ip', args) : sh('ip', args));
    if (addr) run(['addr', 'add', addr, 'dev', name]);
    run(['link', 'set', name, 'up']);
  }
  return { a, b };
}

/**
 * Throws when a namespace or a host link whose name starts with prefix is still there: for the
 * end of a test file, after runCleanups.
 */
export function assertNoLeaks(prefix: string): void {
  const namespaces = sh('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(prefix));
  const links = (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith(prefix));
  if (namespaces.length > 0 || links.length > 0) {
    throw new Error(`left behind with prefix ${prefix}: namespaces [${namespaces.join(', ')}], links [${links.join(', ')}]`);
  }
}

/** Namespaces made by one test file; removeAll() belongs in its afterAll. */
export class Namespaces {
  private readonly made: string[] = [];

  make(name: string): string {
    sh('ip', ['netns', 'add', name]);
    this.made.push(name);
    execIn(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  removeAll(): void {
    for (const ns of this.made.reverse()) spawnSync('ip', ['netns', 'del', ns]);
    this.made.length = 0;
  }
}

/**
 * What Docker does after Join: moves the driver's link from the host namespace into the
 * container's, names it eth0, gives it the address, brings it up, routes through the gateway.
 */
export function dockerAttach(hostNs: string, containerNs: string, join: { srcName: string; gateway: string }, address: string): void {
  execIn(hostNs, 'ip', ['link', 'set', join.srcName, 'netns', containerNs]);
  execIn(containerNs, 'ip', ['link', 'set', join.srcName, 'name', 'eth0']);
  execIn(containerNs, 'ip', ['addr', 'add', address, 'dev', 'eth0']);
  execIn(containerNs, 'ip', ['link', 'set', 'eth0', 'up']);
  if (join.gateway) execIn(containerNs, 'ip', ['route', 'add', 'default', 'via', join.gateway]);
}

// ---------------------------------------------------------------- 802.1Q VLAN support

/** Why a VLAN success path cannot run, for skip reasons. */
export const NO_8021Q = 'this kernel has no 802.1Q VLAN support (8021q): `ip link add ... type vlan` answers "Unknown device type"';

let vlanAnswer: boolean | undefined;

/**
 * Whether this kernel makes 802.1Q VLAN links: the one probe every test branches on. It asks the
 * kernel directly, not tsnet (whose own "no 8021q" answer is what the tests check), by adding a
 * VLAN on a veth in a scratch namespace. Only the kernel's two ways of saying "no such link type"
 * count as no; any other failure is a broken probe and throws, so it cannot pass for "no 8021q".
 */
export function kernelHas8021q(): boolean {
  if (vlanAnswer !== undefined) return vlanAnswer;
  const ns = `tsvlanprobe${randomBytes(2).toString('hex')}`;
  sh('ip', ['netns', 'add', ns]);
  try {
    execIn(ns, 'ip', ['link', 'add', 'p', 'type', 'veth', 'peer', 'name', 'q']);
    const r = tryIn(ns, 'ip', ['link', 'add', 'link', 'p', 'name', 'p.5', 'type', 'vlan', 'id', '5']);
    if (r.code === 0) vlanAnswer = true;
    else if (/^Error: Unknown device type\.$|Operation not supported/.test(r.stderr)) vlanAnswer = false;
    else throw new Error(`the 8021q probe failed for another reason (exit ${r.code}): ${r.stderr}`);
    return vlanAnswer;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
  }
}
