// The daemon's handlers for errors that escaped every request, on an event emitter standing in for
// `process` and a clock of the test's own.
import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { keepServingOnStrayErrors, MAX_STRAY_ERRORS, STRAY_ERROR_EXIT_CODE, STRAY_ERROR_WINDOW_MS } from './last-resort.js';

function setup() {
  const proc = new EventEmitter();
  const logged: { obj: Record<string, unknown>; msg: string }[] = [];
  const exits: number[] = [];
  let clock = 1_000_000;
  const log = {
    info() {},
    warn() {},
    error: (obj: object | string, msg?: string) => logged.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }),
  };
  keepServingOnStrayErrors(proc, { log, exit: (code) => exits.push(code), now: () => clock });
  return { proc, logged, exits, tick: (ms: number) => (clock += ms) };
}

describe('errors that escape every request', () => {
  it('are logged with their stack and the daemon keeps serving', () => {
    const { proc, logged, exits } = setup();
    const epipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    proc.emit('uncaughtException', epipe);
    proc.emit('unhandledRejection', 'a rejection without an Error');
    expect(exits).toEqual([]);
    expect(logged[0].obj).toMatchObject({ event: 'uncaughtException', err: epipe });
    expect((logged[0].obj.err as Error).stack).toMatch(/Error: write EPIPE\n\s+at /);
    expect(logged[0].msg).toContain('tsnet keeps serving');
    expect(logged[1].obj).toEqual({ event: 'unhandledRejection', reason: 'a rejection without an Error' });
  });

  it('end the process once they keep coming: a broken process is restarted clean', () => {
    const { proc, exits, tick } = setup();
    // spread out, they never add up
    for (let i = 0; i < 3 * MAX_STRAY_ERRORS; i++) {
      proc.emit('uncaughtException', new Error(`stray ${i}`));
      tick(STRAY_ERROR_WINDOW_MS / (MAX_STRAY_ERRORS - 2));
    }
    expect(exits).toEqual([]);
    // in a burst, the limit ends it, once
    for (let i = 0; i < MAX_STRAY_ERRORS + 5; i++) proc.emit('unhandledRejection', new Error(`burst ${i}`));
    expect(exits).toEqual([STRAY_ERROR_EXIT_CODE]);
  });
});
