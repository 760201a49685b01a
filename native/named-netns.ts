// Named network namespaces, made the way `ip netns add` makes them: /run/netns/NAME, a bind mount
// of the namespace that keeps it alive with no process in it, and that `ip netns exec NAME` can
// enter. The overlay driver keeps each overlay network's bridge and VXLAN device in one
// (drivers/overlay/netns-layout.ts). Made and removed by iproute2's own `ip netns`, which also
// sets up /run/netns as a shared mount so the namespace is seen from every mount namespace.
// /run is a tmpfs: after a reboot no name is left, and start-up reconcile makes them again.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';

export const NAMED_NETNS_DIR = '/run/netns';

export function namedNetnsPath(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw new TypeError(`invalid namespace name ${JSON.stringify(name)}`);
  return `${NAMED_NETNS_DIR}/${name}`;
}

/** The name holds a namespace (a bind mount, not an empty file left by a failed make). */
export function namedNetnsExists(name: string): boolean {
  const path = namedNetnsPath(name);
  if (!existsSync(path)) return false;
  // a mounted namespace lives on nsfs, a device of its own; a bare file is on /run's tmpfs
  return statSync(path).dev !== statSync(NAMED_NETNS_DIR).dev;
}

/** Every name under /run/netns. */
export function listNamedNetns(): string[] {
  try {
    return readdirSync(NAMED_NETNS_DIR);
  } catch {
    return [];
  }
}

export function addNamedNetns(name: string): void {
  ip(['netns', 'add', name], name);
}

/** Removes the name; the namespace goes with its last link or process. No error when gone. */
export function deleteNamedNetns(name: string): void {
  if (!existsSync(namedNetnsPath(name))) return;
  ip(['netns', 'delete', name], name);
}

function ip(args: string[], name: string): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`ip ${args.join(' ')}: ${stderr || (err as Error).message} (network namespace ${name})`, { cause: err });
  }
}
