// IP and MAC addresses between their text forms and the bytes netlink carries. Pure.
import { isIP } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  ip: Buffer;
  prefixLen: number;
}

export function ipFamily(ip: string): Family {
  const family = isIP(ip);
  if (family === 0) throw new TypeError(`'${ip}' is not an IP address`);
  return family as Family;
}

export function parseIp(ip: string): Buffer {
  return ipFamily(ip) === 4 ? Buffer.from(ip.split('.').map(Number)) : parseIPv6(ip);
}

function parseIPv6(ip: string): Buffer {
  const out = Buffer.alloc(16);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const words = part.split(':');
    const last = words[words.length - 1];
    // a trailing dotted quad (::ffff:10.0.0.1) fills the last two groups
    if (last.includes('.')) {
      const b = parseIp(last);
      words.splice(-1, 1, b.readUInt16BE(0).toString(16), b.readUInt16BE(2).toString(16));
    }
    return words.map((w) => parseInt(w, 16));
  };
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  front.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  back.forEach((g, i) => out.writeUInt16BE(g, 16 - (back.length - i) * 2));
  return out;
}

/** Text form of 4 or 16 address bytes; IPv6 in the canonical form of RFC 5952, as `ip` prints it. */
export function formatIp(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  if (b.length !== 16) throw new TypeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  const words = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  // the longest run of two or more zero groups becomes '::' (the first one on a tie)
  let best = { start: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (best.start < 0) return hex(words);
  return `${hex(words.slice(0, best.start))}::${hex(words.slice(best.start + best.len))}`;
}

export function parseCidr(cidr: string): Cidr {
  const [ip, len, extra] = cidr.split('/');
  const family = ipFamily(ip);
  const max = family === 4 ? 32 : 128;
  const prefixLen = len === undefined ? max : Number(len);
  if (extra !== undefined || !/^\d+$/.test(len ?? String(max)) || prefixLen > max) {
    throw new TypeError(`'${cidr}' is not a CIDR (address/prefix length)`);
  }
  return { family, ip: parseIp(ip), prefixLen };
}

/** The IPv4 broadcast address of a subnet, as `ip addr add ... brd +` sets it. */
export function ipv4Broadcast(ip: Buffer, prefixLen: number): Buffer {
  const hostMask = prefixLen === 0 ? 0xffffffff : (1 << (32 - prefixLen)) - 1;
  const out = Buffer.alloc(4);
  out.writeUInt32BE((ip.readUInt32BE(0) | hostMask) >>> 0);
  return out;
}

export function parseMac(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new TypeError(`'${mac}' is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
