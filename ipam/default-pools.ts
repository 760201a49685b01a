// The subnets tsnet chooses from when RequestPool comes without a Pool, and the search for one that
// is free. A default pool is a base CIDR cut into subnets of one size, tried in order.
//
// Defaults (configurable through IpamConfig.defaultPools):
//  - local IPv4: 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/16 in /20 steps (31 subnets, the
//    same ranges as Docker's local default, so users find the addresses they expect);
//  - global IPv4: 10.0.0.0/8 in /24 steps (for cluster-wide networks);
//  - IPv6 (any address space): the /64s of a ULA /48 (RFC 4193) derived from /etc/machine-id, stable
//    across restarts and different on every host.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { bitsOf, formatCidr, lastOf, networkOf, parseCidr, toNetwork, type Cidr, type Family } from './address.js';
import { UserError } from '../core/errors.js';

export interface DefaultPool {
  /** CIDR to cut subnets from, e.g. "192.168.0.0/16" */
  base: string;
  /** prefix length of each subnet, e.g. 20 */
  size: number;
}

export const LOCAL_DEFAULT_POOLS: readonly DefaultPool[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/15', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

export const GLOBAL_DEFAULT_POOLS: readonly DefaultPool[] = [{ base: '10.0.0.0/8', size: 24 }];

/** The ULA /48 of this host: "fd" and 40 bits of a hash of the machine ID. */
export function ulaPrefix(machineId: string): string {
  const h = createHash('sha256').update(`tsnet-ula:${machineId.trim()}`).digest();
  const g = (i: number) => ((h[i]! << 8) | h[i + 1]!).toString(16);
  // fdXX:XXXX:XXXX::/48 with XX.. = the first 40 bits of the hash
  return formatCidr(parseCidr(`${(0xfd00 | h[0]!).toString(16)}:${g(1)}:${g(3)}::/48`));
}

export function ipv6DefaultPools(machineId: string): DefaultPool[] {
  return [{ base: ulaPrefix(machineId), size: 64 }];
}

/** /etc/machine-id (or D-Bus's copy); the host name when neither exists. */
export function readMachineId(): string {
  for (const path of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const id = readFileSync(path, 'utf8').trim();
      if (id) return id;
    } catch {
      // try the next one
    }
  }
  return hostname();
}

export interface ParsedDefaultPool {
  base: Cidr;
  size: number;
}

/** Validates a default pool list; throws UserError naming the bad entry. */
export function parseDefaultPools(list: readonly DefaultPool[]): ParsedDefaultPool[] {
  return list.map((p) => {
    const base = parseCidr(p.base);
    if (!Number.isInteger(p.size) || p.size < base.prefix || p.size > bitsOf(base.family)) {
      throw new UserError(`default pool ${p.base}: size ${p.size} must be a prefix length between ${base.prefix} and ${bitsOf(base.family)}`);
    }
    return { base: toNetwork(base), size: p.size };
  });
}

/**
 * The first subnet of the default pools of `family` that overlaps none of `excluded`; undefined
 * when every one does. Skips past an excluded prefix in one step, so a /8 cut into /24s costs
 * time in proportion to the excluded prefixes, not to the 65536 candidates.
 */
export function findFreeSubnet(pools: readonly ParsedDefaultPool[], family: Family, excluded: readonly Cidr[]): Cidr | undefined {
  const ex = excluded.filter((e) => e.family === family).map((e) => [networkOf(e), lastOf(e)] as const);
  for (const { base, size } of pools) {
    if (base.family !== family) continue;
    const block = 1n << BigInt(bitsOf(family) - size);
    const end = lastOf(base);
    let cur = networkOf(base);
    while (cur <= end) {
      const hi = cur + block - 1n;
      let blockedTo = -1n;
      for (const [elo, ehi] of ex) if (elo <= hi && cur <= ehi && ehi > blockedTo) blockedTo = ehi;
      if (blockedTo < 0n) return { family, address: cur, prefix: size };
      const next = blockedTo + 1n > hi + 1n ? blockedTo + 1n : hi + 1n;
      cur = ((next + block - 1n) / block) * block;
    }
  }
  return undefined;
}
