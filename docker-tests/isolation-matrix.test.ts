// The isolation matrix (issue 11, "Add"): who can open a TCP connection to whom, through the real
// Docker engine, with tsnet's networks and Docker's own side by side and Docker's iptables loaded.
//
// Nodes: a container on each of two tsnet bridge networks (tA, tB), a tsnet --internal network
// (tInt), a tsnet network with ICC off (icc1, icc2, icc3), a Docker user-defined bridge (dUser), a
// Docker --internal network (dInt), a Docker network with ICC off (dIcc1, dIcc2, dIcc3) and the
// default docker0 (d0); plus the host and an "outside" namespace
// behind a veth of the host (198.51.100.240/29, with routes back to every container subnet, so a
// packet that leaks would get its answer). Every container serves HTTP on port 81, unpublished,
// and (except on internal networks and icc2) on port 80 published on a host port.
//
// For every ordered pair the source tries its destination's unpublished port by the container's
// address (column "X:81") and its published port through the host's address on the outside veth
// (column "X:pub"); "host" and "outside" are servers on the host's and the outside's addresses.
// All probes are busybox `nc -w 2` (inside containers, on the host, in the namespace alike), run in
// parallel. The attacker's way is taken where the plain way would prove nothing: the containers of
// internal networks have NET_ADMIN and a default route via their bridge (else every probe would
// end in "network unreachable" without reaching a firewall), and icc1 and icc2 reach each other
// by /32 routes via the gateway, both ways so that the answer too is routed (finding 4), while
// icc3 reaches both directly over the bridge.
//
// The table the test saw is printed (rows = sources), then compared with EXPECTED, and every
// cell between tsnet-only nodes is compared with the same cell between their Docker counterparts
// (tA ~ dUser, tB ~ d0, tInt ~ dInt, iccN ~ dIccN) as Docker itself behaved in the same run:
// tsnet must match Docker except where KNOWN_DIFFERENCES says why not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sh, until } from '../test-support/commands.js';
import { BUSYBOX_IMAGE as IMAGE, E2E_PLUGIN as PLUGIN, docker, dockerOk as ok, finishE2e, onCleanup, startE2e, uniqueName, type E2eDaemon } from './harness.js';

// ---------------------------------------------------------------- the world, as data

const HOST_IP = '198.51.100.241';
const OUTSIDE_IP = '198.51.100.242';
const OUTSIDE_PREFIX = 29;
/** the port of the host's and the outside's own servers */
const SERVER_PORT = 18239;
const UNPUBLISHED = 81;
const PUBLISHED_IN_CONTAINER = 80;

type NetKind = 'tsnet' | 'docker';

interface NetSpec {
  key: string;
  kind: NetKind;
  /** undefined: Docker's default bridge network (docker0) */
  subnet?: string;
  args: string[];
  internal: boolean;
}

interface ContainerSpec {
  name: string;
  net: string;
  /** host port that publishes port 80; none on internal networks */
  hostPort?: number;
  /** a peer on the same network this container reaches by a /32 route via the gateway */
  routeVia?: string;
}

const NETS: NetSpec[] = [
  { key: 'A', kind: 'tsnet', subnet: '10.236.1.0/24', args: [], internal: false },
  { key: 'B', kind: 'tsnet', subnet: '10.236.2.0/24', args: [], internal: false },
  { key: 'int', kind: 'tsnet', subnet: '10.236.3.0/24', args: ['--internal'], internal: true },
  { key: 'icc', kind: 'tsnet', subnet: '10.236.4.0/24', args: ['-o', 'com.docker.network.bridge.enable_icc=false'], internal: false },
  { key: 'user', kind: 'docker', subnet: '10.236.5.0/24', args: [], internal: false },
  { key: 'dint', kind: 'docker', subnet: '10.236.6.0/24', args: ['--internal'], internal: true },
  { key: 'dicc', kind: 'docker', subnet: '10.236.7.0/24', args: ['-o', 'com.docker.network.bridge.enable_icc=false'], internal: false },
  { key: 'docker0', kind: 'docker', args: [], internal: false },
];

const CONTAINERS: ContainerSpec[] = [
  { name: 'tA', net: 'A', hostPort: 18231 },
  { name: 'tB', net: 'B', hostPort: 18232 },
  { name: 'tInt', net: 'int' },
  { name: 'icc1', net: 'icc', hostPort: 18233, routeVia: 'icc2' },
  { name: 'icc2', net: 'icc', routeVia: 'icc1' },
  { name: 'icc3', net: 'icc' },
  { name: 'dUser', net: 'user', hostPort: 18234 },
  { name: 'dInt', net: 'dint' },
  { name: 'dIcc1', net: 'dicc', hostPort: 18236, routeVia: 'dIcc2' },
  { name: 'dIcc2', net: 'dicc', routeVia: 'dIcc1' },
  { name: 'dIcc3', net: 'dicc' },
  { name: 'd0', net: 'docker0', hostPort: 18235 },
];

