// Host port reservation: a published host port is held by a socket bound to it, so no host
// process can bind it while a container publishes it, and the kernel never hands it out as the
// local port of an outgoing connection. Binding is enough (no listen): traffic to the port is
// DNATed to the container before it could reach the socket.
//
// The sockets are made with plain socket(2) and bind(2) through koffi, synchronously, and kept
// open until release. They are made without SO_REUSEADDR on purpose: Linux lets two sockets share
// a port only when both ask for it, so a host server binding with SO_REUSEADDR still fails.
// A socket belongs to the network namespace its creating thread was in.
import koffi from 'koffi';
import { SOCK_CLOEXEC, SysError, bind, close, setsockoptInt, socket } from './libc.js';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';

import type { Proto } from '../core/protocol.js';

export type ReservationFailure = 'in-use' | 'not-local' | 'exhausted' | 'denied' | 'other';

export class PortReservationError extends Error {
  constructor(
    message: string,
    readonly reason: ReservationFailure,
    readonly errno = 0,
  ) {
    super(message);
    this.name = 'PortReservationError';
  }
}

export interface ReserverLog {
  warn(obj: object, msg: string): void;
}

export interface PortReserverOptions {
  log?: ReserverLog;
  /** where ip_local_port_range and ip_local_reserved_ports are read; for tests */
  procSysIpv4?: string;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_SCTP = 132;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;

const E = koffi.os.errno;

/** Held sockets of one reservation; an empty list when the kernel cannot hold the protocol. */
interface Held {
  fds: number[];
}

export class PortReserver {
  private readonly held = new Map<string, Held>();
  private readonly cursor = new Map<string, number>();
  private readonly log: ReserverLog;
  private readonly procSys: string;
  private sctpMissingLogged = false;

  constructor(opts: PortReserverOptions = {}) {
    this.log = opts.log ?? { warn: (obj, msg) => console.warn(msg, obj) };
    this.procSys = opts.procSysIpv4 ?? '/proc/sys/net/ipv4';
  }

  /**
   * Holds `port` on `hostIp` ('' = 0.0.0.0 and [::], '0.0.0.0', '::' or one host address).
   * Throws PortReservationError when a host process or another published port has it.
   */
  reserve(proto: Proto, hostIp: string, port: number): void {
    checkPort(port);
    const ip = normalizeHostIp(hostIp);
    const k = key(proto, ip, port);
    if (this.held.has(k)) {
      throw new PortReservationError(`${describe(proto, ip, port)} is already in use by another published port: choose another host port`, 'in-use', E.EADDRINUSE);
    }
    this.held.set(k, { fds: this.bindAll(proto, ip, port) });
  }

  /** Holds the first free port of from..to (inclusive) and returns it. */
  reserveFromRange(proto: Proto, hostIp: string, from: number, to: number): number {
    checkPort(from);
    checkPort(to);
    if (to < from) throw new PortReservationError(`host port range ${from}-${to} is empty: give the lower port first`, 'other');
    const ip = normalizeHostIp(hostIp);
    for (let p = from; p <= to; p++) {
      if (this.tryReserve(proto, ip, p)) return p;
    }
    throw new PortReservationError(
      `every host port in ${from}-${to}/${proto} on ${shownIp(ip)} is already in use: choose another range`,
      'exhausted',
      E.EADDRINUSE,
    );
  }

  /**
   * Holds a free port of the kernel's ephemeral range (net.ipv4.ip_local_port_range, skipping
   * net.ipv4.ip_local_reserved_ports), as Docker picks one for `-p 80` without a host port.
   * Successive calls move on through the range rather than reusing the lowest free port at once.
   */
  reserveEphemeral(proto: Proto, hostIp: string): number {
    const ip = normalizeHostIp(hostIp);
    const [low, high] = this.localPortRange();
    const skip = this.reservedPorts();
    const size = high - low + 1;
    const ck = `${proto} ${ip}`;
    const last = this.cursor.get(ck) ?? low;
    // the range may have changed since the last call
    const start = last >= low && last <= high ? last : low;
    for (let i = 0; i < size; i++) {
      const p = low + ((start - low + i) % size);
      if (skip.has(p)) continue;
      if (this.tryReserve(proto, ip, p)) {
        this.cursor.set(ck, p + 1 > high ? low : p + 1);
        return p;
      }
    }
    throw new PortReservationError(
      `no free host port left in the ephemeral range ${low}-${high}/${proto} on ${shownIp(ip)}: free some published ports or give host ports explicitly`,
      'exhausted',
      E.EADDRINUSE,
    );
  }

