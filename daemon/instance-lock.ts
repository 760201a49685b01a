// One daemon per instance name on a machine. Everything a daemon owns is named after its instance
// (paths.ts instanceOf): its nftables table, its links' alias, its overlays' namespaces
// (`<instance>-ov-…`, in /run/netns, which every network namespace shares). Its start removes
// what carries its name and its store does not know, so a second daemon of the same name (another
// state directory, another network namespace, a second lab of the same host names) deleted the
// first one's overlay namespaces at its start, and the first the second's at its next.
//
// So the daemon takes an exclusive flock on /run/tsnet/<instance>.lock before it touches
// anything, and holds it for its life. A second one is refused with the holder's pid. The kernel
// drops the lock with its holder's last open file, so a daemon killed with -9 never blocks the
// next start (no stale pid file to judge).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError } from '../core/errors.js';
import { holderOf, tryLockFile, type FileLock } from '../native/flock.js';

/** Where the instance locks live; a test may put them elsewhere. */
export const INSTANCE_LOCK_DIR = process.env.TSNET_INSTANCE_LOCK_DIR || '/run/tsnet';

export function instanceLockPath(instance: string, dir = INSTANCE_LOCK_DIR): string {
  return join(dir, `${instance}.lock`);
}

/** Takes the instance's lock, or throws a ConflictError naming the daemon that holds it. */
export function lockInstance(instance: string, dir = INSTANCE_LOCK_DIR): FileLock {
  mkdirSync(dir, { recursive: true });
  const path = instanceLockPath(instance, dir);
  const lock = tryLockFile(path);
  if (lock) return lock;
  const pid = holderOf(path);
  throw new ConflictError(
    `another tsnet daemon of instance '${instance}' is running${pid ? ` (pid ${pid})` : ''}: it holds ${path}. ` +
      'Two daemons of one name would remove each other\'s overlay namespaces: stop that one first, or give this one another plugin name (the socket\'s file name)',
  );
}
