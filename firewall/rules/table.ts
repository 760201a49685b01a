// The fixed part of the table: its sets and maps (empty), its base chains and their rules. It is
// the same for every host and never changes while the daemon runs; networks and published ports
// only add elements to it (networks.ts, ports.ts). The why of each rule is in ../ruleset.ts.
import { ACCEPT_MARK, addrType, DOCKER_BRIDGES, FAMILIES, ipKeyword, PUBLISHED_MARK, SETS, type TableRef } from './names.js';

/** The empty table: sets, maps, chains and their fixed rules, no elements. */
export function tableRules(t: TableRef): string {
  return [
    `add table ${t} { comment "tsnet container networks: NAT, published ports, isolation. Managed by the tsnet daemon: it undoes changes by others."; }`,
    ...declarations(t),
    ...dnatChains(t),
    ...srcnatChain(t),
    ...forwardChain(t),
    ...inputChain(t),
    ...tunnelChains(t),
  ].join('\n');
}

/** The sets and maps networks and published ports are elements of. */
function declarations(t: TableRef): string[] {
  const lines = [
    `add set ${t} ${SETS.bridges} { type ifname; comment "every tsnet bridge"; }`,
    `add set ${t} ${SETS.bridgePairs} { type ifname . ifname; comment "traffic that stays on its bridge"; }`,
    `add set ${t} ${SETS.internal} { type ifname; comment "bridges of internal networks"; }`,
    `add set ${t} ${SETS.noIcc} { type ifname; comment "bridges whose containers may not reach each other (ICC off)"; }`,
  ];
  for (const f of FAMILIES) {
    lines.push(`add set ${t} ${SETS.subnets[f]} { type ${addrType(f)} . ifname; flags interval; comment "each subnet with its own bridge"; }`);
  }
  for (const f of FAMILIES) {
    lines.push(`add set ${t} ${SETS.masq[f]} { type ${addrType(f)}; flags interval; comment "subnets masqueraded when leaving by another interface"; }`);
  }
  lines.push(`add set ${t} ${SETS.tunnels} { typeof ip daddr . udp dport . @th,96,24; comment "each overlay's VXLAN tunnel on this host: local VTEP . UDP port . VNI"; }`);
  for (const f of FAMILIES) {
    const addr = addrType(f);
    lines.push(`add map ${t} ${SETS.hostPorts[f]} { type ${addr} . inet_proto . inet_service : ${addr} . inet_service; comment "published ports on one host address"; }`);
    lines.push(`add map ${t} ${SETS.anyPorts[f]} { type inet_proto . inet_service : ${addr} . inet_service; comment "published ports on every host address"; }`);
  }
  return lines;
}

/** DNAT of published ports: from elsewhere (prerouting) and from the host itself (output). */
function dnatChains(t: TableRef): string[] {
  const lines = [
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
    `add chain ${t} published`,
    // loopback destinations arrive from outside only by forgery (or through route_localnet): never DNAT them
    `add rule ${t} prerouting ip daddr 127.0.0.0/8 return`,
    `add rule ${t} prerouting fib daddr type local jump published`,
    `add rule ${t} output ip6 daddr ::1 return comment "no route_localnet for IPv6"`,
    `add rule ${t} output fib daddr type local jump published`,
    // after DNAT, on every packet (nat chains see only a connection's first): see PUBLISHED_MARK
    `add chain ${t} markpublished { type filter hook prerouting priority dstnat + 1; policy accept; }`,
    `add rule ${t} markpublished ct status dnat meta mark set meta mark | ${PUBLISHED_MARK}`,
  ];
  for (const f of FAMILIES) {
    const ip = ipKeyword(f);
    const nfproto = f === 4 ? 'ipv4' : 'ipv6';
    // a lookup that misses ends the rule, not the chain: the next rule is tried
    lines.push(`add rule ${t} published dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${SETS.hostPorts[f]}`);
    lines.push(`add rule ${t} published meta nfproto ${nfproto} dnat ${ip} to meta l4proto . th dport map @${SETS.anyPorts[f]}`);
  }
  return lines;
}

