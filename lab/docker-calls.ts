// The requests the lab sends a host's daemon, built as dockerd builds them, and what dockerd does
// with the replies. Creating the overlay is what dockerd sends for
//   docker network create -d tsnet --ipam-driver tsnet --ipam-opt overlay=NAME -o type=overlay -o overlay=NAME
// and a container's attach and detach are its connect and disconnect. Every method name, option
// key and body shape is one the daemon's side exports (plugin-api/, ipam/, drivers/overlay/), so
// the lab cannot drift from the protocol the server answers. Pure: lab.ts sends them.
import { TYPE_OPTION } from '../core/protocol.js';
import { OVERLAY_OPTION } from '../drivers/overlay/plan.js';
import { OVERLAY_POOL_OPTION } from '../ipam/cluster-ipam.js';
import { LOCAL_ADDRESS_SPACE } from '../ipam/ipam.js';
import { GATEWAY_REQUEST, REQUEST_ADDRESS_TYPE } from '../ipam/types.js';
import type { ReplyOf } from '../plugin-api/methods.js';
import {
  OPTION_ENABLE_IPV6,
  OPTION_GENERIC,
  type WireCreateEndpoint,
  type WireCreateNetwork,
  type WireEndpointRef,
  type WireJoin,
  type WireReleaseAddress,
  type WireRequestAddress,
  type WireRequestPool,
} from '../plugin-api/translate.js';
import type { SandboxLink } from '../runtime/sandbox.js';

/** The overlay's pool, shared by every host through the cluster store (`--ipam-opt overlay=NAME`). */
export function overlayPoolRequest(overlay: string, subnet: string): WireRequestPool {
  return { AddressSpace: LOCAL_ADDRESS_SPACE, Pool: subnet, SubPool: '', Options: { [OVERLAY_POOL_OPTION]: overlay }, V6: false };
}

/** The network's gateway address, asked for before the network is created. */
export function gatewayRequest(poolId: string): WireRequestAddress {
  return { PoolID: poolId, Address: '', Options: { [REQUEST_ADDRESS_TYPE]: GATEWAY_REQUEST } };
}

/** `-o type=overlay -o overlay=NAME` on the pool and gateway the IPAM gave. */
export function createOverlayRequest(networkId: string, overlay: string, pool: ReplyOf<'IpamDriver.RequestPool'>, gateway: string): WireCreateNetwork {
  return {
    NetworkID: networkId,
    Options: { [OPTION_GENERIC]: { [TYPE_OPTION]: 'overlay', [OVERLAY_OPTION]: overlay }, [OPTION_ENABLE_IPV6]: false },
    IPv4Data: [{ AddressSpace: LOCAL_ADDRESS_SPACE, Pool: pool.Pool, Gateway: gateway, AuxAddresses: {} }],
    IPv6Data: [],
  };
}

/** Any free address of the pool, for a container. */
export function addressRequest(poolId: string): WireRequestAddress {
  return { PoolID: poolId, Address: '', Options: {} };
}

export function releaseAddressRequest(poolId: string, address: string): WireReleaseAddress {
  return { PoolID: poolId, Address: address };
}

/** The endpoint with the address the IPAM gave; the driver fills in the MAC. */
export function createEndpointRequest(networkId: string, endpointId: string, address: string): WireCreateEndpoint {
  return { NetworkID: networkId, EndpointID: endpointId, Interface: { Address: address, AddressIPv6: '', MacAddress: '' }, Options: {} };
}

export function joinRequest(networkId: string, endpointId: string, sandboxKey: string): WireJoin {
  return { NetworkID: networkId, EndpointID: endpointId, SandboxKey: sandboxKey, Options: {} };
}

/** The body of Leave and DeleteEndpoint. */
export function endpointRef(networkId: string, endpointId: string): WireEndpointRef {
  return { NetworkID: networkId, EndpointID: endpointId };
}

/**
 * What dockerd makes of the replies: the link Join names moves into the sandbox as
 * `<DstPrefix>0` with the address, the MAC CreateEndpoint filled in and the gateway Join gave.
 */
export function sandboxLink(
  netnsPath: string,
  address: string,
  endpoint: ReplyOf<'NetworkDriver.CreateEndpoint'>,
  join: ReplyOf<'NetworkDriver.Join'>,
): SandboxLink {
  return {
    link: join.InterfaceName.SrcName,
    netnsPath,
    ifName: `${join.InterfaceName.DstPrefix || 'eth'}0`,
    addresses: [address],
    gateway4: join.Gateway || undefined,
    mac: endpoint.Interface?.MacAddress || undefined,
  };
}
