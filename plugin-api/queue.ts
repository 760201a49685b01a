// The one lock of the protocol layer. Docker may send calls in parallel (two `docker run` at once,
// a `docker network rm` during a `docker run`); drivers and IPAM read the store, change the kernel
// and write the store, and must never interleave. Every call that reaches a driver or IPAM runs
// through one SerialQueue, in arrival order; a call that fails does not stop the ones behind it.
// The daemon may pass its own queue to buildServer to put other state changes (a CLI command,
// a periodic repair) in the same line.

export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs fn once every fn queued before it has settled; settles with fn's own outcome. */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