  /** Whether this reserver holds the port (as given to reserve, '' or a wildcard for every address). */
  holds(proto: Proto, hostIp: string, port: number): boolean {
    return this.held.has(key(proto, normalizeHostIp(hostIp), port));
  }

  /** Lets the port go; no error when it is not held. */
  release(proto: Proto, hostIp: string, port: number): void {
    const ip = normalizeHostIp(hostIp);
    const k = key(proto, ip, port);
    const h = this.held.get(k);
    if (!h) return;
    this.held.delete(k);
    closeAll(h.fds);
  }

  releaseAll(): void {
    for (const h of this.held.values()) closeAll(h.fds);
    this.held.clear();
  }

  /** What is held, for status and tests. */
  list(): { proto: Proto; hostIp: string; port: number; sockets: number }[] {
    return [...this.held].map(([k, h]) => {
      const [proto, ip, port] = k.split(' ');
      return { proto: proto as Proto, hostIp: ip === '*' ? '' : ip, port: Number(port), sockets: h.fds.length };
    });
  }

  /** Like reserve, but false (not an error) when the port is taken. */
  private tryReserve(proto: Proto, ip: string, port: number): boolean {
    try {
      this.reserve(proto, ip, port);
      return true;
    } catch (err) {
      if (err instanceof PortReservationError && err.reason === 'in-use') return false;
      throw err;
    }
  }

  /** Binds every socket a reservation needs, all or none. */
  private bindAll(proto: Proto, ip: string, port: number): number[] {
    const targets: { family: number; addr: string; optional: boolean }[] =
      ip === ''
        ? [
            { family: AF_INET, addr: '0.0.0.0', optional: false },
            // IPv6 may be off on this host: then there is nothing to hold
            { family: AF_INET6, addr: '::', optional: true },
          ]
        : [{ family: isIPv6(ip) ? AF_INET6 : AF_INET, addr: ip, optional: false }];
    const fds: number[] = [];
    try {
      for (const t of targets) {
        const fd = this.bindOne(proto, t.family, t.addr, port, ip, t.optional);
        if (fd === null) {
          if (proto === 'sctp') return closeAll(fds);
          continue;
        }
        fds.push(fd);
      }
      return fds;
    } catch (err) {
      closeAll(fds);
      throw err;
    }
  }

  /** One bound socket, or null when it cannot exist here (no SCTP, or optional IPv6 off). */
  private bindOne(proto: Proto, family: number, addr: string, port: number, shownAs: string, optional: boolean): number | null {
    const [type, protocol] = proto === 'tcp' ? [SOCK_STREAM, IPPROTO_TCP] : proto === 'udp' ? [SOCK_DGRAM, IPPROTO_UDP] : [SOCK_STREAM, IPPROTO_SCTP];
    let fd: number;
    try {
      fd = socket(family, type | SOCK_CLOEXEC, protocol);
    } catch (err) {
      const errno = errnoOf(err);
      if (proto === 'sctp' && (errno === E.EPROTONOSUPPORT || errno === E.ESOCKTNOSUPPORT)) {
        if (!this.sctpMissingLogged) {
          this.sctpMissingLogged = true;
          this.log.warn({ errno }, 'the kernel has no SCTP support: sctp host ports are published without a reserving socket (no host process can use SCTP either)');
        }
        return null;
      }
      if (optional && errno === E.EAFNOSUPPORT) return null;
      if (errno === E.EMFILE || errno === E.ENFILE) {
        throw new PortReservationError(`cannot hold ${describe(proto, shownAs, port)}: too many open files (raise the daemon's file limit, LimitNOFILE)`, 'other', errno);
      }
      throw new PortReservationError(`cannot hold ${describe(proto, shownAs, port)}: ${(err as Error).message}`, 'other', errno);
    }
    try {
      // [::] must not also take IPv4's 0.0.0.0: that one is held (or left free) on its own
      if (family === AF_INET6) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
      bind(fd, sockaddr(family, addr, port));
      return fd;
    } catch (err) {
      close(fd);
      const errno = errnoOf(err);
      if (optional && (errno === E.EADDRNOTAVAIL || errno === E.EAFNOSUPPORT)) return null;
      if (err instanceof SysError && err.syscall === 'bind') throw bindError(errno, proto, shownAs, port);
      throw new PortReservationError(`cannot hold ${describe(proto, shownAs, port)}: ${(err as Error).message}`, 'other', errno);
    }
  }

