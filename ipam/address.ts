import { UserError } from '../core/errors.js';
// IPv4 and IPv6 addresses and CIDRs as bigints: strict parsing, canonical formatting (RFC 5952 for
// IPv6), and the arithmetic IPAM needs (network, last address, containment, overlap). Pure: no I/O.
//
// The parser is our own rather than ip-cidr's because IPAM needs bigints and strictness that
// library does not give (it accepts zone IDs like "::1%eth0/64" and prefixes like "/08", and
// refuses "::ffff:1.2.3.4/120"); the unit tests use ip-cidr as an independent oracle.

export type Family = 4 | 6;

export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

/** A CIDR as written: `address` may have host bits set (see `isNetworkAddress`). */
export interface Cidr {
  readonly family: Family;
  readonly address: bigint;
  readonly prefix: number;
}

export function bitsOf(family: Family): 32 | 128 {
  return family === 4 ? 32 : 128;
}

// ---------------------------------------------------------------------------------------------
// parsing

const DEC_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!DEC_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseGroups(text: string): bigint[] | undefined {
  if (text === '') return [];
  const out: bigint[] = [];
  const parts = text.split(':');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (i === parts.length - 1 && p.includes('.')) {
      const v4 = parseV4(p);
      if (v4 === undefined) return undefined;
      out.push(v4 >> 16n, v4 & 0xffffn);
    } else {
      if (!HEX_GROUP.test(p)) return undefined;
      out.push(BigInt('0x' + p));
    }
  }
  return out;
}

function parseV6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  let groups: bigint[];
  if (halves.length === 1) {
    const g = parseGroups(text);
    if (!g || g.length !== 8) return undefined;
    groups = g;
  } else {
    const head = parseGroups(halves[0]!);
    const tail = parseGroups(halves[1]!);
    // an embedded IPv4 is only allowed at the very end
    if (!head || !tail || halves[0]!.includes('.')) return undefined;
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<bigint>(missing).fill(0n), ...tail];
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | g;
  return v;
}

/** Parses a bare IPv4 or IPv6 address; undefined when it is not one. No zone IDs, no leading zeros in IPv4. */
export function tryParseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const v = parseV6(text);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(text);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function parseIp(text: string): IpAddress {
  const ip = tryParseIp(text);
  if (!ip) throw new UserError(`'${text}' is not a valid IP address`);
  return ip;
}

/** Parses "address/prefix"; undefined when it is not a valid CIDR. Host bits may be set. */
export function tryParseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = tryParseIp(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!ip || !PREFIX.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(ip.family)) return undefined;
  return { family: ip.family, address: ip.value, prefix };
}

export function parseCidr(text: string): Cidr {
  const c = tryParseCidr(text);
  if (!c) throw new UserError(`'${text}' is not a valid CIDR`);
  return c;
}

/** A CIDR or a bare address (taken as /32 or /128), as route tables list them; undefined when neither. */
export function tryParsePrefix(text: string): Cidr | undefined {
  if (text.includes('/')) return tryParseCidr(text);
  const ip = tryParseIp(text);
  return ip && { family: ip.family, address: ip.value, prefix: bitsOf(ip.family) };
}

/** The prefix length of a CIDR string: prefixLength('10.1.0.0/16') === 16. */
export function prefixLength(text: string): number {
  return parseCidr(text).prefix;
}

// ---------------------------------------------------------------------------------------------
// formatting

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(Number((v >> s) & 0xffffn));
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted tail
  if (v >> 32n === 0xffffn) return `::ffff:${formatV4(v & 0xffffffffn)}`;
  // longest run of two or more zero groups, the first one on a tie, becomes "::"
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

export function formatIp(ip: IpAddress): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

export function formatAddress(family: Family, value: bigint): string {
  return family === 4 ? formatV4(value) : formatV6(value);
}

/** "10.1.0.0/24", "fd00:1::/64": the address as given (host bits kept) and the prefix. */
export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.address)}/${c.prefix}`;
}

/** Canonical text of a CIDR string (IPv6 compressed, lowercase). Throws on bad input. */
export function canonicalCidr(text: string): string {
  return formatCidr(parseCidr(text));
}

/** Canonical text of a bare address string. Throws on bad input. */
export function canonicalIp(text: string): string {
  return formatIp(parseIp(text));
}

// ---------------------------------------------------------------------------------------------
// arithmetic

export function maskOf(family: Family, prefix: number): bigint {
  const bits = BigInt(bitsOf(family));
  const all = (1n << bits) - 1n;
  return (all << (bits - BigInt(prefix))) & all;
}

/** Number of addresses in the CIDR. */
export function sizeOf(c: Cidr): bigint {
  return 1n << BigInt(bitsOf(c.family) - c.prefix);
}

/** First address of the CIDR (the network address). */
export function networkOf(c: Cidr): bigint {
  return c.address & maskOf(c.family, c.prefix);
}

/** Last address of the CIDR (the IPv4 broadcast address). */
export function lastOf(c: Cidr): bigint {
  return networkOf(c) + sizeOf(c) - 1n;
}

export const broadcastOf = lastOf;

export function isNetworkAddress(c: Cidr): boolean {
  return c.address === networkOf(c);
}

/** The CIDR with its host bits cleared. */
export function toNetwork(c: Cidr): Cidr {
  return { family: c.family, address: networkOf(c), prefix: c.prefix };
}

export function containsIp(c: Cidr, ip: IpAddress): boolean {
  return c.family === ip.family && ip.value >= networkOf(c) && ip.value <= lastOf(c);
}

/** True when every address of `inner` is in `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && networkOf(inner) >= networkOf(outer) && lastOf(inner) <= lastOf(outer);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && networkOf(a) <= lastOf(b) && networkOf(b) <= lastOf(a);
}

/** Overlap test on CIDR strings; throws on bad input. */
export function cidrStringsOverlap(a: string, b: string): boolean {
  return overlaps(parseCidr(a), parseCidr(b));
}
