// Checks and normal forms for what goes into rule text: interface names, addresses, subnets,
// ports. Everything interpolated into an nft script passes through one of these first, so no
// input can change the meaning of a script.
import { isIPv4, isIPv6 } from 'node:net';
import { FirewallInputError } from './model.js';
import { PROTOS, type Proto } from '../core/protocol.js';

export type Family = 4 | 6;

// Linux allows almost any byte in an interface name; nft strings cannot escape a double quote
// and treat a trailing '*' as a wildcard. tsnet's own names and Docker's fit this set.
const IFNAME = /^[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,14}$/;

/** Whether an interface name can be written into a rule (the one rule for names tsnet makes or uses). */
export function isRuleSafeIfname(name: string): boolean {
  return IFNAME.test(name);
}

export function checkIfname(name: string): string {
  if (!isRuleSafeIfname(name)) {
    throw new FirewallInputError(
      `interface name '${name}' cannot be used in firewall rules: use 1 to 15 letters, digits, '_', '.', '-', '@', '+' or '=', starting with a letter or digit`,
    );
  }
  return name;
}

/** A bare IPv4 or IPv6 address in the form nft prints (IPv6 compressed, lower case). */
export function checkIp(ip: string, what = 'address'): { ip: string; family: Family } {
  if (isIPv4(ip)) return { ip, family: 4 };
  if (isIPv6(ip) && !ip.includes('%')) return { ip: canonicalIPv6(ip), family: 6 };
  throw new FirewallInputError(`${what} '${ip}' is not an IPv4 or IPv6 address`);
}

export function familyOf(ip: string): Family {
  return checkIp(ip).family;
}

/** A CIDR with its host bits cleared (nft refuses them in interval sets). */
export function checkCidr(cidr: string): { cidr: string; family: Family } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  if (!m) throw new FirewallInputError(`subnet '${cidr}' is not in CIDR form (address/prefix length)`);
  const { ip, family } = checkIp(m[1], `subnet address in '${cidr}'`);
  const len = Number(m[2]);
  const bits = family === 4 ? 32 : 128;
  if (len > bits) throw new FirewallInputError(`subnet '${cidr}' has a prefix length over ${bits}`);
  const value = family === 4 ? ipv4ToBig(ip) : ipv6ToBig(ip);
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
  const net = value & mask;
  return { cidr: `${family === 4 ? bigToIpv4(net) : bigToIpv6(net)}/${len}`, family };
}

export function checkPort(port: number, what: string): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new FirewallInputError(`${what} ${port} is not a port number (1-65535)`);
  }
  return port;
}

export function checkProto(proto: string): Proto {
  if (!(PROTOS as readonly string[]).includes(proto)) {
    throw new FirewallInputError(`protocol '${proto}' cannot be published: use ${PROTOS.join(', ')}`);
  }
  return proto as Proto;
}

export function canonicalIPv6(ip: string): string {
  // the URL parser writes IPv6 host literals in RFC 5952 form, as nft does
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

function ipv4ToBig(ip: string): bigint {
  return ip.split('.').reduce((acc, b) => (acc << 8n) | BigInt(Number(b)), 0n);
}

function bigToIpv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

function ipv6ToBig(ip: string): bigint {
  const full = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  let [head, tail] = full.includes('::') ? full.split('::') : [full, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  // an embedded IPv4 tail ("::ffff:1.2.3.4") is two groups
  const expand = (groups: string[]) =>
    groups.flatMap((g) => {
      if (!g.includes('.')) return [g];
      const v = ipv4ToBig(g);
      return [((v >> 16n) & 0xffffn).toString(16), (v & 0xffffn).toString(16)];
    });
  const hh = expand(h);
  const tt = expand(t);
  const groups = tail === undefined ? hh : [...hh, ...Array<string>(8 - hh.length - tt.length).fill('0'), ...tt];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigToIpv6(v: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return canonicalIPv6(groups.join(':'));
}
