// Published ports as elements of the port maps (table.ts): "host address . protocol . port" or
// "protocol . port" -> "container address . port". Every change is one element command per map.
import { checkIp, checkPort, checkProto } from '../addr.js';
import { FirewallInputError, type PortMapping } from '../model.js';
import { SETS, type TableRef } from './names.js';

/** A published port as an element of one map. */
export interface MappingElement {
  map: string;
  key: string;
  value: string;
}

/** Where a mapping lives and its element text; throws FirewallInputError on bad input. */
export function mappingElement(m: PortMapping): MappingElement {
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
export function addMappingRules(t: TableRef, ms: PortMapping[]): string {
  return [...byMap(ms.map(mappingElement))]
    .map(([map, els]) => `add element ${t} ${map} { ${els.map(full).join(', ')} }`)
    .join('\n');
}

/**
 * Removes mappings; a mapping already gone is no error (`add` + `delete`). A key that now maps to
 * a different container fails the whole transaction instead of deleting what another endpoint
 * published; ../firewall.ts then sorts out which elements to delete.
 */
export function removeMappingRules(t: TableRef, ms: PortMapping[]): string {
  return [...byMap(ms.map(mappingElement))]
    .map(([map, els]) => `add element ${t} ${map} { ${els.map(full).join(', ')} }\ndelete element ${t} ${map} { ${els.map((e) => e.key).join(', ')} }`)
    .join('\n');
}

/** Deletes elements by key, for keys known to exist. */
export function deleteMappingKeyRules(t: TableRef, elements: MappingElement[]): string {
  return [...byMap(elements)].map(([map, els]) => `delete element ${t} ${map} { ${els.map((e) => e.key).join(', ')} }`).join('\n');
}

/** Elements grouped by map, maps in order of first appearance. */
function byMap(elements: MappingElement[]): Map<string, MappingElement[]> {
  const out = new Map<string, MappingElement[]>();
  for (const e of elements) {
    const list = out.get(e.map);
    if (list) list.push(e);
    else out.set(e.map, [e]);
  }
  return out;
}

function full(e: MappingElement): string {
  return `${e.key} : ${e.value}`;
}
