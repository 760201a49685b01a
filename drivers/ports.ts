// Published ports, shared by every driver that publishes: turn Docker's requests into concrete
// bindings (host ports chosen and reserved), and bindings into firewall map entries.
import { isIPv6 } from 'node:net';
import { type PortBindingRequest } from './driver.js';
import type { PortMapping } from '../firewall/model.js';
import { PortReservationError } from '../native/sockets.js';
import { ConflictError, UserError } from '../core/errors.js';
import { shortId } from '../core/text.js';
import type { PortBinding, Proto } from '../core/protocol.js';

/** Holds host ports so no host process can take them (firewall/native sockets implement it). */
export interface HostPortReserver {
  reserve(proto: Proto, hostIp: string, port: number): void;
  reserveFromRange(proto: Proto, hostIp: string, from: number, to: number): number;
  reserveEphemeral(proto: Proto, hostIp: string): number;
  release(proto: Proto, hostIp: string, port: number): void;
  /** Whether this reserver holds the port already (a repair while running must not take it twice). */
  holds(proto: Proto, hostIp: string, port: number): boolean;
}

/** For runtimes that hold their containers' host ports themselves: exact ports pass, nothing is bound. */
export const HELD_BY_RUNTIME: HostPortReserver = {
  reserve() {},
  reserveFromRange(_proto, _hostIp, from, to) {
    if (from === to) return from;
    throw new UserError(`host port range ${from}-${to}: the runtime holds the host ports, so give one exact port`);
  },
  reserveEphemeral() {
    throw new UserError('host port 0: the runtime holds the host ports, so give an exact one');
  },
  release() {},
  holds: () => false,
};

export const ANY_V4 = '0.0.0.0';
export const ANY_V6 = '::';

export function isWildcard(hostIp: string): boolean {
  return hostIp === ANY_V4 || hostIp === ANY_V6;
}

export interface ContainerAddresses {
  /** bare IPs, '' when none */
  ipv4: string;
  ipv6: string;
}

/**
 * Resolves and reserves every requested binding, all or nothing: on any failure the ports
 * reserved so far are released and the error says which binding failed.
 *
 * A binding with no host IP is published on every host address: IPv4, plus IPv6 when the
 * container has an IPv6 address, on the same host port (as Docker does).
 */
export function reserveBindings(
  requests: PortBindingRequest[],
  container: ContainerAddresses,
  defaultHostIpv4: string,
  reserver: HostPortReserver,
): PortBinding[] {
  const made: PortBinding[] = [];
  try {
    for (const req of requests) {
      const hostIp = req.hostIp || defaultHostIpv4;
      const targets: { hostIp: string; containerIp: string }[] = [];
      if (hostIp === '') {
        if (container.ipv4) targets.push({ hostIp: ANY_V4, containerIp: container.ipv4 });
        if (container.ipv6) targets.push({ hostIp: ANY_V6, containerIp: container.ipv6 });
      } else if (isIPv6(hostIp)) {
        if (!container.ipv6) {
          throw new UserError(`cannot publish ${describe(req)} on IPv6 host address ${hostIp}: the container has no IPv6 address on this network`);
        }
        targets.push({ hostIp, containerIp: container.ipv6 });
      } else {
        if (!container.ipv4) {
          throw new UserError(`cannot publish ${describe(req)} on ${hostIp}: the container has no IPv4 address on this network`);
        }
        targets.push({ hostIp, containerIp: container.ipv4 });
      }
      let hostPort = 0;
      for (const t of targets) {
        // the first target picks the port; the other family takes the same one
        if (hostPort === 0) hostPort = reserveOne(req, t.hostIp, reserver);
        else reserver.reserve(req.proto, t.hostIp, hostPort);
        made.push({ proto: req.proto, port: req.port, containerIp: t.containerIp, hostIp: t.hostIp, hostPort });
      }
    }
    return made;
  } catch (err) {
    releaseBindings(made, reserver);
    // a port in use, out of range or not local is the user's to fix: say so in Docker's terms
    if (err instanceof PortReservationError) throw new UserError(err.message);
    throw err;
  }
}

