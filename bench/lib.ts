// Shared pieces of the benchmarks: commands, namespaces with cleanup, statistics, a table.
import { execFileSync, spawnSync } from 'node:child_process';

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 64 << 20 }).trim();
}

export function inNs(ns: string, cmd: string, args: string[], input?: string): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args], input);
}

/** Runs a command and returns its wall time in milliseconds; throws when it fails. */
export function timed(cmd: string, args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} failed: ${r.stderr}`);
  return ms;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toFixed(c < 10 ? 2 : 1) : c)));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  return [headers, ...cells].map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ')).join('\n');
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

export function countProcesses(name: string): number {
  const r = spawnSync('pgrep', ['-c', '-x', name], { encoding: 'utf8' });
  return Number(r.stdout.trim() || 0);
}
