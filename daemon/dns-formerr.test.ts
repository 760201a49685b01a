import { describe, expect, it } from 'vitest';
import { buildQuery, formErrReply, parseQuery, RCODE_FORMERR } from './dns-wire.js';

describe('FORMERR for messages the responder cannot read', () => {
  it('a query header gets FORMERR with its ID, opcode and RD; shorter messages and responses get nothing', () => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(0xbeef, 0);
    h.writeUInt16BE(0x0100, 2);
    h.writeUInt16BE(0xffff, 4);
    const r = formErrReply(h)!;
    expect({ id: r.readUInt16BE(0), flags: r.readUInt16BE(2).toString(16), counts: [4, 6, 8, 10].map((o) => r.readUInt16BE(o)) }).toEqual({ id: 0xbeef, flags: (0x8180 | RCODE_FORMERR).toString(16), counts: [0, 0, 0, 0] });
    expect(formErrReply(Buffer.alloc(11))).toBeUndefined();
    const response = Buffer.from(h);
    response.writeUInt16BE(0x8180, 2);
    expect(formErrReply(response)).toBeUndefined();
  });

  it('a name over 255 octets is no query; one of 255 is', () => {
    const name = (labels: number) => Array.from({ length: labels }, () => 'a'.repeat(63)).join('.');
    // 4 labels of 63: 4 * 64 + 1 = 257 octets; 3 labels and one of 61: 3 * 64 + 62 + 1 = 255
    expect(parseQuery(buildQuery(1, name(4)))).toBeUndefined();
    expect(parseQuery(buildQuery(1, `${name(3)}.${'b'.repeat(61)}`))?.name).toBe(`${name(3)}.${'b'.repeat(61)}`);
  });
});
