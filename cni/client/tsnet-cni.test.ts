// The CNI plugin executable (cni/client/tsnet-cni.c) against hostile input and hostile daemons
// (issue 11, item 7). A runtime trusts what the plugin prints and its exit code, so whatever the
// configuration, the CNI_* variables or the other end of the socket do, the plugin must print one
// JSON object (the daemon's body, or a CNI error with a non-zero exit) and never crash or hang.
//
// It is built here with AddressSanitizer and UndefinedBehaviorSanitizer (any finding aborts it and
// writes a report on stderr) and a short overall deadline, then driven by node `net` servers on
// unix sockets in a temp dir that misbehave in the ways found (closing early, chunked and truncated
// replies, bad X-CNI-Exit values, trickling bytes, a reply on a connection left open, huge heads,
// non-200 statuses, garbage), and with hostile and random (seeded) configurations and variables.
// Every run: no signal, empty stderr (no sanitizer report), stdout as expected.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SOURCE = join(import.meta.dirname, 'tsnet-cni.c');
const DEADLINE_MS = 3000; // the test build's whole-exchange deadline (TSNET_CNI_TIMEOUT_MS), ample for a loaded machine
const KILL_MS = 20_000; // a run still going after this is a hang: killed, and the case fails
const MiB = 1 << 20;

const RESULT = '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.1.2.3/24","interface":0}]}\n';
const CNI_ERROR = '{"cniVersion":"1.0.0","code":7,"msg":"unknown key \'colour\'"}\n';
const CONFIG = '{"cniVersion":"1.0.0","name":"n","type":"tsnet"}';

let dir: string;
let plugin: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsnet-cni-client-'));
  plugin = join(dir, 'tsnet-asan');
  execFileSync('gcc', [
    '-std=gnu11', '-g', '-O1', '-Wall', '-Wextra', '-Werror',
    '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer',
    `-DTSNET_CNI_TIMEOUT_MS=${DEADLINE_MS}`, '-o', plugin, SOURCE,
  ]);
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// --- running the plugin ---

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the plugin as a runtime does: CNI_COMMAND=ADD unless env says otherwise (undefined removes a variable). */
function runPlugin(stdin: string | Buffer, env: Record<string, string | undefined> = {}): Promise<Run> {
  const full: Record<string, string> = {};
  // leak checking off: it doubles the cost of every run, and a one-shot process's memory goes at its exit anyway
  const given = { PATH: process.env.PATH, ASAN_OPTIONS: 'detect_leaks=0', UBSAN_OPTIONS: 'print_stacktrace=1', CNI_COMMAND: 'ADD', ...env };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) full[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(plugin, [], { env: full, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {}); // a plugin that refuses its input early stops reading it
    const kill = setTimeout(() => child.kill('SIGKILL'), KILL_MS);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(kill);
      resolve({ status, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(stdin);
  });
}

function parsed(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What every run must be: exited by itself, no sanitizer report, stdout one JSON object (or nothing on success). */
function expectSane(r: Run, label: string): void {
  const seen = `${label}: status ${r.status} signal ${r.signal}\nstdout: ${r.stdout.slice(0, 500)}\nstderr: ${r.stderr.slice(0, 3000)}`;
  expect(r.signal, seen).toBeNull();
  expect(r.stderr, seen).toBe('');
  if (r.status === 0 && r.stdout === '') return;
  expect(isObject(parsed(r.stdout)), seen).toBe(true);
}

interface Prints {
  prints: string; // exactly this on stdout
  status: number;
}
interface Fails {
  code: number; // a CNI error object with this code, exit 1
  says: RegExp; // matched against "msg details"
  version?: string; // its cniVersion
}
type Expectation = Prints | Fails;

function expectOutcome(r: Run, want: Expectation, label: string): void {
  expectSane(r, label);
  const seen = `${label}: status ${r.status}, stdout ${r.stdout.slice(0, 500)}`;
  if ('prints' in want) {
    expect(r.stdout, seen).toBe(want.prints);
    expect(r.status, seen).toBe(want.status);
    return;
  }
  const e = parsed(r.stdout) as { cniVersion?: unknown; code?: unknown; msg?: unknown; details?: unknown };
  expect(r.status, seen).toBe(1);
  expect(e.code, seen).toBe(want.code);
  expect(typeof e.msg, seen).toBe('string');
  expect(`${String(e.msg)} ${String(e.details ?? '')}`, seen).toMatch(want.says);
  expect(e.cniVersion, seen).toBe(want.version ?? '1.0.0');
}

// --- fake daemons ---

interface Request {
  head: string;
  headers: Record<string, string>; // names lower-cased, values as sent
  body: Buffer;
}

/** How a fake daemon treats one connection; request settles once the whole request arrived (or the connection ended). */
type Serve = (conn: Socket, request: Promise<Request | undefined>) => void;

function requestOf(conn: Socket): Promise<Request | undefined> {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    conn.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1');
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const colon = line.indexOf(': ');
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 2);
      }
      const length = Number(headers['content-length']);
      if (data.length >= end + 4 + length) resolve({ head, headers, body: data.subarray(end + 4, end + 4 + length) });
    });
    conn.on('close', () => resolve(undefined));
  });
}

