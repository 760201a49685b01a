// The lab state's lock (lab/state.ts updateState) with real concurrent processes: several lab
// commands' processes (the built lab/state.js) want the state at the same moment, while the lock
// was left by a process that died holding it (kill -9). Each change logs when it starts and ends,
// and the log must show one holder at a time, every taker served. With the former pid-file lock,
// two waiters that both saw the dead owner could both take over (one removing the other's fresh
// lock). No kernel state: here because it runs the build, as the other netns tests do.
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../test-support/commands.js';
import { tryLockFile } from '../native/flock.js';
import { until } from './harness.js';

const STATE = join(repoRoot(), 'dist', 'lab', 'state.js');
const FLOCK = join(repoRoot(), 'dist', 'native', 'flock.js');
const root = mkdtempSync(join(tmpdir(), 'tsnet-lab-lock-'));
const LAB = 'locklab';
const TAKERS = 6;
const ROUNDS = 5;

/** Runs an ES module snippet with the built lab/state.js as `st`, the lab folder at `root`. */
function node(code: string, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['--input-type=module', '-e', `const st = await import(${JSON.stringify(STATE)});\n${code}`, ...args], {
    env: { ...process.env, TSNET_LAB_DIR: root },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

/** One taker: waits for the go file, then changes the state, logging its start and end around a 20 ms hold. */
const TAKER = `
import { appendFileSync, existsSync } from 'node:fs';
const [go, log] = process.argv.slice(-2);
while (!existsSync(go)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
await st.updateState(${JSON.stringify(LAB)}, () => {
  appendFileSync(log, 'enter ' + process.pid + '\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  appendFileSync(log, 'exit ' + process.pid + '\\n');
});
`;

const exitOf = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('the lab state lock', () => {
  it('concurrent takers after the holder died: one holder at a time, every one served', async () => {
    expect(existsSync(STATE)).toBe(true);
    const setup = node(`const s = st.newLabState({ name: ${JSON.stringify(LAB)}, leaseTtl: 5 }); (await import('node:fs')).mkdirSync(s.dir, { recursive: true }); st.saveState(s);`);
    expect(await exitOf(setup)).toBe(0);
    const lockPath = join(root, LAB, 'state.lock');
    for (let round = 0; round < ROUNDS; round++) {
      // the dead owner: a process that took the lock (its pid in the file, as the former lock had it) and was killed -9
      const dead = spawn(process.execPath, ['--input-type=module', '-e', `(await import(${JSON.stringify(FLOCK)})).tryLockFile(${JSON.stringify(lockPath)}); setInterval(() => {}, 1000);`], { stdio: 'ignore' });
      await until('the owner holding the lock', () => {
        const probe = tryLockFile(lockPath);
        probe?.release();
        return probe === undefined;
      });
      writeFileSync(lockPath, String(dead.pid));
      dead.kill('SIGKILL');
      await exitOf(dead);
      expect(spawnSync('kill', ['-0', String(dead.pid)]).status).not.toBe(0);

      const go = join(root, `go${round}`);
      const log = join(root, `log${round}`);
      writeFileSync(log, '');
      const takers = Array.from({ length: TAKERS }, () => node(TAKER, [go, log]));
      writeFileSync(go, '');
      expect(await Promise.all(takers.map(exitOf))).toEqual(Array(TAKERS).fill(0));
      const lines = readFileSync(log, 'utf8').trim().split('\n');
      // enter A, exit A, enter B, exit B, ...: nobody entered while another held it
      const pairs = Array.from({ length: lines.length / 2 }, (_, i) => [lines[2 * i], lines[2 * i + 1]]);
      expect({ round, lines: lines.length, overlapping: pairs.filter(([a, b]) => !a.startsWith('enter ') || b !== a.replace('enter', 'exit')) }).toEqual({
        round,
        lines: 2 * TAKERS,
        overlapping: [],
      });
    }
  }, 120_000);
});
