import { describe, expect, it } from 'vitest';
import { describeHolder, reclaimPlan, type ReclaimView } from './reclaim.js';

const base: ReclaimView = { host: 'h3', endpointId: 'ep-mine', pooled: true };

describe('reclaimPlan', () => {
  it('puts back the announcement and the claim that cluster forget freed', () => {
    expect(reclaimPlan(base)).toEqual({ claim: 'dynamic' });
  });

  it('keeps a claim that is still this host\'s, and claims nothing without a cluster pool', () => {
    expect(reclaimPlan({ ...base, claim: { kind: 'dynamic', host: 'h3' } })).toEqual({ claim: false });
    expect(reclaimPlan({ ...base, pooled: false })).toEqual({ claim: false });
    expect(reclaimPlan({ ...base, announcement: { endpointId: 'ep-mine', host: 'h3' } })).toEqual({ claim: 'dynamic' });
  });

  it('claims an address given with --ip again as static, as dynamic when its kind is not known', () => {
    expect(reclaimPlan({ ...base, claimedAs: 'static' })).toEqual({ claim: 'static' });
    expect(reclaimPlan({ ...base, claimedAs: 'dynamic' })).toEqual({ claim: 'dynamic' });
    expect(reclaimPlan({ ...base, claimedAs: 'static', claim: { kind: 'static', host: 'h3' } })).toEqual({ claim: false });
  });

  it('gives the address up when another endpoint announced it', () => {
    expect(reclaimPlan({ ...base, announcement: { endpointId: 'ep-g', host: 'h2' } })).toEqual({ taken: { endpointId: 'ep-g', host: 'h2' } });
    expect(reclaimPlan({ ...base, pooled: false, announcement: { endpointId: 'ep-g', host: 'h2' } })).toEqual({ taken: { endpointId: 'ep-g', host: 'h2' } });
  });

  it('gives the address up when another host claimed it, announced or not yet', () => {
    expect(reclaimPlan({ ...base, claim: { kind: 'dynamic', host: 'h2' } })).toEqual({ taken: { endpointId: '', host: 'h2' } });
    expect(reclaimPlan({ ...base, claim: { kind: 'gateway', host: 'h3' } })).toEqual({ taken: { endpointId: '', host: 'h3' } });
  });
});

describe('describeHolder', () => {
  it('names the endpoint when it is known, else the host', () => {
    expect(describeHolder({ endpointId: 'cd'.repeat(32), host: 'h1' })).toBe('endpoint cdcdcdcdcdcd on host h1');
    expect(describeHolder({ endpointId: '', host: 'h1' })).toBe('host h1');
  });
});
