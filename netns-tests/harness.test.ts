// Smoke test of the netns harness: two namespaces joined by a veth pair ping each other, and
// nothing is left behind after the cleanups.
import { afterAll, describe, expect, it } from 'vitest';
import { assertNoLeaks, execIn, makeNetns, pings, runCleanups, sh, tryIn, uniqueName, vethBetween } from './harness.js';

const run = uniqueName('hn');

afterAll(runCleanups);

describe('netns harness', () => {
  it('joins two namespaces with a veth pair', () => {
    const a = makeNetns(run);
    const b = makeNetns(run);
    expect(a).not.toBe(b);
    const { a: ifA, b: ifB } = vethBetween(a, b, { addrA: '10.239.255.1/30', addrB: '10.239.255.2/30' });
    expect(ifA.length).toBeLessThanOrEqual(15);
    expect(execIn(a, 'ip', ['-br', 'addr', 'show', 'dev', ifA])).toContain('10.239.255.1/30');
    expect(execIn(b, 'ip', ['-br', 'link', 'show', 'dev', ifB])).toContain(ifB);
    expect(pings(a, '10.239.255.2')).toBe(true);
    expect(tryIn(a, 'ip', ['link', 'show', 'nosuchlink']).code).not.toBe(0);
  });

  it('puts a host end in the host namespace', () => {
    const c = makeNetns(run);
    const { a: hostEnd } = vethBetween(null, c, { nameA: `${run}h`, addrA: '10.239.254.1/30', addrB: '10.239.254.2/30' });
    expect(sh('ip', ['-br', 'link', 'show', 'dev', hostEnd])).toContain(hostEnd);
    expect(pings(c, '10.239.254.1')).toBe(true);
    expect(() => assertNoLeaks(run)).toThrow(/left behind with prefix/);
  });

  it('leaves nothing behind after the cleanups', async () => {
    await runCleanups();
    assertNoLeaks(run);
  });
});