function reserveOne(req: PortBindingRequest, hostIp: string, reserver: HostPortReserver): number {
  if (req.hostPort === 0) return reserver.reserveEphemeral(req.proto, hostIp);
  if (req.hostPortEnd > req.hostPort) return reserver.reserveFromRange(req.proto, hostIp, req.hostPort, req.hostPortEnd);
  reserver.reserve(req.proto, hostIp, req.hostPort);
  return req.hostPort;
}

/** A published port already in the store, with the endpoint that owns it. */
export interface PublishedBinding {
  endpointId: string;
  proto: Proto;
  hostIp: string;
  hostPort: number;
}

/**
 * Throws a ConflictError when one of `bindings` would take a host port that another endpoint has
 * published: the same protocol and port on the same host address, or on the wildcard address of
 * its family (0.0.0.0 covers every IPv4 address, :: every IPv6 one). The store decides, not the
 * sockets: a runtime that holds its own host ports (CNI) leaves no socket of tsnet's to collide
 * with, and a second owner would otherwise take the traffic and, when removed, the first owner's
 * reservation with it.
 */
export function refusePublishedElsewhere(bindings: readonly PortBinding[], published: readonly PublishedBinding[], endpointId: string): void {
  for (const b of bindings) {
    const owner = published.find((p) => p.endpointId !== endpointId && p.proto === b.proto && p.hostPort === b.hostPort && hostIpsOverlap(p.hostIp, b.hostIp));
    if (owner) {
      throw new ConflictError(
        `host port ${b.hostPort}/${b.proto} on ${b.hostIp || ANY_V4} is already published by endpoint ${shortId(owner.endpointId)}: choose another host port`,
      );
    }
  }
}

/**
 * The endpoints other than `endpointId` that publish a host port `requests` ask for (same protocol
 * and port; any host address) and whose container is gone (`gone`): their ports were never
 * revoked because their container died with a reboot, or with a dockerd that restarted it as a
 * new endpoint without deleting the old one. Their ports are to be freed before the request,
 * which would otherwise be refused for a container that no longer exists.
 */
export function goneOwnersOf(
  requests: readonly PortBindingRequest[],
  publishedOn: (proto: Proto, hostPort: number) => readonly PublishedBinding[],
  endpointId: string,
  gone: (endpointId: string) => boolean,
): string[] {
  const owners = new Set<string>();
  for (const r of requests) {
    if (r.hostPort === 0) continue;
    for (let port = r.hostPort; port <= Math.max(r.hostPort, r.hostPortEnd); port++) {
      for (const p of publishedOn(r.proto, port)) if (p.endpointId !== endpointId) owners.add(p.endpointId);
    }
  }
  return [...owners].filter(gone);
}

function hostIpsOverlap(a: string, b: string): boolean {
  const family = (ip: string) => (ip === '' || !isIPv6(ip) ? 4 : 6);
  const wildcard = (ip: string) => ip === '' || isWildcard(ip);
  return a === b || (family(a) === family(b) && (wildcard(a) || wildcard(b)));
}

export function releaseBindings(bindings: PortBinding[], reserver: HostPortReserver): void {
  for (const b of bindings) {
    try {
      reserver.release(b.proto, b.hostIp, b.hostPort);
    } catch {
      // releasing a port we no longer hold is not an error worth failing a teardown for
    }
  }
}

function describe(req: PortBindingRequest): string {
  return `container port ${req.port}/${req.proto}`;
}

export function toFirewallMappings(endpointId: string, bindings: PortBinding[]): PortMapping[] {
  return bindings.map((b) => ({
    endpointId,
    proto: b.proto,
    hostIp: isWildcard(b.hostIp) ? '' : b.hostIp,
    hostPort: b.hostPort,
    containerIp: b.containerIp,
    containerPort: b.port,
  }));
}

/** `docker port` format: "80/tcp -> 0.0.0.0:32768", IPv6 host addresses in brackets. */
export function formatBinding(b: Pick<PortBinding, 'proto' | 'port' | 'hostIp' | 'hostPort'>): string {
  return `${b.port}/${b.proto} -> ${formatHostAddress(b.hostIp, b.hostPort)}`;
}

export function formatHostAddress(hostIp: string, hostPort: number): string {
  return isIPv6(hostIp) ? `[${hostIp}]:${hostPort}` : `${hostIp}:${hostPort}`;
}
