// The bridge-family table beside the inet one (same name): what is decided per frame on tsnet's
// bridges. ICC off: nothing passes between two ports of such a bridge (containers, the overlay's
// VXLAN port) but the translated frames of a published port reached through a host address, as
// Docker allows; done here rather than by bridge port isolation, which dropped those too.
// Anti-spoofing: a container may send only from its own MAC and addresses on its tsnet interface.
// Enforced where its frames enter the bridge. Checked: the Ethernet source; ARP's sender MAC and
// IP; the IPv4 and IPv6 source (IPv6 also allows the unspecified address, for duplicate address
// detection, and the link-local address the kernel derives from the MAC); and the target of IPv6
// neighbour advertisements, which would otherwise let a container claim another's IPv6 address.
//
// Layout: one fixed chain (`spoof`) whose rules look "port . source" up in sets keyed by the
// container port's name (port_mac, port_ipv4, ...), entered only for the ports in guarded_ports.
// So a frame costs a few hash lookups whatever the number of containers, and a container port
// coming or going is element adds and deletes only. An older tsnet had a chain per port behind a
// verdict map: libnftables fetches every chain and every set (the anonymous sets of those chains'
// rules included) before it applies any command, so each transaction of the daemon grew with the
// number of containers (11x at 4,000 ports; bench/README.md (f)). Such a table is replaced whole
// at the daemon's start (the host's by the firewall's sync; an overlay's namespace has the per-port
// ingress layout below, drivers/overlay/netns-layout.ts).
import { checkIfname, checkIp } from '../addr.js';
import { FirewallInputError, type FirewallEndpoint } from '../model.js';
import { PUBLISHED_MARK, quote, type TableRef } from './names.js';

/** The container ports under anti-spoofing: only their frames enter the `spoof` chain. */
export const GUARDED_SET = 'guarded_ports';
/** Container ports of networks with ICC off. */
export const NO_ICC_SET = 'no_icc_ports';
/** The chain of checks, the same for every guarded port (its name tells the current layout from an older one). */
export const SPOOF_CHAIN = 'spoof';

/** What each port may send from: sets keyed by "port . value". */
const OWN = {
  mac: 'port_mac',
  ipv4: 'port_ipv4',
  /** its IPv6 addresses, its link-local address and :: */
  ipv6: 'port_ipv6',
  /** the targets its neighbour advertisements may name: its IPv6 and link-local addresses, as 128-bit integers */
  ndTarget: 'port_nd_target',
} as const;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** The empty bridge-family table: the sets, the checks, and the hooks. */
export function spoofTableRules(t: TableRef): string {
  return [
    `add table ${t} { comment "tsnet per-port rules: anti-spoofing, ICC off. Managed by the tsnet daemon: it undoes changes by others."; }`,
    `add set ${t} ${GUARDED_SET} { type ifname; comment "container ports under anti-spoofing"; }`,
    ...ownSets(t),
    // before the bridge decides anything (priority -300): a forged frame never reaches a peer or the host
    `add chain ${t} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add chain ${t} ${SPOOF_CHAIN}`,
    `add rule ${t} prerouting iifname @${GUARDED_SET} jump ${SPOOF_CHAIN}`,
    ...spoofChecks(t),
    ...iccOffRules(t),
  ].join('\n');
}

/** The sets of what each guarded port may send from. */
function ownSets(t: TableRef): string[] {
  return [
    `add set ${t} ${OWN.mac} { type ifname . ether_addr; comment "each guarded port's MAC"; }`,
    `add set ${t} ${OWN.ipv4} { type ifname . ipv4_addr; comment "each guarded port's IPv4 addresses"; }`,
    `add set ${t} ${OWN.ipv6} { type ifname . ipv6_addr; comment "each guarded port's IPv6 addresses, its link-local address and ::"; }`,
    // the target of a neighbour advertisement has no nft keyword in 1.0.6: a raw payload, as an integer
    `add set ${t} ${OWN.ndTarget} { typeof iifname . @th,64,128; comment "the addresses each guarded port may advertise"; }`,
  ];
}

/** The rules of the `spoof` chain (made before): what a guarded port's frame is dropped for. */
function spoofChecks(t: TableRef): string[] {
  const drop = (match: string, why: string) => `add rule ${t} ${SPOOF_CHAIN} ${match} drop comment "${why}"`;
  return [
    drop(`iifname . ether saddr != @${OWN.mac}`, 'not its MAC'),
    drop(`iifname . arp saddr ether != @${OWN.mac}`, 'ARP: not its MAC'),
    // a port without an IPv4 address has no element here: its ARP and IPv4 are dropped whole
    drop(`iifname . arp saddr ip != @${OWN.ipv4}`, 'ARP: not its address'),
    drop(`iifname . ip saddr != @${OWN.ipv4}`, 'not its IPv4 address'),
    drop(`iifname . ip6 saddr != @${OWN.ipv6}`, 'not its IPv6 address'),
    drop(`icmpv6 type nd-neighbor-advert iifname . @th,64,128 != @${OWN.ndTarget}`, 'neighbour advertisement for an address not its own'),
  ];
}

