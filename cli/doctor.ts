// `tsnet doctor`: what this host has of what tsnet needs, and what a missing piece disables.
//
// Three steps, kept apart so the middle and last can be tested without a host:
//   gatherFacts()  reads files, loads a library, asks sockets and runs `nft` (impure; doctor is
//                  not on any request path, so subprocesses are fine here)
//   CHECKS         the list of checks as data: each turns the facts into ok / missing / unknown
//   formatReport() one line per check: outcome, name, what was found, what a missing one disables
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import koffi from 'koffi';
import { storeEndpoints, type DaemonSettings } from '../daemon/settings.js';
import { instanceOf } from '../daemon/paths.js';
import { assessDockerFirewall, DOCKER_FIREWALL_LABELS, DOCKER_NFT_TABLE, type TsnetSide } from '../firewall/docker-firewall.js';
import { describeConnection, readClusterState, writerAlive, type ConnectionState } from '../daemon/cluster-connection.js';
import { readCutOffs, type CutOffRecord } from '../daemon/address-taken.js';
import { describeHolder } from '../store/cluster/reclaim.js';

export type Outcome = 'ok' | 'missing' | 'unknown' | 'skipped';

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

// ---------------------------------------------------------------- facts

/** What the kernel tells about its features, from whichever sources this host has. */
export interface KernelSources {
  /** /proc/config.gz, else /boot/config-$(uname -r) */
  config?: Map<string, string>;
  /** module names built into the kernel (/lib/modules/$(uname -r)/modules.builtin) */
  builtin?: Set<string>;
  /** module names that can be loaded (/lib/modules/$(uname -r)/modules.dep) */
  loadable?: Set<string>;
  /** module names loaded now (/proc/modules) or known to the kernel (/sys/module) */
  loaded: Set<string>;
}

/**
 * What nft lists of Docker's firewall (firewall/docker-firewall.ts reads it): the tables, and
 * `ip`/`ip6 filter` and Docker's nftables tables whole; and tsnet's bridges (from its table) and
 * the tag of its accepts.
 */
export type DockerFirewallFacts = { objects: Record<string, unknown>[]; tsnet: TsnetSide } | { error: string };

export interface HostFacts {
  uid: number;
  kernel: KernelSources;
  /** /proc/sys/net/ipv4/ip_forward */
  ipForward?: string;
  /** /proc/sys/net/bridge/bridge-nf-call-iptables; undefined when br_netfilter is not loaded */
  bridgeNfCallIptables?: string;
  /** undefined when libnftables.so.1 loads, else why not */
  libnftablesError?: string;
  dockerFirewall: DockerFirewallFacts;
  docker: { socket: string; answers: boolean };
  pluginSocket: { path: string; present: boolean; answers: boolean };
  /** undefined when the daemon has no cluster store (--store / TSNET_STORE) */
  etcd?: { endpoints: string[]; healthy: string[] };
  /** the daemon's own view of its cluster store (daemon/cluster-connection.ts), when it wrote one */
  daemonStore?: { state: ConnectionState; alive: boolean };
  /** overlay endpoints the daemon cut off because their address went to another host (daemon/address-taken.ts) */
  cutOff?: CutOffRecord[];
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

/** Module names from modules.builtin / modules.dep lines ("kernel/net/8021q/8021q.ko.xz: ..."). */
export function parseModuleList(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const path = line.split(':')[0].trim();
    const m = /([^/]+)\.ko(\.[a-z]+)?$/.exec(path);
    if (m) names.add(m[1].replace(/-/g, '_'));
  }
  return names;
}

/** The first field of each /proc/modules line. */
export function parseProcModules(text: string): Set<string> {
  return new Set(text.split('\n').map((l) => l.split(' ')[0]).filter(Boolean));
}

/** A feature as a kernel config key and the module that provides it. */
export interface KernelFeature {
  config: string;
  module: string;
}

/** Whether the kernel has a feature, and from which source that is known. */
export function kernelFeature(src: KernelSources, f: KernelFeature): { outcome: Outcome; detail: string } {
  if (src.config) {
    const v = src.config.get(f.config);
    if (v === 'y') return { outcome: 'ok', detail: `built in (${f.config}=y)` };
    if (v === 'm') return { outcome: 'ok', detail: `module ${f.module} (${f.config}=m)` };
    return { outcome: 'missing', detail: `${f.config} is not set in the kernel config` };
  }
  if (src.loaded.has(f.module)) return { outcome: 'ok', detail: `module ${f.module} is loaded` };
  if (src.builtin?.has(f.module)) return { outcome: 'ok', detail: `built in (modules.builtin)` };
  if (src.loadable?.has(f.module)) return { outcome: 'ok', detail: `module ${f.module} can be loaded` };
  if (src.builtin || src.loadable) return { outcome: 'missing', detail: `no module ${f.module} in /lib/modules/${release()}` };
  return { outcome: 'unknown', detail: `no kernel config or module list to read; ${f.module} is not loaded` };
}

