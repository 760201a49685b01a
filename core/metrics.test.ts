// The registry's pure parts: state gauges read at scrape time (and series gone with their
// source's rows), the repairs counter, and timing that also records a call that throws.
import { beforeEach, describe, expect, it } from 'vitest';
import { collectProcessMetrics, countRepairs, exposition, netlinkDuration, observeState, registry, timed, type StateSources } from './metrics.js';

const none = () => [];
const sources = (over: Partial<StateSources> = {}): StateSources => ({
  networks: none,
  endpoints: none,
  publishedPorts: none,
  ipamAllocated: none,
  ipamCapacity: none,
  overlayPeers: none,
  storeUp: none,
  ...over,
});

/** The sample lines of one metric in the scrape text. */
async function lines(name: string): Promise<string[]> {
  const { body } = await exposition();
  return body.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('metrics registry', () => {
  beforeEach(() => registry.resetMetrics());

  it('reads state gauges from their sources at each scrape, so a series goes when its row goes', async () => {
    let pools = [{ labels: { pool: 'local/10.1.0.0/24' }, value: 3 }];
    observeState(sources({ ipamAllocated: () => pools, networks: () => [{ labels: { driver: 'bridge' }, value: 2 }] }));
    expect(await lines('tsnet_ipam_addresses_allocated')).toEqual(['tsnet_ipam_addresses_allocated{pool="local/10.1.0.0/24"} 3']);
    expect(await lines('tsnet_networks')).toEqual(['tsnet_networks{driver="bridge"} 2']);
    pools = [];
    expect(await lines('tsnet_ipam_addresses_allocated')).toEqual([]);
  });

  it('exports tsnet_store_up only when there is a store', async () => {
    observeState(sources());
    expect(await lines('tsnet_store_up')).toEqual([]);
    observeState(sources({ storeUp: () => [{ labels: {}, value: 0 }] }));
    expect(await lines('tsnet_store_up')).toEqual(['tsnet_store_up 0']);
  });

  it('counts repairs by kind, and nothing for none', async () => {
    countRepairs('link', 2);
    countRepairs('nftables', 0);
    countRepairs('nftables');
    expect(await lines('tsnet_repairs_total')).toEqual(['tsnet_repairs_total{kind="link"} 2', 'tsnet_repairs_total{kind="nftables"} 1']);
  });

  it('times a call that throws as well as one that returns', async () => {
    const observe = (s: number) => netlinkDuration.observe({ op: 'createLink' }, s);
    expect(timed(observe, () => 7)).toBe(7);
    expect(() =>
      timed(observe, () => {
        throw new Error('EEXIST');
      }),
    ).toThrow('EEXIST');
    expect(await lines('tsnet_netlink_duration_seconds_count')).toEqual(['tsnet_netlink_duration_seconds_count{op="createLink"} 2']);
  });
});

describe('process defaults', () => {
  it('end in _total only where they are counters (promtool check metrics refuses others)', async () => {
    collectProcessMetrics();
    const { body } = await exposition();
    const types = [...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => ({ name: m[1], type: m[2] }));
    expect(types.some((t) => t.name === 'process_cpu_user_seconds_total')).toBe(true);
    expect(types.filter((t) => t.name.endsWith('_total') && t.type !== 'counter')).toEqual([]);
  });
});
