// Links: what callers ask for (LinkSpec, LinkChange) turned into RTM_NEWLINK messages, and
// RTM_NEWLINK replies turned into LinkInfo. Pure, so every kind is testable without the kernel.
import { AF_BRIDGE, AF_UNSPEC, IFF_UP, MACVLAN_MODE, OPER_STATES } from './constants.js';
import type { IfInfoMsg, LinkAttrs, LinkInfoAttr, LinkMessage, PeerMessage } from './codec.js';
import { ipFamily } from './ip.js';

interface CommonSpec {
  name: string;
  mtu?: number;
  alias?: string;
}

export interface BridgeSpec extends CommonSpec {
  kind: 'bridge';
  mac?: string;
}

export interface VethSpec extends CommonSpec {
  kind: 'veth';
  peerName: string;
  mac?: string;
  peerMac?: string;
  peerAlias?: string;
  /** create the peer directly in this namespace: much faster than create-then-move */
  peerNetnsFd?: number;
}

export interface VxlanSpec extends CommonSpec {
  kind: 'vxlan';
  vni: number;
  local?: string;
  /** UDP port; 4789 (IANA) unless given, not the kernel's legacy 8472 */
  port?: number;
  learning?: boolean;
  /** answer ARP and neighbour solicitations from the device's neighbour table (no flooding) */
  proxy?: boolean;
  parent?: string;
}

export type MacvlanMode = 'bridge' | 'private' | 'vepa' | 'passthru';

export interface MacvlanSpec extends CommonSpec {
  kind: 'macvlan';
  parent: string;
  mode: MacvlanMode;
  mac?: string;
  /** create the macvlan directly in this namespace (the parent stays here) */
  netnsFd?: number;
}

export interface VlanSpec extends CommonSpec {
  kind: 'vlan';
  parent: string;
  vlanId: number;
}

export type LinkSpec = BridgeSpec | VethSpec | VxlanSpec | MacvlanSpec | VlanSpec;
export type LinkKind = LinkSpec['kind'];

/** The module that provides each kind, for "kernel does not support" errors. */
export const KIND_MODULE: Record<LinkKind, string> = { bridge: 'bridge', veth: 'veth', vxlan: 'vxlan', macvlan: 'macvlan', vlan: '8021q' };

export const VXLAN_PORT = 4789;

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  /** a bridge to enslave to, or null to leave the current one */
  master?: string | null;
  mac?: string;
  /** '' removes the alias */
  alias?: string;
  name?: string;
  netnsFd?: number;
  netnsPid?: number;
}

export interface BridgePortSettings {
  isolated?: boolean;
  hairpin?: boolean;
  learning?: boolean;
}

export interface LinkInfo {
  index: number;
  name: string;
  kind?: string;
  mtu: number;
  /** '' for links without a hardware address */
  mac: string;
  up: boolean;
  operState: string;
  masterIndex?: number;
  /** IFLA_LINK: the parent of a macvlan or vlan, the peer of a veth */
  parentIndex?: number;
  alias?: string;
  /** IFF_* flags */
  flags: number;
  vlanId?: number;
  vxlanId?: number;
  macvlanMode?: string;
}

/** Link name to index, in the namespace the message goes to. */
export type ResolveLink = (name: string) => number;

/** The kernel's dev_valid_name(): 1-15 bytes, not . or .., no '/', ':' or white space. */
export function checkLinkName(name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > 15 || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new TypeError(`invalid link name '${name}': 1 to 15 bytes, no '/', ':' or spaces`);
  }
}

export function createLinkRequest(spec: LinkSpec, resolve: ResolveLink): LinkMessage {
  checkLinkName(spec.name);
  // no IFLA_IFALIAS: the kernel ignores it on creation (Netlink.createLink sets it afterwards)
  const attrs: LinkAttrs = { ifname: spec.name, mtu: spec.mtu, linkinfo: linkInfoOf(spec, resolve) };
  if (spec.kind === 'bridge' || spec.kind === 'veth' || spec.kind === 'macvlan') attrs.address = spec.mac;
  if (spec.kind === 'macvlan' || spec.kind === 'vlan') attrs.link = resolve(spec.parent);
  if (spec.kind === 'macvlan') attrs.netnsFd = spec.netnsFd;
  return { header: { family: AF_UNSPEC }, attrs };
}

