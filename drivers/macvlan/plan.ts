// What the kernel should look like for a macvlan network, as data: the parent (an existing link,
// an 802.1Q sub-interface tsnet creates, or a tsnet-owned bridge when there is no parent), one
// macvlan sub-interface per endpoint, and the optional host-access shim. Pure: the driver gathers
// the facts (links, other networks) and does what these functions decide.
import { type CreateEndpointRequest, type CreateNetworkRequest } from '../driver.js';
import { bareIp } from '../../core/text.js';
import { macFromIPv4 } from '../options.js';
import { formatIp, lastOf, networkOf, parseCidr } from '../../ipam/address.js';
import type { MacvlanMode } from '../../native/netlink/links.js';
import { parseMacvlanOptions } from './options.js';
import { UserError } from '../../core/errors.js';
import type { IpamData } from '../../core/protocol.js';
import { shortId } from '../../core/text.js';

/** The parent link, and what tsnet must make for it. */
export type ParentPlan =
  /** a link the user made; tsnet never changes or removes it */
  | { kind: 'existing'; name: string }
  /** an 802.1Q sub-interface `base.vlanId`: tsnet creates it when missing and then removes it with the last network using it */
  | { kind: 'vlan'; name: string; base: string; vlanId: number }
  /**
   * No parent (or --internal): an internal-only network. Docker hangs such networks off a dummy
   * link; this kernel has no dummy links, so tsnet uses a bridge of its own with no ports and no
   * address instead: macvlans in bridge mode reach each other through it and nothing else.
   */
  | { kind: 'isolated'; name: string };

/** The host's side of host access: a bridge-mode macvlan sibling of the containers. */
export interface ShimPlan {
  name: string;
  /** CIDR with /32: no subnet route, so a route the host already has to the LAN is left alone */
  address: string;
  /** only in rows written by the first version, which routed the whole subnet through the shim */
  subnets?: string[];
}

/** Stored as NetworkRecord.config for macvlan networks (cli/status.ts shows parent and mode). */
export interface MacvlanNetworkConfig {
  /** the link containers' sub-interfaces hang off */
  parent: string;
  parentPlan: ParentPlan;
  mode: MacvlanMode;
  /** undefined: the parent's */
  mtu?: number;
  internal: boolean;
  shim?: ShimPlan;
  subnets: string[];
  /** bare IPs, '' when none */
  gateway: string;
  gatewayIpv6: string;
}

/** The config plus what the kernel said at create time. */
export interface MacvlanNetworkState extends MacvlanNetworkConfig {
  /**
   * tsnet owns the parent: it made it, for this network or for another tsnet network still on it
   * (a shared VLAN link). The last network on an owned parent removes it; a parent the user made
   * is never owned.
   */
  createdParent: boolean;
}

export interface MacvlanEndpointConfig {
  /** the sub-interface, made in the host namespace and moved into the container by Docker */
  link: string;
  /** host access: the container's /32 routed through the shim */
  hostRoute?: string;
}

export const ENDPOINT_LINK_PREFIX = 'tsm';
export const SHIM_PREFIX = 'tsmh-';
export const ISOLATED_PARENT_PREFIX = 'tsmb-';
/** An aux address of this name (`--aux-address host_access=IP`) chooses the shim's address. */
export const HOST_ACCESS_AUX = 'host_access';

// Names fit the kernel's 15 characters: prefix + as much of the ID as fits.
export const shimName = (networkId: string): string => `${SHIM_PREFIX}${networkId.slice(0, 10)}`;
export const isolatedParentName = (networkId: string): string => `${ISOLATED_PARENT_PREFIX}${networkId.slice(0, 10)}`;
export const endpointLinkName = (endpointId: string): string => `${ENDPOINT_LINK_PREFIX}${shortId(endpointId)}`;

