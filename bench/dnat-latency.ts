// (c) New-connection latency through DNAT to the 1st and the 10,000th published port: tsnet's
// nftables maps beside Docker's layout (one DNAT rule per port in a linear iptables chain), in
// one run. Needs no Docker.
//
// Three sites, each a "host" namespace with a bridge and a "container" namespace behind it
// running a TCP server, all reached from one client namespace over their own uplinks:
//   tsnet:    tsnet's real table with MAPPINGS mappings, loaded by firewall/firewall.ts (the
//             daemon's code) in one transaction inside the host namespace
//   control:  the same table holding only the two mappings measured: whatever differs between
//             the two port numbers themselves, apart from where they sit in the rules
//   Docker:   the nat and filter rules Docker 20.10's bridge driver writes for a container
//             publishing MAPPINGS ports, loaded with iptables-restore (iptables-nft, which is what
//             dockerd uses on this Debian)
// Host port P maps to container port P (like `-p P:P`); the servers listen on the two ports
// measured. One Node client opens connections one at a time, in rounds over the six cases
// (site x port, in random order), and times connect + first byte from the server. All traffic stays inside the
// namespaces made here (203.0.113.0/24 is documentation space, never routed).
import { randomBytes } from 'node:crypto';
import { withNetns } from '../native/netns.js';
import { Nft } from '../native/nftables.js';
import { Firewall } from '../firewall/firewall.js';
import type { FirewallNetwork, PortMapping } from '../firewall/model.js';
import { Cleanup, byteServer, connectLatencies, inNs, makeNs, median, percentile, ratioInterval, report, table } from './lib.js';
import { dockerIptables } from '../test-support/docker-iptables.js';

const MAPPINGS = Number(process.env.MAPPINGS ?? 10_000);
const SAMPLES = Number(process.env.SAMPLES ?? 2_000);
/** slices of the run compared with each other, for the noise */
const BATCHES = 10;
/** rounds over every case before measuring (JIT, caches) */
const WARMUP = 50;
const FIRST_PORT = 30_000;
const LAST_PORT = FIRST_PORT + MAPPINGS - 1;
const SUBNET = '10.231.210.0/24';
const GATEWAY = '10.231.210.1';
const SERVER_IP = '10.231.210.2';

if (!Number.isInteger(MAPPINGS) || MAPPINGS < 2 || LAST_PORT > 65535) throw new Error(`MAPPINGS must be 2..${65536 - FIRST_PORT}`);
if (!Number.isInteger(SAMPLES) || SAMPLES < BATCHES) throw new Error(`SAMPLES must be at least ${BATCHES}`);

/**
 * A "host" namespace with a bridge, a "container" namespace behind it running the server, and an
 * uplink to the shared client namespace (the host's address on it: uplinkIp). Returns the host.
 */
