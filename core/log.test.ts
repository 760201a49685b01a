// The log file's cap (written past a small cap, it rotates to FILE.1 and starts again, so the
// log on disk stays within about twice the cap), size parsing, and what a failure's line says of
// its cause.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { CappedLogFile, errorCause, parseLogSize } from './log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tsnet-log-'));
  dirs.push(d);
  return d;
};

describe('CappedLogFile', () => {
  it('rotates to FILE.1 past the cap and keeps every line of the last two files in order', () => {
    const path = join(tmp(), 'sub', 'tsnet.log');
    const file = new CappedLogFile(path, 4096);
    const log = pino({ base: null, timestamp: false }, file);
    for (let i = 0; i < 200; i++) log.info({ i }, 'a line of about sixty bytes, written many times');
    file.end();
    const cur = statSync(path).size;
    const old = statSync(`${path}.1`).size;
    expect(cur).toBeLessThan(4096);
    expect(old).toBeGreaterThanOrEqual(4096);
    expect(old).toBeLessThan(4096 + 200);
    // the last line is the newest, and FILE.1 ends just where FILE begins
    const ids = (text: string) => text.trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i);
    const newer = ids(readFileSync(path, 'utf8'));
    const older = ids(readFileSync(`${path}.1`, 'utf8'));
    expect(newer.at(-1)).toBe(199);
    expect(newer[0]).toBe(older.at(-1)! + 1);
  });

  it('counts what the file held before: a big file left by the last run is rotated at the first write', () => {
    const path = join(tmp(), 'tsnet.log');
    writeFileSync(path, 'x'.repeat(5000) + '\n');
    const file = new CappedLogFile(path, 4096);
    file.write('{"msg":"first of this run"}\n');
    file.end();
    expect(readFileSync(path, 'utf8')).toBe('');
    expect(readFileSync(`${path}.1`, 'utf8')).toMatch(/first of this run/);
  });

  it('leaves a file under the cap alone', () => {
    const path = join(tmp(), 'tsnet.log');
    const file = new CappedLogFile(path, 4096);
    file.write('{"msg":"small"}\n');
    file.end();
    expect(existsSync(`${path}.1`)).toBe(false);
    expect(readFileSync(path, 'utf8')).toBe('{"msg":"small"}\n');
  });
});

describe('parseLogSize', () => {
  it('reads bytes and binary units, and refuses what is not a size or is under 4 KiB', () => {
    expect(parseLogSize('10MiB')).toBe(10 * 1024 * 1024);
    expect(parseLogSize('512k')).toBe(512 * 1024);
    expect(parseLogSize('65536')).toBe(65536);
    expect(parseLogSize('1G')).toBe(1024 ** 3);
    for (const bad of ['', 'ten', '10 MB', '-5', '1.5M', '100']) expect(parseLogSize(bad), bad).toBeUndefined();
  });
});

describe('errorCause', () => {
  it("names the error's class and message, then what it wraps", () => {
    const inner = new Error('File exists');
    const outer = new Error('create bridge br-x', { cause: inner });
    outer.name = 'NetlinkError';
    expect(errorCause(outer)).toBe('NetlinkError: create bridge br-x <- Error: File exists');
    expect(errorCause('text')).toBe('text');
  });
});
