// Scale (issue 14 item 2): does tsnet stay as fast, small and whole with thousands of endpoints?
// A daemon of the benchmark's own gets ENDPOINTS CNI attachments over NETWORKS networks (the real
// plugin executable, as a runtime runs it), each publishing its share of PORTS host ports, plus
// DOCKER_ENDPOINTS containers through Docker. Measured at that size against the same at the start:
// the time of an ADD (the first and the last WINDOW), one nftables transaction, publishing and
// unpublishing one more port; the daemon's memory; the DNAT latency of the last mapping against the
// 1st; a kill -9 and restart (until it serves, until its log says the kernel is reconciled, and
// whether every link and table element is still there); PARALLEL `docker run` at once on an empty
// tsnet network beside as many on an empty Docker bridge. Each figure with its goal is a
// BENCH-RESULT line (lib.ts report).
// The issue's sizes are the defaults; smaller ones (ENDPOINTS=400 PORTS=2000 ...) for a quick run;
// KEEP_DAEMON_LOG=FILE keeps a copy of the daemon's log. ADDS_ONLY=1 stops after the CNI ADDs
// (their figures, the daemon's CPU per ADD in each window and its own time per step, the RSS),
// without Docker: to find where an ADD's time grows, e.g. with NODE_OPTIONS='--cpu-prof
// --cpu-prof-dir=DIR' (every node process of the run writes a profile, the daemon's at its stop).
//
// The CNI namespaces live in a mount namespace of the benchmark's own: the benchmark starts dockerd
// (when none runs) and then runs again under `unshare --mount` with a tmpfs of its own on
// /run/netns, so its ENDPOINTS bind mounts are not in the mount table of dockerd, containerd and
// runc. Measured (bench/README.md (f)): a `docker run` takes longer with thousands of netns mounts
// in the host's table, whatever the network (--network none too, without tsnet: 0.94 -> 1.2 s at
// 4,000): Docker's own cost of the mount table, the same for both sides of the comparisons, which
// would only blur tsnet's part. The tsnet daemon, the CNI plugin and the namespaces share that
// mount namespace, as they would share the host's; the links, the nftables tables and the
// daemon's work are the same. HOST_NETNS=1 keeps the namespaces in the host's mount table.
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { docker, ensureBusyboxImage, pluginAnswers } from '../docker-tests/harness.js';
import { instanceOf } from '../daemon/paths.js';
import { Firewall } from '../firewall/firewall.js';
import type { PortMapping } from '../firewall/model.js';
import { rulesFor } from '../firewall/ruleset.js';
import { Netlink } from '../native/netlink/netlink.js';
import { Nft } from '../native/nftables.js';
import { Cleanup, benchDaemon, byteServer, connectLatencies, makeNamespaces, median, report, runCni, sh, table, useDockerd, type BenchResult } from './lib.js';

