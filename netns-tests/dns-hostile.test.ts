// Hostile packets to the name responder of `tsnet serve --dns` (daemon/overlay-dns.ts,
// dns-wire.ts): a built daemon answers on a loopback address with a fake upstream resolver beside
// it, and no Docker engine to ask (DOCKER_SOCKET points nowhere: names then go upstream). Each
// malformed message gets FORMERR (a query's whole header to answer to) or nothing (shorter than a
// header, a response), and after each one a valid query is still answered from upstream (the
// positive); an upstream reply shorter than an ID is ignored (SERVFAIL when none better comes).
// Replies to one client socket come in order: the hostile message's reply, if any, before the
// valid query's, which needs the upstream's round trip.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import { buildAnswer, buildQuery, parseQuery, RCODE_FORMERR, RCODE_SERVFAIL } from '../daemon/dns-wire.js';
import { removeDaemonKernelState, uniqueName, until } from '../test-support/commands.js';
import { daemonLogErrors } from './leftovers.js';

const run = uniqueName('dh');
const socket = `/run/tsnet-dns-tests/${run}.sock`;
const RESPONDER = '127.53.0.1';
const UPSTREAM = '127.53.0.2';
const ANSWER = '198.51.100.7';
let stateDir: string;
let daemon: TsnetDaemon;
let upstream: Socket;
let client: Socket;
const replies: Buffer[] = [];

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), `tsnet-${run}-`));
  // the fake upstream: an A record for every name, a 1-byte reply for short.example
  upstream = createSocket('udp4');
  upstream.on('message', (msg, from) => {
    const q = parseQuery(msg);
    if (!q) return;
    upstream.send(q.name === 'short.example' ? Buffer.from([7]) : buildAnswer(q, [ANSWER], 5), from.port, from.address);
  });
  await new Promise<void>((r) => upstream.bind(53, UPSTREAM, r));
  client = createSocket('udp4');
  client.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  process.env.DOCKER_SOCKET = join(stateDir, 'no-docker.sock');
  try {
    daemon = await startTsnetDaemon({ stateDir, socketPath: socket, args: ['--dns', RESPONDER, '--dns-upstream', UPSTREAM] });
  } finally {
    delete process.env.DOCKER_SOCKET;
  }
}, 60_000);

afterAll(async () => {
  const exit = await daemon?.stop();
  const errors = daemon ? daemonLogErrors(daemon.logPath) : [];
  client?.close();
  upstream?.close();
  removeDaemonKernelState(run);
  rmSync(stateDir, { recursive: true, force: true });
  expect({ errors, exit }).toEqual({ errors: [], exit: { code: 0, signal: null, hung: false } });
});

let nextId = 0x100;

/** Sends msg, then a valid query; returns what came back before the valid query's answer, and that answer's rcode and address. */
async function sendThenValid(msg: Buffer): Promise<{ before: string[]; valid: string }> {
  const id = nextId++;
  const start = replies.length;
  client.send(msg, 53, RESPONDER);
  client.send(buildQuery(id, 'valid.example'), 53, RESPONDER);
  await until(`the answer to valid query ${id}`, () => replies.slice(start).some((r) => r.readUInt16BE(0) === id), 10_000);
  const got = replies.slice(start);
  const at = got.findIndex((r) => r.readUInt16BE(0) === id);
  replies.length = start;
  return { before: got.slice(0, at).map(describe), valid: describe(got[at]) };
}

/** "id rcode N [A ADDRESS]" of a reply */
function describe(r: Buffer): string {
  const rcode = r.length >= 4 ? r.readUInt16BE(2) & 0xf : -1;
  const a = r.length >= 16 && r.readUInt16BE(6) > 0 ? ` A ${[...r.subarray(r.length - 4)].join('.')}` : '';
  return `id ${r.length >= 2 ? r.readUInt16BE(0) : '?'} rcode ${rcode}${a}`;
}

