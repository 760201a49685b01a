// Shared pieces of the benchmarks: commands, namespaces with cleanup, dockerd, statistics, a table.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { docker, ensureDockerd, startTsnetDaemon, stopDockerdIfStarted, type TsnetDaemon } from '../docker-tests/harness.js';
import { instanceOf } from '../daemon/paths.js';
import { removeDaemonKernelState } from '../test-support/commands.js';

/** Runs a command and returns its trimmed stdout; throws when it fails or outlives timeoutMs. */
export function sh(cmd: string, args: string[], input?: string, timeoutMs = 300_000): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 << 20, timeout: timeoutMs }).trim();
}

export function inNs(ns: string, cmd: string, args: string[], input?: string, timeoutMs?: number): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args], input, timeoutMs);
}

/** Runs a command and returns its wall time in milliseconds; throws when it fails. */
export function timed(cmd: string, args: string[], timeoutMs = 600_000): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: timeoutMs });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 8).join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.error ?? ''}`);
  return ms;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/**
 * 95% bootstrap interval of median(b) / median(a): how far the ratio of two medians moves when
 * the samples are drawn again. A ratio whose interval holds 1 is "equal within noise".
 * Seeded, so the same samples give the same interval.
 */
export function ratioInterval(a: number[], b: number[], rounds = 1000): [number, number] {
  const rand = seededRandom();
  const resampledMedian = (xs: number[]) => median(Array.from({ length: xs.length }, () => xs[Math.floor(rand() * xs.length)]));
  const ratios = Array.from({ length: rounds }, () => resampledMedian(b) / resampledMedian(a)).sort((x, y) => x - y);
  return [ratios[Math.floor(rounds * 0.025)], ratios[Math.ceil(rounds * 0.975) - 1]];
}

/** A seeded random number generator in [0, 1) (xorshift32): runs are repeatable. */
export function seededRandom(seed = 0x2545f491): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** A copy of xs in random order (Fisher-Yates). */
export function shuffled<T>(xs: readonly T[], rand: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toFixed(c < 10 ? 2 : 1) : c)));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  return [headers, ...cells].map((r) => r.map((c, i) => (c ?? '').padEnd(w[i])).join('  ').trimEnd()).join('\n');
}

/** Cleanup steps that run newest first, also when the benchmark fails or is interrupted. */
export class Cleanup {
  private steps: (() => unknown)[] = [];

  constructor() {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        void this.run().finally(() => process.exit(130));
      });
    }
  }

  add(fn: () => unknown): void {
    this.steps.push(fn);
  }

  async run(): Promise<void> {
    while (this.steps.length) {
      try {
        await this.steps.pop()!();
      } catch {
        // best effort: the next step may still succeed
      }
    }
  }
}

export function makeNs(name: string, cleanup: Cleanup): string {
  sh('ip', ['netns', 'add', name]);
  cleanup.add(() => sh('ip', ['netns', 'del', name]));
  inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
  return name;
}

/**
 * A dockerd to benchmark against: the running one, or one started here, which the cleanup
 * stops again (a dockerd that was already running is left alone).
 */
export async function useDockerd(cleanup: Cleanup): Promise<void> {
  if (docker(['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 }).code === 0) return;
  cleanup.add(() => stopDockerdIfStarted());
  console.log('no dockerd answers: starting one for the benchmark (stopped at the end)');
  await ensureDockerd();
}

/** Processes with exactly this command name (pgrep -x). */
export function countProcesses(name: string): number {
  const r = spawnSync('pgrep', ['-c', '-x', name], { encoding: 'utf8' });
  return Number(r.stdout.trim() || 0);
}

/** Number of processes below pid (children, grandchildren, ...), from /proc. */
export function countDescendants(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const parentOf = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // the command name may hold spaces and parentheses: the ppid is the 2nd field after the last ')'
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parentOf.set(ppid, [...(parentOf.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  let count = 0;
  const todo = [pid];
  for (let guard = 0; todo.length && guard < 100_000; guard++) {
    for (const child of parentOf.get(todo.pop()!) ?? []) {
      count++;
      todo.push(child);
    }
  }
  return count;
}

/**
 * A tsnet daemon of the benchmark's own on socketPath (its name is the plugin name), removed at the
 * end with everything it owns: its links and nftables table, which outlive a stopped daemon by
 * design (networks keep working), and its state.
 */
export async function benchDaemon(cleanup: Cleanup, socketPath: string): Promise<TsnetDaemon> {
  const stateDir = mkdtempSync(join(tmpdir(), 'tsnet-bench-'));
  cleanup.add(() => rmSync(stateDir, { recursive: true, force: true }));
  const instance = instanceOf(socketPath);
  cleanup.add(() => removeDaemonKernelState(instance.name, instance.table));
  const daemon = await startTsnetDaemon({ stateDir, socketPath });
  cleanup.add(() => daemon.stop());
  return daemon;
}

// ---------------------------------------------------------------- results for the closing table

/**
 * The result line: every benchmark prints one per figure it measures, so that `make bench` can end
 * with one table of them all (bench/summary.ts). The format, for every benchmark (bench/overlay.ts
 * too), is one line on stdout:
 *
 *   BENCH-RESULT {"bench":"scale","measure":"last / first 100 CNI ADDs","tsnet":27.1,"peer":25.3,"unit":"ms","ratio":1.07,"goal":"ratio <= 1.2","met":true}
 *
 * the prefix, one space, then JSON with these keys (a BenchResult): bench, the program's name;
 * measure, what the figure is; tsnet, tsnet's figure; peer, the reference's figure in the same
 * run (null when it has none); unit of both; ratio, the figure the goal judges when it is a ratio
 * (tsnet / peer, last / first; null when none); goal, the goal as text ('' when the figure has
 * none); met, whether the goal is met (null when there is no goal). When the BENCH_RESULTS
 * variable names a file, the same JSON is appended to it as one line: make bench collects that file.
 */
export const RESULT_PREFIX = 'BENCH-RESULT ';

export interface BenchResult {
  bench: string;
  measure: string;
  tsnet: number | string;
  peer: number | string | null;
  unit: string;
  ratio: number | null;
  goal: string;
  met: boolean | null;
}

/** Prints the result line (and appends it to $BENCH_RESULTS when set). */
export function report(r: BenchResult): void {
  const json = JSON.stringify(r);
  console.log(RESULT_PREFIX + json);
  if (process.env.BENCH_RESULTS) appendFileSync(process.env.BENCH_RESULTS, json + '\n');
}

// ---------------------------------------------------------------- connection latency

/**
 * Connect + first-byte latencies in µs, one list per target, from one Node process run in the
 * namespace ns (null: this one). Connections go one at a time, in rounds over all targets in a
 * fresh random order each round, so whatever else the machine does hits every target alike;
 * `warmup` rounds first are not counted. The servers must write a byte on connect.
 */
export function connectLatencies(ns: string | null, targets: { ip: string; port: number }[], n: number, warmup: number): number[][] {
  const script = `
    const net = require('net');
    const targets = ${JSON.stringify(targets)};
    const out = targets.map(() => []);
    const rounds = ${n + warmup};
    let seed = 0x2545f491;
    const rand = () => { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; return (seed >>> 0) / 4294967296; };
    let order = [];
    (function next(step) {
      if (step === rounds * targets.length) { console.log(JSON.stringify(out)); return; }
      const round = Math.floor(step / targets.length);
      if (step % targets.length === 0) {
        order = targets.map((_, i) => i);
        for (let i = order.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [order[i], order[j]] = [order[j], order[i]]; }
      }
      const k = order[step % targets.length];
      const { ip, port } = targets[k];
      const t = process.hrtime.bigint();
      const s = net.connect(port, ip);
      s.setTimeout(5000, () => { console.error('no answer within 5 s from ' + ip + ':' + port); process.exit(1); });
      s.on('error', (e) => { console.error(ip + ':' + port + ': ' + e.message); process.exit(1); });
      s.once('data', () => {
        if (round >= ${warmup}) out[k].push(Number(process.hrtime.bigint() - t) / 1000);
        s.destroy();
        setImmediate(next, step + 1);
      });
    })(0);`;
  const out = ns === null ? sh(process.execPath, ['-e', script], undefined, 600_000) : inNs(ns, process.execPath, ['-e', script], undefined, 600_000);
  return JSON.parse(out) as number[][];
}

/**
 * A Node TCP server in namespace ns that writes one byte to every connection, on each port; resolves
 * once all listen. The cleanup kills it.
 */
export async function byteServer(ns: string, ports: number[], cleanup: Cleanup): Promise<void> {
  const script = `
    const net = require('net');
    let up = 0;
    for (const port of ${JSON.stringify(ports)}) {
      net.createServer((s) => { s.on('error', () => {}); s.end('x'); })
        .listen(port, () => { if (++up === ${ports.length}) console.log('ready'); });
    }`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.add(() => child.kill());
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server in namespace ${ns} did not start within 10 s`)), 10_000);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server in namespace ${ns} exited (${code})`));
    });
  });
}

// ---------------------------------------------------------------- CNI plugins as a runtime runs them

/** One CNI plugin invocation (CNI_* variables, the configuration on stdin), from a synchronous spawn. */
export interface CniCall {
  plugin: string;
  conf: object;
  /** more variables: TSNET_SOCKET for tsnet */
  env: Record<string, string>;
  command: 'ADD' | 'DEL' | 'VERSION' | 'STATUS';
  /** the namespace's name under /run/netns */
  netns: string;
  containerId: string;
}

/** Runs the plugin; its wall time in ms and stdout. Throws with its output when it fails. */
export function runCni(c: CniCall): { ms: number; stdout: string } {
  const start = process.hrtime.bigint();
  const r = spawnSync(c.plugin, [], {
    input: JSON.stringify(c.conf),
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...c.env, CNI_COMMAND: c.command, CNI_CONTAINERID: c.containerId, CNI_NETNS: `/run/netns/${c.netns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${c.plugin} ${c.command} failed: ${r.stdout}${r.stderr}`);
  return { ms, stdout: r.stdout };
}

/** Namespaces by the thousand: one `ip -batch` instead of a process each; the cleanup removes them. */
export function makeNamespaces(names: string[], cleanup: Cleanup): void {
  cleanup.add(() => spawnSync('ip', ['-force', '-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'ignore'] }));
  sh('ip', ['-batch', '-'], names.map((n) => `netns add ${n}\n`).join(''));
}