function linkInfoOf(spec: LinkSpec, resolve: ResolveLink): LinkInfoAttr {
  switch (spec.kind) {
    case 'bridge':
      return { kind: 'bridge' };
    case 'veth': {
      checkLinkName(spec.peerName);
      const peer: PeerMessage = {
        header: { family: AF_UNSPEC },
        attrs: { ifname: spec.peerName, address: spec.peerMac, mtu: spec.mtu, netnsFd: spec.peerNetnsFd },
      };
      return { kind: 'veth', data: { peer } };
    }
    case 'vxlan': {
      const local = spec.local === undefined ? {} : ipFamily(spec.local) === 4 ? { local: spec.local } : { local6: spec.local };
      return {
        kind: 'vxlan',
        data: {
          id: spec.vni,
          ...local,
          port: spec.port ?? VXLAN_PORT,
          learning: spec.learning,
          proxy: spec.proxy,
          link: spec.parent === undefined ? undefined : resolve(spec.parent),
        },
      };
    }
    case 'macvlan':
      return { kind: 'macvlan', data: { mode: MACVLAN_MODE[spec.mode] } };
    case 'vlan':
      if (!Number.isInteger(spec.vlanId) || spec.vlanId < 1 || spec.vlanId > 4094) {
        throw new TypeError(`VLAN id ${spec.vlanId} is out of range 1-4094`);
      }
      return { kind: 'vlan', data: { id: spec.vlanId } };
  }
}

export function changeLinkRequest(index: number, change: LinkChange, resolve: ResolveLink): LinkMessage {
  if (change.name !== undefined) checkLinkName(change.name);
  const header: Partial<IfInfoMsg> = { family: AF_UNSPEC, index };
  if (change.up !== undefined) {
    header.flags = change.up ? IFF_UP : 0;
    header.change = IFF_UP;
  }
  const master = change.master === undefined ? undefined : change.master === null ? 0 : resolve(change.master);
  return {
    header,
    attrs: {
      ifname: change.name,
      mtu: change.mtu,
      master,
      address: change.mac,
      ifalias: change.alias,
      netnsFd: change.netnsFd,
      netnsPid: change.netnsPid,
    },
  };
}

/** Bridge port flags go in IFLA_PROTINFO of an AF_BRIDGE message, as `bridge link set` sends them. */
export function bridgePortRequest(index: number, settings: BridgePortSettings): LinkMessage {
  return { header: { family: AF_BRIDGE, index }, attrs: { protinfo: { ...settings } } };
}

/** A bridge port as an AF_BRIDGE dump shows it. */
export interface BridgePortInfo {
  index: number;
  name: string;
  /** the bridge's index */
  masterIndex: number;
  up: boolean;
  hairpin: boolean;
  isolated: boolean;
  learning: boolean;
}

/** A bridge port from an AF_BRIDGE link message; undefined for a message without port settings (the bridge itself). */
export function toBridgePortInfo({ header, attrs }: { header: IfInfoMsg; attrs: LinkAttrs }): BridgePortInfo | undefined {
  const p = attrs.protinfo;
  if (!p || !attrs.master) return undefined;
  return {
    index: header.index,
    name: attrs.ifname ?? '',
    masterIndex: attrs.master,
    up: (header.flags & IFF_UP) !== 0,
    hairpin: p.hairpin === true,
    isolated: p.isolated === true,
    learning: p.learning === true,
  };
}

const MACVLAN_MODE_NAMES = new Map<number, string>([...Object.entries(MACVLAN_MODE).map(([k, v]) => [v, k] as const), [16, 'source']]);

export function toLinkInfo({ header, attrs }: { header: IfInfoMsg; attrs: LinkAttrs }): LinkInfo {
  const info: LinkInfo = {
    index: header.index,
    name: attrs.ifname ?? '',
    mtu: attrs.mtu ?? 0,
    mac: attrs.address ?? '',
    up: (header.flags & IFF_UP) !== 0,
    operState: OPER_STATES[attrs.operstate ?? 0] ?? 'unknown',
    flags: header.flags,
  };
  const li = attrs.linkinfo;
  if (li?.kind) info.kind = li.kind;
  if (attrs.master) info.masterIndex = attrs.master;
  if (attrs.link) info.parentIndex = attrs.link;
  if (attrs.ifalias !== undefined) info.alias = attrs.ifalias;
  if (li?.kind === 'vlan' && li.data?.id !== undefined) info.vlanId = li.data.id;
  if (li?.kind === 'vxlan' && li.data?.id !== undefined) info.vxlanId = li.data.id;
  if (li?.kind === 'macvlan' && li.data?.mode !== undefined) info.macvlanMode = MACVLAN_MODE_NAMES.get(li.data.mode) ?? String(li.data.mode);
  return info;
}
