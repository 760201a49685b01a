// What a tsnet daemon leaves behind in the netns layer, looked at BEFORE anything is cleaned up,
// so that a leak is seen rather than swept away (issue 10, items 4 and 5). Builds on
// test-support/daemon-leftovers.ts (table elements, tagged links, status, log) with what the CNI,
// podman and bridge-driver tests need beyond it: CNI networks that rightly outlive their last DEL
// (as the reference bridge plugin's bridge does), links named like tsnet's but not tagged, the
// IPAM's allocation rows, the anti-spoofing table (family bridge), and binding a port inside a
// namespace.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './harness.js';
import { daemonStatus, internalErrors, linksTaggedBy, tableElements, type DaemonIdentity, type DaemonStatus } from '../test-support/daemon-leftovers.js';

/** Name prefixes of every link tsnet makes: bridges, veth ends, overlay bridge and VXLAN, macvlan shim and parent. */
export const TSNET_LINK_PREFIXES = ['tsnet-', 'tsv', 'tsc', 'tob-', 'tox-', 'tsmh-', 'tsmb-'] as const;

export interface LinkInfo {
  ifname: string;
  ifalias?: string;
  master?: string;
}

/** The links of a namespace (null: the host's). */
export function linksIn(ns: string | null): LinkInfo[] {
  const args = ['-j', 'link', 'show'];
  return JSON.parse(ns ? sh('ip', ['netns', 'exec', ns, 'ip', ...args]) : sh('ip', args)) as LinkInfo[];
}

/** Names of the host's links now: taken when a file starts, so tsnet-named links of others are not counted. */
export function linkNames(): Set<string> {
  return new Set(linksIn(null).map((l) => l.ifname));
}

/** Host links with a tsnet name that were not there in `before` (untagged ones included: a lost alias is a leak too). */
export function newTsnetLinks(before: Set<string>): string[] {
  return linksIn(null)
    .filter((l) => !before.has(l.ifname) && TSNET_LINK_PREFIXES.some((p) => l.ifname.startsWith(p)))
    .map((l) => `${l.ifname} (${l.ifalias ?? 'no alias'})`);
}

/**
 * Tries to bind proto ip:port inside a namespace (null: the host's) the way a host server would
 * (Node's sockets, which ask for SO_REUSEADDR; tsnet's holding sockets do not, so a held port still
 * refuses). 'free' when it was (the socket is closed again at once), else the error code, e.g.
 * 'EADDRINUSE'.
 */