/** A fake daemon on a fresh unix socket for the time of use; it records the requests it got. */
async function withServer<T>(serve: Serve, use: (path: string, requests: Request[]) => Promise<T>, name = 'd'): Promise<T> {
  const path = join(dir, `${name}${servers++}.sock`);
  const requests: Request[] = [];
  const open = new Set<Socket>();
  const server = createServer((conn) => {
    open.add(conn);
    conn.on('error', () => {}); // the plugin may go away while a hostile server still writes
    conn.on('close', () => open.delete(conn));
    const request = requestOf(conn);
    void request.then((r) => r && requests.push(r));
    serve(conn, request);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  try {
    return await use(path, requests);
  } finally {
    for (const conn of open) conn.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
let servers = 0;

interface ReplyParts {
  status?: string;
  exit?: string | null; // X-CNI-Exit; null: none
  length?: string | null; // Content-Length; null: none; default the body's
  headers?: string[];
}

function httpReply(body: string, o: ReplyParts = {}): string {
  const lines = [o.status ?? 'HTTP/1.1 200 OK', 'content-type: application/json'];
  if (o.length !== null) lines.push(`content-length: ${o.length ?? Buffer.byteLength(body)}`);
  if (o.exit !== null) lines.push(`x-cni-exit: ${o.exit ?? '0'}`);
  return [...lines, ...(o.headers ?? []), '', body].join('\r\n');
}

/** Answers once the whole request arrived, then closes (or leaves the connection open). */
function answers(reply: string | Buffer, keepOpen = false): Serve {
  return (conn, request) => void request.then(() => (keepOpen ? conn.write(reply) : conn.end(reply)));
}

/** Answers at once, without reading the request, and closes. */
function answersUnread(reply: string): Serve {
  return (conn) => conn.end(reply, () => conn.destroy());
}

const closesAtOnce: Serve = (conn) => conn.destroy();
const closesSilently: Serve = (conn, request) => void request.then(() => conn.end());
const neverAnswers: Serve = () => {};

/** Sends a complete reply one byte every `everyMs` (each byte well within a per-read timeout), then closes. */
function trickles(reply: string, everyMs: number): Serve {
  return (conn, request) =>
    void request.then(() => {
      let i = 0;
      const timer = setInterval(() => {
        if (conn.destroyed) clearInterval(timer);
        else if (i < reply.length) conn.write(reply[i++]);
        else {
          clearInterval(timer);
          conn.end();
        }
      }, everyMs);
      conn.on('close', () => clearInterval(timer));
    });
}

/** Deterministic pseudo-random numbers (mulberry32), so a failing case can be run again. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One random edit of text: a byte replaced, removed or inserted, a cut, or a slice repeated. */
function mutate(text: Buffer, rnd: () => number, alphabet: string): Buffer {
  const at = Math.floor(rnd() * text.length);
  const ch = Buffer.from([alphabet.charCodeAt(Math.floor(rnd() * alphabet.length)) & 0xff]);
  switch (Math.floor(rnd() * 5)) {
    case 0:
      return Buffer.concat([text.subarray(0, at), ch, text.subarray(at + 1)]);
    case 1:
      return Buffer.concat([text.subarray(0, at), text.subarray(at + 1)]);
    case 2:
      return Buffer.concat([text.subarray(0, at), ch, text.subarray(at)]);
    case 3:
      return text.subarray(0, at);
    default:
      return Buffer.concat([text.subarray(0, at), text.subarray(Math.floor(rnd() * text.length))]);
  }
}

const JSONISH = '{}[]",:\\/ \n\t\r0123456789.-+eEtrufalsn\u0000\u0001\u00ff\u00c3';

// --- the cases ---

// each case runs its own plugin against its own fake daemon: they run side by side, which keeps the waits short
describe.concurrent('the CNI plugin executable, sanitizer build, against hostile daemons', { timeout: 60_000 }, () => {
  const conf = CONFIG;
  const big = `{"cniVersion":"1.0.0","name":"n","type":"tsnet","pad":"${'x'.repeat(MiB - 100)}"}`;
  const cases: [string, Serve, Expectation, string?][] = [
    ['a success', answers(httpReply(RESULT)), { prints: RESULT, status: 0 }],
    ['a CNI error', answers(httpReply(CNI_ERROR, { exit: '1' })), { prints: CNI_ERROR, status: 1 }],
    ['X-CNI-Exit 255', answers(httpReply(CNI_ERROR, { exit: '255' })), { prints: CNI_ERROR, status: 255 }],
    ['an empty body for a DEL', answers(httpReply('')), { prints: '', status: 0 }],
    ['HTTP/1.0 without a reason', answers(httpReply(RESULT, { status: 'HTTP/1.0 200' })), { prints: RESULT, status: 0 }],
    ['a reply on a connection left open', answers(httpReply(RESULT), true), { prints: RESULT, status: 0 }],
    ['bytes after the body', answers(httpReply(RESULT) + 'HTTP/1.1 500 more\r\n\r\n', true), { prints: RESULT, status: 0 }],
    ['an answer before the request was read, then a close', answersUnread(httpReply(CNI_ERROR, { exit: '1' })), { prints: CNI_ERROR, status: 1 }, big],
    ...['256', 'error', '-1', '', ' ', '1 2', '0x1', '1e2', '+1', '99999999999999999999', '1.0'].map(
      (exit): [string, Serve, Expectation] => [`X-CNI-Exit '${exit}'`, answers(httpReply(RESULT, { exit })), { code: 5, says: /X-CNI-Exit that is not a number from 0 to 255/ }],
    ),
    ['no X-CNI-Exit', answers(httpReply(RESULT, { exit: null })), { code: 5, says: /no X-CNI-Exit header/ }],
    ['two X-CNI-Exit', answers(httpReply(RESULT, { headers: ['X-CNI-Exit: 0'] })), { code: 5, says: /two X-CNI-Exit/ }],
    ['a chunked reply', answers(httpReply(`${RESULT.length.toString(16)}\r\n${RESULT}\r\n0\r\n\r\n`, { length: null, headers: ['Transfer-Encoding: chunked'] })), { code: 5, says: /Transfer-Encoding/ }],
    ['chunked and a Content-Length', answers(httpReply(RESULT, { headers: ['transfer-encoding: chunked'] })), { code: 5, says: /Transfer-Encoding/ }],
    ['no Content-Length, the body up to the close', answers(httpReply(RESULT, { length: null })), { code: 5, says: /no Content-Length/ }],
    ...['abc', '-1', '1e3', `${4 * MiB + 1}`, '99999999999999999999'].map(
      (length): [string, Serve, Expectation] => [`Content-Length '${length}'`, answers(httpReply(RESULT, { length })), { code: 5, says: /Content-Length that is not a number/ }],
    ),
    ['two Content-Length', answers(httpReply(RESULT, { headers: [`Content-Length: ${RESULT.length}`] })), { code: 5, says: /two Content-Length/ }],
    ['a truncated body', answers(httpReply(RESULT, { length: String(RESULT.length + 40) })), { code: 5, says: /closed the connection before its reply was complete/ }],
    ['a truncated head', answers(httpReply(RESULT).slice(0, 30)), { code: 5, says: /closed the connection before its reply was complete/ }],
    ['a close without a reply', closesSilently, { code: 5, says: /closed the connection before its reply was complete/ }],
    ['a close before the request was read (SIGPIPE)', closesAtOnce, { code: 5, says: /closed the connection before it took the whole request/ }, big],
    ['no answer at all', neverAnswers, { code: 5, says: /did not answer in time/ }],
    ['a reply trickling past the deadline', trickles(httpReply(RESULT), Math.ceil((3 * DEADLINE_MS) / httpReply(RESULT).length)), { code: 5, says: /did not answer in time/ }],
    ['a huge head', answers(httpReply(RESULT, { headers: Array.from({ length: 2000 }, (_, i) => `X-Pad-${i}: ${'a'.repeat(100)}`) })), { code: 5, says: /head is larger than 65536 bytes/ }],
    ['a huge line without an end', answers('HTTP/1.1 200 OK'.padEnd(300_000, 'a')), { code: 5, says: /head is larger than 65536 bytes/ }],
    ...['HTTP/1.1 500 Internal Server Error', 'HTTP/1.1 201 Created', 'HTTP/1.1 2000 OK', 'HTTP/2 200 OK', 'ICY 200 OK', 'HTTP/1.1 200OK', ''].map(
      (status): [string, Serve, Expectation] => [`status line '${status}'`, answers(httpReply(RESULT, { status })), { code: 5, says: /the status line is/ }],
    ),
    // what the daemon sent comes back in the error's details: every control character escaped
    ['a status line with control characters', answers(httpReply(RESULT, { status: 'HTTP/1.1 404 \u0001\u001f"\\\t\u0008\u000c' })), { code: 5, says: /the status line is 'HTTP\/1.1 404 \u0001\u001f"\\\t\u0008\u000c'/ }],
    ['a header line without a colon', answers(httpReply(RESULT, { headers: ['garbage'] })), { code: 5, says: /header line without a name/ }],
    ['a bare line feed in a header', answers(httpReply(RESULT, { headers: ['X-A: b\nX-CNI-Exit: 3'] })), { code: 5, says: /header value with a control character/ }],
    ['a NUL in a header', answers(httpReply(RESULT, { headers: ['X-A: b\u0000'] })), { code: 5, says: /header value with a control character/ }],
    ['a body that is not JSON', answers(httpReply('hello\n')), { code: 5, says: /body is not a JSON object/ }],
    ['a body that is a JSON array', answers(httpReply('[1]')), { code: 5, says: /body is not a JSON object/ }],
    ['a body of two objects', answers(httpReply('{} {}')), { code: 5, says: /body is not a JSON object/ }],
    ['chunk framing as a body', answers(httpReply(`${RESULT.length.toString(16)}\r\n${RESULT}\r\n0\r\n\r\n`)), { code: 5, says: /body is not a JSON object/ }],
    ['an empty body with a failure', answers(httpReply('', { exit: '1' })), { code: 5, says: /empty body with a non-zero X-CNI-Exit/ }],
    ['garbage', answers(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff))), { code: 5, says: /status line is|closed the connection/ }],
  ];

  for (const [name, serve, want, stdin] of cases) {
    it(name, async () => {
      await withServer(serve, async (socket) => expectOutcome(await runPlugin(stdin ?? conf, { TSNET_SOCKET: socket }), want, name));
    });
  }

  it('sends the request a daemon expects: the configuration as it came, the CNI_* variables as headers', async () => {
    const env = { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAME=a;IgnoreUnknown=1', CNI_PATH: '/opt/cni/bin' };
    await withServer(answers(httpReply('')), async (socket, requests) => {
      expectOutcome(await runPlugin(big, { ...env, TSNET_SOCKET: socket }), { prints: '', status: 0 }, 'a 1 MiB DEL');
      expect(requests).toHaveLength(1);
      expect(requests[0].head.split('\r\n')[0]).toBe('POST /Cni.Exec HTTP/1.1');
      expect(requests[0].body.toString()).toBe(big);
      for (const [name, value] of Object.entries(env)) expect(requests[0].headers[`x-${name.toLowerCase().replace('_', '-')}`]).toBe(value);
    });
  });

  it('random replies: a mutated good reply is printed as a JSON object or refused with a CNI error', async () => {
    const rnd = random(7);
    const good = Buffer.from(httpReply(RESULT));
    const outcomes = { printed: 0, refused: 0 };
    for (let i = 0; i < 20; i++) {
      let reply: Buffer = good;
      for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) reply = mutate(reply, rnd, `${JSONISH}\r\n:HTTP/1.200 x-cni-exit content-length`);
      await withServer(answers(reply), async (socket) => {
        const r = await runPlugin(conf, { TSNET_SOCKET: socket });
        const label = `random reply ${i}: ${JSON.stringify(reply.toString('latin1'))}`;
        expectSane(r, label);
        const out = parsed(r.stdout) as { code?: unknown } | undefined;
        if (r.status === 1 && typeof out?.code === 'number') outcomes.refused++;
        else outcomes.printed++;
      });
    }
    // both ways happened, so the mutations were neither all harmless nor all fatal
    expect(outcomes.printed).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});

describe.concurrent('the CNI plugin executable, sanitizer build, against hostile input', { timeout: 60_000 }, () => {
  /** Runs with a well-behaved fake daemon that answers every request with RESULT. */
  function againstGoodDaemon(stdin: string | Buffer, env: Record<string, string | undefined> = {}): Promise<{ r: Run; requests: Request[] }> {
    return withServer(answers(httpReply(RESULT)), async (socket, requests) => ({ r: await runPlugin(stdin, { TSNET_SOCKET: socket, ...env }), requests }));
  }

  const found: Prints = { prints: RESULT, status: 0 };

  // only the top-level "socket" counts; libcni sorts keys, so args, prevResult and runtimeConfig come first
  const socketCases: [string, string][] = [
    ['one in args before the top-level one', '{"args":{"socket":"/wrong.sock"},"cniVersion":"1.0.0","socket":"SOCKET"}'],
    ['one in prevResult and runtimeConfig', '{"cniVersion":"1.0.0","prevResult":{"socket":"/wrong"},"runtimeConfig":{"x":[{"socket":"/wrong"}]},"socket":"SOCKET"}'],
    ['one nested after the top-level one', '{"cniVersion":"1.0.0","socket":"SOCKET","type":"tsnet","zz":{"socket":"/wrong"}}'],
    ['a "socket" inside a string', '{"cniVersion":"1.0.0","name":"a \\"socket\\":\\"/wrong\\"","socket":"SOCKET"}'],
    ['an escaped path', '{"cniVersion":"1.0.0","socket":"ESCAPED"}'],
    ['two top-level keys: the last, as JSON.parse', '{"cniVersion":"1.0.0","socket":"/wrong","socket":"SOCKET"}'],
    ['a path with a two-byte and a four-byte character, escaped', '{"cniVersion":"1.0.0","socket":"UNICODE"}'],
    ['a key spelled with an escape', '{"cniVersion":"1.0.0","\\u0073ocket":"SOCKET"}'],
  ];
  for (const [name, text] of socketCases) {
    it(`the configuration's socket: ${name}`, async () => {
      await withServer(
        answers(httpReply(RESULT)),
        async (socket) => {
          const escaped = socket.replaceAll('/', '\\/').replace('d', '\\u0064');
          const unicode = socket.replace('\u00e9', '\\u00e9').replace('\u{1f600}', '\\ud83d\\ude00');
          const input = text.replace('ESCAPED', escaped).replace('UNICODE', unicode).replace('SOCKET', socket);
          expectOutcome(await runPlugin(input, { TSNET_SOCKET: '/nonexistent/tsnet.sock' }), found, name);
        },
        'd\u00e9\u{1f600}',
      );
    });
  }

  const badSockets: [string, string][] = [
    ['"relative.sock"', 'is not an absolute path'],
    ['""', 'is not an absolute path'],
    ['"/tmp/a\\nb.sock"', 'holds a control character'],
    ['"/tmp/a\\u0000b.sock"', 'holds a control character'],
    [`"/${'a'.repeat(120)}"`, 'is too long for a unix socket path'],
    [`"/${'\\u00e9'.repeat(60)}"`, 'is too long for a unix socket path'],
    ['42', 'is not a string'],
    ['null', 'is not a string'],
    ['{"path":"/tmp/x.sock"}', 'is not a string'],
  ];
  for (const [value, says] of badSockets) {
    it(`refuses the configuration's socket ${value}`, async () => {
      const r = await runPlugin(`{"cniVersion":"1.0.0","socket":${value}}`);
      expectOutcome(r, { code: 7, says: new RegExp(`"socket" \\(the tsnet daemon's unix socket\\) ${says}`) }, value);
    });
  }

  it('refuses a TSNET_SOCKET that is relative or holds a control character', async () => {
    expectOutcome(await runPlugin(CONFIG, { TSNET_SOCKET: 'tsnet.sock' }), { code: 4, says: /TSNET_SOCKET .* is not an absolute path/ }, 'relative');
    expectOutcome(await runPlugin(CONFIG, { TSNET_SOCKET: '/tmp/a\u001bb' }), { code: 4, says: /TSNET_SOCKET .* holds a control character/ }, 'escape');
  });

  it('answers VERSION without a daemon, whatever stdin holds', async () => {
    for (const stdin of ['', '{nope', '\u0000\u00ff', '['.repeat(100_000)]) {
      expectOutcome(await runPlugin(stdin, { CNI_COMMAND: 'VERSION', TSNET_SOCKET: '/nonexistent' }), { prints: '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}\n', status: 0 }, JSON.stringify(stdin.slice(0, 20)));
    }
  });

  // the error's cniVersion is the configuration's only when it is a plain version string
  const versions: [string, string][] = [
    ['"0.4.0"', '0.4.0'],
    ['"1.0.0.0.0!"', '1.1.0'],
    ['"\\u0031.0.0"', '1.0.0'],
    [`"${'1'.repeat(30)}!"`, '1.1.0'],
    [`"${'1'.repeat(31)}\\n"`, '1.1.0'],
    [`"${'1'.repeat(200)}"`, '1.1.0'],
    ['"1.0.0\\u0000"', '1.1.0'],
    ['"1.0.0\\"}"', '1.1.0'],
    ['""', '1.1.0'],
    ['1', '1.1.0'],
  ];
  for (const [value, version] of versions) {
    it(`says cniVersion ${version} in its own errors for a configuration's ${value}`, async () => {
      const r = await runPlugin(`{"cniVersion":${value},"name":"n"}`, { TSNET_SOCKET: join(dir, 'nobody.sock') });
      expectOutcome(r, { code: 11, says: /the tsnet daemon is not running/, version }, value);
    });
  }

  it('takes the cniVersion of its own errors from the top level only', async () => {
    const r = await runPlugin('{"args":{"cniVersion":"9.9.9"},"cniVersion":"0.4.0","name":"n"}', { TSNET_SOCKET: join(dir, 'nobody.sock') });
    expectOutcome(r, { code: 11, says: /the tsnet daemon is not running/, version: '0.4.0' }, 'nested cniVersion');
  });

  const badInputs: [string, string | Buffer, Fails][] = [
    ['an empty stdin', '', { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['a JSON array', '[{"cniVersion":"1.0.0"}]', { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['a cut object', '{"cniVersion":"1.0.0","name":"n"', { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['a NUL after the object', Buffer.from('{"cniVersion":"1.0.0"}\u0000'), { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['a raw line break in a string', '{"cniVersion":"1.0.0","name":"a\nb"}', { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['100000 nested arrays', `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['100000 nested objects, cut', '{"a":'.repeat(100_000), { code: 6, says: /not a JSON object/, version: '1.1.0' }],
    ['1 MiB and a byte', `{"cniVersion":"1.0.0","pad":"${'x'.repeat(MiB)}"}`, { code: 5, says: /larger than 1 MiB/, version: '1.1.0' }],
  ];
  for (const [name, stdin, want] of badInputs) {
    it(`refuses ${name}`, async () => {
      const { r, requests } = await againstGoodDaemon(stdin);
      expectOutcome(r, want, name);
      expect(requests).toHaveLength(0);
    });
  }

  it('takes 1 MiB exactly, invalid UTF-8 and deep (but bounded) nesting', async () => {
    const exact = `{"cniVersion":"1.0.0","pad":"${'x'.repeat(MiB - 31)}"}`;
    expect(exact.length).toBe(MiB);
    for (const stdin of [exact, Buffer.from([...Buffer.from('{"name":"'), 0xff, 0xc3, 0x28, ...Buffer.from('"}')]), `{"a":${'['.repeat(500)}${']'.repeat(500)}}`]) {
      const { r, requests } = await againstGoodDaemon(stdin);
      expectOutcome(r, found, String(stdin.length));
      expect(Buffer.compare(requests[0].body, Buffer.from(stdin))).toBe(0);
    }
  });

  const badEnv: [string, Record<string, string | undefined>, RegExp][] = [
    ['no CNI_COMMAND', { CNI_COMMAND: undefined }, /CNI_COMMAND is not set/],
    ['a header injected through CNI_ARGS', { CNI_ARGS: 'a=b\r\nX-CNI-Exit: 0' }, /CNI_ARGS holds a control character/],
    ['a line feed in CNI_COMMAND', { CNI_COMMAND: 'ADD\n' }, /CNI_COMMAND holds a control character/],
    ['a tab in CNI_IFNAME', { CNI_IFNAME: 'eth\t0' }, /CNI_IFNAME holds a control character/],
    ['a CNI_PATH of 4097 bytes', { CNI_PATH: `/${'p'.repeat(4096)}` }, /CNI_PATH is longer than 4096 bytes/],
  ];
  for (const [name, env, says] of badEnv) {
    it(`refuses ${name}`, async () => {
      const { r, requests } = await againstGoodDaemon(CONFIG, env);
      expectOutcome(r, { code: 4, says }, name);
      expect(requests).toHaveLength(0);
    });
  }

  it('random configurations: accepted exactly when JSON.parse gives an object, and forwarded byte for byte', async () => {
    const fields = { cniVersion: '1.0.0', name: 'fuzz', type: 'tsnet', args: { cni: { labels: ['a', 'b\n"c"'] } }, prevResult: { ips: [{ address: '10.1.2.3/24' }], n: -1.5e3, ok: true, none: null }, note: 'é\u0001 \\/\ud83d\ude00', lone: '\ud83d \ude00', escaped: 'PAIR' };
    const base = Buffer.from(JSON.stringify(fields).replace('PAIR', '\\ud83d\\ude00\\u00e9\\/'));
    const rnd = random(11);
    const outcomes = { accepted: 0, refused: 0 };
    await withServer(answers(httpReply(RESULT)), async (socket, requests) => {
      for (let i = 0; i < 30; i++) {
        let input: Buffer = base;
        for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) input = mutate(input, rnd, JSONISH);
        const label = `random configuration ${i}: ${JSON.stringify(input.toString('latin1'))}`;
        const value = parsed(input.toString('utf8'));
        const before = requests.length;
        const r = await runPlugin(input, { TSNET_SOCKET: socket });
        if (isObject(value) && !('socket' in value)) {
          expectOutcome(r, found, label);
          expect(Buffer.compare(requests[before].body, input), label).toBe(0);
          outcomes.accepted++;
        } else if (!isObject(value)) {
          expectOutcome(r, { code: 6, says: /not a JSON object/, version: '1.1.0' }, label);
          outcomes.refused++;
        }
      }
    });
    expect(outcomes.accepted).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });

  it('random CNI_* values: refused (code 4) when one holds a control character or is too long, else sent as they are', async () => {
    const rnd = random(23);
    const names = ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'];
    const pick = (): string => (rnd() < 0.1 ? 'é' : String.fromCharCode(33 + Math.floor(rnd() * 94))); // no blank at either end
    const outcomes = { sent: 0, refused: 0 };
    await withServer(answers(httpReply(RESULT)), async (socket, requests) => {
      for (let i = 0; i < 15; i++) {
        const env: Record<string, string> = {};
        for (const name of names) env[name] = Array.from({ length: rnd() < 0.1 ? 4095 + Math.floor(rnd() * 3) : Math.floor(rnd() * 40) }, pick).join('');
        if (rnd() < 0.3) {
          // one control character (not NUL, which no environment holds) somewhere
          const name = names[Math.floor(rnd() * names.length)];
          const at = Math.floor(rnd() * (env[name].length + 1));
          const control = rnd() < 0.1 ? '\u007f' : String.fromCharCode(1 + Math.floor(rnd() * 31));
          env[name] = env[name].slice(0, at) + control + env[name].slice(at);
        }
        const label = `random variables ${i}: ${JSON.stringify(env).slice(0, 300)}`;
        const bad = Object.values(env).some((v) => /[\u0001-\u001f\u007f]/.test(v) || Buffer.byteLength(v) > 4096);
        const before = requests.length;
        const r = await runPlugin(CONFIG, { ...env, TSNET_SOCKET: socket });
        if (bad) {
          expectOutcome(r, { code: 4, says: /holds a control character|is longer than 4096 bytes/ }, label);
          expect(requests.length, label).toBe(before);
          outcomes.refused++;
        } else {
          expectOutcome(r, found, label);
          for (const name of names) expect(Buffer.from(requests[before].headers[`x-${name.toLowerCase().replace('_', '-')}`], 'latin1').toString('utf8'), label).toBe(env[name]);
          outcomes.sent++;
        }
      }
    });
    expect(outcomes.sent).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});