/** How a probe ended: connected to the right server, timed out (dropped), refused, unreachable. */
type Outcome = 'ok' | '--' | 'RF' | 'UR' | 'WRONG' | '??';

/**
 * What tsnet must do (rows: sources; columns: destinations). ok: connected to the right server;
 * --: timed out (a drop); RF: refused; UR: unreachable. Read it as Docker's rules: separate
 * networks see only each other's published ports; internal networks reach nothing outside their
 * network but the host's own addresses (Docker filters only forwarding) and nothing reaches them
 * but the host; ICC off closes icc1 <-> icc2 on every path but their published port (Docker's
 * userland proxy lets that through too); the host reaches every container address.
 */
const EXPECTED = `
from\\to tA:81 tA:pub tB:81 tB:pub tInt:81 icc1:81 icc1:pub icc2:81 icc3:81 dUser:81 dUser:pub dInt:81 dIcc1:81 dIcc1:pub dIcc2:81 dIcc3:81 d0:81 d0:pub host outside
tA      ok    ok     --    ok     --      --      ok       --      --      --       ok        --      --       ok        --       --       --    ok     ok   ok
tB      --    ok     ok    ok     --      --      ok       --      --      --       ok        --      --       ok        --       --       --    ok     ok   ok
tInt    --    --     --    --     ok      --      --       --      --      --       --        --      --       --        --       --       --    --     ok   --
icc1    --    ok     --    ok     --      ok      ok       --      --      --       ok        --      --       ok        --       --       --    ok     ok   ok
icc2    --    ok     --    ok     --      --      ok       ok      --      --       ok        --      --       ok        --       --       --    ok     ok   ok
icc3    --    ok     --    ok     --      --      ok       --      ok      --       ok        --      --       ok        --       --       --    ok     ok   ok
dUser   --    ok     --    ok     --      --      ok       --      --      ok       ok        --      --       ok        --       --       --    ok     ok   ok
dInt    --    --     --    --     --      --      --       --      --      --       --        ok      --       --        --       --       --    --     ok   --
dIcc1   --    ok     --    ok     --      --      ok       --      --      --       ok        --      ok       ok        --       --       --    ok     ok   ok
dIcc2   --    ok     --    ok     --      --      ok       --      --      --       ok        --      --       ok        ok       --       --    ok     ok   ok
dIcc3   --    ok     --    ok     --      --      ok       --      --      --       ok        --      --       ok        --       ok       --    ok     ok   ok
d0      --    ok     --    ok     --      --      ok       --      --      --       ok        --      --       ok        --       --       ok    ok     ok   ok
host    ok    ok     ok    ok     ok      ok      ok       ok      ok      ok       ok        ok      ok       ok        ok       ok       ok    ok     ok   ok
outside --    ok     --    ok     --      --      ok       --      --      --       ok        --      --       ok        --       --       --    ok     ok   ok
`;

/** Each tsnet node's Docker counterpart; host and outside stand for themselves. */
const DOCKER_TWIN: Record<string, string> = { tA: 'dUser', tB: 'd0', tInt: 'dInt', icc1: 'dIcc1', icc2: 'dIcc2', icc3: 'dIcc3', host: 'host', outside: 'outside' };

/**
 * Cells where tsnet knowingly differs from its Docker twin ("row>column"), each with its reason.
 * EXPECTED holds what tsnet does there; the test fails when such a cell comes to match Docker.
 */
const KNOWN_DIFFERENCES: Record<string, string> = {
  // none: ICC off let no published port through a host address while it was bridge port
  // isolation; it is a firewall rule now that spares those (firewall/rules/spoofing.ts)
};

// ---------------------------------------------------------------- tables (pure)

type Table = Map<string, Map<string, string>>;

/** Parses a table as EXPECTED writes it: a header of columns, then one row per source. */
function parseTable(text: string): Table {
  const [header, ...rows] = text.trim().split('\n').map((l) => l.trim().split(/\s+/));
  const cols = header.slice(1);
  const table: Table = new Map();
  for (const [from, ...cells] of rows) {
    if (cells.length !== cols.length) throw new Error(`row ${from}: ${cells.length} cells for ${cols.length} columns`);
    table.set(from, new Map(cols.map((c, i) => [c, cells[i]])));
  }
  return table;
}