// ---------------------------------------------------------------- the checks, as data

export interface Check {
  name: string;
  /** what does not work while it is missing */
  disables: string;
  essential: boolean;
  evaluate(facts: HostFacts): { outcome: Outcome; detail: string };
}

const kernelCheck = (name: string, feature: KernelFeature, disables: string, essential: boolean): Check => ({
  name,
  disables,
  essential,
  evaluate: (facts) => kernelFeature(facts.kernel, feature),
});

export const CHECKS: Check[] = [
  {
    name: 'running as root',
    disables: 'everything: links and nftables need CAP_NET_ADMIN',
    essential: true,
    evaluate: (f) => (f.uid === 0 ? { outcome: 'ok', detail: 'uid 0' } : { outcome: 'missing', detail: `uid ${f.uid}: run tsnet as root` }),
  },
  kernelCheck('bridge links', { config: 'CONFIG_BRIDGE', module: 'bridge' }, 'bridge networks and the overlay', true),
  kernelCheck('veth links', { config: 'CONFIG_VETH', module: 'veth' }, 'bridge and overlay networks (containers hang on veth pairs)', true),
  kernelCheck('vxlan links', { config: 'CONFIG_VXLAN', module: 'vxlan' }, 'overlay networks', false),
  kernelCheck('macvlan links', { config: 'CONFIG_MACVLAN', module: 'macvlan' }, 'macvlan networks', false),
  kernelCheck(
    '802.1Q VLAN links (8021q)',
    { config: 'CONFIG_VLAN_8021Q', module: '8021q' },
    'macvlan networks on a VLAN parent tsnet would create (parent=eth0.20); an existing parent still works',
    false,
  ),
  kernelCheck(
    'dummy links',
    { config: 'CONFIG_DUMMY', module: 'dummy' },
    'dummy interfaces as stand-in macvlan parents (a veth end serves instead; tsnet itself does not need them)',
    false,
  ),
  kernelCheck('nf_tables', { config: 'CONFIG_NF_TABLES', module: 'nf_tables' }, 'NAT, published ports and isolation between networks', true),
  kernelCheck('nf_tables nat', { config: 'CONFIG_NFT_NAT', module: 'nft_nat' }, 'published ports (DNAT)', true),
  kernelCheck('nf_tables masquerade', { config: 'CONFIG_NFT_MASQ', module: 'nft_masq' }, 'outbound traffic from networks (masquerade)', true),
  kernelCheck('nf_tables fib', { config: 'CONFIG_NFT_FIB_INET', module: 'nft_fib_inet' }, 'published ports on the host\'s own addresses (matched with fib)', true),
  {
    name: 'br_netfilter',
    disables: '',
    essential: false,
    evaluate: (f) =>
      f.bridgeNfCallIptables === undefined
        ? { outcome: 'ok', detail: 'not loaded: bridged traffic skips iptables' }
        : {
            outcome: 'ok',
            detail: `loaded, bridge-nf-call-iptables=${f.bridgeNfCallIptables}${f.bridgeNfCallIptables === '1' ? ': bridged traffic passes iptables FORWARD too' : ''}`,
          },
  },
  {
    name: 'IPv4 forwarding',
    disables: 'traffic leaving networks, until tsnet turns it on',
    essential: false,
    evaluate: (f) =>
      f.ipForward === '1'
        ? { outcome: 'ok', detail: 'net.ipv4.ip_forward=1' }
        : { outcome: 'missing', detail: `net.ipv4.ip_forward=${f.ipForward ?? '?'}: tsnet turns it on with its first non-internal network` },
  },
  {
    name: 'libnftables.so.1',
    disables: 'NAT, published ports and isolation between networks',
    essential: true,
    evaluate: (f) =>
      f.libnftablesError === undefined
        ? { outcome: 'ok', detail: 'loads' }
        : { outcome: 'missing', detail: `does not load (install Debian's libnftables1; make up does): ${f.libnftablesError}` },
  },
  {
    name: 'Docker firewall',
    disables: "traffic of tsnet's networks: Docker's firewall drops it",
    essential: false,
    evaluate: (f) => {
      const d = f.dockerFirewall;
      if ('error' in d) return { outcome: 'unknown', detail: d.error };
      const r = assessDockerFirewall(d.objects, d.tsnet);
      const head = `${DOCKER_FIREWALL_LABELS[r.kind]}: tsnet's traffic is ${r.admitted ? 'admitted' : 'dropped'}`;
      return { outcome: r.admitted ? 'ok' : 'missing', detail: [head, ...r.findings].join('; ') };
    },
  },
  {
    name: 'Docker engine',
    disables: 'docker network create -d tsnet, and container names in tsnet status / tsnet port',
    essential: false,
    evaluate: (f) =>
      f.docker.answers
        ? { outcome: 'ok', detail: `answers on ${f.docker.socket}` }
        : { outcome: 'missing', detail: `nothing answers on ${f.docker.socket} (CNI runtimes do not need it)` },
  },
  {
    name: 'tsnet plugin socket',
    disables: 'every tsnet network, until the daemon runs (make up)',
    essential: false,
    evaluate: (f) => {
      const s = f.pluginSocket;
      if (s.answers) return { outcome: 'ok', detail: `${s.path} answers Plugin.Activate` };
      if (s.present) return { outcome: 'missing', detail: `${s.path} exists but does not answer: the daemon is stuck or gone (make up)` };
      return { outcome: 'missing', detail: `no ${s.path}: the daemon is not running (make up)` };
    },
  },
  {
    name: 'etcd',
    disables: 'overlay networks across hosts (they keep their shared state in etcd)',
    essential: false,
    evaluate: (f) => {
      if (!f.etcd) return { outcome: 'skipped', detail: 'no cluster store configured (--store or TSNET_STORE, as for tsnet serve)' };
      const down = f.etcd.endpoints.filter((e) => !f.etcd!.healthy.includes(e));
      if (down.length === 0) return { outcome: 'ok', detail: `healthy: ${f.etcd.endpoints.join(', ')}` };
      return { outcome: 'missing', detail: `not healthy: ${down.join(', ')}` };
    },
  },
  {
    name: "daemon's cluster store",
    disables: 'overlay networks across hosts on this host, until the daemon has joined the store',
    essential: false,
    evaluate: (f) => {
      const d = f.daemonStore;
      if (!f.etcd || !d) return { outcome: 'skipped', detail: 'the daemon runs without a cluster store' };
      const detail = describeConnection(d.state, d.alive);
      if (!d.alive) return { outcome: 'unknown', detail };
      return { outcome: d.state.phase === 'connected' ? 'ok' : 'missing', detail };
    },
  },
  {
    name: 'overlay addresses',
    disables: 'the containers named, until each is disconnected and connected again (a new address)',
    essential: false,
    evaluate: (f) => {
      if (!f.daemonStore) return { outcome: 'skipped', detail: 'the daemon runs without a cluster store' };
      const cut = f.cutOff ?? [];
      if (cut.length === 0) return { outcome: 'ok', detail: 'no container of this host is cut off' };
      const each = cut.map((t) => `endpoint ${t.endpointId.slice(0, 12)} (${t.ip} on '${t.overlay}', now ${describeHolder(t.holder)}, since ${t.since})`);
      return { outcome: 'missing', detail: `cut off, their addresses went to other containers while this host was away: ${each.join('; ')}` };
    },
  },
];

