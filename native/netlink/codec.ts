// rtnetlink messages as data: each fixed header is a list of fields and each attribute set a
// table of name -> [attribute type, value codec]. encode/decode walk those tables, so adding an
// attribute is one line. Pure: no I/O.
//
// Netlink is in host byte order; tsnet runs on little-endian machines (x86-64, arm64), so
// multi-byte fields are little-endian unless the kernel says network order (ports).
import { formatIp, formatMac, parseIp, parseMac } from './ip.js';
import {
  IFA,
  IFLA,
  IFLA_BRPORT,
  IFLA_INFO,
  IFLA_MACVLAN,
  IFLA_VLAN,
  IFLA_VXLAN,
  NDA,
  NLA_F_NESTED,
  NLA_TYPE_MASK,
  NLM_F,
  NLMSG,
  NLMSGERR_ATTR,
  RTA,
  VETH_INFO_PEER,
} from './constants.js';

// ------------------------------------------------------------------ fixed-size structs

type FieldType = 'u8' | 'u16' | 'u32' | 'i32';

const FIELDS: Record<FieldType, { size: number; read(b: Buffer, o: number): number; write(b: Buffer, v: number, o: number): void }> = {
  u8: { size: 1, read: (b, o) => b.readUInt8(o), write: (b, v, o) => b.writeUInt8(v, o) },
  u16: { size: 2, read: (b, o) => b.readUInt16LE(o), write: (b, v, o) => b.writeUInt16LE(v, o) },
  u32: { size: 4, read: (b, o) => b.readUInt32LE(o), write: (b, v, o) => b.writeUInt32LE(v >>> 0, o) },
  i32: { size: 4, read: (b, o) => b.readInt32LE(o), write: (b, v, o) => b.writeInt32LE(v, o) },
};

export interface Struct<T> {
  readonly size: number;
  /** Missing fields are zero, as in a memset C struct. */
  encode(v: Partial<T>): Buffer;
  decode(b: Buffer, offset?: number): T;
}

/** A C struct whose fields are listed in order; padding must be listed as fields too. */
export function struct<F extends Record<string, FieldType>>(fields: F): Struct<{ [K in keyof F]: number }> {
  type T = { [K in keyof F]: number };
  const layout = Object.entries(fields).map(([name, type]) => ({ name, ...FIELDS[type] }));
  const size = layout.reduce((n, f) => n + f.size, 0);
  const offsets = layout.map((_, i) => layout.slice(0, i).reduce((n, f) => n + f.size, 0));
  return {
    size,
    encode(v) {
      const b = Buffer.alloc(size);
      layout.forEach((f, i) => f.write(b, (v as Record<string, number | undefined>)[f.name] ?? 0, offsets[i]));
      return b;
    },
    decode(b, offset = 0) {
      if (b.length < offset + size) throw new RangeError(`netlink: truncated struct (${b.length - offset} of ${size} bytes)`);
      return Object.fromEntries(layout.map((f, i) => [f.name, f.read(b, offset + offsets[i])])) as T;
    },
  };
}

// ------------------------------------------------------------------ attributes (struct rtattr / nlattr)

export const align4 = (n: number): number => (n + 3) & ~3;
const ATTR_HEADER = 4;

export interface RawAttr {
  type: number;
  nested: boolean;
  value: Buffer;
}

export function encodeAttr(type: number, value: Buffer, nested = false): Buffer {
  const b = Buffer.alloc(align4(ATTR_HEADER + value.length));
  b.writeUInt16LE(ATTR_HEADER + value.length, 0);
  b.writeUInt16LE(type | (nested ? NLA_F_NESTED : 0), 2);
  value.copy(b, ATTR_HEADER);
  return b;
}

export function decodeAttrList(b: Buffer): RawAttr[] {
  const out: RawAttr[] = [];
  for (let o = 0; o + ATTR_HEADER <= b.length; ) {
    const len = b.readUInt16LE(o);
    const type = b.readUInt16LE(o + 2);
    if (len < ATTR_HEADER || o + len > b.length) throw new RangeError(`netlink: malformed attribute at offset ${o}`);
    out.push({ type: type & NLA_TYPE_MASK, nested: (type & NLA_F_NESTED) !== 0, value: b.subarray(o + ATTR_HEADER, o + len) });
    o += align4(len);
  }
  return out;
}

/** How one attribute's payload reads and writes; `nested` sets NLA_F_NESTED on the attribute. */
export interface Codec<T> {
  readonly nested?: boolean;
  encode(v: T): Buffer;
  decode(b: Buffer): T;
}