/** The table as text, in EXPECTED's layout, so the two compare line by line. */
function formatTable(table: Table): string {
  const rows = [...table.keys()];
  const cols = [...table.get(rows[0])!.keys()];
  const width = (i: number) => Math.max(...[i === 0 ? 'from\\to' : cols[i - 1], ...rows.map((r) => (i === 0 ? r : table.get(r)!.get(cols[i - 1])!))].map((s) => s.length)) + 1;
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width(i))).join('').trimEnd();
  return [line(['from\\to', ...cols]), ...rows.map((r) => line([r, ...cols.map((c) => table.get(r)!.get(c)!)]))].join('\n');
}

/** The node a column points at ("tA:81" -> "tA", "host" -> "host"). */
const nodeOf = (col: string) => col.split(':')[0];

/** The column at the twin of a column's node ("tA:pub" -> "dUser:pub"); undefined without a twin. */
function twinColumn(col: string): string | undefined {
  const twin = DOCKER_TWIN[nodeOf(col)];
  return twin && col.replace(nodeOf(col), twin);
}

/**
 * Cells between tsnet's own nodes (and the host and outside) whose outcome differs from the same
 * cell between their Docker twins and KNOWN_DIFFERENCES does not list ("row>col: tsnet X, Docker
 * Y"), and listed cells that no longer differ.
 */
function differencesFromDocker(seen: Table): string[] {
  const out: string[] = [];
  for (const [from, cells] of seen) {
    const twinFrom = DOCKER_TWIN[from];
    for (const [col, outcome] of cells) {
      const twinCol = twinColumn(col);
      if (!twinFrom || !twinCol || (twinFrom === from && twinCol === col)) continue;
      const docker = seen.get(twinFrom)?.get(twinCol);
      const known = KNOWN_DIFFERENCES[`${from}>${col}`] !== undefined;
      if (docker === undefined || (docker === outcome) !== known) continue;
      out.push(`${from}>${col}: tsnet ${outcome}, Docker (${twinFrom}>${twinCol}) ${docker}${known ? ': listed as a known difference, remove it' : ''}`);
    }
  }
  return out;
}

/** What busybox nc printed, as an outcome; `want` is the body the right server sends. */
function classify(output: string, want: string): Outcome {
  if (output.includes(want)) return 'ok';
  if (/timed out/.test(output)) return '--';
  if (/refused/i.test(output)) return 'RF';
  if (/unreachable|no route/i.test(output)) return 'UR';
  if (/HTTP\/1\.[01] /.test(output)) return 'WRONG';
  return '??';
}

// ---------------------------------------------------------------- probes

/** One TCP connection to try: where, and the body the right server answers with. */
interface Probe {
  col: string;
  ip: string;
  port: number;
  want: string;
}

/**
 * A shell script that runs every probe at once (busybox nc, 2 s) and prints, after all ended,
 * "@@<index>" and each one's output.
 */
function probeScript(probes: Probe[]): string {
  const get = `printf 'GET / HTTP/1.0\\r\\n\\r\\n'`;
  const starts = probes.map((p, i) => `(${get} | busybox nc -w 2 ${p.ip} ${p.port} >$d/${i} 2>&1) &`);
  const prints = probes.map((_, i) => `echo @@${i}; cat $d/${i}`);
  return ['d=$(mktemp -d)', ...starts, 'wait', ...prints, 'rm -rf $d'].join('\n');
}

function runAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 8 << 20 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
}

/** The probes' outcomes from one source, by column; `raw` keeps what nc said for the log. */
async function probeFrom(source: string, argv: string[], probes: Probe[]): Promise<{ source: string; cells: Map<string, Outcome>; raw: Map<string, string> }> {
  const output = await runAsync(argv[0], [...argv.slice(1), probeScript(probes)]);
  const parts = new Map<number, string>();
  for (const chunk of output.split('@@').slice(1)) {
    const nl = chunk.indexOf('\n');
    parts.set(Number(chunk.slice(0, nl)), chunk.slice(nl + 1).trim());
  }
  const cells = new Map<string, Outcome>();
  const raw = new Map<string, string>();
  probes.forEach((p, i) => {
    const out = parts.get(i) ?? `no output (${output.trim().slice(0, 200)})`;
    cells.set(p.col, classify(out, p.want));
    raw.set(p.col, out.replace(/\s+/g, ' ').slice(0, 120));
  });
  return { source, cells, raw };
}

// ---------------------------------------------------------------- building it

