// Where tsnet keeps things. Each can be overridden by a flag or an environment variable, so that
// several daemons (tests, the overlay lab) can run side by side.
import { basename, join } from 'node:path';
import { hostname } from 'node:os';

export const DEFAULT_STATE_DIR = process.env.TSNET_STATE_DIR || '/var/lib/tsnet';
export const DEFAULT_SOCKET = process.env.TSNET_SOCKET || '/run/docker/plugins/tsnet.sock';
export const DEFAULT_LOG = process.env.TSNET_LOG || '/var/log/tsnet/tsnet.log';
export const DEFAULT_STORE = process.env.TSNET_STORE || '';
export const DEFAULT_VTEP = process.env.TSNET_VTEP || '';
export const DEFAULT_HOST_NAME = process.env.TSNET_HOST_NAME || hostname();
export const DEFAULT_LEASE_TTL = process.env.TSNET_LEASE_TTL || '10';
export const DOCKER_SOCKET = process.env.DOCKER_SOCKET || '/var/run/docker.sock';

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