export function evaluate(facts: HostFacts, checks: Check[] = CHECKS): CheckResult[] {
  return checks.map((c) => {
    let r: { outcome: Outcome; detail: string };
    try {
      r = c.evaluate(facts);
    } catch (err) {
      r = { outcome: 'unknown', detail: `check failed: ${(err as Error).message}` };
    }
    return { name: c.name, outcome: r.outcome, detail: r.detail, disables: c.disables, essential: c.essential };
  });
}

// ---------------------------------------------------------------- the report

/** One line per check; a missing or unknown one also says what it disables. */
export function formatReport(results: CheckResult[]): string {
  const width = Math.max(0, ...results.map((r) => r.name.length));
  const lines = results.map((r) => {
    const tail = (r.outcome === 'missing' || r.outcome === 'unknown') && r.disables ? ` -- without it: ${r.disables}` : '';
    return `${r.outcome.padEnd(8)} ${r.name.padEnd(width)}  ${r.detail}${tail}`.trimEnd();
  });
  const missing = results.filter((r) => r.outcome === 'missing');
  const essential = missing.filter((r) => r.essential);
  lines.push(
    essential.length > 0
      ? `tsnet cannot run here: missing ${essential.map((r) => r.name).join(', ')}`
      : missing.length > 0
        ? `tsnet can run; ${missing.length} missing item(s) disable what is listed above`
        : 'tsnet has everything it needs',
  );
  return lines.join('\n');
}

/** 0 when nothing essential is missing. */
export function exitCode(results: CheckResult[]): number {
  return results.some((r) => r.essential && r.outcome === 'missing') ? 1 : 0;
}

