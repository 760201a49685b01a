// Names derived from the daemon's settings (daemon/settings.ts): the database file in the state
// directory, and the instance name that keeps two daemons on one host apart.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../core/errors.js';

export function databasePath(stateDir: string): string {
  return join(stateDir, 'tsnet.db');
}

/**
 * Which installation of tsnet this is: the same across restarts and upgrades, different for every
 * machine and every state directory (the lab's hosts share a machine). The cluster store uses it
 * to tell a restarted daemon from another host that was given the same --host-name.
 */
export function installationId(stateDir: string): string {
  let machine = '';
  try {
    machine = readFileSync('/etc/machine-id', 'utf8').trim();
  } catch {
    // no machine-id (a minimal container): the hostname and the state directory still tell apart
  }
  return createHash('sha256').update(`${machine}\n${hostname()}\n${resolve(stateDir)}`).digest('hex').slice(0, 16);
}

/** Letters, digits and '-': so the table name ('-' -> '_') is a valid nftables name and no two plugin names share one. */
const PLUGIN_NAME = /^[A-Za-z][A-Za-z0-9-]{0,31}$/;

/**
 * The name a daemon is known by: its plugin name, which Docker takes from the socket's file name
 * (/run/docker/plugins/tsnet.sock -> "tsnet", used as `docker network create -d tsnet`). It also
 * names what the daemon owns on the host: its nftables table, the tag of its rules in Docker's
 * chains and the alias of its links, so two daemons on one host never touch each other's. A name
 * that could not keep them apart (ts_net and ts-net would share table ts_net) is refused.
 */
export function instanceOf(socketPath: string): { name: string; table: string; tag: string } {
  const name = basename(socketPath).replace(/\.sock$/, '') || 'tsnet';
  if (!PLUGIN_NAME.test(name)) {
    throw new UserError(
      `plugin socket ${socketPath}: a tsnet plugin name (the socket's file name without .sock) must start with a letter ` +
        `and hold only letters, digits and '-', at most 32`,
    );
  }
  return { name, table: name.replace(/-/g, '_'), tag: `${name}:` };
}
