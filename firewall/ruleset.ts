// tsnet's nftables rules as text, computed by pure functions from networks and port mappings.
// Everything lives in one table, `inet tsnet`; no other table is touched here (the rules Docker's
// iptables needs are in docker-compat.ts).
//
// Layout, and why it is shaped this way:
//
// * The rules are fixed. What changes as networks and containers come and go are set and map
//   elements, so every change is a handful of element adds or deletes in one transaction, never a
//   chain rewrite, and a packet's path does not grow with the number of networks or ports: each
//   test below is one hash (or interval tree) lookup.
//
// * Per-network behaviour is expressed as membership of the network's bridge (and subnets) in a
//   few sets, rather than as per-network chains behind verdict maps. The forward decisions
//   (same bridge? internal? between two tsnet bridges? into a bridge from elsewhere?) are the
//   same for every network, so sets keyed by interface name say everything a chain per network
//   would, with fewer objects to create and delete and nothing to keep in step.
//
//     bridges         every tsnet bridge
//     bridge_pairs    "br . br" for every bridge: traffic that stays on its bridge (seen in the
//                     forward hook only when br_netfilter is on, as Docker leaves it, or for
//                     hairpin traffic routed back out the bridge it came in on)
//     internal        bridges of internal networks: no forwarding in or out
//     subnets4/6      "subnet . bridge": a network's subnets with its own bridge
//     masq4/6         subnets whose traffic is masqueraded when it leaves by another interface
//     hostports4/6    "host address . protocol . port" -> "container address . port"
//     anyports4/6     "protocol . port" -> "container address . port" (every host address)
//
// * Published ports are DNATed in prerouting (traffic from elsewhere, including containers) and
//   in output (the host's own processes) for destinations of type local. Reaching one from the
//   host through 127.0.0.1 works because the DNATed connection's loopback source is masqueraded
//   on the way out to the bridge; that needs net.ipv4.conf.<bridge>.route_localnet=1, which the
//   bridge driver sets, as the kernel otherwise refuses to route loopback addresses off `lo`.
//   Because route_localnet also lets packets addressed to 127.0.0.0/8 arrive on the bridge, the
//   input chain drops such packets unless they belong to one of those DNATed connections (the
//   replies), so containers cannot reach services the host keeps on its loopback.
//   IPv6 has no route_localnet: [::1] is not DNATed (a connection there is refused rather than
//   lost); use the host's own IPv6 address instead.
//
// * Hairpin traffic is masqueraded here, but a container reaching its *own* published port also
//   needs hairpin mode on its bridge port when br_netfilter is on (as Docker leaves it): the
//   DNATed packet is then bridged back out the port it came in on, which the bridge otherwise
//   refuses. That is a bridge port flag, set by the driver, not a rule.
//
// * An accept here ends the packet's walk through this table only. Another table's drop at the
//   same hook (Docker's iptables `filter FORWARD` policy) still drops it, hence docker-compat.ts.
//
// * Internal networks and isolation are enforced in the forward chain, whose policy is accept so
//   that traffic not involving a tsnet bridge is left entirely to the host's own rules.
import { checkCidr, checkIfname, checkIp, checkPort, checkProto, type Family } from './addr.js';
import { FirewallInputError, type FirewallNetwork, type PortMapping } from './model.js';

export const TABLE_FAMILY = 'inet';
/** The default table; a daemon registered under another plugin name has a table of its own. */
export const TABLE_NAME = 'tsnet';

/** Names of the sets and maps, for listings and tests. */
export const SETS = {
  bridges: 'bridges',
  bridgePairs: 'bridge_pairs',
  internal: 'internal',
  subnets: { 4: 'subnets4', 6: 'subnets6' },
  masq: { 4: 'masq4', 6: 'masq6' },
  hostPorts: { 4: 'hostports4', 6: 'hostports6' },
  anyPorts: { 4: 'anyports4', 6: 'anyports6' },
} as const;