/** ICC off: the set of such ports and the bridge's forward hook that drops what they send to another port. */
function iccOffRules(t: TableRef): string[] {
  return [
    `add set ${t} ${NO_ICC_SET} { type ifname; comment "container ports of networks with ICC off"; }`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    // Whatever a container of an ICC-off network sends to another port of its bridge (a peer, the
    // overlay's VXLAN port) is dropped; each host does it for its own containers. A published port
    // reached through a host address is bridged from port to port when br_netfilter is on (Docker
    // leaves it on): the inet table marks those packets (PUBLISHED_MARK; no conntrack here).
    `add rule ${t} forward iifname @${NO_ICC_SET} meta mark & ${PUBLISHED_MARK} == ${PUBLISHED_MARK} accept comment "ICC off: a published port through a host address"`,
    `add rule ${t} forward iifname @${NO_ICC_SET} drop comment "ICC off: nothing else to another port of the bridge"`,
  ];
}

// ---------------------------------------------------------------- per-port ingress (an overlay's namespace)
//
// In an overlay's namespace the bridge holds one network, and the same checks sit in a
// netdev-family table at each guarded port's own ingress hook instead: only that container's
// frames pass them, and the bridge itself has no netfilter hook at all unless ICC is off (then a
// bridge-family table of its own, iccOffTableRules). A bridge-family hook is run for every frame of
// the bridge, the VXLAN port's too: that cost the overlay about 5% of its throughput
// (bench/README.md (d)). The sets and the `spoof` chain are the same as above; a port's base chain
// only jumps there. Chain names cannot be quoted in nft 1.0.6, so a port's chain is named by the
// hex of the port's name (its hook names the device).

/** The empty netdev-family table of the per-port checks: the sets and the `spoof` chain, no hook yet. */
export function ingressGuardTableRules(t: TableRef): string {
  return [
    `add table ${t} { comment "tsnet anti-spoofing at each container port's ingress. Managed by the tsnet daemon: it undoes changes by others."; }`,
    ...ownSets(t),
    `add chain ${t} ${SPOOF_CHAIN}`,
    ...spoofChecks(t),
  ].join('\n');
}

/** The empty bridge-family table of a network with ICC off (only the forward hook and its set). */
export function iccOffTableRules(t: TableRef): string {
  return [`add table ${t} { comment "tsnet ICC off. Managed by the tsnet daemon: it undoes changes by others."; }`, ...iccOffRules(t)].join('\n');
}

/** A port's elements and its ingress chain; idempotent. With anti-spoofing off, they are removed. */
export function addIngressGuardRules(t: TableRef, e: FirewallEndpoint): string {
  if (e.antiSpoofing === false) return removeIngressGuardRules(t, { port: e.port });
  const c = checked(e);
  const chain = ingressChainOf(c.port);
  return [
    ...ownElements(c, false).map(([set, els]) => `add element ${t} ${set} { ${els.join(', ')} }`),
    `add chain ${t} ${chain} { type filter hook ingress device ${quote(c.port)} priority -500; policy accept; }`,
    `flush chain ${t} ${chain}`,
    `add rule ${t} ${chain} jump ${SPOOF_CHAIN}`,
  ].join('\n');
}

/** Removes a port's ingress chain, and its elements when given the whole endpoint; no error when gone. */
export function removeIngressGuardRules(t: TableRef, e: Pick<FirewallEndpoint, 'port'> | FirewallEndpoint): string {
  const chain = ingressChainOf(checkIfname(e.port));
  const elements = 'mac' in e ? ownElements(checked(e), false).flatMap(([set, els]) => els.map((el) => addThenDelete(t, set, el))) : [];
  return [`add chain ${t} ${chain}`, `delete chain ${t} ${chain}`, ...elements].join('\n');
}

/** A port's membership of the ICC-off set (in iccOffTableRules' table): in when `off`, out otherwise. */
export function iccOffElementRules(t: TableRef, port: string, off: boolean): string {
  const q = quote(checkIfname(port));
  return [addThenDelete(t, NO_ICC_SET, q), ...(off ? [`add element ${t} ${NO_ICC_SET} { ${q} }`] : [])].join('\n');
}

/** The per-port ingress chain of `port` (hex: the name may hold characters nft identifiers cannot). */
export function ingressChainOf(port: string): string {
  return `${INGRESS_CHAIN_PREFIX}${Buffer.from(port).toString('hex')}`;
}

const INGRESS_CHAIN_PREFIX = 'in_';

function addThenDelete(t: TableRef, set: string, el: string): string {
  return `add element ${t} ${set} { ${el} }\ndelete element ${t} ${set} { ${el} }`;
}

/**
 * A container port's elements. Adding what exists already is no error, so this is idempotent;
 * elements of other values the port had are not removed here (the caller removes the port's old
 * endpoint first when it changed: ../firewall.ts).
 */