function count(name: string, fallback: number, min: number, max: number): number {
  const n = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be ${min}..${max}`);
  return n;
}

const NETWORKS = count('NETWORKS', 100, 1, 250);
const ENDPOINTS = count('ENDPOINTS', 4000, NETWORKS + 2, 250 * NETWORKS);
const DOCKER_ENDPOINTS = count('DOCKER_ENDPOINTS', 200, 0, 400);
/** host ports from PORT_BASE up, below the ephemeral range (32768 and up) */
const PORT_BASE = 10_000;
const PORTS = count('PORTS', 20_000, 2, 32_768 - PORT_BASE);
const PARALLEL = count('PARALLEL', 50, 1, 100);
const SAMPLES = count('SAMPLES', 1000, 10, 100_000);
/** how many ADDs at the start and at the end are compared */
const WINDOW = Math.min(100, Math.floor((ENDPOINTS - NETWORKS) / 2));
const PER_ENDPOINT = Math.ceil(PORTS / ENDPOINTS);
const CONTAINER_PORT = 9000;
const ADDS_ONLY = process.env.ADDS_ONLY === '1';

const PLUGIN = 'tsnet-bench';
const SOCKET = `/run/docker/plugins/${PLUGIN}.sock`;
const CNI_PLUGIN = join(import.meta.dirname, '..', 'cni', 'tsnet');
const IMAGE = 'tsnet-busybox:latest';
const BENCH = 'scale';

const nsName = (e: number) => `tsb-scale-${e}`;
const networkOf = (e: number) => e % NETWORKS;

/** The host ports endpoint e publishes: mapping i = e * PER_ENDPOINT + j, host port PORT_BASE + i, container port CONTAINER_PORT + j. */
function mappingsOf(e: number): { hostPort: number; containerPort: number; protocol: 'tcp' }[] {
  const out: { hostPort: number; containerPort: number; protocol: 'tcp' }[] = [];
  for (let j = 0; j < PER_ENDPOINT && e * PER_ENDPOINT + j < PORTS; j++) out.push({ hostPort: PORT_BASE + e * PER_ENDPOINT + j, containerPort: CONTAINER_PORT + j, protocol: 'tcp' });
  return out;
}

/** CNI ADD of endpoint e; its wall time and the container's address. */
function add(e: number): { ms: number; address: string } {
  const n = networkOf(e);
  const conf = {
    cniVersion: '1.0.0',
    name: `bench-scale-${n}`,
    type: 'tsnet',
    mode: 'bridge',
    ipam: { type: 'tsnet', subnet: `10.232.${n}.0/24` },
    runtimeConfig: { portMappings: mappingsOf(e) },
  };
  const r = runCni({ plugin: CNI_PLUGIN, conf, env: { TSNET_SOCKET: SOCKET }, command: 'ADD', netns: nsName(e), containerId: `scale-${e}` });
  const result = JSON.parse(r.stdout) as { ips: { address: string }[] };
  return { ms: r.ms, address: result.ips[0].address.split('/')[0] };
}

/** The lines a log file gets from now on, read as they come (only what is new: the log is megabytes at size). */
function logFrom(path: string): { next(): string[]; close(): void } {
  const fd = openSync(path, 'r');
  let offset = statSync(path).size;
  let partial = '';
  const buf = Buffer.alloc(1 << 20);
  return {
    next() {
      let text = '';
      for (let n; (n = readSync(fd, buf, 0, buf.length, offset)) > 0; offset += n) text += buf.toString('utf8', 0, n);
      const lines = (partial + text).split('\n');
      partial = lines.pop()!;
      return lines;
    },
    close: () => closeSync(fd),
  };
}

function rssMb(pid: number | undefined): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function timeIt(fn: () => unknown): number {
  const start = process.hrtime.bigint();
  fn();
  return msSince(start);
}

interface Probes {
  transaction: number;
  publish: number;
  unpublish: number;
  /** a container port's anti-spoofing chain and rules, in and out (each endpoint's firewall change) */
  portIn: number;
  portOut: number;
}

/**
 * At the table's current size, medians of 20: one nftables transaction (add, then delete, one map
 * element: the daemon's own rule text through libnftables), and publishing and unpublishing one
 * more port with the daemon's Firewall code (which also asks whether the table exists).
 */
function probes(tableName: string, compatTag: string): Probes {
  const nft = Nft.open();
  try {
    const rules = rulesFor(tableName);
    const firewall = new Firewall(nft, { warn() {} }, { table: tableName, compatTag });
    // an address nothing answers on, a port outside the benchmark's range
    const m: PortMapping = { endpointId: 'probe', proto: 'tcp', hostIp: '', hostPort: PORT_BASE + PORTS, containerIp: '198.51.100.9', containerPort: 80 };
    const port = { endpointId: 'probe', port: 'tsbprobe0', mac: '02:42:c6:33:64:09', ipv4: ['198.51.100.9'], ipv6: [], antiSpoofing: true, icc: true };
    const out: Record<keyof Probes, number[]> = { transaction: [], publish: [], unpublish: [], portIn: [], portOut: [] };
    for (let i = 0; i < 20; i++) {
      out.transaction.push(timeIt(() => nft.run(rules.addMappings([m]))));
      nft.run(rules.removeMappings([m]));
      out.publish.push(timeIt(() => firewall.publish([m])));
      out.unpublish.push(timeIt(() => firewall.unpublish([m])));
      out.portIn.push(timeIt(() => firewall.addEndpoint(port)));
      out.portOut.push(timeIt(() => firewall.removeEndpoint(port)));
    }
    return { transaction: median(out.transaction), publish: median(out.publish), unpublish: median(out.unpublish), portIn: median(out.portIn), portOut: median(out.portOut) };
  } finally {
    nft.close();
  }
}

/** CPU time (user + system, in clock ticks) the process has used so far. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/**
 * probes() with the daemon stopped (SIGSTOP) meanwhile: the probes' deletions come from another
 * process, which the daemon's drift repair rightly treats as drift (a repair pass that rewrites
 * its tables); it would then measure the repairs beside the transactions. Afterwards, waits until
 * the daemon has used no CPU for a second, so that what the probes started is over before the
 * next ADD is timed.
 */
async function probesAside(pid: number | undefined, tableName: string, compatTag: string): Promise<Probes> {
  if (pid === undefined) throw new Error('the daemon is not running');
  process.kill(pid, 'SIGSTOP');
  let out: Probes;
  try {
    out = probes(tableName, compatTag);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  for (let i = 0, quiet = 0, ticks = cpuTicks(pid); i < 120 && quiet < 4; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const now = cpuTicks(pid);
    quiet = now === ticks ? quiet + 1 : 0;
    ticks = now;
  }
  return out;
}

/** What a restart must not lose: the daemon's links, every element of both its tables, each container's eth0. */
function kernelSnapshot(instance: string, tableName: string): { links: string; elements: string; containerLinks: number } {
  const links = (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; ifalias?: string }[])
    .filter((l) => l.ifalias?.startsWith(`${instance}:`))
    .map((l) => l.ifname)
    .sort();
  const elements: string[] = [];
  for (const family of ['inet', 'bridge']) {
    const listing = JSON.parse(sh('nft', ['-j', 'list', 'table', family, tableName])) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] };
    for (const o of listing.nftables) {
      const set = o.set ?? o.map;
      if (set?.elem) elements.push(...set.elem.map((x) => `${family} ${set.name} ${JSON.stringify(x)}`));
    }
  }
  let containerLinks = 0;
  for (let e = 0; e < ENDPOINTS; e++) {
    const nl = Netlink.openInNetns(`/run/netns/${nsName(e)}`);
    try {
      if (nl.getLink('eth0')?.up) containerLinks++;
    } finally {
      nl.close();
    }
  }
  return { links: links.join(' '), elements: elements.sort().join('\n'), containerLinks };
}

/** PARALLEL `docker run -d` at once on a network: total wall time, failures, distinct addresses. */
async function parallelRuns(network: string, prefix: string, cleanup: Cleanup): Promise<{ ms: number; failed: number; addresses: number }> {
  const names = Array.from({ length: PARALLEL }, (_, i) => `${prefix}-${i}`);
  cleanup.add(() => docker(['rm', '-f', ...names], { timeoutMs: 300_000 }));
  const start = process.hrtime.bigint();
  const codes = await Promise.all(
    names.map(
      (name) =>
        new Promise<number>((resolve) => {
          const c = spawn('docker', ['run', '-d', '--name', name, '--network', network, IMAGE, 'sleep', '600'], { stdio: 'ignore' });
          const timer = setTimeout(() => c.kill(), 300_000);
          c.once('exit', (code) => {
            clearTimeout(timer);
            resolve(code ?? 1);
          });
        }),
    ),
  );
  const ms = msSince(start);
  const ips = docker(['inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', ...names]).stdout.split('\n').filter(Boolean);
  docker(['rm', '-f', ...names], { timeoutMs: 300_000 });
  return { ms, failed: codes.filter((c) => c !== 0).length, addresses: new Set(ips).size };
}

/** What the daemon spent on a window's ADDs: CPU ms per ADD, the median of its own time per call and per step. */
interface DaemonTimes {
  cpuMsPerAdd: number;
  callMs: number;
  /** the median of each step of `CNI ADD steps` (cni-service.ts; logged at debug level only) */
  steps: Map<string, number>;
}

function daemonTimes(w: { lines: string[]; ticks: number }): DaemonTimes {
  const calls: number[] = [];
  const steps = new Map<string, number[]>();
  for (const line of w.lines) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as { msg?: string; method?: string; command?: string; ms?: number | Record<string, number> };
    if (o.method === 'Cni.Exec' && o.command === 'ADD' && typeof o.ms === 'number') calls.push(o.ms);
    if (o.msg === 'CNI ADD steps' && typeof o.ms === 'object') for (const [k, v] of Object.entries(o.ms)) steps.set(k, [...(steps.get(k) ?? []), v]);
  }
  const adds = calls.length || WINDOW;
  return { cpuMsPerAdd: (w.ticks * 1000) / CLOCK_TICKS / adds, callMs: calls.length ? median(calls) : NaN, steps: new Map([...steps].map(([k, v]) => [k, median(v)])) };
}

/** USER_HZ of /proc/PID/stat (100 on Linux x86-64) */
const CLOCK_TICKS = 100;

function addsTable(first: number, last: number, d: { first: DaemonTimes; last: DaemonTimes }): string {
  const row = (what: string, a: number, b: number) => [what, a.toFixed(2), b.toFixed(2), (b / a).toFixed(2)];
  return table(
    ['CNI ADD, median ms', `first ${WINDOW}`, `last ${WINDOW}`, 'last / first'],
    [
      row('wall time (the plugin executable run)', first, last),
      row("inside the daemon (its log's Cni.Exec ADD)", d.first.callMs, d.last.callMs),
      row('daemon CPU per ADD (user + system)', d.first.cpuMsPerAdd, d.last.cpuMsPerAdd),
      ...[...d.first.steps.keys()].map((k) => row(`  step: ${k}`, d.first.steps.get(k)!, d.last.steps.get(k) ?? NaN)),
    ],
  );
}

const results: BenchResult[] = [];
function result(r: Omit<BenchResult, 'bench'>): void {
  results.push({ bench: BENCH, ...r });
}
const r2 = (x: number) => Math.round(x * 100) / 100;

/** Set in the copy of the benchmark that runs in its own mount namespace. */
const IN_OWN_MOUNTS = 'TSNET_SCALE_OWN_MOUNTS';

/**
 * dockerd and the image first, in the host's mount namespace (a dockerd started in the
 * benchmark's own would see its mounts); then the benchmark itself under `unshare --mount`, with
 * a tmpfs of its own on /run/netns. Its exit code is this one's.
 */
async function outside(): Promise<void> {
  const cleanup = new Cleanup();
  try {
    if (!ADDS_ONLY) {
      await useDockerd(cleanup);
      await ensureBusyboxImage(IMAGE);
    }
    mkdirSync('/run/netns', { recursive: true });
    const child = spawn(
      'unshare',
      ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o mode=0755 tsnet-scale-netns /run/netns && exec "$0" "$@"', process.execPath, ...process.execArgv, process.argv[1]],
      { stdio: 'inherit', env: { ...process.env, [IN_OWN_MOUNTS]: '1' } },
    );
    const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
    // interrupted: the benchmark cleans up (its own Cleanup) before dockerd is stopped
    cleanup.add(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    process.exitCode = await exited;
  } finally {
    await cleanup.run();
  }
}

async function main(): Promise<void> {
  const cleanup = new Cleanup();
  try {
    const where = process.env[IN_OWN_MOUNTS] ? 'their own mount namespace' : "the host's mount table";
    console.log(`scale: ${ENDPOINTS} CNI endpoints on ${NETWORKS} networks (namespaces in ${where}), ${PORTS} published ports, ${DOCKER_ENDPOINTS} Docker containers, ${PARALLEL} parallel docker run`);
    if (!process.env[IN_OWN_MOUNTS] && !ADDS_ONLY) {
      await useDockerd(cleanup);
      await ensureBusyboxImage(IMAGE);
    }
    const daemon = await benchDaemon(cleanup, SOCKET);
    if (process.env.KEEP_DAEMON_LOG) cleanup.add(() => copyFileSync(daemon.logPath, process.env.KEEP_DAEMON_LOG!));
    const instance = instanceOf(SOCKET);
    const memory: [string, number][] = [['no endpoint', rssMb(daemon.pid)]];
    const started = process.hrtime.bigint();
    makeNamespaces(Array.from({ length: ENDPOINTS }, (_, e) => nsName(e)), cleanup);
    console.log(`${ENDPOINTS} namespaces made in ${(msSince(started) / 1000).toFixed(1)} s`);

    // 1. the first ADD on each network makes it
    const addresses: string[] = [];
    const creates: number[] = [];
    for (let e = 0; e < NETWORKS; e++) {
      const r = add(e);
      creates.push(r.ms);
      addresses[e] = r.address;
    }
    const small = await probesAside(daemon.pid, instance.table, instance.tag);
    // 2. the rest, round-robin over the networks
    const adds: number[] = [];
    // the daemon's own per-call lines of the two windows, and its CPU time in each
    const addLog = logFrom(daemon.logPath);
    cleanup.add(() => addLog.close());
    const windows = { first: { lines: [] as string[], ticks: 0 }, last: { lines: [] as string[], ticks: 0 } };
    for (let e = NETWORKS; e < ENDPOINTS; e++) {
      const w = e === NETWORKS ? windows.first : e === ENDPOINTS - WINDOW ? windows.last : undefined;
      if (w) {
        addLog.next();
        w.ticks = cpuTicks(daemon.pid!);
      }
      const r = add(e);
      adds.push(r.ms);
      addresses[e] = r.address;
      const ended = e === NETWORKS + WINDOW - 1 ? windows.first : e === ENDPOINTS - 1 ? windows.last : undefined;
      if (ended) {
        ended.ticks = cpuTicks(daemon.pid!) - ended.ticks;
        ended.lines = addLog.next();
      }
      // let a SIGINT or SIGTERM in (the loop is synchronous otherwise): its handler cleans up and exits
      if (e % 50 === 0) await new Promise((r) => setImmediate(r));
      if ((e + 1) % 500 === 0) console.log(`  ${e + 1} endpoints, last ADD ${r.ms.toFixed(1)} ms, daemon ${rssMb(daemon.pid).toFixed(0)} MB`);
    }
    memory.push([`${ENDPOINTS} CNI endpoints, ${PORTS} ports`, rssMb(daemon.pid)]);
    const inDaemon = { first: daemonTimes(windows.first), last: daemonTimes(windows.last) };
    if (ADDS_ONLY) {
      const [first, last] = [median(adds.slice(0, WINDOW)), median(adds.slice(-WINDOW))];
      console.log('');
      console.log(addsTable(first, last, inDaemon));
      console.log('');
      console.log(table(['daemon memory', 'RSS MB'], memory));
      console.log('');
      result({ measure: `CNI ADD, last / first ${WINDOW} (median)`, tsnet: r2(last), peer: r2(first), ratio: r2(last / first), unit: 'ms', goal: 'ratio <= 1.2', met: last / first <= 1.2 });
      result({ measure: `daemon RSS at ${ENDPOINTS} CNI endpoints, ${PORTS} ports`, tsnet: r2(memory[1][1]), peer: null, unit: 'MB', ratio: null, goal: '<= 200 MB', met: memory[1][1] <= 200 });
      for (const r of results) report(r);
      return;
    }

    // 3. containers through Docker
    // the DOCKER_ENDPOINTS containers go on `tsnet`; the parallel runs (5.) compare two networks
    // in the same state, both empty: `parallel` (tsnet) and `docker` (Docker's bridge)
    const nets = { tsnet: 'bench-scale-tsnet', parallel: 'bench-scale-tsnet-p', docker: 'bench-scale-docker' };
    for (const [name, args] of [
      [nets.tsnet, ['-d', PLUGIN, '--subnet', '10.233.0.0/22']],
      [nets.parallel, ['-d', PLUGIN, '--subnet', '10.233.8.0/22']],
      [nets.docker, ['--subnet', '10.233.4.0/22']],
    ] as const) {
      // a run killed before its cleanup leaves its networks in dockerd's state: not ours to keep
      docker(['network', 'rm', name]);
      const r = docker(['network', 'create', ...args, name]);
      if (r.code !== 0) throw new Error(`docker network create ${name}: ${r.stderr}`);
      cleanup.add(() => docker(['network', 'rm', name]));
    }
    const dockerNames = Array.from({ length: DOCKER_ENDPOINTS }, (_, i) => `tsb-scale-d${i}`);
    cleanup.add(() => dockerNames.length && docker(['rm', '-f', ...dockerNames], { timeoutMs: 600_000 }));
    const dockerRuns = dockerNames.map((name, i) => {
      const start = process.hrtime.bigint();
      const r = docker(['run', '-d', '--name', name, '--network', nets.tsnet, IMAGE, 'sleep', '3600'], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`docker run ${name}: ${r.stderr}`);
      const ms = msSince(start);
      if ((i + 1) % 50 === 0) console.log(`  ${i + 1} Docker containers, last docker run ${ms.toFixed(0)} ms, daemon ${rssMb(daemon.pid).toFixed(0)} MB`);
      return ms;
    });
    memory.push([`and ${DOCKER_ENDPOINTS} Docker containers`, rssMb(daemon.pid)]);
    // one at a time at this size, in turn: an empty tsnet network, an empty Docker bridge, no
    // network (Docker's own cost of a container): what of a docker run is the network's
    const oneByOne = { tsnet: [] as number[], docker: [] as number[], none: [] as number[] };
    for (let i = 0; i < 6; i++) {
      const names = { tsnet: `tsb-scale-1t${i}`, docker: `tsb-scale-1d${i}`, none: `tsb-scale-1n${i}` };
      cleanup.add(() => docker(['rm', '-f', ...Object.values(names)]));
      for (const who of ['tsnet', 'docker', 'none'] as const) {
        const start = process.hrtime.bigint();
        const r = docker(['run', '-d', '--name', names[who], '--network', { tsnet: nets.parallel, docker: nets.docker, none: 'none' }[who], IMAGE, 'sleep', '3600'], { timeoutMs: 120_000 });
        if (r.code !== 0) throw new Error(`docker run ${names[who]}: ${r.stderr}`);
        // the first round warms up
        if (i > 0) oneByOne[who].push(msSince(start));
      }
      docker(['rm', '-f', ...Object.values(names)]);
    }
    const large = await probesAside(daemon.pid, instance.table, instance.tag);

    // 4. DNAT latency through 127.0.0.1 of the 1st and the last mapping, beside the same two
    // containers reached directly (what differs between the two containers themselves)
    const lastEp = Math.floor((PORTS - 1) / PER_ENDPOINT);
    const lastJ = (PORTS - 1) % PER_ENDPOINT;
    await byteServer(nsName(0), [CONTAINER_PORT], cleanup);
    await byteServer(nsName(lastEp), [CONTAINER_PORT + lastJ], cleanup);
    const targets = [
      { ip: '127.0.0.1', port: PORT_BASE },
      { ip: '127.0.0.1', port: PORT_BASE + PORTS - 1 },
      { ip: addresses[0], port: CONTAINER_PORT },
      { ip: addresses[lastEp], port: CONTAINER_PORT + lastJ },
    ];
    let lat = [NaN, NaN, NaN, NaN];
    try {
      lat = connectLatencies(null, targets, SAMPLES, 50).map(median);
    } catch (err) {
      // say what the table holds for the two, and go on with the other measures
      const nft = Nft.open();
      try {
        const held = new Firewall(nft, { warn() {} }, { table: instance.table, compatTag: instance.tag }).listMappings().filter((m) => m.hostPort === targets[0].port || m.hostPort === targets[1].port);
        console.log(`DNAT latency not measured: ${(err as Error).message.split('\n').at(-1)}; the table maps ${JSON.stringify(held)}`);
      } finally {
        nft.close();
      }
    }
    const dnatRatio = lat[1] / lat[0];
    const controlRatio = lat[3] / lat[2];

    // 5. PARALLEL docker run at once: tsnet, Docker, tsnet, Docker
    const par = { tsnet: [] as Awaited<ReturnType<typeof parallelRuns>>[], docker: [] as Awaited<ReturnType<typeof parallelRuns>>[] };
    for (let round = 0; round < 2; round++) {
      for (const who of ['tsnet', 'docker'] as const) par[who].push(await parallelRuns(who === 'tsnet' ? nets.parallel : nets.docker, `tsb-scale-p${who[0]}${round}`, cleanup));
    }

    memory.push([`after the parallel runs`, rssMb(daemon.pid)]);
    // 6. kill -9 and start again: until the socket answers, and until the daemon's log says the
    // kernel is reconciled (it may serve before or after that)
    const before = kernelSnapshot(instance.name, instance.table);
    const log = logFrom(daemon.logPath);
    const killed = process.hrtime.bigint();
    await daemon.kill9();
    const restarting = daemon.restart();
    let servingMs = NaN;
    let reconciledMs = NaN;
    let reconcileLine: string | undefined;
    for (let i = 0; i < 6000 && (Number.isNaN(servingMs) || Number.isNaN(reconciledMs)); i++) {
      if (Number.isNaN(servingMs) && (await pluginAnswers(SOCKET))) servingMs = msSince(killed);
      if (Number.isNaN(reconciledMs)) {
        reconcileLine = log.next().find((l) => l.includes('"msg":"reconciled kernel with store"'));
        if (reconcileLine) reconciledMs = msSince(killed);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await restarting;
    log.close();
    const reconcileMs = reconcileLine ? Number((JSON.parse(reconcileLine) as { ms: number }).ms) : NaN;
    const after = kernelSnapshot(instance.name, instance.table);
    const lost = [
      before.links !== after.links ? 'links differ' : '',
      before.elements !== after.elements ? 'table elements differ' : '',
      after.containerLinks !== ENDPOINTS ? `${ENDPOINTS - after.containerLinks} container eth0 missing or down` : '',
    ].filter(Boolean);
    memory.push(['after the restart', rssMb(daemon.pid)]);

    // the report
    const first = median(adds.slice(0, WINDOW));
    const last = median(adds.slice(-WINDOW));
    console.log('');
    console.log(
      table(
        ['CNI ADD (with its ports)', 'median ms'],
        [
          [`first ADD of each network (makes it), ${NETWORKS}`, median(creates)],
          [`first ${WINDOW} ADDs into existing networks`, first],
          [`last ${WINDOW} ADDs (at ${ENDPOINTS} endpoints)`, last],
          [`docker run -d, first ${Math.min(20, DOCKER_ENDPOINTS)} / last ${Math.min(20, DOCKER_ENDPOINTS)}`, `${median(dockerRuns.slice(0, 20)).toFixed(1)} / ${median(dockerRuns.slice(-20)).toFixed(1)}`],
          [`docker run -d at that size, one at a time: tsnet / Docker bridge / --network none`, (['tsnet', 'docker', 'none'] as const).map((k) => median(oneByOne[k]).toFixed(1)).join(' / ')],
        ],
      ),
    );
    console.log('');
    console.log(addsTable(first, last, inDaemon));
    console.log('');
    console.log(table(['daemon memory', 'RSS MB'], memory));
    console.log('');
    console.log(
      table(
        ['at the table size', `start (${NETWORKS} endpoints) ms`, `end (${ENDPOINTS + DOCKER_ENDPOINTS} endpoints, ${PORTS} ports) ms`, 'end / start'],
        (['transaction', 'publish', 'unpublish', 'portIn', 'portOut'] as const).map((k) => [
          {
            transaction: 'one nftables transaction (one map element)',
            publish: 'publish one more port (Firewall.publish)',
            unpublish: 'unpublish it',
            portIn: "a container port's anti-spoofing rules in (Firewall.addEndpoint)",
            portOut: 'and out again',
          }[k],
          small[k],
          large[k],
          (large[k] / small[k]).toFixed(2),
        ]),
      ),
    );
    console.log('');
    console.log(
      table(
        ['connect + first byte from the host', 'median µs', 'last / 1st'],
        [
          [`127.0.0.1:${PORT_BASE} (1st mapping)`, lat[0], ''],
          [`127.0.0.1:${PORT_BASE + PORTS - 1} (${PORTS}th mapping)`, lat[1], dnatRatio.toFixed(2)],
          ['control: 1st container directly', lat[2], ''],
          ['control: last container directly', lat[3], controlRatio.toFixed(2)],
        ],
      ),
    );
    console.log('');
    const parRow = (who: 'tsnet' | 'docker') => [
      who === 'tsnet' ? 'tsnet (an empty network)' : 'Docker bridge (an empty network)',
      par[who].map((p) => (p.ms / 1000).toFixed(2)).join(', '),
      par[who].reduce((s, p) => s + p.failed, 0),
      par[who].map((p) => p.addresses).join(', '),
    ];
    console.log(table([`${PARALLEL} x docker run -d at once`, 'total s, per round', 'failed', 'distinct addresses'], [parRow('tsnet'), parRow('docker')]));
    console.log('');
    const kept = `${before.links.split(' ').length} links, ${before.elements.split('\n').length} table elements, ${after.containerLinks} container interfaces`;
    console.log(`restart (kill -9, start): serving after ${servingMs.toFixed(0)} ms, reconciled (its log line) after ${reconciledMs.toFixed(0)} ms (the reconcile itself ${reconcileMs} ms); ${lost.length ? `LOST: ${lost.join(', ')}` : `nothing lost (${kept})`}`);

    const size = `${ENDPOINTS}+${DOCKER_ENDPOINTS} endpoints, ${PORTS} ports`;
    const ratioOf = (large: number, small: number) => ({ tsnet: r2(large), peer: r2(small), ratio: r2(large / small) });
    result({ measure: `CNI ADD, last / first ${WINDOW} (median)`, ...ratioOf(last, first), unit: 'ms', goal: 'ratio <= 1.2', met: last / first <= 1.2 });
    const dockerWindow = Math.floor(DOCKER_ENDPOINTS / 2);
    if (dockerWindow > 0) {
      const [dFirst, dLast] = [median(dockerRuns.slice(0, Math.min(100, dockerWindow))), median(dockerRuns.slice(-Math.min(100, dockerWindow)))];
      result({ measure: `docker run -d on a tsnet network, last / first ${Math.min(100, dockerWindow)} of ${DOCKER_ENDPOINTS} (median)`, ...ratioOf(dLast, dFirst), unit: 'ms', goal: '', met: null });
    }
    result({ measure: `docker run -d at ${size}, one at a time: empty tsnet network / empty Docker bridge (median of ${oneByOne.tsnet.length}; --network none ${r2(median(oneByOne.none))} ms)`, ...ratioOf(median(oneByOne.tsnet), median(oneByOne.docker)), unit: 'ms', goal: '', met: null });
    const [atSize, restarted] = [Math.max(...memory.slice(0, -1).map(([, mb]) => mb)), memory.at(-1)![1]];
    result({ measure: `daemon RSS at ${size}`, tsnet: r2(atSize), peer: null, unit: 'MB', ratio: null, goal: '<= 200 MB', met: atSize <= 200 });
    result({ measure: `daemon RSS after the restart at ${size}`, tsnet: r2(restarted), peer: null, unit: 'MB', ratio: null, goal: '<= 200 MB', met: restarted <= 200 });
    result({ measure: `one nftables transaction (one map element) at ${size}, end / start`, ...ratioOf(large.transaction, small.transaction), unit: 'ms', goal: '', met: null });
    result({ measure: `publish one more port at ${PORTS} ports, end / start`, ...ratioOf(large.publish, small.publish), unit: 'ms', goal: '', met: null });
    result({ measure: `unpublish one port at ${PORTS} ports, end / start`, ...ratioOf(large.unpublish, small.unpublish), unit: 'ms', goal: '', met: null });
    result({ measure: `a container port's anti-spoofing rules in, at ${size}, end / start`, ...ratioOf(large.portIn, small.portIn), unit: 'ms', goal: '', met: null });
    const dnat = dnatRatio / controlRatio;
    result({ measure: `DNAT latency, ${PORTS}th / 1st mapping (ratio over the control's)`, tsnet: r2(lat[1]), peer: r2(lat[0]), unit: 'µs', ratio: r2(dnat), goal: 'ratio <= 1.1', met: dnat <= 1.1 });
    result({ measure: `restart at ${size}: kill -9 until serving`, tsnet: r2(servingMs / 1000), peer: null, unit: 's', ratio: null, goal: '<= 2 s', met: servingMs <= 2000 });
    result({ measure: `restart at ${size}: kill -9 until the kernel is reconciled`, tsnet: r2(reconciledMs / 1000), peer: null, unit: 's', ratio: null, goal: '<= 2 s', met: reconciledMs <= 2000 });
    result({ measure: `restart at ${size}: nothing lost (${kept})`, tsnet: lost.length ? lost.join(', ') : 'nothing lost', peer: null, unit: '', ratio: null, goal: 'nothing lost', met: lost.length === 0 });
    const parTotal = (who: 'tsnet' | 'docker') => median(par[who].map((p) => p.ms));
    const parUnique = (who: 'tsnet' | 'docker') => par[who].reduce((n, p) => n + (p.failed === 0 && p.addresses === PARALLEL ? 1 : 0), 0);
    result({
      measure: `${PARALLEL} parallel docker run -d, empty tsnet network vs empty Docker bridge, total (median of ${par.tsnet.length} rounds)`,
      ...ratioOf(parTotal('tsnet') / 1000, parTotal('docker') / 1000),
      unit: 's',
      goal: 'ratio <= 1.0',
      met: parTotal('tsnet') <= parTotal('docker'),
    });
    result({
      measure: `${PARALLEL} parallel docker run -d: rounds with every run succeeded and ${PARALLEL} distinct addresses`,
      tsnet: `${parUnique('tsnet')} of ${par.tsnet.length}`,
      peer: `${parUnique('docker')} of ${par.docker.length}`,
      unit: 'rounds',
      ratio: null,
      goal: 'all',
      met: parUnique('tsnet') === par.tsnet.length && parUnique('docker') === par.docker.length,
    });
    console.log('');
    for (const r of results) report(r);
  } finally {
    await cleanup.run();
  }
}

if (process.env[IN_OWN_MOUNTS] || process.env.HOST_NETNS === '1') await main();
else await outside();
