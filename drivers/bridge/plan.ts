// What the kernel should look like for a bridge network and its endpoints, computed as data from
// the request. Pure: the driver applies these plans (bridge-driver.ts) and stores them.
import { type CreateNetworkRequest, type CreateEndpointRequest } from '../driver.js';
import { parseBridgeOptions } from './options.js';
import { macFromIPv4 } from '../options.js';
import type { FirewallNetwork } from '../../firewall/model.js';
import { UserError } from '../../core/errors.js';
import { shortId } from '../../core/text.js';

/** Stored as NetworkRecord.config for bridge networks. */
export interface BridgeNetworkConfig {
  bridge: string;
  /** true when tsnet derived the name (shown in status; both kinds are owned by tsnet) */
  derivedName: boolean;
  mtu: number;
  icc: boolean;
  masquerade: boolean;
  internal: boolean;
  /** containers may send only from their own MAC and addresses; undefined (networks made before it existed) = true */
  antiSpoofing?: boolean;
  enableIpv6: boolean;
  /** '' = every host address */
  hostBindingIpv4: string;
  ifacePrefix: string;
  /** CIDRs put on the bridge: the gateways */
  gatewayAddresses: string[];
  /** CIDRs of the network's pools */
  subnets: string[];
}

/** Stored as EndpointRecord.config for bridge endpoints. */
export interface BridgeEndpointConfig {
  /** stays on the host, enslaved to the bridge */
  hostIf: string;
  /** handed to Docker in Join, which moves it into the container and renames it */
  containerIf: string;
}

/** Interface names are limited to 15 bytes: a 6-byte prefix leaves 9 hex digits of the ID. */
export function derivedBridgeName(networkId: string): string {
  return `tsnet-${networkId.slice(0, 9)}`;
}

export function endpointLinkNames(endpointId: string): BridgeEndpointConfig {
  const id = shortId(endpointId);
  return { hostIf: `tsv${id}`, containerIf: `tsc${id}` };
}

export function planNetwork(req: CreateNetworkRequest): BridgeNetworkConfig {
  const opts = parseBridgeOptions(req.options);
  const v4 = req.ipv4.filter((d) => d.pool !== '0.0.0.0/0');
  if (v4.length === 0) {
    throw new UserError('a tsnet bridge network needs an IPv4 subnet: give --subnet or use an IPAM driver that allocates one');
  }
  const gatewayAddresses: string[] = [];
  for (const d of v4) {
    if (!d.gateway) {
      throw new UserError(`IPv4 pool ${d.pool} has no gateway: give --gateway or use an IPAM driver that allocates one`);
    }
    gatewayAddresses.push(d.gateway);
  }
  const v6 = req.enableIpv6 ? req.ipv6 : [];
  if (req.enableIpv6 && v6.length === 0) {
    throw new UserError('--ipv6 needs an IPv6 subnet for a tsnet bridge network: add --subnet with an IPv6 prefix');
  }
  for (const d of v6) {
    if (!d.gateway) throw new UserError(`IPv6 pool ${d.pool} has no gateway: give --gateway for it`);
    gatewayAddresses.push(d.gateway);
  }
  return {
    bridge: opts.bridgeName ?? derivedBridgeName(req.networkId),
    derivedName: opts.bridgeName === undefined,
    mtu: opts.mtu,
    icc: opts.icc,
    antiSpoofing: opts.antiSpoofing,
    masquerade: opts.masquerade && !req.internal,
    internal: req.internal,
    enableIpv6: req.enableIpv6,
    hostBindingIpv4: opts.hostBindingIpv4,
    ifacePrefix: opts.ifacePrefix,
    gatewayAddresses,
    subnets: [...v4, ...v6].map((d) => d.pool),
  };
}

export interface EndpointPlan {
  config: BridgeEndpointConfig;
  mac: string;
  /** true when Docker gave no MAC and tsnet chose it (returned in CreateEndpoint) */
  macChosen: boolean;
}

export function planEndpoint(req: CreateEndpointRequest): EndpointPlan {
  if (!req.address) {
    throw new UserError('a tsnet bridge endpoint needs an IPv4 address; the IPAM driver gave none');
  }
  const macChosen = req.macAddress === '';
  return {
    config: endpointLinkNames(req.endpointId),
    mac: macChosen ? macFromIPv4(req.address) : req.macAddress,
    macChosen,
  };
}

export function firewallNetwork(id: string, c: BridgeNetworkConfig): FirewallNetwork {
  return { id, bridge: c.bridge, subnets: c.subnets, masquerade: c.masquerade, internal: c.internal, icc: c.icc };
}
