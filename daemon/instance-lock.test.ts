// The instance lock (instance-lock.ts) on a folder of this test's own: a second taker of one name
// is refused with the holder's pid, another name is not, and a released lock can be taken again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../core/errors.js';
import { lockInstance } from './instance-lock.js';

const dir = mkdtempSync(join(tmpdir(), 'tsnet-instance-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the instance lock', () => {
  it('refuses a second daemon of the same name, naming it and the holder; another name is free; released, it is free again', () => {
    const first = lockInstance('tsnet-x', dir);
    expect(() => lockInstance('tsnet-x', dir)).toThrow(ConflictError);
    expect(() => lockInstance('tsnet-x', dir)).toThrow(`another tsnet daemon of instance 'tsnet-x' is running (pid ${process.pid}): it holds ${join(dir, 'tsnet-x.lock')}`);
    const other = lockInstance('tsnet-y', dir);
    first.release();
    const again = lockInstance('tsnet-x', dir);
    again.release();
    other.release();
  });
});
