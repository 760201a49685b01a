// What an overlay network is made of, computed as data. Pure: the driver (overlay-driver.ts)
// applies it. An overlay network on a host is a bridge network (bridge, gateway, veths, NAT and
// published ports: drivers/bridge/) plus a VXLAN port on the bridge that carries its layer 2 to
// the other hosts. Remote containers are never learned by flooding: each one is a forwarding entry
// (its MAC -> its host's VTEP) and a neighbour entry per address (its IPv4 and, on a dual-stack
// overlay, its IPv6 address -> its MAC, answered by the VXLAN device's ARP and neighbour-discovery
// proxy) programmed from the cluster store (peers.ts, peer-entries.ts).
import { type CreateNetworkRequest } from '../driver.js';
import { checkOverlayName } from '../../ipam/cluster-ipam.js';
import { parseMtu, refuseUnknownOptions } from '../options.js';
import { TYPE_OPTION } from '../../core/protocol.js';
import { UserError } from '../../core/errors.js';

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers. */
export const VXLAN_OVERHEAD_IPV4 = 50;
export const VXLAN_PORT = 4789;
export const FIRST_LOCAL_VNI = 4096;
const MAX_VNI = 16_777_215;

export const OVERLAY_OPTION = 'overlay';
export const VNI_OPTION = 'vni';
/** Docker's own overlay option for the VNI: accepted so a compose file moves over as it is */
export const DOCKER_VNI_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';
export const PORT_OPTION = 'vxlan_port';
export const MTU_OPTION = 'com.docker.network.driver.mtu';
/** bridge options that mean the same on an overlay, handed to the bridge underneath as they are */
const BRIDGE_OPTIONS = [
  'com.docker.network.bridge.enable_icc',
  'com.docker.network.bridge.enable_ip_masquerade',
  'com.docker.network.bridge.host_binding_ipv4',
  'com.docker.network.container_iface_prefix',
  'anti_spoofing',
];
const ACCEPTED = [TYPE_OPTION, OVERLAY_OPTION, VNI_OPTION, DOCKER_VNI_OPTION, PORT_OPTION, MTU_OPTION, ...BRIDGE_OPTIONS];

/** Stored with the network next to the bridge's configuration. */
export interface OverlayConfig {
  overlay: {
    /** the overlay's name in the cluster; '' for a single-host overlay */
    name: string;
    vni: number;
    port: number;
    /** the VXLAN device, a port of the bridge */
    vxlan: string;
    /** this host's VTEP address, '' when the host has none (single host) */
    local: string;
  };
}

export interface OverlayOptions {
  /** cluster-wide name, undefined for a single-host overlay */
  name?: string;
  vni?: number;
  port?: number;
  mtu?: number;
  /** what goes on to the bridge driver */
  bridgeOptions: Record<string, string>;
}

export interface Underlay {
  /** '' when the host has no address to tunnel from (then only single-host overlays work) */
  vtep: string;
  /** link that carries the VTEP address */
  link: string;
  mtu: number;
}

export function parseOverlayOptions(options: Record<string, string>): OverlayOptions {
  refuseUnknownOptions(options, ACCEPTED, 'overlay');
  const out: OverlayOptions = { bridgeOptions: {} };
  for (const k of BRIDGE_OPTIONS) if (options[k] !== undefined) out.bridgeOptions[k] = options[k];
  const name = options[OVERLAY_OPTION];
  if (name !== undefined) {
    checkOverlayName(name, `-o ${OVERLAY_OPTION}`);
    out.name = name;
  }
  const vniText = options[VNI_OPTION] ?? options[DOCKER_VNI_OPTION];
  if (options[VNI_OPTION] !== undefined && options[DOCKER_VNI_OPTION] !== undefined && options[VNI_OPTION] !== options[DOCKER_VNI_OPTION]) {
    throw new UserError(`-o ${VNI_OPTION} and -o ${DOCKER_VNI_OPTION} disagree: give one of them`);
  }
  if (vniText !== undefined) out.vni = parseInteger(vniText, DOCKER_VNI_OPTION === vniText ? DOCKER_VNI_OPTION : VNI_OPTION, 1, MAX_VNI);
  if (options[PORT_OPTION] !== undefined) out.port = parseInteger(options[PORT_OPTION], PORT_OPTION, 1, 65535);
  if (options[MTU_OPTION] !== undefined) out.mtu = parseMtu(MTU_OPTION, options[MTU_OPTION]);
  return out;
}

