import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  addrMessage,
  decodeAttrList,
  decodeDone,
  decodeError,
  decodeMessages,
  encodeAttr,
  encodeAttrs,
  encodeMessage,
  linkMessage,
  neighMessage,
  nested,
  routeMessage,
  str,
  struct,
  u16,
  u32,
  decodeAttrs,
} from './codec.js';
import { NLA_F_NESTED, NLM_F, NLMSG, RTM } from './constants.js';
import { toLinkInfo } from './links.js';
import { toAddressInfo } from './addresses.js';
import { toRouteInfo } from './routes.js';
import { toFdbInfo } from './neighbours.js';

/** Replies of a real kernel; how they were made is in the file's _about. */
const kernel = JSON.parse(readFileSync(new URL('./testdata/kernel-replies.json', import.meta.url), 'utf8')) as Record<string, string | string[]>;
const datagram = (name: string, i = 0): Buffer => {
  const v = kernel[name];
  return Buffer.from(Array.isArray(v) ? v[i] : v, 'hex');
};
const single = (name: string) => {
  const msgs = decodeMessages(datagram(name));
  expect(msgs).toHaveLength(1);
  return msgs[0];
};

describe('structs', () => {
  const s = struct({ a: 'u8', pad: 'u8', b: 'u16', c: 'i32', d: 'u32' });

  it('lays fields out in order, zero-filling what is missing', () => {
    expect(s.size).toBe(12);
    expect(s.encode({ a: 1, b: 0x0203, c: -1 }).toString('hex')).toBe('01000302ffffffff00000000');
  });

  it('round-trips and refuses truncated input', () => {
    const v = { a: 7, pad: 0, b: 65535, c: -5, d: 0xfffffffe };
    expect(s.decode(s.encode(v))).toEqual(v);
    expect(() => s.decode(Buffer.alloc(11))).toThrow(/truncated/);
  });
});

describe('attributes', () => {
  it('pads each attribute to 4 bytes, the length excluding the padding', () => {
    const a = encodeAttr(3, Buffer.from('br0\0'));
    expect(a.toString('hex')).toBe('08000300' + '62723000');
    const b = encodeAttr(3, Buffer.from('veth0\0'));
    expect(b.length).toBe(12);
    expect(b.readUInt16LE(0)).toBe(10);
  });

  it('marks nested attributes with NLA_F_NESTED and strips it on decode', () => {
    const inner = { x: [1, u32], y: [2, str] } as const;
    const outer = { box: [5, nested(inner)], n: [6, u16] } as const;
    const bytes = encodeAttrs(outer, { box: { x: 42, y: 'hi' }, n: 7 });
    expect(bytes.readUInt16LE(2)).toBe(5 | NLA_F_NESTED);
    expect(decodeAttrList(bytes).map((a) => [a.type, a.nested])).toEqual([
      [5, true],
      [6, false],
    ]);
    expect(decodeAttrs(outer, bytes)).toEqual({ box: { x: 42, y: 'hi' }, n: 7 });
  });

  it('leaves out unset values and skips unknown attributes', () => {
    const schema = { a: [1, u32], b: [2, u32] } as const;
    expect(encodeAttrs(schema, { b: 9 })).toEqual(encodeAttr(2, Buffer.from([9, 0, 0, 0])));
    const withUnknown = Buffer.concat([encodeAttr(99, Buffer.from('zz')), encodeAttr(1, Buffer.from([1, 0, 0, 0]))]);
    expect(decodeAttrs(schema, withUnknown)).toEqual({ a: 1 });
  });

  it('refuses an attribute running past its buffer', () => {
    const bad = encodeAttr(1, Buffer.alloc(8)).subarray(0, 8);
    expect(() => decodeAttrList(bad)).toThrow(/malformed attribute/);
  });
});

describe('messages', () => {
  it('round-trips a veth creation with its peer message nested inside', () => {
    const v = {
      header: { family: 0, index: 0 },
      attrs: {
        ifname: 'veth0',
        mtu: 1400,
        linkinfo: { kind: 'veth' as const, data: { peer: { header: { family: 0 }, attrs: { ifname: 'eth0', address: '02:42:0a:00:00:03' } } } },
      },
    };
    const bytes = encodeMessage({ type: RTM.NEWLINK, flags: NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL, seq: 7, payload: linkMessage.encode(v) });
    const [m] = decodeMessages(bytes);
    expect(m).toMatchObject({ type: RTM.NEWLINK, seq: 7, flags: 0x605 });
    const back = linkMessage.decode(m.payload);
    expect(back.attrs.ifname).toBe('veth0');
    expect(back.attrs.linkinfo).toEqual({
      kind: 'veth',
      data: { peer: { header: { family: 0, pad: 0, type: 0, index: 0, flags: 0, change: 0 }, attrs: { ifname: 'eth0', address: '02:42:0a:00:00:03' } } },
    });
  });

  it('splits a datagram holding several messages, each padded to 4 bytes', () => {
    const a = encodeMessage({ type: 20, flags: NLM_F.MULTI, seq: 1, payload: Buffer.from([1, 2, 3]) });
    const b = encodeMessage({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 1, payload: Buffer.alloc(4) });
    const msgs = decodeMessages(Buffer.concat([a, Buffer.alloc(1), b]));
    expect(msgs.map((m) => m.type)).toEqual([20, NLMSG.DONE]);
    expect([...msgs[0].payload]).toEqual([1, 2, 3]);
  });

  it('refuses a message whose length runs past the datagram', () => {
    const a = encodeMessage({ type: 20, flags: 0, seq: 1, payload: Buffer.alloc(8) });
    expect(() => decodeMessages(a.subarray(0, 20))).toThrow(/malformed message/);
  });
});