function fixed(type: FieldType): Codec<number> {
  const { size, read, write } = FIELDS[type];
  return {
    encode: (v) => {
      const b = Buffer.alloc(size);
      write(b, v, 0);
      return b;
    },
    decode: (b) => read(b, 0),
  };
}

export const u8 = fixed('u8');
export const u16 = fixed('u16');
export const u32 = fixed('u32');
/** A port number in network order (__be16). */
export const be16: Codec<number> = {
  encode: (v) => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return b;
  },
  decode: (b) => b.readUInt16BE(0),
};
export const bool: Codec<boolean> = { encode: (v) => Buffer.from([v ? 1 : 0]), decode: (b) => b.readUInt8(0) !== 0 };
/** NUL-terminated string. */
export const str: Codec<string> = {
  encode: (v) => Buffer.from(`${v}\0`),
  decode: (b) => {
    const end = b.indexOf(0);
    return b.toString('utf8', 0, end < 0 ? b.length : end);
  },
};
export const mac: Codec<string> = { encode: parseMac, decode: formatMac };
export const ip: Codec<string> = { encode: parseIp, decode: formatIp };
export const raw: Codec<Buffer> = { encode: (v) => v, decode: (b) => Buffer.from(b) };

export type Schema = Record<string, readonly [type: number, codec: Codec<any>]>;
export type AttrValues<S extends Schema> = { -readonly [K in keyof S]?: S[K][1] extends Codec<infer T> ? T : never };

/** Writes the attributes that have a value, in the order of the schema. */
export function encodeAttrs<S extends Schema>(schema: S, values: AttrValues<S>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, [type, codec]] of Object.entries(schema)) {
    const v = values[name as keyof S];
    if (v !== undefined) parts.push(encodeAttr(type, codec.encode(v), codec.nested));
  }
  return Buffer.concat(parts);
}

/** Each schema's fields by attribute type, made once per schema. */
const fieldsByType = new WeakMap<Schema, Map<number, { name: string; codec: Codec<unknown> }>>();

/**
 * Reads the attributes the schema names; others are skipped without being copied out (a link in a
 * dump carries some fifty, statistics mostly, and a reconcile reads thousands of links).
 */
export function decodeAttrs<S extends Schema>(schema: S, b: Buffer): AttrValues<S> {
  let byType = fieldsByType.get(schema);
  if (!byType) fieldsByType.set(schema, (byType = new Map(Object.entries(schema).map(([name, [type, codec]]) => [type, { name, codec }]))));
  const out: Record<string, unknown> = {};
  for (let o = 0; o + ATTR_HEADER <= b.length; ) {
    const len = b.readUInt16LE(o);
    if (len < ATTR_HEADER || o + len > b.length) throw new RangeError(`netlink: malformed attribute at offset ${o}`);
    const field = byType.get(b.readUInt16LE(o + 2) & NLA_TYPE_MASK);
    if (field) out[field.name] = field.codec.decode(b.subarray(o + ATTR_HEADER, o + len));
    o += align4(len);
  }
  return out as AttrValues<S>;
}

export function nested<S extends Schema>(schema: S): Codec<AttrValues<S>> {
  return { nested: true, encode: (v) => encodeAttrs(schema, v), decode: (b) => decodeAttrs(schema, b) };
}

/** A fixed header followed by attributes: the body of every rtnetlink message. */
export interface BodyCodec<H, A> {
  encode(v: { header: Partial<H>; attrs: A }): Buffer;
  decode(b: Buffer): { header: H; attrs: A };
}

export function body<H, S extends Schema>(header: Struct<H>, schema: S): BodyCodec<H, AttrValues<S>> {
  return {
    encode: (v) => Buffer.concat([header.encode(v.header), encodeAttrs(schema, v.attrs)]),
    decode: (b) => ({ header: header.decode(b), attrs: decodeAttrs(schema, b.subarray(align4(header.size))) }),
  };
}

// ------------------------------------------------------------------ netlink messages

export const nlmsghdr = struct({ len: 'u32', type: 'u16', flags: 'u16', seq: 'u32', pid: 'u32' });

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

export function encodeMessage(m: { type: number; flags: number; seq: number; payload: Buffer }): Buffer {
  const len = nlmsghdr.size + m.payload.length;
  return Buffer.concat([nlmsghdr.encode({ len, type: m.type, flags: m.flags, seq: m.seq, pid: 0 }), m.payload]);
}

