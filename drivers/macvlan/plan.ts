// What the kernel should look like for a macvlan network, as data: the parent (an existing link,
// an 802.1Q sub-interface tsnet creates, or a tsnet-owned bridge when there is no parent), one
// macvlan sub-interface per endpoint, and the optional host-access shim. Pure.
import { UserError, type CreateEndpointRequest, type CreateNetworkRequest } from '../driver.js';
import { isValidIfName, parseBool, parseMtu } from '../bridge/options.js';
import { bareIp, macFromIPv4 } from '../bridge/plan.js';
import { formatIp, lastOf, networkOf, parseCidr } from '../../ipam/address.js';
import type { MacvlanMode } from '../../native/netlink/links.js';

export const MACVLAN_OPTIONS = {
  parent: 'parent',
  mode: 'macvlan_mode',
  mtu: 'com.docker.network.driver.mtu',
  hostAccess: 'host_access',
} as const;

const MODES: MacvlanMode[] = ['bridge', 'private', 'vepa', 'passthru'];

/** The parent link, and what tsnet must make for it. */
export type ParentPlan =
  /** a link the user made; tsnet never changes or removes it */
  | { kind: 'existing'; name: string }
  /** an 802.1Q sub-interface tsnet creates on `base` and removes with the last network using it */
  | { kind: 'vlan'; name: string; base: string; vlanId: number }
  /** no parent given: a tsnet-owned bridge with no uplink, so the network is internal-only */
  | { kind: 'isolated'; name: string };

/** Stored as NetworkRecord.config for macvlan networks. */
export interface MacvlanNetworkConfig {
  /** the link containers' sub-interfaces hang off (shown by tsnet status) */
  parent: string;
  parentPlan: ParentPlan;
  mode: MacvlanMode;
  /** undefined: the parent's */
  mtu?: number;
  internal: boolean;
  /** host-access shim: a macvlan of the host on the same parent */
  shim?: { name: string; address: string; subnets: string[] };
  subnets: string[];
  /** bare IPs, '' when none */
  gateway: string;
  gatewayIpv6: string;
}

export interface MacvlanEndpointConfig {
  link: string;
}

export function parseVlanParent(parent: string): { base: string; vlanId: number } | undefined {
  const m = /^(.+)\.(\d{1,4})$/.exec(parent);
  if (!m) return undefined;
  const vlanId = Number(m[2]);
  if (vlanId < 1 || vlanId > 4094) throw new UserError(`VLAN ID ${vlanId} in parent '${parent}' must be from 1 to 4094`);
  return { base: m[1], vlanId };
}

/**
 * The host's shim address: the last usable IPv4 address of the first subnet, so it never collides
 * with the gateway (usually first) or with addresses IPAM hands out from the bottom.
 */
export function shimAddress(subnet: string, reserved: string[]): string {
  const cidr = parseCidr(subnet);
  const last = lastOf(cidr) - 1n;
  const address = formatIp({ family: cidr.family, value: last });
  if (last <= networkOf(cidr) || reserved.includes(address)) {
    throw new UserError(`host_access needs a free address for the host in ${subnet}; ${address} is taken by the gateway or an aux address`);
  }
  return `${address}/32`;
}

export function planMacvlanNetwork(req: CreateNetworkRequest): MacvlanNetworkConfig {
  const accepted = ['type', ...Object.values(MACVLAN_OPTIONS)];
  const unknown = Object.keys(req.options).filter((k) => !accepted.includes(k));
  if (unknown.length > 0) {
    throw new UserError(`unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} for a tsnet macvlan network; accepted: ${accepted.join(', ')}`);
  }
  const o = req.options;
  const mode = (o[MACVLAN_OPTIONS.mode] || 'bridge') as MacvlanMode;
  if (!MODES.includes(mode)) throw new UserError(`option macvlan_mode must be one of ${MODES.join(', ')}, got '${o[MACVLAN_OPTIONS.mode]}'`);
  const mtu = o[MACVLAN_OPTIONS.mtu] ? parseMtu(MACVLAN_OPTIONS.mtu, o[MACVLAN_OPTIONS.mtu]) : undefined;
  const hostAccess = o[MACVLAN_OPTIONS.hostAccess] ? parseBool(MACVLAN_OPTIONS.hostAccess, o[MACVLAN_OPTIONS.hostAccess]) : false;

  const parentName = o[MACVLAN_OPTIONS.parent] ?? '';
  let parentPlan: ParentPlan;
  if (parentName === '') {
    parentPlan = { kind: 'isolated', name: `tsmb-${req.networkId.slice(0, 10)}` };
  } else {
    if (!isValidIfName(parentName)) throw new UserError(`option parent: '${parentName}' is not a valid interface name`);
    const vlan = parseVlanParent(parentName);
    parentPlan = vlan ? { kind: 'vlan', name: parentName, ...vlan } : { kind: 'existing', name: parentName };
  }
  const internal = req.internal || parentPlan.kind === 'isolated';

  const v4 = req.ipv4.filter((d) => d.pool !== '0.0.0.0/0');
  if (v4.length === 0) throw new UserError('a tsnet macvlan network needs an IPv4 subnet: give --subnet');
  const v6 = req.enableIpv6 ? req.ipv6 : [];
  const subnets = [...v4, ...v6].map((d) => d.pool);
  const gateway = v4[0].gateway ? bareIp(v4[0].gateway) : '';
  const gatewayIpv6 = v6[0]?.gateway ? bareIp(v6[0].gateway) : '';

  let shim: MacvlanNetworkConfig['shim'];
  if (hostAccess) {
    if (parentPlan.kind === 'isolated') throw new UserError('host_access needs a parent: with no parent the network is internal to its containers');
    if (mode !== 'bridge') throw new UserError(`host_access needs macvlan_mode=bridge (the host's shim is a macvlan sibling), not ${mode}`);
    const reserved = [gateway, ...Object.values(v4[0].auxAddresses).map(bareIp)];
    shim = { name: `tsmh-${req.networkId.slice(0, 10)}`, address: shimAddress(v4[0].pool, reserved), subnets: v4.map((d) => d.pool) };
  }
  return { parent: parentPlan.name, parentPlan, mode, mtu, internal, shim, subnets, gateway, gatewayIpv6 };
}

export function planMacvlanEndpoint(req: CreateEndpointRequest): { config: MacvlanEndpointConfig; mac: string; macChosen: boolean } {
  if (!req.address) throw new UserError('a tsnet macvlan endpoint needs an IPv4 address; the IPAM driver gave none');
  const macChosen = req.macAddress === '';
  return {
    config: { link: `tsm${req.endpointId.slice(0, 12)}` },
    mac: macChosen ? macFromIPv4(req.address) : req.macAddress,
    macChosen,
  };
}
