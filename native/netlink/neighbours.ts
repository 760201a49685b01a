// Neighbours (ARP/NDP entries) and bridge/VXLAN forwarding entries (FDB): both are RTM_*NEIGH,
// the FDB in family AF_BRIDGE. Pure.
import { AF_BRIDGE, AF_INET, AF_INET6, NTF, NUD } from './constants.js';
import type { NeighMessage, neighMessage } from './codec.js';
import { ipFamily, type Family } from './ip.js';

export interface NeighbourSpec {
  dev: string;
  ip: string;
  mac: string;
  /** never expires; the default, as with `ip neigh replace` */
  permanent?: boolean;
}

export interface NeighbourInfo {
  index: number;
  dev: string;
  family: Family;
  ip: string;
  mac?: string;
  /** NUD_* states, e.g. ['permanent'] or ['reachable'] */
  state: string[];
  /** NTF_* flags */
  flags: number;
}

export interface FdbSpec {
  dev: string;
  mac: string;
  /** VXLAN: the remote VTEP's address */
  dst?: string;
  /** the device's own table (VXLAN, or a bridge's own entries); the default when master is not set */
  self?: boolean;
  /** the table of the bridge that dev is a port of */
  master?: boolean;
  /** NUD_PERMANENT: on a bridge, an address of the bridge itself */
  permanent?: boolean;
}

export interface FdbInfo {
  index: number;
  dev: string;
  mac: string;
  dst?: string;
  vlan?: number;
  vni?: number;
  masterIndex?: number;
  /** in the device's own table */
  self: boolean;
  /** in the table of the bridge dev is a port of (masterIndex) */
  master: boolean;
  state: string[];
}

export function nudNames(state: number): string[] {
  const names = Object.entries(NUD)
    .filter(([, bit]) => state & bit)
    .map(([name]) => name);
  return names.length ? names : ['none'];
}

export function neighbourRequest(index: number, n: { ip: string; mac?: string; permanent?: boolean }): NeighMessage {
  return {
    header: { family: ipFamily(n.ip) === 4 ? AF_INET : AF_INET6, index, state: n.permanent === false ? NUD.reachable : NUD.permanent },
    attrs: { dst: n.ip, lladdr: n.mac },
  };
}

/**
 * Static entries (NUD_NOARP, never aged out) in the device's own table unless master. The
 * kernel wants NUD_REACHABLE or NUD_PERMANENT besides; on a bridge PERMANENT means the
 * address is the bridge's own (delivered locally), so static ones are REACHABLE.
 */
export function fdbRequest(index: number, f: Omit<FdbSpec, 'dev'>): NeighMessage {
  const flags = (f.self || !f.master ? NTF.SELF : 0) | (f.master ? NTF.MASTER : 0);
  return {
    header: { family: AF_BRIDGE, index, state: NUD.noarp | (f.permanent ? NUD.permanent : NUD.reachable), flags },
    attrs: { lladdr: f.mac, dst: f.dst },
  };
}

export function toNeighbourInfo(m: ReturnType<typeof neighMessage.decode>, dev: string): NeighbourInfo {
  const { header, attrs } = m;
  const info: NeighbourInfo = {
    index: header.index,
    dev,
    family: header.family === AF_INET ? 4 : 6,
    ip: attrs.dst ?? '',
    state: nudNames(header.state),
    flags: header.flags,
  };
  if (attrs.lladdr !== undefined) info.mac = attrs.lladdr;
  return info;
}

export function toFdbInfo(m: ReturnType<typeof neighMessage.decode>, dev: string): FdbInfo {
  const { header, attrs } = m;
  const info: FdbInfo = {
    index: header.index,
    dev,
    mac: attrs.lladdr ?? '',
    self: (header.flags & NTF.SELF) !== 0,
    // the bridge reports its entries with NDA_MASTER, not NTF_MASTER
    master: (header.flags & NTF.MASTER) !== 0 || attrs.master !== undefined,
    state: nudNames(header.state),
  };
  if (attrs.dst !== undefined) info.dst = attrs.dst;
  if (attrs.vlan !== undefined) info.vlan = attrs.vlan;
  if (attrs.vni !== undefined) info.vni = attrs.vni;
  if (attrs.master !== undefined) info.masterIndex = attrs.master;
  return info;
}