/** Splits one datagram into its messages (a dump packs several into each). */
export function decodeMessages(datagram: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  for (let o = 0; o + nlmsghdr.size <= datagram.length; ) {
    const h = nlmsghdr.decode(datagram, o);
    if (h.len < nlmsghdr.size || o + h.len > datagram.length) throw new RangeError(`netlink: malformed message at offset ${o}`);
    out.push({ type: h.type, flags: h.flags, seq: h.seq, pid: h.pid, payload: datagram.subarray(o + nlmsghdr.size, o + h.len) });
    o += align4(h.len);
  }
  return out;
}

/** What NLMSG_ERROR (an ack when errno is 0) and NLMSG_DONE carry. */
export interface NlStatus {
  /** positive errno, 0 for success */
  errno: number;
  /** the kernel's extended-ack text, e.g. "Unknown device type" */
  message?: string;
  /** byte offset in our request of the attribute the kernel objected to */
  offset?: number;
}

const extAckAttrs = { message: [NLMSGERR_ATTR.MSG, str], offset: [NLMSGERR_ATTR.OFFS, u32] } as const;

/**
 * struct nlmsgerr: the errno, then the header of our request (and its payload unless the ack is
 * NLM_F_CAPPED), then the extended-ack attributes when NLM_F_ACK_TLVS is set.
 */
export function decodeError(m: NlMsg): NlStatus {
  // the kernel sends -errno, 0 for an ack
  const errno = Math.abs(m.payload.readInt32LE(0));
  if (!(m.flags & NLM_F.ACK_TLVS)) return { errno };
  const request = nlmsghdr.decode(m.payload, 4);
  const echoed = m.flags & NLM_F.CAPPED ? nlmsghdr.size : request.len;
  return { errno, ...decodeAttrs(extAckAttrs, m.payload.subarray(4 + align4(echoed))) };
}

/** NLMSG_DONE ends a dump with an int status, followed by ext-ack attributes on failure. */
export function decodeDone(m: NlMsg): NlStatus {
  if (m.payload.length < 4) return { errno: 0 };
  const errno = Math.abs(m.payload.readInt32LE(0));
  return m.flags & NLM_F.ACK_TLVS ? { errno, ...decodeAttrs(extAckAttrs, m.payload.subarray(4)) } : { errno };
}

export const isControl = (m: NlMsg): boolean => m.type === NLMSG.ERROR || m.type === NLMSG.DONE || m.type === NLMSG.NOOP || m.type === NLMSG.OVERRUN;

// ------------------------------------------------------------------ links (RTM_*LINK)

export const ifinfomsg = struct({ family: 'u8', pad: 'u8', type: 'u16', index: 'i32', flags: 'u32', change: 'u32' });
export type IfInfoMsg = ReturnType<typeof ifinfomsg.decode>;

const vlanData = { id: [IFLA_VLAN.ID, u16] } as const;
const macvlanData = { mode: [IFLA_MACVLAN.MODE, u32] } as const;
const vxlanData = {
  id: [IFLA_VXLAN.ID, u32],
  link: [IFLA_VXLAN.LINK, u32],
  local: [IFLA_VXLAN.LOCAL, ip],
  local6: [IFLA_VXLAN.LOCAL6, ip],
  learning: [IFLA_VXLAN.LEARNING, bool],
  proxy: [IFLA_VXLAN.PROXY, bool],
  port: [IFLA_VXLAN.PORT, be16],
} as const;

/** The part of a link message a veth peer carries; see vethData. */
export interface PeerMessage {
  header: Partial<IfInfoMsg>;
  attrs: { ifname?: string; address?: string; mtu?: number; netnsFd?: number };
}

// VETH_INFO_PEER holds a whole link message (ifinfomsg + attributes) for the other end; the
// function declaration breaks the type cycle link -> linkinfo -> veth -> link.
function peerCodec(): BodyCodec<IfInfoMsg, PeerMessage['attrs']> {
  return linkMessage;
}
const peer: Codec<PeerMessage> = { nested: true, encode: (v) => peerCodec().encode(v), decode: (b) => peerCodec().decode(b) };
const vethData = { peer: [VETH_INFO_PEER, peer] } as const;

/** IFLA_INFO_DATA is read according to IFLA_INFO_KIND. */
const infoDataByKind = { vlan: vlanData, macvlan: macvlanData, vxlan: vxlanData, veth: vethData } as const;
type InfoDataByKind = typeof infoDataByKind;
export type LinkInfoAttr =
  | { [K in keyof InfoDataByKind]: { kind: K; data?: AttrValues<InfoDataByKind[K]> } }[keyof InfoDataByKind]
  | { kind: string; data?: undefined };