// ---------------------------------------------------------------- reading the host

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readKernelSources(): KernelSources {
  let config: Map<string, string> | undefined;
  try {
    config = parseKernelConfig(gunzipSync(readFileSync('/proc/config.gz')).toString('utf8'));
  } catch {
    const boot = readText(`/boot/config-${release()}`);
    if (boot) config = parseKernelConfig(boot);
  }
  const modDir = `/lib/modules/${release()}`;
  const builtinText = readText(`${modDir}/modules.builtin`);
  const depText = readText(`${modDir}/modules.dep`);
  const loaded = parseProcModules(readText('/proc/modules') ?? '');
  for (const name of ['bridge', 'veth', 'vxlan', 'macvlan', '8021q', 'dummy', 'nf_tables', 'nft_nat', 'nft_masq', 'nft_fib_inet', 'br_netfilter']) {
    if (existsSync(`/sys/module/${name}`)) loaded.add(name);
  }
  return {
    config,
    builtin: builtinText === undefined ? undefined : parseModuleList(builtinText),
    loadable: depText === undefined ? undefined : parseModuleList(depText),
    loaded,
  };
}

/** `nft -j LIST...`'s objects; throws with nft's first line of complaint. */
function nftObjects(...list: string[]): Record<string, unknown>[] {
  const r = spawnSync('nft', ['-j', 'list', ...list], { encoding: 'utf8', timeout: 5000, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`cannot run nft: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`nft -j list ${list.join(' ')} failed: ${r.stderr.trim().split('\n')[0]}`);
  return (JSON.parse(r.stdout) as { nftables?: Record<string, unknown>[] }).nftables ?? [];
}

/** What firewall/docker-firewall.ts needs, read with nft; only the tables it looks at are listed. */
function readDockerFirewall(socketPath: string): DockerFirewallFacts {
  try {
    const { table, tag } = instanceOf(socketPath);
    const tables = nftObjects('tables');
    const has = (family: string, name: string) =>
      tables.some((o) => (o.table as { family?: string } | undefined)?.family === family && (o.table as { name?: string } | undefined)?.name === name);
    const objects = [...tables];
    for (const family of ['ip', 'ip6']) {
      for (const name of ['filter', DOCKER_NFT_TABLE]) {
        if (has(family, name)) objects.push(...nftObjects('table', family, name).filter((o) => !o.table));
      }
    }
    const set = has('inet', table) ? nftObjects('set', 'inet', table, 'bridges') : [];
    const elems = (set.find((o) => o.set)?.set as { elem?: unknown[] } | undefined)?.elem ?? [];
    return { objects, tsnet: { bridges: elems.filter((e): e is string => typeof e === 'string'), tag } };
  } catch (err) {
    return { error: (err as Error).message };
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

async function etcdHealthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health', endpoint), { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { health?: string | boolean };
    return res.ok && String(body.health) === 'true';
  } catch {
    return false;
  }
}

export async function gatherFacts(settings: DaemonSettings): Promise<HostFacts> {
  let libnftablesError: string | undefined;
  try {
    koffi.load('libnftables.so.1');
  } catch (err) {
    libnftablesError = (err as Error).message;
  }
  const etcdEndpoints = storeEndpoints(settings);
  const daemonStore = readClusterState(settings.stateDir);
  const [dockerAnswers, pluginAnswers, etcdUp] = await Promise.all([
    answers(settings.dockerSocket, 'GET', '/_ping'),
    answers(settings.socketPath, 'POST', '/Plugin.Activate'),
    Promise.all(etcdEndpoints.map(etcdHealthy)),
  ]);
  return {
    uid: process.getuid?.() ?? -1,
    kernel: readKernelSources(),
    ipForward: readText('/proc/sys/net/ipv4/ip_forward')?.trim(),
    bridgeNfCallIptables: readText('/proc/sys/net/bridge/bridge-nf-call-iptables')?.trim(),
    libnftablesError,
    dockerFirewall: readDockerFirewall(settings.socketPath),
    docker: { socket: settings.dockerSocket, answers: dockerAnswers },
    pluginSocket: { path: settings.socketPath, present: existsSync(settings.socketPath), answers: pluginAnswers },
    etcd: etcdEndpoints.length === 0 ? undefined : { endpoints: etcdEndpoints, healthy: etcdEndpoints.filter((_, i) => etcdUp[i]) },
    daemonStore: daemonStore ? { state: daemonStore, alive: writerAlive(daemonStore) } : undefined,
    cutOff: readCutOffs(settings.stateDir),
  };
}

export async function runChecks(settings: DaemonSettings): Promise<CheckResult[]> {
  return evaluate(await gatherFacts(settings));
}

export async function runDoctor(settings: DaemonSettings): Promise<number> {
  const results = await runChecks(settings);
  console.log(formatReport(results));
  return exitCode(results);
}