export function parseVlanParent(parent: string): { base: string; vlanId: number } | undefined {
  const m = /^(.+)\.(\d{1,4})$/.exec(parent);
  if (!m) return undefined;
  const vlanId = Number(m[2]);
  if (vlanId < 1 || vlanId > 4094) throw new UserError(`VLAN ID ${vlanId} in parent '${parent}' must be from 1 to 4094`);
  return { base: m[1], vlanId };
}

/**
 * The host's shim address, deterministic: the aux address named `host_access` when the user
 * reserved one (the way to choose it, and to keep Docker's IPAM from handing it to a container),
 * otherwise the last usable address of the network's first IPv4 subnet (10.236.0.254 in
 * 10.236.0.0/24), which IPAM, counting from the bottom, reaches last. Refused when that is the
 * gateway or an aux address reserved for another host.
 */
export function shimAddress(pool: IpamData, gateway: string): string {
  const chosen = pool.auxAddresses[HOST_ACCESS_AUX];
  if (chosen) {
    const ip = bareIp(chosen);
    if (ip === gateway) throw new UserError(`aux address ${HOST_ACCESS_AUX}=${ip} is the gateway: give the host another address`);
    return `${ip}/32`;
  }
  const cidr = parseCidr(pool.pool);
  const last = lastOf(cidr) - 1n;
  if (last <= networkOf(cidr)) {
    throw new UserError(`host_access needs an address for the host in ${pool.pool}, which has none to spare: use a larger --subnet`);
  }
  const address = formatIp({ family: cidr.family, value: last });
  const reservedBy = address === gateway ? 'the gateway' : Object.entries(pool.auxAddresses).find(([, a]) => bareIp(a) === address)?.[0];
  if (reservedBy) {
    const what = reservedBy === 'the gateway' ? reservedBy : `aux address ${reservedBy}`;
    throw new UserError(
      `host_access gives the host the last usable address of ${pool.pool}, ${address}, but that is ${what}: ` +
        `choose the host's address with --aux-address ${HOST_ACCESS_AUX}=IP`,
    );
  }
  return `${address}/32`;
}

export function planMacvlanNetwork(req: CreateNetworkRequest): MacvlanNetworkConfig {
  const o = parseMacvlanOptions(req.options);
  let parentPlan: ParentPlan;
  // Docker treats --internal like "no parent": containers must not reach the LAN
  if (o.parent === '' || req.internal) {
    parentPlan = { kind: 'isolated', name: isolatedParentName(req.networkId) };
  } else {
    const vlan = parseVlanParent(o.parent);
    parentPlan = vlan ? { kind: 'vlan', name: o.parent, ...vlan } : { kind: 'existing', name: o.parent };
  }
  const internal = parentPlan.kind === 'isolated';

  const v4 = req.ipv4.filter((d) => d.pool !== '0.0.0.0/0');
  if (v4.length === 0) throw new UserError('a tsnet macvlan network needs an IPv4 subnet: give --subnet');
  const v6 = req.enableIpv6 ? req.ipv6 : [];
  const subnets = [...v4, ...v6].map((d) => d.pool);
  const gateway = v4[0].gateway ? bareIp(v4[0].gateway) : '';
  const gatewayIpv6 = v6[0]?.gateway ? bareIp(v6[0].gateway) : '';

  let shim: ShimPlan | undefined;
  if (o.hostAccess) {
    if (internal) throw new UserError('host_access needs a parent: a network without one (or --internal) is internal to its containers');
    if (o.mode !== 'bridge') throw new UserError(`host_access needs macvlan_mode=bridge (the host's shim is a bridge-mode sibling of the containers), not ${o.mode}`);
    shim = { name: shimName(req.networkId), address: shimAddress(v4[0], gateway) };
  }
  return { parent: parentPlan.name, parentPlan, mode: o.mode, mtu: o.mtu, internal, shim, subnets, gateway, gatewayIpv6 };
}

// ---------------------------------------------------------------- the parent link

export interface LinkFacts {
  name: string;
  up: boolean;
  mtu: number;
  /** the link's kind (bridge, veth, ...) when it has one */
  kind?: string;
  alias?: string;
}

