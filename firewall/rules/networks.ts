// A network's part of the table: its bridge and subnets as elements of the fixed sets (table.ts).
// Nothing per network is a rule or a chain, so adding and removing one is a handful of element
// commands in one transaction.
import { checkCidr, checkIfname, checkIp, type Family } from '../addr.js';
import { FirewallInputError, type FirewallNetwork, type Tunnel } from '../model.js';
import { quote, SETS, type TableRef } from './names.js';

/** A network's checked names, ready to be spelled into element commands. */
interface NetworkElements {
  bridge: string;
  subnets: { cidr: string; family: Family }[];
  /** "local . port . vni" of an overlay's tunnel */
  tunnel?: string;
}

function networkElements(n: FirewallNetwork): NetworkElements {
  return { bridge: checkIfname(n.bridge), subnets: n.subnets.map((s) => checkCidr(s)), tunnel: n.tunnel && tunnelElement(n.tunnel) };
}

function tunnelElement(t: Tunnel): string {
  const local = checkIp(t.local, 'VTEP address');
  if (local.family !== 4) throw new FirewallInputError(`VTEP address '${t.local}' is not an IPv4 address`);
  for (const [what, v, max] of [['UDP port', t.port, 65535], ['VNI', t.vni, 0xffffff]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) throw new FirewallInputError(`${what} ${v} of a tunnel is out of range 1-${max}`);
  }
  return `${local.ip} . ${t.port} . ${t.vni}`;
}

/**
 * Elements of one network. Idempotent and convergent: every element the network could have is
 * first removed (`add` + `delete`, which works whether or not it exists), then the wanted ones
 * are added, so re-adding a network whose flags changed leaves exactly the new state.
 */
export function addNetworkRules(t: TableRef, n: FirewallNetwork): string {
  const e = networkElements(n);
  return [removeElements(t, e), addElements(t, e, n)].join('\n');
}

/** Removes every element of one network; no error when some or all are already gone. */
export function removeNetworkRules(t: TableRef, n: FirewallNetwork): string {
  return removeElements(t, networkElements(n));
}

function addElements(t: TableRef, e: NetworkElements, n: FirewallNetwork): string {
  const lines: string[] = [];
  const q = quote(e.bridge);
  lines.push(`add element ${t} ${SETS.bridges} { ${q} }`);
  lines.push(`add element ${t} ${SETS.bridgePairs} { ${q} . ${q} }`);
  if (n.internal) lines.push(`add element ${t} ${SETS.internal} { ${q} }`);
  if (n.icc === false) lines.push(`add element ${t} ${SETS.noIcc} { ${q} }`);
  if (e.tunnel) lines.push(`add element ${t} ${SETS.tunnels} { ${e.tunnel} }`);
  for (const s of e.subnets) {
    lines.push(`add element ${t} ${SETS.subnets[s.family]} { ${s.cidr} . ${q} }`);
    if (n.masquerade && !n.internal) lines.push(`add element ${t} ${SETS.masq[s.family]} { ${s.cidr} }`);
  }
  return lines.join('\n');
}

function removeElements(t: TableRef, e: NetworkElements): string {
  const q = quote(e.bridge);
  const items: [string, string][] = [
    [SETS.bridges, q],
    [SETS.bridgePairs, `${q} . ${q}`],
    [SETS.internal, q],
    [SETS.noIcc, q],
  ];
  if (e.tunnel) items.push([SETS.tunnels, e.tunnel]);
  for (const s of e.subnets) {
    items.push([SETS.subnets[s.family], `${s.cidr} . ${q}`]);
    items.push([SETS.masq[s.family], s.cidr]);
  }
  return items.map(([set, el]) => `add element ${t} ${set} { ${el} }\ndelete element ${t} ${set} { ${el} }`).join('\n');
}
