// `tsnet port CONTAINER [PORT[/PROTO]]`: what `docker port` would print, had Docker a way to show
// a remote driver's bindings (it has not: it cannot decode them from EndpointOperInfo).
import { inspectContainer, DockerApiError } from './docker-api.js';
import { openStateReadonly, CliError } from './status.js';
import { formatBinding, formatHostAddress } from '../drivers/ports.js';
import type { PublishedPort } from '../store/network-repo.js';

export function parsePortFilter(arg: string): { port: number; proto: string } {
  const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(arg);
  if (!m || Number(m[1]) > 65535) throw new CliError(`invalid port '${arg}': expected PORT or PORT/PROTO (tcp, udp, sctp)`);
  return { port: Number(m[1]), proto: m[2] ?? 'tcp' };
}

/** Lines as docker port prints them: all bindings, or only host addresses when a port is given. */
export function formatPortLines(ports: PublishedPort[], filter?: { port: number; proto: string }): string[] {
  const sorted = [...ports].sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto) || Number(a.hostIp.includes(':')) - Number(b.hostIp.includes(':')));
  if (!filter) return sorted.map(formatBinding);
  return sorted.filter((p) => p.port === filter.port && p.proto === filter.proto).map((p) => formatHostAddress(p.hostIp, p.hostPort));
}

export async function runPort(stateDir: string, container: string, portArg?: string): Promise<string> {
  const filter = portArg ? parsePortFilter(portArg) : undefined;
  let info;
  try {
    info = await inspectContainer(container);
  } catch (err) {
    if (err instanceof DockerApiError && err.status === 404) throw new CliError(`No such container: ${container}`);
    throw new CliError(`cannot ask Docker about ${container}: ${(err as Error).message}`);
  }
  const { db, repo } = openStateReadonly(stateDir);
  try {
    const ports = Object.values(info.NetworkSettings.Networks ?? {}).flatMap((n) => repo.listPorts({ endpointId: n.EndpointID }));
    const lines = formatPortLines(ports, filter);
    if (filter && lines.length === 0) {
      throw new CliError(`No public port '${filter.port}/${filter.proto}' published for ${container}`);
    }
    return lines.join('\n');
  } finally {
    db.close();
  }
}