/** The alias every tsnet daemon gives its links: "<plugin name>:<12 hex digits>" (drivers/owner.ts). */
const TSNET_ALIAS = /^[A-Za-z][A-Za-z0-9_.-]*:[0-9a-f]{12}$/;
/** Docker's own bridges: the default one and those of user-defined networks. */
const DOCKER_BRIDGE = /^(docker0|br-[0-9a-f]{12})$/;

/**
 * A parent that is a link of tsnet's (a bridge, a veth of a container) or one of Docker's bridges
 * would put the macvlan containers on that bridge, past every rule that isolates it.
 */
function refuseForeignBridgeParent(link: LinkFacts): void {
  if (link.alias && TSNET_ALIAS.test(link.alias)) {
    throw new UserError(`parent ${link.name} is tsnet's own link (${link.alias}): give the host's LAN interface, e.g. -o parent=eth1`);
  }
  if (link.kind === 'bridge' && DOCKER_BRIDGE.test(link.name)) {
    throw new UserError(`parent ${link.name} is a bridge of Docker's: give the host's LAN interface, e.g. -o parent=eth1`);
  }
}

/** What the driver read from the kernel and the store before deciding. */
export interface ParentFacts {
  /** the link named c.parent, if there is one */
  link?: LinkFacts;
  /** a VLAN parent's base link (eth1 for eth1.20), if there is one */
  base?: LinkFacts;
  /** every other tsnet macvlan network */
  others: { id: string; config: MacvlanNetworkState }[];
}

/**
 * Checks the parent before anything is touched and says what to do with it: create it (a missing
 * VLAN link, the isolated bridge) and whether tsnet owns it. Errors name the interface or the
 * network in the way and say what to do.
 */
export function decideParent(c: MacvlanNetworkConfig, f: ParentFacts): { create: boolean; owned: boolean } {
  const p = c.parentPlan;
  if (p.kind === 'isolated') {
    if (f.link) throw new UserError(`interface ${p.name} already exists on this host: remove it or recreate the network (its name comes from the network ID)`);
    return { create: true, owned: true };
  }
  const onParent = f.others.filter((n) => n.config.parent === p.name);
  if (c.mode === 'passthru' && onParent.length > 0) {
    throw new UserError(`parent ${p.name} already carries tsnet macvlan network ${shortId(onParent[0].id)}: passthru mode needs the parent to itself`);
  }
  const passthru = onParent.find((n) => n.config.mode === 'passthru');
  if (passthru) throw new UserError(`parent ${p.name} is used in passthru mode by tsnet network ${shortId(passthru.id)}: no other network can share it`);

  let link = f.link;
  let create = false;
  if (!link && p.kind === 'vlan') {
    if (!f.base) throw new UserError(`parent interface ${p.base} (for VLAN ${p.name}) does not exist on this host: give an existing link with -o parent=NAME`);
    link = f.base;
    create = true;
  }
  if (!link) throw new UserError(`parent interface ${p.name} does not exist on this host: give an existing link with -o parent=NAME`);
  // a VLAN link tsnet made for another macvlan network carries tsnet's alias and is shared
  if (onParent.length === 0) refuseForeignBridgeParent(link);
  if (!link.up) throw new UserError(`parent interface ${link.name} is down: bring it up (ip link set ${link.name} up) and create the network again`);
  if (c.mtu !== undefined && c.mtu > link.mtu) {
    throw new UserError(`MTU ${c.mtu} is above the MTU ${link.mtu} of parent ${link.name}: a macvlan cannot exceed its parent's MTU`);
  }
  // a VLAN link tsnet made for another network stays tsnet's, shared by both
  const owned = create || (p.kind === 'vlan' && onParent.some((n) => n.config.createdParent));
  return { create, owned };
}