  private localPortRange(): [number, number] {
    try {
      const [a, b] = readFileSync(`${this.procSys}/ip_local_port_range`, 'utf8').trim().split(/\s+/).map(Number);
      if (Number.isInteger(a) && Number.isInteger(b) && a >= 1 && b <= 65535 && a <= b) return [a, b];
    } catch {
      // fall through to the kernel's usual range
    }
    return [32768, 60999];
  }

  private reservedPorts(): Set<number> {
    const out = new Set<number>();
    let text = '';
    try {
      text = readFileSync(`${this.procSys}/ip_local_reserved_ports`, 'utf8').trim();
    } catch {
      return out;
    }
    for (const part of text.split(',').filter((s) => s !== '')) {
      const [a, b] = part.split('-').map(Number);
      for (let p = a; p <= (b ?? a); p++) out.add(p);
    }
    return out;
  }
}

function bindError(errno: number, proto: Proto, ip: string, port: number): PortReservationError {
  const what = describe(proto, ip, port);
  if (errno === E.EADDRINUSE) return new PortReservationError(`${what} is already in use: choose another host port`, 'in-use', errno);
  if (errno === E.EADDRNOTAVAIL) {
    return new PortReservationError(`cannot publish ${what}: ${ip} is not an address of this host; give one of the host's addresses or none`, 'not-local', errno);
  }
  if (errno === E.EACCES || errno === E.EPERM) {
    return new PortReservationError(`cannot hold ${what}: permission denied (the daemon needs CAP_NET_BIND_SERVICE for ports below 1024)`, 'denied', errno);
  }
  return new PortReservationError(`cannot hold ${what}: bind() failed (errno ${errno})`, 'other', errno);
}

function sockaddr(family: number, addr: string, port: number): Buffer {
  if (family === AF_INET) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    addr.split('.').forEach((octet, i) => b.writeUInt8(Number(octet), 4 + i));
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  ipv6Bytes(addr).copy(b, 8);
  return b;
}

function ipv6Bytes(ip: string): Buffer {
  const out = Buffer.alloc(16);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, ''];
  const parse = (s: string) =>
    s === ''
      ? []
      : s.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const o = g.split('.').map(Number);
          return [(o[0] << 8) | o[1], (o[2] << 8) | o[3]];
        });
  const h = parse(head);
  const t = parse(tail);
  const groups = ip.includes('::') ? [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t] : h;
  groups.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

function normalizeHostIp(hostIp: string): string {
  if (hostIp === '') return '';
  if (isIPv4(hostIp)) return hostIp;
  if (isIPv6(hostIp) && !hostIp.includes('%')) return new URL(`http://[${hostIp}]/`).hostname.slice(1, -1);
  throw new PortReservationError(`host address '${hostIp}' is not an IPv4 or IPv6 address`, 'other');
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new PortReservationError(`host port ${port} is not a port number (1-65535)`, 'other');
  }
}

function key(proto: Proto, ip: string, port: number): string {
  return `${proto} ${ip === '' ? '*' : ip} ${port}`;
}

function shownIp(ip: string): string {
  return ip === '' ? '0.0.0.0 and [::]' : ip;
}

function describe(proto: Proto, ip: string, port: number): string {
  return `host port ${port}/${proto} on ${shownIp(ip)}`;
}

function errnoOf(err: unknown): number {
  return err instanceof SysError ? err.errno : 0;
}

function closeAll(fds: number[]): [] {
  for (const fd of fds) close(fd);
  fds.length = 0;
  return [];
}
