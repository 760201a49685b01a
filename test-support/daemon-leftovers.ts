// What a tsnet daemon under test must have let go of once everything a test file made through it
// is removed: no element in any set or map of its nftables table, no host link tagged with its
// name, no row in `tsnet status`, every host port it held bindable again; and no "internal
// error" in its log. A test file looks at these BEFORE its clean-up drops the table, so a leak is
// seen instead of swept away (issue 10, items 4 and 5). Plain functions over the real host,
// usable by any layer that runs a daemon of its own.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { dockerChainRulesTaggedBy, repoRoot, run, sh } from './commands.js';

/** What names a daemon's belongings on the host (daemon/paths.ts instanceOf). */
export interface DaemonIdentity {
  /** plugin name: the prefix "<instance>:" of its links' aliases */
  instance: string;
  /** its nftables table, in family inet */
  table: string;
  stateDir: string;
}

export interface HostPort {
  proto: 'tcp' | 'udp';
  port: number;
  /** address to bind; default 0.0.0.0. An IPv6 address is bound IPv6-only. */
  host?: string;
}

/** `tsnet status --json`, the fields the tests look at. */
export interface DaemonStatus {
  networks: { id: string; driver: string; config: Record<string, unknown> }[];
  endpoints: { id: string; network: string; address: string; config: Record<string, unknown> }[];
  ports: { endpoint: string; network: string; proto: string; port: number; hostIp: string; hostPort: number }[];
}

interface NftSetLike {
  name: string;
  elem?: unknown[];
}

/** Every element of every set and map of an inet table, one line each: `anyports4: <element>`. */
export function tableElements(table: string): string[] {
  const listing = JSON.parse(sh('nft', ['-j', 'list', 'table', 'inet', table])) as { nftables: Record<string, unknown>[] };
  return listing.nftables.flatMap((o) => {
    const s = (o.set ?? o.map) as NftSetLike | undefined;
    return s?.elem ? s.elem.map((e) => `${s.name}: ${JSON.stringify(e)}`) : [];
  });
}

/** Host links whose alias says this daemon made them ("<instance>:<id>", drivers/owner.ts). */
export function linksTaggedBy(instance: string): string[] {
  const links = JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifname: string; ifalias?: string }[];
  return links.filter((l) => l.ifalias?.startsWith(`${instance}:`)).map((l) => `${l.ifname} (${l.ifalias})`);
}

/** The daemon's state as `tsnet status --json` reads it (works with the daemon down too). */
export function daemonStatus(stateDir: string): DaemonStatus {
  return JSON.parse(sh('node', [join(repoRoot(), 'dist/cli/main.js'), 'status', '--json', '--state-dir', stateDir])) as DaemonStatus;
}

/**
 * Binds the port from this process and lets it go at once: 'free' when that worked, else the
 * error code ('EADDRINUSE' when a socket, e.g. the daemon's reservation, holds it).
 */
export function tryBind(p: HostPort): Promise<string> {
  const host = p.host ?? '0.0.0.0';
  const v6 = host.includes(':');
  return new Promise((resolve) => {
    const failed = (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err));
    if (p.proto === 'udp') {
      const s = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
      s.once('error', (err) => {
        try {
          s.close();
        } catch {
          // never bound: nothing to close
        }
        failed(err);
      });
      s.bind(p.port, host, () => s.close(() => resolve('free')));
    } else {
      const s = createServer();
      s.once('error', failed);
      s.listen({ port: p.port, host, ipv6Only: v6, exclusive: true }, () => s.close(() => resolve('free')));
    }
  });
}

export function describePort(p: HostPort): string {
  return `${p.proto} ${p.host ?? '0.0.0.0'}:${p.port}`;
}

/** Lines of a daemon log that report an internal error (plugin-api/server.ts, core/errors.ts). */
export function internalErrors(logPath: string): string[] {
  let text = '';
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => /internal error/i.test(l));
}

/**
 * Everything the daemon still holds, as readable lines (empty: nothing): set and map elements,
 * tagged links, status rows, and each of `ports` that cannot be bound.
 */
export async function leftoversOf(d: DaemonIdentity, ports: HostPort[]): Promise<string[]> {
  const problems: string[] = [];
  const table = run('nft', ['list', 'table', 'inet', d.table]);
  if (table.code === 0) problems.push(...tableElements(d.table).map((e) => `table element ${e}`));
  problems.push(...linksTaggedBy(d.instance).map((l) => `link ${l}`));
  problems.push(...dockerChainRulesTaggedBy(d.instance).map((r) => `rule in ${r.family} filter ${r.chain}: ${r.comment}`));
  const status = daemonStatus(d.stateDir);
  problems.push(...status.networks.map((n) => `status: network ${n.id.slice(0, 12)} (${n.driver})`));
  problems.push(...status.endpoints.map((e) => `status: endpoint ${e.id.slice(0, 12)} ${e.address}`));
  problems.push(...status.ports.map((p) => `status: port ${p.proto} ${p.hostIp}:${p.hostPort} -> ${p.port}`));
  for (const p of ports) {
    const r = await tryBind(p);
    if (r !== 'free') problems.push(`host port ${describePort(p)} is not free: ${r}`);
  }
  return problems;
}