/** The parent to remove with this network: one tsnet owns that no other network uses. */
export function parentToRemove(net: { id: string; config: MacvlanNetworkState }, all: { id: string; config: MacvlanNetworkState }[]): string | undefined {
  if (!net.config.createdParent) return undefined;
  const stillUsed = all.some((n) => n.id !== net.id && n.config.parent === net.config.parent);
  return stillUsed ? undefined : net.config.parent;
}

/** The error for a VLAN parent the kernel cannot make (no 8021q): the feature and the way around. */
export function vlanUnsupportedError(p: Extract<ParentPlan, { kind: 'vlan' }>): UserError {
  return new UserError(
    `cannot create VLAN parent ${p.name}: this kernel has no 802.1Q VLAN support (module 8021q). ` +
      `Load it (modprobe 8021q) where the kernel has it, or use an existing parent such as -o parent=${p.base} ` +
      `or a VLAN link made beforehand`,
  );
}

// ---------------------------------------------------------------- endpoints

export interface MacvlanEndpointPlan {
  config: MacvlanEndpointConfig;
  /** the MAC to create the link with; undefined in passthru mode, where the link has the parent's */
  linkMac?: string;
  /** the container's MAC, as stored */
  mac: string;
  /** the MAC for CreateEndpoint's reply, when Docker gave none */
  replyMac?: string;
}

/**
 * One macvlan sub-interface per endpoint, with Docker's MAC if it gave one, else 02:42 followed
 * by the IPv4 address (Docker's convention). Passthru mode is the exception: the container takes
 * the parent itself, MAC included (setting another MAC there would change the parent's own), and
 * only one container fits.
 */
export function planMacvlanEndpoint(
  req: CreateEndpointRequest,
  net: MacvlanNetworkConfig,
  ctx: { parentMac: string; endpointsOnNetwork: number },
): MacvlanEndpointPlan {
  if (!req.address) throw new UserError('a tsnet macvlan endpoint needs an IPv4 address; the IPAM driver gave none');
  const ip = bareIp(req.address);
  if (net.shim && ip === bareIp(net.shim.address)) {
    throw new UserError(
      `${ip} is the host's address on this network (host_access): give the container another --ip, ` +
        `or reserve it so IPAM never hands it out (--aux-address ${HOST_ACCESS_AUX}=${ip})`,
    );
  }
  const config: MacvlanEndpointConfig = { link: endpointLinkName(req.endpointId) };
  if (net.shim) config.hostRoute = `${ip}/32`;
  if (net.mode === 'passthru') {
    if (ctx.endpointsOnNetwork > 0) {
      throw new UserError(`passthru mode gives the parent ${net.parent} to a single container, and this network has one: use macvlan_mode=bridge for more`);
    }
    const parentMac = ctx.parentMac.toLowerCase();
    if (req.macAddress && req.macAddress.toLowerCase() !== parentMac) {
      throw new UserError(`passthru mode: the container uses the MAC of parent ${net.parent} (${parentMac}); --mac-address would change the parent's own MAC`);
    }
    return { config, mac: parentMac, replyMac: req.macAddress ? undefined : parentMac };
  }
  const mac = req.macAddress || macFromIPv4(req.address);
  return { config, linkMac: mac, mac, replyMac: req.macAddress ? undefined : mac };
}

/**
 * The endpoints of a network that still hold the IPv4 address a new endpoint is given: their
 * container is gone without its DeleteEndpoint (plugin and containers killed together, a dockerd
 * that came back without live-restore), since the runtime's IPAM gives out only an address nobody
 * holds. Such an endpoint's link may still sit on the parent with the MAC derived from that
 * address, and the new container's link would then fail to come up ("address already in use"), so
 * they are evicted before the new one is made (drivers/ports.ts goneOwnersOf does the same for the
 * host ports of gone containers). Pure.
 */
export function sameAddressHolders<T extends { id: string; address: string }>(onNetwork: readonly T[], endpointId: string, address: string): T[] {
  const ip = address ? bareIp(address) : '';
  return ip ? onNetwork.filter((e) => e.id !== endpointId && e.address !== '' && bareIp(e.address) === ip) : [];
}