let e2e: E2eDaemon;
const tag = uniqueName('im');
const outsideNs = `${tag}-out`;
const outsideHostIf = `${tag}o`;
const netName = (key: string) => (key === 'docker0' ? 'bridge' : `${tag}-${key}`);
const ctrName = (name: string) => `${tag}-${name}`;
const specOf = (key: string) => NETS.find((n) => n.key === key)!;
/** container name -> its address on its network */
const addressOf = new Map<string, string>();
const gatewayOf = (subnet: string) => subnet.replace(/0\/\d+$/, '1');

function makeNetwork(n: NetSpec): void {
  if (n.key === 'docker0') return;
  const driver = n.kind === 'tsnet' ? ['-d', PLUGIN] : [];
  ok(['network', 'create', ...driver, '--subnet', n.subnet!, ...n.args, netName(n.key)]);
  onCleanup(() => docker(['network', 'rm', netName(n.key)]));
}

/** A container serving "<name>:81" on 81 and "<name>:80" on 80, optionally publishing 80. */
function makeContainer(c: ContainerSpec): void {
  const name = ctrName(c.name);
  const publish = c.hostPort ? ['-p', `${c.hostPort}:${PUBLISHED_IN_CONTAINER}`] : [];
  const caps = specOf(c.net).internal || c.routeVia ? ['--cap-add', 'NET_ADMIN'] : [];
  const serve = [UNPUBLISHED, PUBLISHED_IN_CONTAINER].map((p) => `mkdir -p /w${p} && echo ${c.name}:${p} > /w${p}/index.html && httpd -p ${p} -h /w${p}`);
  onCleanup(() => docker(['rm', '-f', name]));
  ok(['run', '-d', '--name', name, '--network', netName(c.net), ...publish, ...caps, IMAGE, 'sh', '-c', `${serve.join(' && ')} && exec sleep 3600`]);
  addressOf.set(c.name, ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${netName(c.net)}").IPAddress}}`, name]));
}

/** A busybox httpd outside any container (host or namespace), serving "<label>:<port>". */
function makeServer(label: string, prefix: string[], ip: string): void {
  const dir = mkdtempSync(join(tmpdir(), `${tag}-${label}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'index.html'), `${label}:${SERVER_PORT}\n`);
  const argv = [...prefix, 'busybox', 'httpd', '-f', '-p', `${ip}:${SERVER_PORT}`, '-h', dir];
  const server = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
  onCleanup(() => server.kill());
}

/** The outside namespace: a veth from the host, routes back to every container subnet. */
function makeOutside(): void {
  sh('ip', ['netns', 'add', outsideNs]);
  onCleanup(() => sh('ip', ['netns', 'del', outsideNs]));
  sh('ip', ['link', 'add', outsideHostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outsideNs]);
  onCleanup(() => run('ip', ['link', 'del', outsideHostIf]));
  const inside = (args: string[]) => sh('ip', ['netns', 'exec', outsideNs, ...args]);
  sh('ip', ['addr', 'add', `${HOST_IP}/${OUTSIDE_PREFIX}`, 'dev', outsideHostIf]);
  sh('ip', ['link', 'set', outsideHostIf, 'up']);
  inside(['ip', 'addr', 'add', `${OUTSIDE_IP}/${OUTSIDE_PREFIX}`, 'dev', 'eth0']);
  inside(['ip', 'link', 'set', 'eth0', 'up']);
  inside(['ip', 'link', 'set', 'lo', 'up']);
  for (const route of ['10.236.0.0/16', '172.17.0.0/16']) inside(['ip', 'route', 'add', route, 'via', HOST_IP]);
}

/**
 * The attacker's routes: containers of internal networks get a default route via their bridge
 * (Docker gives them one, tsnet does not), routeVia a /32 to their peer via the gateway.
 */
function addAttackerRoutes(): void {
  for (const c of CONTAINERS) {
    const gateway = gatewayOf(specOf(c.net).subnet ?? '');
    if (specOf(c.net).internal) ok(['exec', ctrName(c.name), 'ip', 'route', 'replace', 'default', 'via', gateway]);
    if (c.routeVia) ok(['exec', ctrName(c.name), 'ip', 'route', 'add', `${addressOf.get(c.routeVia)}/32`, 'via', gateway]);
  }
}

/** Every destination column, in EXPECTED's order. */
function allProbes(): Probe[] {
  const probes: Probe[] = [];
  for (const c of CONTAINERS) {
    probes.push({ col: `${c.name}:${UNPUBLISHED}`, ip: addressOf.get(c.name)!, port: UNPUBLISHED, want: `${c.name}:${UNPUBLISHED}` });
    if (c.hostPort) probes.push({ col: `${c.name}:pub`, ip: HOST_IP, port: c.hostPort, want: `${c.name}:${PUBLISHED_IN_CONTAINER}` });
  }
  probes.push({ col: 'host', ip: HOST_IP, port: SERVER_PORT, want: `host:${SERVER_PORT}` });
  probes.push({ col: 'outside', ip: OUTSIDE_IP, port: SERVER_PORT, want: `outside:${SERVER_PORT}` });
  return probes;
}

/** How to run a shell script as each source: docker exec, the host's sh, the namespace's sh. */
function sources(): { source: string; argv: string[] }[] {
  return [
    ...CONTAINERS.map((c) => ({ source: c.name, argv: ['docker', 'exec', ctrName(c.name), 'sh', '-c'] })),
    { source: 'host', argv: ['sh', '-c'] },
    { source: 'outside', argv: ['ip', 'netns', 'exec', outsideNs, 'sh', '-c'] },
  ];
}

/**
 * The matrix is Docker's as Docker sets it up when it turns IP forwarding on itself: FORWARD policy
 * drop. A dockerd that found forwarding on already (a tsnet or another router enabled it first, or
 * a reboot simulation of survival.test.ts left the kernel so) keeps policy accept, and then nothing
 * but its isolation chains stands between the outside and Docker's unpublished ports. That posture
 * is set here for the file and put back after.
 */
function dockerForwardDrop(): void {
  const chain = run('nft', ['list', 'chain', 'ip', 'filter', 'FORWARD']);
  if (chain.code !== 0) throw new Error(`dockerd made no FORWARD chain: ${chain.stderr}`);
  if (/policy drop;/.test(chain.stdout)) return;
  sh('nft', ['chain ip filter FORWARD { policy drop; }']);
  onCleanup(() => run('nft', ['chain ip filter FORWARD { policy accept; }']));
}

beforeAll(async () => {
  e2e = await startE2e('tsnet-e2e-im');
  dockerForwardDrop();
  makeOutside();
  makeServer('host', [], HOST_IP);
  makeServer('outside', ['ip', 'netns', 'exec', outsideNs], OUTSIDE_IP);
  NETS.forEach(makeNetwork);
  CONTAINERS.forEach(makeContainer);
  addAttackerRoutes();
}, 300_000);

afterAll(() => finishE2e(e2e, CONTAINERS.filter((c) => specOf(c.net).kind === 'tsnet' && c.hostPort).map((c) => ({ proto: 'tcp' as const, port: c.hostPort! }))));

describe('the isolation matrix through Docker', () => {
  it('sees, for every ordered pair, what Docker does between its own networks', async () => {
    // the world is up: every server answers its own node (containers on their own address)
    const own = (source: string) => allProbes().filter((p) => nodeOf(p.col) === source && !p.col.endsWith(':pub'));
    await until(
      'every server answers on its own node',
      async () => (await Promise.all(sources().map((s) => probeFrom(s.source, s.argv, own(s.source))))).every((r) => [...r.cells.values()].every((o) => o === 'ok')),
      60_000,
    );

    const results = await Promise.all(sources().map((s) => probeFrom(s.source, s.argv, allProbes())));
    const seen: Table = new Map(results.map((r) => [r.source, r.cells as Map<string, string>]));
    const expected = parseTable(EXPECTED);
    console.log(`isolation matrix as seen (ok connected, -- timed out, RF refused, UR unreachable):\n${formatTable(seen)}`);
    const odd = results.flatMap((r) => [...r.raw].filter(([col]) => r.cells.get(col) !== expected.get(r.source)?.get(col)).map(([col, out]) => `${r.source}>${col}: ${out}`));
    if (odd.length) console.log(`cells not as expected, with what nc said:\n  ${odd.join('\n  ')}`);
    console.log(`known differences from Docker:\n${Object.entries(KNOWN_DIFFERENCES).map(([cell, why]) => `  ${cell}: ${why}`).join('\n')}`);

    // positives first: what must connect did (the world is up), then the whole table
    const positives = [...expected].flatMap(([from, cells]) => [...cells].filter(([, o]) => o === 'ok').map(([col]) => `${from}>${col}: ${seen.get(from)?.get(col)}`));
    expect(positives.filter((p) => !p.endsWith(': ok'))).toEqual([]);
    expect(formatTable(seen)).toBe(formatTable(expected));
    expect(differencesFromDocker(seen)).toEqual([]);
  });
});