async function buildSite(prefix: string, client: string, index: number, cleanup: Cleanup): Promise<{ host: string; uplinkIp: string }> {
  const host = makeNs(`${prefix}-host`, cleanup);
  const server = makeNs(`${prefix}-srv`, cleanup);
  // a /30 per site on the client's side: 203.0.113.1/.2, .5/.6, .9/.10
  const uplinkIp = `203.0.113.${4 * index + 1}`;
  const clientIp = `203.0.113.${4 * index + 2}`;
  inNs(host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  inNs(host, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  inNs(host, 'ip', ['addr', 'add', `${GATEWAY}/24`, 'dev', 'br0']);
  inNs(host, 'ip', ['link', 'set', 'br0', 'up']);
  inNs(host, 'ip', ['link', 'add', 'vsrv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', server]);
  inNs(host, 'ip', ['link', 'set', 'vsrv', 'master', 'br0', 'up']);
  inNs(server, 'ip', ['addr', 'add', `${SERVER_IP}/24`, 'dev', 'eth0']);
  inNs(server, 'ip', ['link', 'set', 'eth0', 'up']);
  inNs(server, 'ip', ['route', 'add', 'default', 'via', GATEWAY]);
  inNs(host, 'ip', ['link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', `up${index}`, 'netns', client]);
  inNs(host, 'ip', ['addr', 'add', `${uplinkIp}/30`, 'dev', 'uplink']);
  inNs(host, 'ip', ['link', 'set', 'uplink', 'up']);
  inNs(client, 'ip', ['addr', 'add', `${clientIp}/30`, 'dev', `up${index}`]);
  inNs(client, 'ip', ['link', 'set', `up${index}`, 'up']);

  await byteServer(server, [FIRST_PORT, LAST_PORT], cleanup);
  return { host, uplinkIp };
}

function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** tsnet's real table, loaded by the daemon's firewall code in one transaction in the host namespace; ms */
function loadTsnet(host: string, mappings: PortMapping[]): number {
  const network: FirewallNetwork = { id: 'bench', bridge: 'br0', subnets: [SUBNET], masquerade: true, internal: false };
  const start = process.hrtime.bigint();
  withNetns(`/run/netns/${host}`, () => {
    const nft = Nft.open();
    try {
      new Firewall(nft, { warn() {} }).sync([network], mappings);
    } finally {
      nft.close();
    }
  });
  return elapsedMs(start);
}

type SiteName = 'tsnet' | 'control' | 'docker';

const LABEL: Record<SiteName, string> = {
  tsnet: 'tsnet (nftables maps)',
  control: 'tsnet, only these 2 mappings (control)',
  docker: 'Docker-style (iptables chains)',
};

export async function main(): Promise<void> {
  const cleanup = new Cleanup();
  const tag = randomBytes(2).toString('hex');
  try {
    const client = makeNs(`tsb-${tag}-cli`, cleanup);
    const names: SiteName[] = ['tsnet', 'control', 'docker'];
    const sites = {} as Record<SiteName, { host: string; uplinkIp: string }>;
    for (const [i, name] of names.entries()) sites[name] = await buildSite(`tsb-${tag}-${name[0]}`, client, i, cleanup);
    const mappings: PortMapping[] = Array.from({ length: MAPPINGS }, (_, i) => ({
      endpointId: 'bench',
      proto: 'tcp',
      hostIp: '',
      hostPort: FIRST_PORT + i,
      containerIp: SERVER_IP,
      containerPort: FIRST_PORT + i,
    }));

    const tsnetLoadMs = loadTsnet(sites.tsnet.host, mappings);
    // the same two ports with nothing in between: what differs between them that is not the map
    loadTsnet(sites.control.host, [mappings[0], mappings[MAPPINGS - 1]]);
    const start = process.hrtime.bigint();
    inNs(sites.docker.host, 'iptables-restore', [], dockerIptables([{ name: 'br0', subnet: SUBNET, published: mappings }]));
    const dockerLoadMs = elapsedMs(start);

    const cases = names.flatMap((site) => [FIRST_PORT, LAST_PORT].map((port) => ({ site, port })));
    const samples = connectLatencies(client, cases.map((c) => ({ ip: sites[c.site].uplinkIp, port: c.port })), SAMPLES, WARMUP);
    const of = (site: SiteName, port: number) => samples[cases.findIndex((c) => c.site === site && c.port === port)];
    // consecutive slices of the run, for how much a ratio moves within it
    const slices = (xs: number[]) => Array.from({ length: BATCHES }, (_, b) => xs.slice((b * xs.length) / BATCHES, ((b + 1) * xs.length) / BATCHES));
    const ratioOf = (site: SiteName) => median(of(site, LAST_PORT)) / median(of(site, FIRST_PORT));
    const sliceRatios = (site: SiteName) => {
      const last = slices(of(site, LAST_PORT));
      return slices(of(site, FIRST_PORT)).map((f, b) => median(last[b]) / median(f));
    };
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;

    const rows: (string | number)[][] = [];
    for (const site of names) {
      const first = of(site, FIRST_PORT);
      const last = of(site, LAST_PORT);
      const [lo, hi] = ratioInterval(first, last);
      rows.push(
        [LABEL[site], `1st (port ${FIRST_PORT})`, median(first), percentile(first, 99), '', ''],
        [
          LABEL[site],
          `${site === 'control' ? '2nd' : `${MAPPINGS}th`} (port ${LAST_PORT})`,
          median(last),
          percentile(last, 99),
          ratioOf(site).toFixed(2),
          `${lo.toFixed(2)}-${hi.toFixed(2)} / ${range(sliceRatios(site))}`,
        ],
      );
    }
    console.log(`TCP connect + first byte through DNAT, ${SAMPLES} connections per case in rounds over all cases (random order); ${MAPPINGS} mappings`);
    console.log(table(['rules', 'mapping', 'median µs', 'p99 µs', 'last / 1st', `noise: bootstrap 95% / ${BATCHES} slices`], rows));
    const effect = sliceRatios('tsnet').map((r, b) => r / sliceRatios('control')[b]);
    const med = (site: SiteName, port: number) => median(of(site, port));
    console.log(
      `tsnet's ${MAPPINGS}th / 1st with what differs between the two port numbers taken out (ratio / control ratio): ` +
        `${(ratioOf('tsnet') / ratioOf('control')).toFixed(2)} (per slice ${range(effect)}); target: no slower within noise`,
    );
    console.log(
      `tsnet / Docker-style median: 1st ${(med('tsnet', FIRST_PORT) / med('docker', FIRST_PORT)).toFixed(2)}, ` +
        `${MAPPINGS}th ${(med('tsnet', LAST_PORT) / med('docker', LAST_PORT)).toFixed(2)}`,
    );
    const flat = ratioOf('tsnet') / ratioOf('control');
    report({ bench: 'dnat-latency', measure: `new connection through DNAT, ${MAPPINGS}th / 1st mapping (over control)`, tsnet: Math.round(med('tsnet', LAST_PORT) * 10) / 10, peer: Math.round(med('tsnet', FIRST_PORT) * 10) / 10, unit: 'µs', ratio: Math.round(flat * 100) / 100, goal: 'ratio <= 1.1', met: flat <= 1.1 });
    const vsDocker = med('tsnet', LAST_PORT) / med('docker', LAST_PORT);
    report({ bench: 'dnat-latency', measure: `new connection through DNAT at the ${MAPPINGS}th mapping, tsnet / Docker-style iptables`, tsnet: Math.round(med('tsnet', LAST_PORT) * 10) / 10, peer: Math.round(med('docker', LAST_PORT) * 10) / 10, unit: 'µs', ratio: Math.round(vsDocker * 100) / 100, goal: '', met: null });
    console.log(
      `loading ${MAPPINGS} mappings: tsnet ${tsnetLoadMs.toFixed(0)} ms (one nftables transaction), ` +
        `Docker-style ${dockerLoadMs.toFixed(0)} ms (one iptables-restore; dockerd itself makes one iptables call per rule)`,
    );
  } finally {
    await cleanup.run();
  }
}

await main();