/** A query header with id, flags and question count, then `rest`. */
function header(id: number, flags: number, qdcount: number, rest: number[] = []): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qdcount, 4);
  return Buffer.concat([h, Buffer.from(rest)]);
}

const TAIL = [0, 1, 0, 1]; // type A, class IN
const VALID = `id ? rcode 0 A ${ANSWER}`;
const formErr = (id: number) => `id ${id} rcode ${RCODE_FORMERR}`;

it('malformed queries get FORMERR or nothing, and a valid query is answered after each', async () => {
  const longName = Array.from({ length: 5 }, () => [63, ...Buffer.from('a'.repeat(63))]).flat(); // 320 octets
  const cases: [string, Buffer, string[]][] = [
    ['zero-length', Buffer.alloc(0), []],
    ['a truncated header', Buffer.from([0x12, 0x34, 1, 0, 0]), []],
    ['a header and no question', header(0x2001, 0x0100, 1), [formErr(0x2001)]],
    ['a compression loop (the name points at itself)', header(0x2002, 0x0100, 1, [0xc0, 12, ...TAIL]), [formErr(0x2002)]],
    ['a label longer than 63', header(0x2003, 0x0100, 1, [64, ...Buffer.from('b'.repeat(64)), 0, ...TAIL]), [formErr(0x2003)]],
    ['a name longer than 255 octets', header(0x2004, 0x0100, 1, [...longName, 0, ...TAIL]), [formErr(0x2004)]],
    ['a label running past the end', header(0x2005, 0x0100, 1, [40, 0x61, 0x62]), [formErr(0x2005)]],
    ['QDCOUNT 65535', header(0x2006, 0x0100, 0xffff, [1, 0x78, 0, ...TAIL]), [formErr(0x2006)]],
    ['a response, not a query', header(0x2007, 0x8180, 1, [1, 0x78, 0, ...TAIL]), []],
  ];
  const seen: Record<string, unknown> = {};
  for (const [what, msg] of cases) {
    const r = await sendThenValid(msg);
    seen[what] = { before: r.before, valid: r.valid.replace(/^id \d+/, 'id ?') };
  }
  expect(seen).toEqual(Object.fromEntries(cases.map(([what, , before]) => [what, { before, valid: VALID }])));
}, 120_000);

it('random bytes: never more than a FORMERR back, and valid queries still answered', async () => {
  let seed = 0x5eed;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  for (let i = 0; i < 30; i++) {
    const msg = Buffer.from(Array.from({ length: 1 + (rand() % 80) }, rand));
    const r = await sendThenValid(msg);
    const id = msg.length >= 2 ? msg.readUInt16BE(0) : -1;
    const parsed = parseQuery(msg);
    // a random message that is a well-formed query goes upstream like any other name
    const expected = parsed ? [`id ${id} rcode 0 A ${ANSWER}`] : msg.length >= 12 && !(msg[2] & 0x80) ? [formErr(id)] : [];
    expect({ i, before: r.before, valid: r.valid.replace(/^id \d+/, 'id ?') }).toEqual({ i, before: expected, valid: VALID });
  }
}, 120_000);

it('an upstream reply shorter than 2 bytes is ignored: SERVFAIL for that name, later names answered', async () => {
  const r = await sendThenValid(buildQuery(0x3001, 'short.example'));
  // the valid query's answer comes first now (the short one waits out the upstream time limit)
  expect(r.valid.replace(/^id \d+/, 'id ?')).toBe(VALID);
  await until('the SERVFAIL for short.example', () => replies.some((m) => m.readUInt16BE(0) === 0x3001), 10_000);
  expect(replies.filter((m) => m.readUInt16BE(0) === 0x3001).map(describe)).toEqual([`id ${0x3001} rcode ${RCODE_SERVFAIL}`]);
  replies.length = 0;
  expect((await sendThenValid(buildQuery(0x3002, 'after.example'))).valid.replace(/^id \d+/, 'id ?')).toBe(VALID);
}, 60_000);
