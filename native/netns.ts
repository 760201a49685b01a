// Running code inside another network namespace. setns(2) moves only the calling thread, so the
// work must be synchronous: the thread goes in, runs fn, and comes back before anything else
// on it (the event loop, a promise callback) can run in the wrong namespace. Sockets opened
// inside stay bound to that namespace afterwards, which is how Netlink.openInNetns works.
import { CLONE_NEWNET, O_CLOEXEC, O_RDONLY, close, open, setns } from './libc.js';

let homeFd: number | undefined;
/** The namespace fd the thread is in while inside withNetns (for nesting). */
let currentFd: number | undefined;

export function openNetnsFd(path: string): number {
  return open(path, O_RDONLY | O_CLOEXEC);
}

export function closeFd(fd: number): void {
  close(fd);
}

/** Runs fn in the namespace at nsPath (or of an open namespace fd, which stays open). */
export function withNetns<T>(ns: string | number, fn: () => T): T {
  // opened once: the namespace this thread started in
  homeFd ??= openNetnsFd('/proc/thread-self/ns/net');
  const outer = currentFd;
  const target = typeof ns === 'number' ? ns : openNetnsFd(ns);
  try {
    setns(target, CLONE_NEWNET);
    currentFd = target;
    let result: T;
    try {
      result = fn();
    } finally {
      switchBack(outer ?? homeFd);
      currentFd = outer;
    }
    if (typeof (result as { then?: unknown } | undefined)?.then === 'function') {
      throw new TypeError('withNetns needs a synchronous function: the thread has left the namespace before a promise settles');
    }
    return result;
  } finally {
    if (typeof ns !== 'number') close(target);
  }
}

function switchBack(fd: number): void {
  try {
    setns(fd, CLONE_NEWNET);
  } catch (err) {
    // the thread would go on in a foreign namespace: nothing after this can be trusted
    throw new Error(`cannot return to the original network namespace: ${(err as Error).message}`, { cause: err });
  }
}