export function bindIn(ns: string | null, proto: 'tcp' | 'udp', ip: string, port: number): string {
  const script =
    proto === 'tcp'
      ? `const s=require('net').createServer();s.on('error',e=>{console.log(e.code)});s.listen({port:${port},host:'${ip}'},()=>{console.log('free');s.close()})`
      : `const s=require('dgram').createSocket('${ip.includes(':') ? 'udp6' : 'udp4'}');s.on('error',e=>{console.log(e.code);s.close()});s.bind(${port},'${ip}',()=>{console.log('free');s.close()})`;
  const cmd = ns ? ['ip', 'netns', 'exec', ns, process.execPath] : [process.execPath];
  const r = spawnSync(cmd[0], [...cmd.slice(1), '-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`binding ${proto} ${ip}:${port} could not be tried: ${r.stderr}`);
  return r.stdout.trim();
}

export interface Allocation {
  pool_id: string;
  address: string;
  kind: 'gateway' | 'static' | 'dynamic';
}

/** The IPAM's allocation rows, read from the daemon's database (read-only, the daemon may run). */
export function allocations(stateDir: string): Allocation[] {
  const out = sh('sqlite3', ['-readonly', '-json', join(stateDir, 'tsnet.db'), 'SELECT pool_id, address, kind FROM ipam_allocations']);
  return out ? (JSON.parse(out) as Allocation[]) : [];
}

/**
 * What a daemon still holds once every container is gone, as readable lines (empty: nothing):
 * endpoints, published ports, container addresses, links and table elements. Networks may stay
 * (CNI networks outlive their last DEL), and with them their own links (bridge, VXLAN device,
 * shim) and the set elements naming those links or their subnets; nothing else.
 */
export function leftoversBesideNetworks(d: DaemonIdentity, linksBefore: Set<string>): string[] {
  const status: DaemonStatus = daemonStatus(d.stateDir);
  const problems: string[] = [];
  problems.push(...status.endpoints.map((e) => `status: endpoint ${e.id.slice(0, 12)} ${e.address}`));
  problems.push(...status.ports.map((p) => `status: port ${p.proto} ${p.hostIp}:${p.hostPort} -> ${p.port}`));
  for (const a of allocations(d.stateDir)) if (a.kind !== 'gateway') problems.push(`address ${a.address} still allocated (${a.kind})`);

  const links = status.networks.flatMap((n) => linksOfNetwork(n.config));
  const subnets = status.networks.flatMap((n) => (n.config.subnets as string[] | undefined) ?? []).map((s) => s.split('/')[0]);
  const ownedBy = (line: string) => [...links, ...subnets].some((k) => line.includes(`"${k}"`) || line.startsWith(`${k} `));
  problems.push(...linksTaggedBy(d.instance).filter((l) => !ownedBy(l)).map((l) => `link ${l}`));
  problems.push(...newTsnetLinks(linksBefore).filter((l) => !ownedBy(l) && !linksTaggedBy(d.instance).includes(l)).map((l) => `untagged link ${l}`));
  if (spawnSync('nft', ['list', 'table', 'inet', d.table], { stdio: 'ignore' }).status === 0) {
    problems.push(...tableElements(d.table).filter((e) => !ownedBy(e)).map((e) => `table element ${e}`));
  }
  problems.push(...spoofLeftovers(d.table));
  return problems;
}

/** The bridge-family table's own chains (firewall/rules/spoofing.ts); any other is a container port's. */
// the table's own chains; 'spoof' holds the anti-spoofing rules every guarded port jumps to (firewall/rules/spoofing.ts)
const FIXED_BRIDGE_CHAINS = new Set(['prerouting', 'forward', 'spoof']);

/**
 * What the bridge-family table (anti-spoofing and ICC off, the daemon's table name) still has of
 * container ports: elements of its maps and sets, and chains beside its fixed ones. Empty when no
 * container is attached, or when the table does not exist.
 */
export function spoofLeftovers(table: string, ns: string | null = null): string[] {
  const args = ['-j', 'list', 'table', 'bridge', table];
  const r = ns ? spawnSync('ip', ['netns', 'exec', ns, 'nft', ...args], { encoding: 'utf8' }) : spawnSync('nft', args, { encoding: 'utf8' });
  if (r.status !== 0) return [];
  const objects = (JSON.parse(r.stdout) as { nftables: Record<string, { name: string; elem?: unknown[] }>[] }).nftables;
  return objects.flatMap((o) => [
    ...(o.map?.elem ?? []).map((e) => `anti-spoofing ${o.map.name}: ${JSON.stringify(e)}`),
    ...(o.set?.elem ?? []).map((e) => `bridge-family set ${o.set.name}: ${JSON.stringify(e)}`),
    ...(o.chain && !FIXED_BRIDGE_CHAINS.has(o.chain.name) ? [`anti-spoofing chain ${o.chain.name}`] : []),
  ]);
}

/** Link names a network's configuration names (bridge, VXLAN device, macvlan shim or isolated parent). */
function linksOfNetwork(config: Record<string, unknown>): string[] {
  const overlay = config.overlay as { vxlan?: string } | undefined;
  const shim = config.shim as { name?: string } | undefined;
  return [config.bridge, overlay?.vxlan, shim?.name, config.parent].filter((x): x is string => typeof x === 'string');
}

export function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

/**
 * The errors in a daemon's log: lines saying "internal error" and every line logged at level
 * error or above (pino's 50), such as a CNI command that failed inside tsnet, whose line carries
 * the original error rather than those words.
 */
export function daemonLogErrors(logPath: string): string[] {
  const atErrorLevel = readFileSync(logPath, 'utf8')
    .split('\n')
    .filter((line) => {
      try {
        return ((JSON.parse(line) as { level?: number }).level ?? 0) >= 50;
      } catch {
        return false;
      }
    });
  return [...new Set([...internalErrors(logPath), ...atErrorLevel])];
}
