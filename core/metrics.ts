// Prometheus metrics: the one registry of the process and the metric objects every layer records
// into. A leaf module (prom-client only, nothing of tsnet), so native/ can time its netlink and
// nftables calls and plugin-api/ its requests without importing anything above them; the HTTP
// listener that serves the registry lives in daemon/metrics-server.ts, off unless `--metrics`.
//
// Two kinds of metric:
//  - events (requests, kernel call durations, repairs) are counted where they happen;
//  - state (networks, endpoints, published ports, IPAM use, overlay peers, the cluster store) is
//    read when Prometheus scrapes, from sources the daemon hands to observeState(), so a gauge can
//    never drift from the store it describes. A state gauge without a source is not exported.
//
// Label values come from fixed sets (method names, error kinds, netlink op names, driver names,
// protocols) or from what the operator made (pools, overlay names), so the series stay bounded.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();

/** What a request came to: ok, or the kind of its error (core/errors.ts ErrorKind). */
export type Outcome = 'ok' | 'invalid' | 'not-found' | 'conflict' | 'unavailable' | 'internal';

export const requestsTotal = new Counter({
  name: 'tsnet_requests_total',
  help: "Docker plugin and CNI requests answered, by method and outcome ('ok' or the error kind)",
  labelNames: ['method', 'outcome'] as const,
  registers: [registry],
});

export const requestDuration = new Histogram({
  name: 'tsnet_request_duration_seconds',
  help: 'Time from a Docker plugin or CNI request arriving to its answer, queue wait included',
  labelNames: ['method'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const netlinkDuration = new Histogram({
  name: 'tsnet_netlink_duration_seconds',
  help: 'Time of one rtnetlink request or dump, by operation',
  labelNames: ['op'] as const,
  buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
  registers: [registry],
});

export const nftTransactionDuration = new Histogram({
  name: 'tsnet_nft_transaction_duration_seconds',
  help: 'Time of one nftables transaction (a script committed through libnftables)',
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});

/** What a repair put back; the README lists the kinds. */
export type RepairKind = 'link' | 'leftover-link' | 'interrupted-operation' | 'address' | 'nftables' | 'docker-chains';

export const repairsTotal = new Counter({
  name: 'tsnet_repairs_total',
  help: 'What start-up reconcile and drift repair put back or cleaned up, by kind',
  labelNames: ['kind'] as const,
  registers: [registry],
});

/** Counts `n` repairs of one kind (nothing for 0). */
export function countRepairs(kind: RepairKind, n = 1): void {
  if (n > 0) repairsTotal.inc({ kind }, n);
}

/** Seconds since `start` (a performance.now() value). */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/** Runs fn and observes its duration (also when it throws). */
export function timed<T>(observe: (seconds: number) => void, fn: () => T): T {
  const start = performance.now();
  try {
    return fn();
  } finally {
    observe(secondsSince(start));
  }
}

// ---------------------------------------------------------------- state, read at scrape time

/** One series of a state gauge. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Where each state gauge reads its series from; the daemon wires them to its store and kernel. */
export interface StateSources {
  networks: () => Sample[];
  endpoints: () => Sample[];
  publishedPorts: () => Sample[];
  ipamAllocated: () => Sample[];
  ipamCapacity: () => Sample[];
  overlayPeers: () => Sample[];
  /** 1 connected, 0 not; absent when the daemon has no cluster store */
  storeUp: () => Sample[];
}

const STATE_GAUGES: Record<keyof StateSources, { name: string; help: string; labelNames: string[] }> = {
  networks: { name: 'tsnet_networks', help: 'Networks tsnet holds (Docker and CNI), by driver', labelNames: ['driver'] },
  endpoints: { name: 'tsnet_endpoints', help: 'Endpoints (Docker) and attachments (CNI) on tsnet networks, by driver', labelNames: ['driver'] },
  publishedPorts: { name: 'tsnet_published_ports', help: 'Host ports published to containers, by protocol', labelNames: ['proto'] },
  ipamAllocated: { name: 'tsnet_ipam_addresses_allocated', help: "Addresses allocated in each of tsnet's IPAM pools (gateways included)", labelNames: ['pool'] },
  ipamCapacity: { name: 'tsnet_ipam_addresses_capacity', help: "Assignable addresses of each of tsnet's IPAM pools", labelNames: ['pool'] },
  overlayPeers: { name: 'tsnet_overlay_peers', help: 'Other hosts (VTEPs) the VXLAN device of each overlay network sends to', labelNames: ['network'] },
  storeUp: { name: 'tsnet_store_up', help: 'Whether this host is registered in the cluster store (1) or not (0); absent without a store', labelNames: [] },
};

/**
 * Exports the state gauges, each read from its source at every scrape (a gauge's series are
 * replaced as a whole, so a series whose network or pool went disappears with it). A source that
 * throws fails only its own gauge's collection, with the error in the scrape's answer.
 */
export function observeState(sources: StateSources): void {
  for (const [key, spec] of Object.entries(STATE_GAUGES) as [keyof StateSources, (typeof STATE_GAUGES)[keyof StateSources]][]) {
    registry.removeSingleMetric(spec.name);
    const read = sources[key];
    new Gauge({
      ...spec,
      registers: [registry],
      collect() {
        const samples = read();
        this.reset();
        // an unlabelled gauge keeps a 0 through reset(): no series at all when the source has none
        if (spec.labelNames.length === 0 && samples.length === 0) this.remove();
        for (const s of samples) this.set(s.labels, s.value);
      },
    });
  }
}

let processMetrics = false;

/**
 * The process defaults (CPU, memory, file descriptors, event loop lag, heap): once per process.
 * prom-client's gauges nodejs_active_{handles,requests,resources}_total break the convention that
 * only counters end in _total (`promtool check metrics` refuses them); they are left out, their
 * totals are the sums of the same names without the suffix.
 */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
  for (const m of registry.getMetricsAsArray()) {
    if (m.name.endsWith('_total') && (m as unknown as { type: string }).type !== 'counter') registry.removeSingleMetric(m.name);
  }
}

/** The text Prometheus scrapes, and its content type. */
export async function exposition(): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
