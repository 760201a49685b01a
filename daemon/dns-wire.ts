// The few DNS messages tsnet's name responder (overlay-dns.ts) reads and writes, in RFC 1035's
// wire format: a query with one question, an answer of A or AAAA records to it, an empty answer
// or a name error, and a query of its own to another host. Pure functions over buffers; anything
// else (several questions, compressed names in a question) is refused by parseQuery.
import { formatIp, parseIp } from '../native/netlink/ip.js';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
const CLASS_IN = 1;
const FLAG_RESPONSE = 0x8000;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const OPCODE_MASK = 0x7800;
export const RCODE_NXDOMAIN = 3;
export const RCODE_SERVFAIL = 2;
export const RCODE_FORMERR = 1;
/** a name's longest wire form (RFC 1035 2.3.4) */
const MAX_NAME_OCTETS = 255;

export interface DnsQuery {
  id: number;
  /** recursion desired: a container's query has it; a host's query to another host has not */
  rd: boolean;
  /** lower case, without the trailing dot */
  name: string;
  type: number;
  qclass: number;
  /** the question as it came, echoed in the answer */
  question: Buffer;
  opcode: number;
}

/** The query in msg, or undefined when it is not one tsnet answers itself (then it is forwarded as it is, or dropped). */
export function parseQuery(msg: Buffer): DnsQuery | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & FLAG_RESPONSE || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    if (at >= msg.length) return undefined;
    const len = msg[at];
    if (len === 0) break;
    if (len > 63 || at + 1 + len > msg.length) return undefined; // a pointer or a truncated label
    labels.push(msg.toString('latin1', at + 1, at + 1 + len).toLowerCase());
    at += 1 + len;
  }
  at += 1;
  if (at + 4 > msg.length || at - 12 > MAX_NAME_OCTETS) return undefined;
  return {
    id: msg.readUInt16BE(0),
    rd: (flags & FLAG_RD) !== 0,
    name: labels.join('.'),
    type: msg.readUInt16BE(at),
    qclass: msg.readUInt16BE(at + 2),
    question: msg.subarray(12, at + 4),
    opcode: flags & OPCODE_MASK,
  };
}

/** The answer to q: an A or AAAA record per address (by its family; ttl seconds), or none with rcode (0: the name exists, no record of that type). */
export function buildAnswer(q: DnsQuery, addresses: string[], ttl: number, rcode = 0): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header.writeUInt16BE(FLAG_RESPONSE | q.opcode | (q.rd ? FLAG_RD : 0) | FLAG_RA | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const records = addresses.map((ip) => {
    const data = parseIp(ip);
    const r = Buffer.alloc(12 + data.length);
    r.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    r.writeUInt16BE(data.length === 4 ? TYPE_A : TYPE_AAAA, 2);
    r.writeUInt16BE(CLASS_IN, 4);
    r.writeUInt32BE(ttl, 6);
    r.writeUInt16BE(data.length, 10);
    data.copy(r, 12);
    return r;
  });
  return Buffer.concat([header, q.question, ...records]);
}

/** A query for name's A (or AAAA) records with recursion off (id chosen by the caller). */
export function buildQuery(id: number, name: string, type = TYPE_A): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0, 2);
  header.writeUInt16BE(1, 4);
  const labels = name.split('.').filter(Boolean).map((l) => {
    const b = Buffer.from(l, 'latin1');
    return Buffer.concat([Buffer.from([b.length]), b]);
  });
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(CLASS_IN, 3);
  return Buffer.concat([header, ...labels, tail]);
}

/** The A and AAAA records' addresses of an answer (the answers follow the one question; names may be pointers). */
export function answerAddresses(msg: Buffer): string[] {
  const q = parseQueryOfAnswer(msg);
  if (!q) return [];
  let at = 12 + q.question.length;
  const out: string[] = [];
  for (let i = 0; i < msg.readUInt16BE(6) && at < msg.length; i++) {
    at = skipName(msg, at);
    if (at + 10 > msg.length) break;
    const type = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 8);
    at += 10;
    const size = type === TYPE_A ? 4 : type === TYPE_AAAA ? 16 : 0;
    if (size > 0 && len === size && at + size <= msg.length) out.push(formatIp(msg.subarray(at, at + size)));
    at += len;
  }
  return out;
}

/** An answer's question, read as a query (the response bit aside). */
function parseQueryOfAnswer(msg: Buffer): DnsQuery | undefined {
  if (msg.length < 12 || !(msg.readUInt16BE(2) & FLAG_RESPONSE)) return undefined;
  const copy = Buffer.from(msg);
  copy.writeUInt16BE(msg.readUInt16BE(2) & ~FLAG_RESPONSE, 2);
  return parseQuery(copy);
}

function skipName(msg: Buffer, at: number): number {
  while (at < msg.length) {
    const len = msg[at];
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += 1 + len;
  }
  return at;
}

/**
 * The reply to a message parseQuery refused: FORMERR with its ID when it has a query's whole header
 * (RFC 1035 4.1.1: the server could not read the query), else undefined, to drop it: shorter than
 * a header there is no ID to answer to, and a response is never answered (no loops between
 * responders). Pure.
 */
export function formErrReply(msg: Buffer): Buffer | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & FLAG_RESPONSE) return undefined;
  const reply = Buffer.alloc(12);
  reply.writeUInt16BE(msg.readUInt16BE(0), 0);
  reply.writeUInt16BE(FLAG_RESPONSE | (flags & OPCODE_MASK) | (flags & FLAG_RD) | FLAG_RA | RCODE_FORMERR, 2);
  return reply;
}
