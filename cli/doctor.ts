// `tsnet doctor`: what this host has of what tsnet needs, and what a missing piece disables.
// Not on any request path: reading files and asking sockets is fine here.
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import koffi from 'koffi';
import { DEFAULT_SOCKET, DOCKER_SOCKET } from '../daemon/paths.js';

export type Outcome = 'ok' | 'missing' | 'unknown';

export interface CheckResult {
  name: string;
  outcome: Outcome;
  /** what it found, or what to do */
  detail: string;
  /** what does not work while it is missing */
  disables: string;
  /** tsnet cannot run at all without it */
  essential: boolean;
}

/** CONFIG_X=y|m lines of a kernel config. */
export function parseKernelConfig(text: string): Map<string, string> {
  const config = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) config.set(m[1], m[2]);
  }
  return config;
}

export function kernelHas(config: Map<string, string> | undefined, key: string): Outcome {
  if (!config) return 'unknown';
  const v = config.get(key);
  return v === 'y' || v === 'm' ? 'ok' : 'missing';
}

export function formatReport(results: CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results
    .map((r) => {
      const head = `${r.outcome.padEnd(8)} ${r.name.padEnd(width)}  ${r.detail}`;
      return r.outcome === 'ok' ? head : `${head}\n${' '.repeat(9 + width + 2)}without it: ${r.disables}`;
    })
    .join('\n');
}

/** 0 when nothing essential is missing. */
export function exitCode(results: CheckResult[]): number {
  return results.some((r) => r.essential && r.outcome === 'missing') ? 1 : 0;
}

function readKernelConfig(): Map<string, string> | undefined {
  try {
    return parseKernelConfig(gunzipSync(readFileSync('/proc/config.gz')).toString('utf8'));
  } catch {
    return undefined;
  }
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function answers(socketPath: string, method: string, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) return resolve(false);
    const req = request({ socketPath, method, path, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Kernel features: [name, config key, what is lost without it, essential]. */
const KERNEL: [string, string, string, boolean][] = [
  ['bridge links', 'CONFIG_BRIDGE', 'bridge and overlay networks', true],
  ['veth links', 'CONFIG_VETH', 'every network type: containers are attached with veth pairs', true],
  ['vxlan links', 'CONFIG_VXLAN', 'overlay networks', false],
  ['macvlan links', 'CONFIG_MACVLAN', 'macvlan networks', false],
  ['802.1Q vlan links (8021q)', 'CONFIG_VLAN_8021Q', 'macvlan parents like eth0.20 that tsnet would create; an existing parent still works', false],
  ['nftables', 'CONFIG_NF_TABLES', 'NAT, published ports and isolation', true],
  ['nftables NAT', 'CONFIG_NFT_NAT', 'masquerade and published ports', true],
  ['nftables masquerade', 'CONFIG_NFT_MASQ', 'masquerade of traffic leaving a network', true],
  ['nftables fib', 'CONFIG_NFT_FIB_INET', 'published ports (they match local destinations with fib)', true],
  ['bridge netfilter', 'CONFIG_BRIDGE_NETFILTER', 'nothing tsnet needs; listed because Docker turns it on', false],
];

export async function runChecks(): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const add = (name: string, outcome: Outcome, detail: string, disables: string, essential = false) =>
    results.push({ name, outcome, detail, disables, essential });

  add('running as root', process.getuid?.() === 0 ? 'ok' : 'missing', process.getuid?.() === 0 ? 'uid 0' : 'run tsnet as root', 'everything: links and nftables need CAP_NET_ADMIN', true);

  const config = readKernelConfig();
  for (const [name, key, disables, essential] of KERNEL) {
    const outcome = kernelHas(config, key);
    add(name, outcome, outcome === 'unknown' ? `${key}: no /proc/config.gz to read` : `${key}=${config?.get(key) ?? 'not set'}`, disables, essential);
  }

  const forward = readProc('/proc/sys/net/ipv4/ip_forward');
  add('IPv4 forwarding', forward === '1' ? 'ok' : 'missing', forward === '1' ? 'net.ipv4.ip_forward=1' : 'off now; tsnet turns it on with its first non-internal network', 'a way out of networks until tsnet turns it on');

  const brnf = readProc('/proc/sys/net/bridge/bridge-nf-call-iptables');
  add('br_netfilter', 'ok', brnf === undefined ? 'not loaded' : `loaded, bridge-nf-call-iptables=${brnf} (tsnet accepts its bridges in Docker's chains)`, '');

  let nft: Outcome = 'ok';
  let nftDetail = 'libnftables.so.1 loads';
  try {
    koffi.load('libnftables.so.1');
  } catch (err) {
    nft = 'missing';
    nftDetail = `install Debian's libnftables1 (make up does): ${(err as Error).message}`;
  }
  add('libnftables', nft, nftDetail, 'NAT, published ports and isolation', true);

  const dockerUp = await answers(DOCKER_SOCKET, 'GET', '/_ping');
  add('Docker engine', dockerUp ? 'ok' : 'missing', dockerUp ? `answers on ${DOCKER_SOCKET}` : `nothing answers on ${DOCKER_SOCKET}`, 'docker network create -d tsnet, tsnet port, names in tsnet status');

  const pluginUp = await answers(DEFAULT_SOCKET, 'POST', '/Plugin.Activate');
  add('tsnet daemon', pluginUp ? 'ok' : 'missing', pluginUp ? `answers on ${DEFAULT_SOCKET}` : `nothing answers on ${DEFAULT_SOCKET}: make up`, 'every tsnet network until the daemon runs');

  return results;
}

export async function runDoctor(): Promise<number> {
  const results = await runChecks();
  console.log(formatReport(results));
  return exitCode(results);
}