describe('replies captured from the kernel', () => {
  it('decodes a veth link: master, peer, mtu, alias', () => {
    const m = single('linkVeth');
    expect(m.type).toBe(RTM.NEWLINK);
    expect(toLinkInfo(linkMessage.decode(m.payload))).toEqual({
      index: 4,
      name: 'veth0',
      kind: 'veth',
      mtu: 1400,
      mac: '02:42:0a:00:00:02',
      up: true,
      operState: 'lowerlayerdown',
      flags: 0x1003,
      masterIndex: 2,
      parentIndex: 3,
      alias: 'tsnet:0123456789ab',
    });
  });

  it('decodes the kind-specific data of vxlan and macvlan links', () => {
    const vx = linkMessage.decode(single('linkVxlan').payload);
    expect(vx.attrs.linkinfo).toEqual({ kind: 'vxlan', data: { id: 42, local: '10.88.0.1', learning: false, proxy: false, port: 4789 } });
    expect(toLinkInfo(vx)).toMatchObject({ name: 'vx42', kind: 'vxlan', vxlanId: 42 });
    expect(toLinkInfo(linkMessage.decode(single('linkMacvlan').payload))).toMatchObject({
      name: 'mv0',
      kind: 'macvlan',
      macvlanMode: 'bridge',
      parentIndex: 3,
      mac: '02:42:0a:00:00:04',
    });
  });

  it('reads an ack: errno 0, capped (no copy of the request)', () => {
    const m = single('ack');
    expect(m.type).toBe(NLMSG.ERROR);
    expect(m.flags & NLM_F.CAPPED).toBeTruthy();
    expect(decodeError(m)).toEqual({ errno: 0 });
  });

  it('reads the extended ack text of errors', () => {
    expect(decodeError(single('errorVlan'))).toEqual({ errno: 95, message: 'Unknown device type' });
    expect(decodeError(single('errorAddressExists'))).toEqual({ errno: 17, message: 'ipv4: Address already assigned' });
    expect(decodeError(single('errorNoDevice'))).toEqual({ errno: 19 });
  });

  it('reads a multi-part address dump up to NLMSG_DONE', () => {
    const msgs = decodeMessages(datagram('dumpAddresses', 0));
    expect(msgs.every((m) => m.type === RTM.NEWADDR && m.flags & NLM_F.MULTI)).toBe(true);
    expect(msgs.map((m) => toAddressInfo(addrMessage.decode(m.payload), 'br0'))).toEqual([
      { index: 2, dev: 'br0', family: 4, address: '10.88.0.1', prefixLen: 24, cidr: '10.88.0.1/24', scope: 'universe', flags: 0x80, label: 'br0', broadcast: '10.88.0.255' },
      { index: 2, dev: 'br0', family: 6, address: 'fd88::1', prefixLen: 64, cidr: 'fd88::1/64', scope: 'universe', flags: 0x82 },
    ]);
    const [done] = decodeMessages(datagram('dumpAddresses', 1));
    expect(done.type).toBe(NLMSG.DONE);
    expect(decodeDone(done)).toEqual({ errno: 0 });
  });

  it('reads routes of the main and local tables', () => {
    const routes = decodeMessages(datagram('dumpRoutes')).map((m) => toRouteInfo(routeMessage.decode(m.payload), () => 'br0'));
    expect(routes.map((r) => `${r.table} ${r.type} ${r.dst}`)).toEqual([
      '254 unicast 10.88.0.0/24',
      '254 unicast 10.99.0.0/16',
      '255 local 10.88.0.1/32',
      '255 broadcast 10.88.0.255/32',
    ]);
    expect(routes[1]).toEqual({
      family: 4,
      dst: '10.99.0.0/16',
      gateway: '10.88.0.254',
      dev: 'br0',
      devIndex: 2,
      table: 254,
      scope: 'universe',
      protocol: 4,
      type: 'unicast',
      metric: 100,
      onlink: false,
    });
  });

  it('reads the VXLAN remote of an FDB entry', () => {
    const entries = decodeMessages(datagram('dumpFdb')).map((m) => toFdbInfo(neighMessage.decode(m.payload), ''));
    expect(entries.find((e) => e.index === 5)).toEqual({
      index: 5,
      dev: '',
      mac: '00:00:00:00:00:00',
      dst: '10.88.0.2',
      self: true,
      master: false,
      state: ['reachable', 'noarp'],
    });
    // the bridge's own address on its port table
    expect(entries.find((e) => e.mac === '02:42:0a:00:00:01')).toMatchObject({ index: 2, master: true, self: false, masterIndex: 2, state: ['permanent'] });
  });
});