export function addEndpointSpoofRules(t: TableRef, e: FirewallEndpoint): string {
  const q = quote(checkIfname(e.port));
  const icc = [`add element ${t} ${NO_ICC_SET} { ${q} }`, `delete element ${t} ${NO_ICC_SET} { ${q} }`];
  if (e.icc === false) icc.push(`add element ${t} ${NO_ICC_SET} { ${q} }`);
  // off: the port leaves guarded_ports; its MAC and addresses need not be valid then (the
  // caller removed the elements of a guarded endpoint it had before)
  if (e.antiSpoofing === false) return [removeEndpointSpoofRules(t, { port: e.port }), ...icc].join('\n');
  return [...ownElements(checked(e)).map(([set, els]) => `add element ${t} ${set} { ${els.join(', ')} }`), ...icc].join('\n');
}

/**
 * Removes a container port's anti-spoofing; no error when it is already gone (`add` + `delete`).
 * Given the whole endpoint, every element of it goes; given only the port, the port leaves
 * guarded_ports (no check applies to it any more) and its address elements stay until the table
 * is next written whole: they are keyed by the port's name, which no other endpoint gets.
 */
export function removeEndpointSpoofRules(t: TableRef, e: Pick<FirewallEndpoint, 'port'> | FirewallEndpoint): string {
  const q = quote(checkIfname(e.port));
  const items: [string, string][] = 'mac' in e ? ownElements(checked(e)).flatMap(([set, els]) => els.map((el): [string, string] => [set, el])) : [[GUARDED_SET, q]];
  items.push([NO_ICC_SET, q]);
  return items.map(([set, el]) => addThenDelete(t, set, el)).join('\n');
}

/** The port's elements, set by set; guarded_ports last (when the guard is the bridge's prerouting hook). */
function ownElements(c: CheckedEndpoint, guardedSet = true): [string, string[]][] {
  const q = quote(c.port);
  const own6 = [...c.ipv6, linkLocalOf(c.mac)];
  const out: [string, string[]][] = [[OWN.mac, [`${q} . ${c.mac}`]]];
  if (c.ipv4.length > 0) out.push([OWN.ipv4, c.ipv4.map((ip) => `${q} . ${ip}`)]);
  out.push([OWN.ipv6, ['::', ...own6].map((ip) => `${q} . ${ip}`)]);
  out.push([OWN.ndTarget, own6.map((ip) => `${q} . ${asInteger(ip)}`)]);
  if (guardedSet) out.push([GUARDED_SET, [q]]);
  return out;
}

/** The prefix of the per-port chains an older tsnet made (see the header); only those tables have them. */
const PORT_CHAIN_PREFIX = 'port_';

/** Whether a chain of the bridge-family table is a per-port chain of an older tsnet's layout. */
export function isPortChain(name: string): boolean {
  return name.startsWith(PORT_CHAIN_PREFIX);
}

interface CheckedEndpoint {
  port: string;
  mac: string;
  ipv4: string[];
  ipv6: string[];
}

function checked(e: FirewallEndpoint): CheckedEndpoint {
  const port = checkIfname(e.port);
  const mac = e.mac.toLowerCase();
  if (!MAC.test(mac)) throw new FirewallInputError(`MAC address '${e.mac}' of port ${port} is not six hex bytes`);
  const ipv4 = e.ipv4.map((ip) => {
    const c = checkIp(ip);
    if (c.family !== 4) throw new FirewallInputError(`'${ip}' is not an IPv4 address`);
    return c.ip;
  });
  const ipv6 = e.ipv6.map((ip) => {
    const c = checkIp(ip);
    if (c.family !== 6) throw new FirewallInputError(`'${ip}' is not an IPv6 address`);
    return c.ip;
  });
  return { port, mac, ipv4, ipv6 };
}

/** The EUI-64 link-local address the kernel gives an interface with this MAC (fe80::/64). */
export function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  const eui = [b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]];
  const groups: string[] = [];
  for (let i = 0; i < 8; i += 2) groups.push(((eui[i] << 8) | eui[i + 1]).toString(16));
  return `fe80::${groups.join(':')}`;
}

/** An IPv6 address as the 128-bit integer a raw payload match compares with. */
function asInteger(ip: string): string {
  return `0x${expand(ip)}`;
}

function expand(ip: string): string {
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join('');
}

/**
 * A container port's elements in a table written whole, set by set: what addEndpointSpoofRules
 * leaves in an empty table. The full sync (../ruleset.ts fullTable) writes every port's in one
 * command per set instead of several per port: libnftables parses and allocates per command.
 */
export function endpointSpoofElements(e: FirewallEndpoint): [string, string[]][] {
  const q = quote(checkIfname(e.port));
  const own = e.antiSpoofing === false ? [] : ownElements(checked(e));
  return e.icc === false ? [...own, [NO_ICC_SET, [q]]] : own;
}
