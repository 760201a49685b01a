// The bridge-family table beside the inet one (same name): what is decided per frame on tsnet's
// bridges. ICC off: nothing passes between two ports of such a bridge (containers, the overlay's
// VXLAN port) but the translated frames of a published port reached through a host address, as
// Docker allows; done here rather than by bridge port isolation, which dropped those too.
// Anti-spoofing: a container may send only from its own MAC and addresses on its tsnet interface.
// Enforced where its frames enter the bridge: one chain per container port with its own MAC and addresses as constants, reached
// through one verdict-map lookup keyed by the port's name, so a frame's cost does not grow with
// the number of containers. Checked: the Ethernet source; ARP's sender MAC and IP; the IPv4 and
// IPv6 source (IPv6 also allows the unspecified address, for duplicate address detection, and the
// link-local address the kernel derives from the MAC); and the target of IPv6 neighbour
// advertisements, which would otherwise let a container claim another's IPv6 address.
import { checkIfname, checkIp } from '../addr.js';
import { FirewallInputError, type FirewallEndpoint } from '../model.js';
import { PUBLISHED_MARK, quote, type TableRef } from './names.js';

/** The verdict map from a container port to its chain. */
export const PORTS_MAP = 'spoof_ports';
/** Container ports of networks with ICC off. */
export const NO_ICC_SET = 'no_icc_ports';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** The empty bridge-family table: the map and the hook that looks each frame's port up in it. */
export function spoofTableRules(t: TableRef): string {
  return [
    `add table ${t} { comment "tsnet per-port rules: anti-spoofing, ICC off. Managed by the tsnet daemon: it undoes changes by others."; }`,
    `add map ${t} ${PORTS_MAP} { type ifname : verdict; comment "container port -> its chain"; }`,
    // before the bridge decides anything (priority -300): a forged frame never reaches a peer or the host
    `add chain ${t} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `add rule ${t} prerouting iifname vmap @${PORTS_MAP}`,
    `add set ${t} ${NO_ICC_SET} { type ifname; comment "container ports of networks with ICC off"; }`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    // Whatever a container of an ICC-off network sends to another port of its bridge (a peer, the
    // overlay's VXLAN port) is dropped; each host does it for its own containers. A published port
    // reached through a host address is bridged from port to port when br_netfilter is on (Docker
    // leaves it on): the inet table marks those packets (PUBLISHED_MARK; no conntrack here).
    `add rule ${t} forward iifname @${NO_ICC_SET} meta mark & ${PUBLISHED_MARK} == ${PUBLISHED_MARK} accept comment "ICC off: a published port through a host address"`,
    `add rule ${t} forward iifname @${NO_ICC_SET} drop comment "ICC off: nothing else to another port of the bridge"`,
  ].join('\n');
}

/** The port's chain (replaced whole) and its map element. */
export function addEndpointSpoofRules(t: TableRef, e: FirewallEndpoint): string {
  const q = quote(checkIfname(e.port));
  const icc = [`add element ${t} ${NO_ICC_SET} { ${q} }`, `delete element ${t} ${NO_ICC_SET} { ${q} }`];
  if (e.icc === false) icc.push(`add element ${t} ${NO_ICC_SET} { ${q} }`);
  if (e.antiSpoofing === false) return [removeEndpointSpoofRules(t, e), ...icc].join('\n');
  const { port, chain, mac, ipv4, ipv6 } = checked(e);
  const drop = (match: string, why: string) => `add rule ${t} ${chain} ${match} drop comment "${why}"`;
  const set = (items: string[]) => (items.length === 1 ? items[0] : `{ ${items.join(', ')} }`);
  const lines = [`add chain ${t} ${chain}`, `flush chain ${t} ${chain}`, drop(`ether saddr != ${mac}`, 'not its MAC')];
  if (ipv4.length > 0) {
    lines.push(drop(`arp saddr ether != ${mac}`, 'ARP: not its MAC'), drop(`arp saddr ip != ${set(ipv4)}`, 'ARP: not its address'));
    lines.push(drop(`ip saddr != ${set(ipv4)}`, 'not its IPv4 address'));
  } else {
    lines.push(drop('ether type { arp, ip }', 'no IPv4 address on this network'));
  }
  const own6 = [...ipv6, linkLocalOf(mac)];
  lines.push(drop(`ip6 saddr != ${set(['::', ...own6])}`, 'not its IPv6 address'));
  lines.push(drop(`icmpv6 type nd-neighbor-advert @th,64,128 != ${set(own6.map(asInteger))}`, 'neighbour advertisement for an address not its own'));
  lines.push(`add element ${t} ${PORTS_MAP} { ${quote(port)} : jump ${chain} }`);
  return [...lines, ...icc].join('\n');
}

/** Removes the port's element and chain; no error when they are already gone. */
export function removeEndpointSpoofRules(t: TableRef, e: Pick<FirewallEndpoint, 'port'>): string {
  const port = checkIfname(e.port);
  const chain = chainOf(port);
  // add-then-delete: succeeds whether or not they exist (the jump needs its chain to exist)
  return [
    `add chain ${t} ${chain}`,
    `add element ${t} ${PORTS_MAP} { ${quote(port)} : jump ${chain} }`,
    `delete element ${t} ${PORTS_MAP} { ${quote(port)} }`,
    `flush chain ${t} ${chain}`,
    `delete chain ${t} ${chain}`,
    `add element ${t} ${NO_ICC_SET} { ${quote(port)} }`,
    `delete element ${t} ${NO_ICC_SET} { ${quote(port)} }`,
  ].join('\n');
}

const PORT_CHAIN_PREFIX = 'port_';

function chainOf(port: string): string {
  return `${PORT_CHAIN_PREFIX}${port.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** Whether a chain of the bridge-family table is a container port's own (made and removed with its endpoint). */
export function isPortChain(name: string): boolean {
  return name.startsWith(PORT_CHAIN_PREFIX);
}

function checked(e: FirewallEndpoint): { port: string; chain: string; mac: string; ipv4: string[]; ipv6: string[] } {
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
  return { port, chain: chainOf(port), mac, ipv4, ipv6 };
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
