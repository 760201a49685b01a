// The element reader's lines (element-events.ts): which concern tsnet's tables and another process.
import { describe, expect, it } from 'vitest';
import { isOwnThread, parseElementEventLine } from './element-events.js';

const notOwn = () => false;

describe('element reader lines', () => {
  it("another process's deletion in tsnet's inet or bridge table", () => {
    expect(parseElementEventLine('deleted 4242 7 tsnet guarded_ports', 'tsnet', notOwn)).toEqual({ family: 'bridge', set: 'guarded_ports' });
    expect(parseElementEventLine('deleted 4242 1 tsnet tsnet_ports4', 'tsnet', notOwn)).toEqual({ family: 'inet', set: 'tsnet_ports4' });
    expect(parseElementEventLine('overrun', 'tsnet', notOwn)).toBe('overrun');
  });

  it("the daemon's own transactions, other tables and families, other lines: nothing", () => {
    expect(parseElementEventLine('deleted 4242 7 tsnet guarded_ports', 'tsnet', (pid) => pid === 4242)).toBeNull();
    expect(parseElementEventLine('deleted 4242 7 tsnet_e2e guarded_ports', 'tsnet', notOwn)).toBeNull();
    expect(parseElementEventLine('deleted 4242 2 tsnet x', 'tsnet', notOwn)).toBeNull();
    expect(parseElementEventLine('ready', 'tsnet', notOwn)).toBeNull();
    expect(parseElementEventLine('deleted 4242 7 tsnet', 'tsnet', notOwn)).toBeNull();
  });

  it("this process's threads are its own, another's are not", () => {
    expect(isOwnThread(process.pid)).toBe(true);
    expect(isOwnThread(0)).toBe(false);
    expect(isOwnThread(process.ppid)).toBe(false);
  });
});
