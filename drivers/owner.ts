// Every link a tsnet daemon makes carries the alias "<instance>:<id>", so its start-up sweep can
// tell its own leftovers from links that belong to others (Docker's docker0, the user's eth1, and
// the links of another tsnet daemon on the same host, e.g. the test suite's beside a user's),
// whatever names the user chose.
import { shortId } from '../core/text.js';
export class LinkOwner {
  readonly prefix: string;

  /** instance: the plugin name the daemon is registered under ("tsnet" by default) */
  constructor(readonly instance = 'tsnet') {
    this.prefix = `${instance}:`;
  }

  alias(id: string): string {
    return `${this.prefix}${shortId(id)}`;
  }

  owns(alias: string | undefined): boolean {
    return alias !== undefined && alias.startsWith(this.prefix);
  }
}