/** Source NAT: loopback and hairpin connections to published ports, and traffic leaving a network. */
function srcnatChain(t: TableRef): string[] {
  const lines = [
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add rule ${t} postrouting ct status dnat ip saddr 127.0.0.0/8 masquerade comment "host to a published port through 127.0.0.1"`,
  ];
  for (const f of FAMILIES) {
    const ip = ipKeyword(f);
    // The source's own network and the outgoing bridge match: hairpin when DNATed (a container
    // reaching a published port of its own network through a host address; without masquerade
    // the answer would go straight back over the bridge, bypassing the reverse NAT), else the
    // packet stays on its bridge and keeps its address.
    lines.push(`add rule ${t} postrouting ct status dnat ${ip} saddr . oifname @${SETS.subnets[f]} masquerade comment "hairpin"`);
    lines.push(`add rule ${t} postrouting ${ip} saddr . oifname @${SETS.subnets[f]} return`);
    lines.push(`add rule ${t} postrouting ${ip} saddr @${SETS.masq[f]} masquerade comment "leaving its network"`);
  }
  return lines;
}

/**
 * Forwarding: isolation between networks, internal networks, ICC off; everything else is the
 * host's business. What tsnet admits is marked (ACCEPT_MARK) for its rules in Docker's chains. The
 * chain runs just before iptables' filter chains (priority filter - 1) so the mark is there when
 * Docker's FORWARD looks. Traffic between a tsnet network and one of Docker's bridges
 * (DOCKER_BRIDGES) is accepted here unmarked, so Docker's own rules decide it as they decide traffic
 * between two of Docker's networks: only published ports pass, and Docker's internal networks stay
 * closed both ways.
 */
function forwardChain(t: TableRef): string[] {
  const admit = `meta mark set meta mark | ${ACCEPT_MARK} accept`;
  return [
    `add chain ${t} forward { type filter hook forward priority filter - 1; policy accept; }`,
    ...[
      `iifname != @${SETS.bridges} oifname != @${SETS.bridges} accept comment "not tsnet traffic"`,
      `ct state established,related ${admit}`,
      `iifname . oifname @${SETS.bridgePairs} iifname @${SETS.noIcc} ct status ! dnat drop comment "ICC off: not between containers, even routed through the gateway"`,
      `iifname . oifname @${SETS.bridgePairs} ${admit} comment "stays on its bridge"`,
      `iifname @${SETS.internal} drop comment "out of an internal network"`,
      `oifname @${SETS.internal} drop comment "into an internal network"`,
      `ct status dnat iifname != @${SETS.bridges} iifname ${DOCKER_BRIDGES} accept comment "to a published port from one of Docker's networks: Docker's rules decide"`,
      `ct status dnat ${admit} comment "to a published port"`,
      `oifname @${SETS.bridges} drop comment "into a network from another network or from outside, unpublished"`,
      `oifname ${DOCKER_BRIDGES} accept comment "out of a network into one of Docker's: Docker's rules decide"`,
      `${admit} comment "out of a network"`,
    ].map((rule) => `add rule ${t} forward ${rule}`),
  ];
}

/**
 * The overlays' VXLAN packets (to and from this host's VTEP on the overlay's port, with its VNI:
 * the 24 bits after the VXLAN header's first 4 bytes) are not tracked, as Calico, Cilium and
 * OpenShift do: each inner flow is a one-way UDP "connection" per direction that conntrack would
 * keep as an unreplied entry, and every packet would pay the lookup and the NAT hooks (issue 14:
 * the overlay's cost per packet). Before conntrack (priority raw), only tsnet's own tunnels.
 */
function tunnelChains(t: TableRef): string[] {
  const key = `udp dport . @th,96,24 @${SETS.tunnels}`;
  return [
    `add chain ${t} tunnel_in { type filter hook prerouting priority raw; policy accept; }`,
    `add rule ${t} tunnel_in ip daddr . ${key} notrack comment "an overlay's VXLAN packets arriving"`,
    `add chain ${t} tunnel_out { type filter hook output priority raw; policy accept; }`,
    `add rule ${t} tunnel_out ip saddr . ${key} notrack comment "an overlay's VXLAN packets leaving"`,
  ];
}

/** The host's loopback, guarded against what route_localnet lets in. */
function inputChain(t: TableRef): string[] {
  return [
    `add chain ${t} input { type filter hook input priority filter; policy accept; }`,
    `add rule ${t} input iifname @${SETS.bridges} ip daddr 127.0.0.0/8 ct status ! dnat drop comment "loopback addresses from a bridge"`,
  ];
}
