// The vocabulary the rule text is written in: the table's family and default name, the names of
// its sets and maps, and how a checked value is spelled in nft. Shared by table.ts (which declares
// the sets), networks.ts and ports.ts (which fill them). See ../ruleset.ts for why the table is
// laid out this way.
import type { Family } from '../addr.js';

export const TABLE_FAMILY = 'inet';
/** The default table; a daemon registered under another plugin name has a table of its own. */
export const TABLE_NAME = 'tsnet';

/** Names of the sets and maps, for listings and tests. */
export const SETS = {
  bridges: 'bridges',
  bridgePairs: 'bridge_pairs',
  internal: 'internal',
  noIcc: 'no_icc',
  subnets: { 4: 'subnets4', 6: 'subnets6' },
  masq: { 4: 'masq4', 6: 'masq6' },
  hostPorts: { 4: 'hostports4', 6: 'hostports6' },
  anyPorts: { 4: 'anyports4', 6: 'anyports6' },
  /** "local VTEP . UDP port . VNI" of each overlay on this host: its VXLAN packets are not tracked */
  tunnels: 'tunnels4',
} as const;

/**
 * The packet mark tsnet's forward chain sets on the traffic it admits, and the only thing tsnet's
 * rules in Docker's chains accept (docker-compat.ts). An accept in DOCKER-USER ends the packet's
 * walk through Docker's FORWARD, skipping Docker's isolation and internal-network drops, so it must
 * cover nothing tsnet has not decided itself: traffic between a tsnet network and a bridge that is
 * not tsnet's (Docker's own networks) goes unmarked, for Docker's rules to decide. One bit, kept
 * clear of the low bits other tools (kube-proxy, Docker's own fwmark examples) use.
 */
export const ACCEPT_MARK = '0x00540000';

/**
 * Set on every packet of a connection to a published port (ct status dnat), in prerouting: the
 * bridge-family table has no conntrack on this kernel, and with ICC off it must still let through
 * a published port reached through a host address, which br_netfilter bridges from port to port.
 */
export const PUBLISHED_MARK = '0x00080000';

/**
 * The names Docker gives its bridges: docker0 and br-<12 hex digits> for user-defined networks
 * (nft wildcards cannot say "12 hex digits"; a bridge of the host's own named br-... counts too).
 * A Docker network given its own name with com.docker.network.bridge.name is not recognised.
 * Matching by kind instead would also catch a host whose uplink is a bridge (br0 over eth0).
 */
export const DOCKER_BRIDGES = '{ "docker0", "br-*" }';

/** Both address families, in the order the rule text treats them. */
export const FAMILIES = [4, 6] as const;

/**
 * A table as nft commands name it, e.g. `inet tsnet`: every command of the rule text is
 * `VERB KIND ${table} ...`.
 */
export type TableRef = string;

export function addrType(f: Family): string {
  return f === 4 ? 'ipv4_addr' : 'ipv6_addr';
}

/** The nft keyword of the family's header: `ip saddr`, `ip6 saddr`. */
export function ipKeyword(f: Family): 'ip' | 'ip6' {
  return f === 4 ? 'ip' : 'ip6';
}

/** A checked interface name as an nft string. */
export function quote(name: string): string {
  return `"${name}"`;
}
