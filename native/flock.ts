// Exclusive locks on files with flock(2): for "only one of these at a time" across processes (the
// daemon's instance lock, the lab state's lock). The kernel drops a flock when its holder's file
// is closed, also when the holder dies in any way (kill -9 included), so a dead holder never
// blocks the next one and nobody has to decide whether a holder is dead: a pid-file lock taken
// over from a dead owner let two waiters that both saw it dead both take it.
import { closeSync, openSync, readFileSync, writeFileSync, ftruncateSync } from 'node:fs';
import koffi from 'koffi';
import { SysError, flockFd } from './libc.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

/** A held lock: release() (or the process's end) lets the next one have it. */
export interface FileLock {
  readonly path: string;
  release(): void;
}

/**
 * Takes the exclusive lock on `path` (created if missing) without waiting; undefined when another
 * open file holds it. The holder's pid is written into the file, for messages (holderOf).
 */
export function tryLockFile(path: string): FileLock | undefined {
  // Node opens with O_CLOEXEC: child processes never inherit (and so never keep) the lock
  const fd = openSync(path, 'a+');
  let r: number;
  do r = flockFd(fd, LOCK_EX | LOCK_NB);
  while (r < 0 && koffi.errno() === EINTR);
  if (r < 0) {
    const errno = koffi.errno();
    closeSync(fd);
    if (errno === EWOULDBLOCK) return undefined;
    throw new SysError('flock', errno, path);
  }
  ftruncateSync(fd, 0);
  writeFileSync(fd, `${process.pid}\n`);
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      closeSync(fd);
    },
  };
}

/** The pid the lock's holder wrote into the file (undefined when there is none to read). */
export function holderOf(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
