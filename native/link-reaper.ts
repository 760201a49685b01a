// Removes links off the request path. Deleting a link makes the kernel wait for an RCU grace
// period (~20 ms here) inside the netlink call; a container's teardown need not wait for that.
// The caller forgets the link first (its record is gone), so if the daemon dies before the
// reaper gets to it, the link is an alias-tagged leftover that the start-up sweep removes.
import { Netlink } from './netlink/netlink.js';

export interface ReaperLog {
  warn(obj: object, msg: string): void;
}

export class LinkReaper {
  private readonly nl: Netlink;
  private tail: Promise<void> = Promise.resolve();

  /** nsPath: the namespace whose links it removes (default: the current one). */
  constructor(
    private readonly log: ReaperLog,
    nsPath?: string,
  ) {
    // a socket of its own: its requests must not interleave with the daemon's others
    this.nl = nsPath ? Netlink.openInNetns(nsPath) : Netlink.open();
  }

  /** Queues the link's removal; a link already gone is fine. */
  remove(name: string): void {
    this.tail = this.tail
      .then(() => this.nl.deleteLinkAsync(name, { ignoreMissing: true }))
      .catch((err: unknown) => this.log.warn({ err, link: name }, 'could not remove a link; the next start removes it'));
  }

  /** Resolves when every queued removal is done (tests, shutdown). */
  idle(): Promise<void> {
    return this.tail;
  }

  async close(): Promise<void> {
    await this.idle();
    this.nl.close();
  }
}
