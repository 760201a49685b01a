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
//
// The text is written by concern in rules/: table.ts (the fixed sets, maps, chains and rules),
// networks.ts (a network's elements), ports.ts (published ports' map elements), over the names in
// names.ts. This file binds them to one table. Golden files of the whole text are in testdata/.
import { FirewallInputError, type FirewallEndpoint, type FirewallNetwork, type PortMapping } from './model.js';
import { addEndpointSpoofRules, endpointSpoofElements, removeEndpointSpoofRules, spoofTableRules } from './rules/spoofing.js';
import { TABLE_FAMILY, TABLE_NAME } from './rules/names.js';
import { tableRules } from './rules/table.js';
import { addNetworkRules, removeNetworkRules } from './rules/networks.js';
import { addMappingRules, deleteMappingKeyRules, mappingElement, removeMappingRules, type MappingElement } from './rules/ports.js';

export { SETS, TABLE_FAMILY, TABLE_NAME } from './rules/names.js';
export type { MappingElement } from './rules/ports.js';

/**
 * The rule text of one table. Everything below reads the table name from here; the functions
 * exported at the bottom are those of the default table.
 */
export function rulesFor(tableName: string = TABLE_NAME) {
  if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(tableName)) throw new FirewallInputError(`invalid nftables table name '${tableName}'`);
  const T = `${TABLE_FAMILY} ${tableName}`;
  /** the anti-spoofing table: the bridge family, the same name (rules/spoofing.ts) */
  const B = `bridge ${tableName}`;

  /** The empty table: sets, maps, chains and their fixed rules, no elements. */
  const createTable = (): string => tableRules(T);
  /** A network's elements, replacing whatever it had (see rules/networks.ts). */
  const addNetwork = (n: FirewallNetwork): string => addNetworkRules(T, n);
  /** Removes a network's elements; no error when some or all are already gone. */
  const removeNetwork = (n: FirewallNetwork): string => removeNetworkRules(T, n);
  /** One `add element` per map holding all its new elements. */
  const addMappings = (ms: PortMapping[]): string => addMappingRules(T, ms);
  /** Removes mappings, leaving keys another container holds now (see rules/ports.ts). */
  const removeMappings = (ms: PortMapping[]): string => removeMappingRules(T, ms);
  /** Deletes elements by key, for keys known to exist. */
  const deleteMappingKeys = (elements: MappingElement[]): string => deleteMappingKeyRules(T, elements);

  /** The empty bridge-family table (anti-spoofing, ICC off). */
  const createSpoofTable = (): string => spoofTableRules(B);
  /** A container port's anti-spoofing elements (idempotent; see rules/spoofing.ts). */
  const addEndpoint = (e: FirewallEndpoint): string => addEndpointSpoofRules(B, e);
  /** Removes a container port's anti-spoofing (all its elements when given the whole endpoint); no error when already gone. */
  const removeEndpoint = (e: Pick<FirewallEndpoint, 'port'> | FirewallEndpoint): string => removeEndpointSpoofRules(B, e);

  /**
   * Both tables with every network, mapping and container port, replacing whatever tables of that
   * name exist, in one transaction (`add` first so that `delete` cannot fail on a host without
   * them). Connections already NATed keep working: their translations live in conntrack, not here.
   * The container ports' elements go in one command per set (thousands of ports: the daemon's
   * start writes this; bench/README.md (f)).
   */
  function fullTable(networks: FirewallNetwork[], mappings: PortMapping[], endpoints: FirewallEndpoint[] = []): string {
    return [inetTable(networks, mappings), bridgeTable(endpoints)].join('\n');
  }

  // The two tables hold nothing of each other: each can also be written whole on its own, side by
  // side (the daemon's start: firewall.ts syncDetached).

  /** The inet table whole: networks and published ports (replacing one that exists). */
  function inetTable(networks: FirewallNetwork[], mappings: PortMapping[]): string {
    return script([`add table ${T}`, `delete table ${T}`, createTable(), ...networks.map(addNetwork), addMappings(mappings)]);
  }

  /** The bridge table whole: the container ports' anti-spoofing and ICC off (replacing one that exists). */
  function bridgeTable(endpoints: FirewallEndpoint[]): string {
    return script([`add table ${B}`, `delete table ${B}`, createSpoofTable(), ...endpointElements(endpoints)]);
  }

  /** Every port's elements, one `add element` per set (ports in order, each port's elements in order). */
  function endpointElements(endpoints: FirewallEndpoint[]): string[] {
    const bySet = new Map<string, string[]>();
    for (const e of endpoints) {
      for (const [set, els] of endpointSpoofElements(e)) {
        const list = bySet.get(set);
        if (list) list.push(...els);
        else bySet.set(set, [...els]);
      }
    }
    return [...bySet].map(([set, els]) => `add element ${B} ${set} { ${els.join(', ')} }`);
  }

  return {
    tableName,
    fullTable,
    inetTable,
    bridgeTable,
    createTable,
    addNetwork,
    removeNetwork,
    mappingElement,
    addMappings,
    removeMappings,
    deleteMappingKeys,
    createSpoofTable,
    addEndpoint,
    removeEndpoint,
  };
}

export type Ruleset = ReturnType<typeof rulesFor>;

/** Non-empty parts, one per line. */
function script(lines: string[]): string {
  return lines.filter((s) => s !== '').join('\n');
}

export const { fullTable, createTable, addNetwork, removeNetwork, addMappings, removeMappings, deleteMappingKeys, addEndpoint } = rulesFor(TABLE_NAME);
/** Where a mapping lives and its element text (the same in every table). */
export { mappingElement, FirewallInputError };
