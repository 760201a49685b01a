// Names derived from the daemon's settings (daemon/settings.ts): the database file in the state
// directory, and the instance name that keeps two daemons on one host apart.
import { basename, join } from 'node:path';

export function databasePath(stateDir: string): string {
  return join(stateDir, 'tsnet.db');
}

/**
 * The name a daemon is known by: its plugin name, which Docker takes from the socket's file name
 * (/run/docker/plugins/tsnet.sock -> "tsnet", used as `docker network create -d tsnet`). It also
 * names what the daemon owns on the host: its nftables table, the tag of its rules in Docker's
 * chains and the alias of its links, so two daemons on one host never touch each other's.
 */
export function instanceOf(socketPath: string): { name: string; table: string; tag: string } {
  const name = basename(socketPath).replace(/\.sock$/, '') || 'tsnet';
  return { name, table: name.replace(/[^A-Za-z0-9_]/g, '_'), tag: `${name}:` };
}
