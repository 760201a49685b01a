// What the firewall is asked to hold, as plain data. The rule text is derived from these by the
// pure functions of ruleset.ts; firewall.ts applies it.

import type { Proto } from '../core/protocol.js';

/** One tsnet network as the firewall sees it: a bridge and the subnets behind it. */
export interface FirewallNetwork {
  id: string;
  /** the Linux bridge of the network */
  bridge: string;
  /** v4 and v6 CIDRs */
  subnets: string[];
  /** rewrite the source of traffic leaving the network's subnets to the outgoing interface's address */
  masquerade: boolean;
  /** no forwarding in or out of the bridge at all, only within it */
  internal: boolean;
  /** false: containers of the network may not reach each other by any path (Docker's enable_icc=false); default true */
  icc?: boolean;
  /** an overlay's VXLAN tunnel on this host (IPv4 VTEP): its packets are exempt from connection tracking */
  tunnel?: Tunnel;
}

/** Where an overlay's VXLAN packets arrive and leave on this host. */
export interface Tunnel {
  /** this host's VTEP address */
  local: string;
  /** the VXLAN UDP port */
  port: number;
  vni: number;
}

/** One published port: host address and port forwarded to a container address and port. */
export interface PortMapping {
  endpointId: string;
  proto: Proto;
  /** '' = every host address of the container address's family */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

/** Everything the firewall holds for a driver's networks, for the full sync at start-up. */
export interface FirewallState {
  networks: FirewallNetwork[];
  mappings: PortMapping[];
  endpoints: FirewallEndpoint[];
}

/**
 * A container's port on a tsnet bridge with what it may send from (anti-spoofing): its MAC and
 * its addresses on the network, bare.
 */
export interface FirewallEndpoint {
  endpointId: string;
  /** the host end of the container's veth, a port of the bridge */
  port: string;
  mac: string;
  ipv4: string[];
  ipv6: string[];
  /** may send only from the above (default true) */
  antiSpoofing?: boolean;
  /** false: its network has ICC off, nothing it sends reaches another port of the bridge (default true) */
  icc?: boolean;
}

/** Input the firewall cannot turn into rules (a bad name, address or port). */
export class FirewallInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FirewallInputError';
  }
}