export interface MappingElement {
  map: string;
  key: string;
  value: string;
}

/**
 * The rule text of one table. Everything below reads the table name from here; the functions
 * exported at the bottom are those of the default table.
 */
export function rulesFor(tableName: string = TABLE_NAME) {
  if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(tableName)) throw new FirewallInputError(`invalid nftables table name '${tableName}'`);
  const T = `${TABLE_FAMILY} ${tableName}`;

  // ------------------------------------------------------------------------------- whole table

  /**
   * The whole table with every network and mapping, replacing whatever table of that name exists,
   * in one transaction (`add` first so that `delete` cannot fail on a host without the table).
   * Connections already NATed keep working: their translations live in conntrack, not here.
   */
  function fullTable(networks: FirewallNetwork[], mappings: PortMapping[]): string {
    return [
      `add table ${T}`,
      `delete table ${T}`,
      createTable(),
      ...networks.map((n) => addNetwork(n)),
      addMappings(mappings),
    ]
      .filter((s) => s !== '')
      .join('\n');
  }

  /** The empty table: sets, maps, chains and their fixed rules, no elements. */
  function createTable(): string {
    const lines: string[] = [];
    const add = (s: string) => lines.push(s);

    add(`add table ${T} { comment "tsnet container networks: NAT, published ports, isolation. Managed by the tsnet daemon; edits are lost at its next start."; }`);

    add(`add set ${T} ${SETS.bridges} { type ifname; comment "every tsnet bridge"; }`);
    add(`add set ${T} ${SETS.bridgePairs} { type ifname . ifname; comment "traffic that stays on its bridge"; }`);
    add(`add set ${T} ${SETS.internal} { type ifname; comment "bridges of internal networks"; }`);
    for (const f of [4, 6] as const) {
      add(`add set ${T} ${SETS.subnets[f]} { type ${addrType(f)} . ifname; flags interval; comment "each subnet with its own bridge"; }`);
    }
    for (const f of [4, 6] as const) {
      add(`add set ${T} ${SETS.masq[f]} { type ${addrType(f)}; flags interval; comment "subnets masqueraded when leaving by another interface"; }`);
    }
    for (const f of [4, 6] as const) {
      const addr = addrType(f);
      add(`add map ${T} ${SETS.hostPorts[f]} { type ${addr} . inet_proto . inet_service : ${addr} . inet_service; comment "published ports on one host address"; }`);
      add(`add map ${T} ${SETS.anyPorts[f]} { type inet_proto . inet_service : ${addr} . inet_service; comment "published ports on every host address"; }`);
    }

    // --- DNAT of published ports
    add(`add chain ${T} prerouting { type nat hook prerouting priority dstnat; policy accept; }`);
    add(`add chain ${T} output { type nat hook output priority -100; policy accept; }`);
    add(`add chain ${T} published`);
    // loopback destinations arrive from outside only by forgery (or through route_localnet): never DNAT them
    add(`add rule ${T} prerouting ip daddr 127.0.0.0/8 return`);
    add(`add rule ${T} prerouting fib daddr type local jump published`);
    add(`add rule ${T} output ip6 daddr ::1 return comment "no route_localnet for IPv6"`);
    add(`add rule ${T} output fib daddr type local jump published`);
    for (const f of [4, 6] as const) {
      const ip = f === 4 ? 'ip' : 'ip6';
      const nfproto = f === 4 ? 'ipv4' : 'ipv6';
      // a lookup that misses ends the rule, not the chain: the next rule is tried
      add(`add rule ${T} published dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${SETS.hostPorts[f]}`);
      add(`add rule ${T} published meta nfproto ${nfproto} dnat ${ip} to meta l4proto . th dport map @${SETS.anyPorts[f]}`);
    }

    // --- source NAT
    add(`add chain ${T} postrouting { type nat hook postrouting priority srcnat; policy accept; }`);
    add(`add rule ${T} postrouting ct status dnat ip saddr 127.0.0.0/8 masquerade comment "host to a published port through 127.0.0.1"`);
    for (const f of [4, 6] as const) {
      const ip = f === 4 ? 'ip' : 'ip6';
      // The source's own network and the outgoing bridge match: hairpin when DNATed (a container
      // reaching a published port of its own network through a host address; without masquerade
      // the answer would go straight back over the bridge, bypassing the reverse NAT), else the
      // packet stays on its bridge and keeps its address.
      add(`add rule ${T} postrouting ct status dnat ${ip} saddr . oifname @${SETS.subnets[f]} masquerade comment "hairpin"`);
      add(`add rule ${T} postrouting ${ip} saddr . oifname @${SETS.subnets[f]} return`);
      add(`add rule ${T} postrouting ${ip} saddr @${SETS.masq[f]} masquerade comment "leaving its network"`);
    }

    // --- forwarding: isolation and internal networks
    add(`add chain ${T} forward { type filter hook forward priority filter; policy accept; }`);
    const fwd = (rule: string) => add(`add rule ${T} forward ${rule}`);
    fwd(`iifname != @${SETS.bridges} oifname != @${SETS.bridges} accept comment "not tsnet traffic"`);
    fwd(`ct state established,related accept`);
    fwd(`iifname . oifname @${SETS.bridgePairs} accept comment "stays on its bridge"`);
    fwd(`iifname @${SETS.internal} drop comment "out of an internal network"`);
    fwd(`oifname @${SETS.internal} drop comment "into an internal network"`);
    fwd(`ct status dnat accept comment "to a published port"`);
    fwd(`oifname @${SETS.bridges} drop comment "into a network from another network or from outside, unpublished"`);
    fwd(`accept comment "out of a network"`);

    // --- the host's loopback, guarded against what route_localnet lets in
    add(`add chain ${T} input { type filter hook input priority filter; policy accept; }`);
    add(`add rule ${T} input iifname @${SETS.bridges} ip daddr 127.0.0.0/8 ct status ! dnat drop comment "loopback addresses from a bridge"`);

    return lines.join('\n');
  }

  // ------------------------------------------------------------------------------- networks

  interface NetworkElements {
    bridge: string;
    subnets: { cidr: string; family: Family }[];
  }

  function networkElements(n: FirewallNetwork): NetworkElements {
    return { bridge: checkIfname(n.bridge), subnets: n.subnets.map((s) => checkCidr(s)) };
  }

  /**
   * Elements of one network. Idempotent and convergent: every element the network could have is
   * first removed (`add` + `delete`, which works whether or not it exists), then the wanted ones
   * are added, so re-adding a network whose flags changed leaves exactly the new state.
   */
  function addNetwork(n: FirewallNetwork): string {
    const e = networkElements(n);
    return [removeElements(e), addElements(e, n)].join('\n');
  }

  /** Removes every element of one network; no error when some or all are already gone. */
  function removeNetwork(n: FirewallNetwork): string {
    return removeElements(networkElements(n));
  }

  function addElements(e: NetworkElements, n: FirewallNetwork): string {
    const lines: string[] = [];
    const q = quote(e.bridge);
    lines.push(`add element ${T} ${SETS.bridges} { ${q} }`);
    lines.push(`add element ${T} ${SETS.bridgePairs} { ${q} . ${q} }`);
    if (n.internal) lines.push(`add element ${T} ${SETS.internal} { ${q} }`);
    for (const s of e.subnets) {
      lines.push(`add element ${T} ${SETS.subnets[s.family]} { ${s.cidr} . ${q} }`);
      if (n.masquerade && !n.internal) lines.push(`add element ${T} ${SETS.masq[s.family]} { ${s.cidr} }`);
    }
    return lines.join('\n');
  }

  function removeElements(e: NetworkElements): string {
    const q = quote(e.bridge);
    const items: [string, string][] = [
      [SETS.bridges, q],
      [SETS.bridgePairs, `${q} . ${q}`],
      [SETS.internal, q],
    ];
    for (const s of e.subnets) {
      items.push([SETS.subnets[s.family], `${s.cidr} . ${q}`]);
      items.push([SETS.masq[s.family], s.cidr]);
    }
    return items.map(([set, el]) => `add element ${T} ${set} { ${el} }\ndelete element ${T} ${set} { ${el} }`).join('\n');
  }

  // ------------------------------------------------------------------------------- published ports


  /** Where a mapping lives and its element text; throws FirewallInputError on bad input. */
  function mappingElement(m: PortMapping): MappingElement {
    const proto = checkProto(m.proto);
    const hostPort = checkPort(m.hostPort, 'host port');
    const containerPort = checkPort(m.containerPort, 'container port');
    const ctr = checkIp(m.containerIp, 'container address');
    const value = `${ctr.ip} . ${containerPort}`;
    if (m.hostIp === '') {
      return { map: SETS.anyPorts[ctr.family], key: `${proto} . ${hostPort}`, value };
    }
    const host = checkIp(m.hostIp, 'host address');
    if (host.family !== ctr.family) {
      throw new FirewallInputError(
        `cannot forward host address ${m.hostIp} to container address ${m.containerIp}: NAT cannot change the address family`,
      );
    }
    return { map: SETS.hostPorts[host.family], key: `${host.ip} . ${proto} . ${hostPort}`, value };
  }

  /** One `add element` per map holding all its new elements. */
  function addMappings(ms: PortMapping[]): string {
    const byMap = new Map<string, string[]>();
    for (const m of ms) {
      const e = mappingElement(m);
      const list = byMap.get(e.map) ?? [];
      list.push(`${e.key} : ${e.value}`);
      byMap.set(e.map, list);
    }
    return [...byMap].map(([map, els]) => `add element ${T} ${map} { ${els.join(', ')} }`).join('\n');
  }

  /**
   * Removes mappings; a mapping already gone is no error (`add` + `delete`). A key that now maps to
   * a different container fails the whole transaction instead of deleting what another endpoint
   * published; firewall.ts then sorts out which elements to delete.
   */
  function removeMappings(ms: PortMapping[]): string {
    const byMap = new Map<string, { full: string[]; keys: string[] }>();
    for (const m of ms) {
      const e = mappingElement(m);
      const entry = byMap.get(e.map) ?? { full: [], keys: [] };
      entry.full.push(`${e.key} : ${e.value}`);
      entry.keys.push(e.key);
      byMap.set(e.map, entry);
    }
    return [...byMap]
      .map(([map, { full, keys }]) => `add element ${T} ${map} { ${full.join(', ')} }\ndelete element ${T} ${map} { ${keys.join(', ')} }`)
      .join('\n');
  }

  /** Deletes elements by key, for keys known to exist. */
  function deleteMappingKeys(elements: MappingElement[]): string {
    const byMap = new Map<string, string[]>();
    for (const e of elements) byMap.set(e.map, [...(byMap.get(e.map) ?? []), e.key]);
    return [...byMap].map(([map, keys]) => `delete element ${T} ${map} { ${keys.join(', ')} }`).join('\n');
  }

  return { tableName, fullTable, createTable, addNetwork, removeNetwork, mappingElement, addMappings, removeMappings, deleteMappingKeys };
}

export type Ruleset = ReturnType<typeof rulesFor>;

export const { fullTable, createTable, addNetwork, removeNetwork, mappingElement, addMappings, removeMappings, deleteMappingKeys } = rulesFor(TABLE_NAME);

// ------------------------------------------------------------------------------- helpers

function addrType(f: Family): string {
  return f === 4 ? 'ipv4_addr' : 'ipv6_addr';
}

/** A checked interface name as an nft string. */
function quote(name: string): string {
  return `"${name}"`;
}

export { FirewallInputError };