const linkInfoAttrs = { kind: [IFLA_INFO.KIND, str], data: [IFLA_INFO.DATA, { ...raw, nested: true }] } as const;
const linkInfo: Codec<LinkInfoAttr> = {
  nested: true,
  encode(v) {
    const schema: Schema | undefined = infoDataByKind[v.kind as keyof InfoDataByKind];
    const data = v.data && schema ? encodeAttrs(schema, v.data) : undefined;
    return encodeAttrs(linkInfoAttrs, { kind: v.kind, data });
  },
  decode(b) {
    const { kind = '', data } = decodeAttrs(linkInfoAttrs, b);
    const schema: Schema | undefined = infoDataByKind[kind as keyof InfoDataByKind];
    return { kind, data: data && schema ? decodeAttrs(schema, data) : undefined } as LinkInfoAttr;
  },
};

/** Bridge port settings, in IFLA_PROTINFO of an AF_BRIDGE link message. */
const bridgePortAttrs = {
  hairpin: [IFLA_BRPORT.MODE, bool],
  learning: [IFLA_BRPORT.LEARNING, bool],
  isolated: [IFLA_BRPORT.ISOLATED, bool],
} as const;

export const linkAttrs = {
  ifname: [IFLA.IFNAME, str],
  address: [IFLA.ADDRESS, mac],
  mtu: [IFLA.MTU, u32],
  link: [IFLA.LINK, u32],
  master: [IFLA.MASTER, u32],
  operstate: [IFLA.OPERSTATE, u8],
  ifalias: [IFLA.IFALIAS, str],
  netnsPid: [IFLA.NET_NS_PID, u32],
  netnsFd: [IFLA.NET_NS_FD, u32],
  linkinfo: [IFLA.LINKINFO, linkInfo],
  protinfo: [IFLA.PROTINFO, nested(bridgePortAttrs)],
} as const;
export type LinkAttrs = AttrValues<typeof linkAttrs>;
export const linkMessage = body(ifinfomsg, linkAttrs);
export type LinkMessage = { header: Partial<IfInfoMsg>; attrs: LinkAttrs };

// ------------------------------------------------------------------ addresses (RTM_*ADDR)

export const ifaddrmsg = struct({ family: 'u8', prefixlen: 'u8', flags: 'u8', scope: 'u8', index: 'u32' });
export const addrAttrs = {
  address: [IFA.ADDRESS, ip],
  local: [IFA.LOCAL, ip],
  label: [IFA.LABEL, str],
  broadcast: [IFA.BROADCAST, ip],
  flags: [IFA.FLAGS, u32],
} as const;
export const addrMessage = body(ifaddrmsg, addrAttrs);
export type AddrMessage = { header: Partial<ReturnType<typeof ifaddrmsg.decode>>; attrs: AttrValues<typeof addrAttrs> };

// ------------------------------------------------------------------ routes (RTM_*ROUTE)

export const rtmsg = struct({
  family: 'u8',
  dstLen: 'u8',
  srcLen: 'u8',
  tos: 'u8',
  table: 'u8',
  protocol: 'u8',
  scope: 'u8',
  type: 'u8',
  flags: 'u32',
});
export const routeAttrs = {
  dst: [RTA.DST, ip],
  src: [RTA.SRC, ip],
  oif: [RTA.OIF, u32],
  gateway: [RTA.GATEWAY, ip],
  priority: [RTA.PRIORITY, u32],
  prefsrc: [RTA.PREFSRC, ip],
  table: [RTA.TABLE, u32],
} as const;
export const routeMessage = body(rtmsg, routeAttrs);
export type RouteMessage = { header: Partial<ReturnType<typeof rtmsg.decode>>; attrs: AttrValues<typeof routeAttrs> };

// ------------------------------------------------------------------ neighbours and FDB (RTM_*NEIGH)

export const ndmsg = struct({ family: 'u8', pad1: 'u8', pad2: 'u16', index: 'i32', state: 'u16', flags: 'u8', type: 'u8' });
export const neighAttrs = {
  dst: [NDA.DST, ip],
  lladdr: [NDA.LLADDR, mac],
  vlan: [NDA.VLAN, u16],
  vni: [NDA.VNI, u32],
  master: [NDA.MASTER, u32],
} as const;
export const neighMessage = body(ndmsg, neighAttrs);
export type NeighMessage = { header: Partial<ReturnType<typeof ndmsg.decode>>; attrs: AttrValues<typeof neighAttrs> };
