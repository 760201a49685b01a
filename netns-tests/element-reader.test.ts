// The drift watcher's element reader (daemon/element-events.ts READER_PY) keeps up with the
// largest transaction a daemon makes: the rewrite of a table the size of 4,000 endpoints and
// 20,000 published ports (~1,700 messages, 6.4 MB, at commit). With the 8 MB buffer it once had
// (SO_RCVBUF, held to net.core.rmem_max) such a rewrite overran it, and every overrun starts one
// more repair pass, which rewrites the tables again. What must hold: no overrun, and a deletion
// after the burst still heard (the reader is alive and has read everything before it). The
// control: the same reader with a 1 MB buffer reports the overrun, so the burst is big enough to
// tell. The reader runs in the host's namespace, as the daemon's does (a table of the test's own).
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { READER_PY } from '../daemon/element-events.js';
import { uniqueName, until } from './harness.js';

const TABLE = `inet ${uniqueName('tsrd').replace(/[^a-z0-9]/gi, '_')}`;
const readers: ChildProcess[] = [];

afterAll(() => {
  for (const r of readers) r.kill('SIGKILL');
  spawnSync('nft', ['delete', 'table', ...TABLE.split(' ')]);
});

function nft(script: string): void {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft: ${r.stderr}`);
}

/** The table deleted and written again whole, in one transaction, as a full sync does: six sets of 8,000 port elements, a map of 20,000 ports, 3,000 rules. */
function rewrite(): string {
  const lines = [`add table ${TABLE}`, `delete table ${TABLE}`, `add table ${TABLE}`];
  for (let s = 0; s < 6; s++) {
    lines.push(`add set ${TABLE} s${s} { type ifname . ipv4_addr; }`);
    for (let k = 0; k < 8000; k += 2000) lines.push(`add element ${TABLE} s${s} { ${Array.from({ length: 2000 }, (_, j) => `"p${k + j}" . 10.${s}.${(k + j) >> 8}.${(k + j) & 255}`).join(', ')} }`);
  }
  lines.push(`add map ${TABLE} ports { type inet_proto . inet_service : ipv4_addr . inet_service; }`);
  for (let k = 0; k < 20000; k += 2000) lines.push(`add element ${TABLE} ports { ${Array.from({ length: 2000 }, (_, j) => `tcp . ${10000 + k + j} : 10.9.${(k + j) >> 8}.${(k + j) & 255} . 80`).join(', ')} }`);
  lines.push(`add set ${TABLE} last { type ipv4_addr; }`, `add element ${TABLE} last { 10.99.0.1 }`, `add chain ${TABLE} c`);
  for (let i = 0; i < 3000; i++) lines.push(`add rule ${TABLE} c iifname "p${i}" counter`);
  return lines.join('\n');
}

/** The reader, as the daemon starts it (optionally with another buffer size); resolves once it listens. */
async function reader(script = READER_PY): Promise<string[]> {
  const lines: string[] = [];
  const p = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  readers.push(p);
  p.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  await until('the reader listens', () => lines.includes('ready'));
  return lines;
}

describe('the element reader of drift repair', () => {
  it('reads the rewrite of a 4,000-endpoint table without overrunning, and hears a deletion after it; with a 1 MB buffer it overruns', async () => {
    nft(rewrite());
    const heardLast = (lines: string[]) => lines.some((l) => /^deleted \d+ 1 \S+ last$/.test(l) && l.includes(TABLE.split(' ')[1]));

    // the control: a small buffer overruns on the same burst
    const bufferSize = /32 << 20/g;
    expect(READER_PY).toMatch(bufferSize);
    const small = await reader(READER_PY.replace(bufferSize, '1 << 20'));
    nft(rewrite());
    nft(`delete element ${TABLE} last { 10.99.0.1 }`);
    await until('the small reader reports the overrun', () => small.includes('overrun'), 30_000);

    const lines = await reader();
    nft(rewrite());
    nft(`delete element ${TABLE} last { 10.99.0.1 }`);
    await until('the reader hears the deletion after the burst, or overruns', () => heardLast(lines) || lines.includes('overrun'), 30_000);
    expect(lines.filter((l) => l === 'overrun')).toEqual([]);
    expect(heardLast(lines)).toBe(true);
  }, 120_000);
});
