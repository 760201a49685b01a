// tsnet doctor's line on overlay containers cut off because another host took their address.
import { describe, expect, it } from 'vitest';
import { CHECKS, type HostFacts } from './doctor.js';

const check = CHECKS.find((c) => c.name === 'overlay addresses')!;
const connected = { state: { phase: 'connected' }, alive: true } as unknown as HostFacts['daemonStore'];
const cut = { overlay: 'blue', ip: '10.9.0.4', endpointId: 'ab'.repeat(32), holder: { endpointId: 'cd'.repeat(32), host: 'h2' }, since: '2026-12-01T23:00:00.000Z' };

describe('tsnet doctor: overlay addresses', () => {
  it('names each cut-off container with its address, overlay and new holder', () => {
    expect(check.evaluate({ daemonStore: connected, cutOff: [cut] } as HostFacts)).toEqual({
      outcome: 'missing',
      detail: "cut off, their addresses went to other containers while this host was away: endpoint abababababab (10.9.0.4 on 'blue', now endpoint cdcdcdcdcdcd on host h2, since 2026-12-01T23:00:00.000Z)",
    });
  });

  it('is ok with none, and skipped without a cluster store', () => {
    expect(check.evaluate({ daemonStore: connected, cutOff: [] } as unknown as HostFacts).outcome).toBe('ok');
    expect(check.evaluate({} as HostFacts).outcome).toBe('skipped');
  });
});