function parseInteger(text: string, key: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) throw new UserError(`-o ${key}=${text}: not a whole number`);
  const n = Number(text.trim());
  if (n < min || n > max) throw new UserError(`-o ${key}=${text}: must be ${min}..${max}`);
  return n;
}

/** The MTU containers get: the underlay's minus the VXLAN headers, or the user's if it fits. */
export function overlayMtu(underlay: Underlay, wanted: number | undefined): number {
  const max = underlay.mtu - VXLAN_OVERHEAD_IPV4;
  if (wanted === undefined) return max;
  if (wanted > max) {
    throw new UserError(
      `MTU ${wanted} does not fit through VXLAN: the underlay${underlay.link ? ` ${underlay.link}` : ''} has MTU ${underlay.mtu} and ` +
        `VXLAN needs ${VXLAN_OVERHEAD_IPV4} bytes of it for headers, so ${max} is the largest; give ${MTU_OPTION}=${max} or less, or leave it out`,
    );
  }
  return wanted;
}

/** Link names: 4-byte prefixes leave 11 hex digits of the network ID. */
export function overlayLinkNames(networkId: string): { bridge: string; vxlan: string } {
  const id = networkId.slice(0, 11);
  return { bridge: `tob-${id}`, vxlan: `tox-${id}` };
}

/** Inside the network's own namespace (netns-layout.ts): its bridge and the bridge's end of the gateway veth. */
export const NS_BRIDGE = 'br0';
export const NS_GATEWAY = 'gw0';

/** The network's own namespace, under /run/netns: the daemon's instance name keeps two daemons' apart. */
export function overlayNetnsName(instance: string, networkId: string): string {
  return `${instance}-ov-${networkId.slice(0, 12)}`;
}

/** The lowest VNI from FIRST_LOCAL_VNI up that no overlay of this host uses. */
export function firstFreeLocalVni(used: number[]): number {
  const taken = new Set(used);
  for (let v = FIRST_LOCAL_VNI; v <= MAX_VNI; v++) if (!taken.has(v)) return v;
  throw new UserError('no free VNI left on this host');
}

/**
 * The overlay's subnets: one IPv4 subnet, and with --ipv6 one IPv6 subnet (dual-stack; '' without).
 * Every host of a cluster overlay must give the same (the definition in the store checks).
 */
export function overlaySubnets(req: CreateNetworkRequest): { subnet: string; subnet6: string } {
  const subnet = req.ipv4.find((d) => d.pool !== '0.0.0.0/0')?.pool;
  if (!subnet) throw new UserError('a tsnet overlay network needs an IPv4 subnet: give --subnet');
  if (req.ipv4.length > 1) throw new UserError('a tsnet overlay network takes one IPv4 subnet');
  if (!req.enableIpv6) return { subnet, subnet6: '' };
  if (req.ipv6.length === 0) throw new UserError('--ipv6 needs an IPv6 subnet for a tsnet overlay network: add --subnet with an IPv6 prefix');
  if (req.ipv6.length > 1) throw new UserError('a tsnet overlay network takes one IPv6 subnet');
  return { subnet, subnet6: req.ipv6[0].pool };
}

/** The request the bridge driver underneath sees: the overlay's links and MTU, bridge options only. */
export function bridgeRequest(req: CreateNetworkRequest, opts: OverlayOptions, mtu: number): CreateNetworkRequest {
  return {
    ...req,
    options: {
      ...opts.bridgeOptions,
      'com.docker.network.bridge.name': overlayLinkNames(req.networkId).bridge,
      [MTU_OPTION]: String(mtu),
    },
  };
}
