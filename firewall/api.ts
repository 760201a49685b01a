// What a network driver may ask of the firewall, and nothing more: a network's isolation and NAT
// in and out, its published ports in and out. The drivers depend on this interface, not on the
// nftables class (firewall.ts implements it), so they can be unit-tested with a fake
// (test-support/fake-firewall.ts) and the firewall can change underneath them. Start-up sync, listings and
// Docker's chains belong to the daemon, not to the drivers.
import type { FirewallEndpoint, FirewallNetwork, PortMapping } from './model.js';

export interface NetworkFirewall {
  /** Adds a network, or brings it in line with `n`; idempotent. */
  addNetwork(n: FirewallNetwork): void;
  /** Removes a network's isolation and NAT; no error when already gone. */
  removeNetwork(n: FirewallNetwork): void;
  /** Publishes ports in one step; a host port still mapped to another container is taken over. */
  publish(ms: PortMapping[]): void;
  /** Stops publishing ports; one already gone is no error, one now held by another container is left alone. */
  unpublish(ms: PortMapping[]): void;
  /** Lets a container port send only from its own MAC and addresses (anti-spoofing); idempotent. */
  addEndpoint(e: FirewallEndpoint): void;
  /** Removes a container port's anti-spoofing; no error when already gone. */
  removeEndpoint(e: Pick<FirewallEndpoint, 'port'>): void;
}

export type { FirewallEndpoint, FirewallNetwork, PortMapping } from './model.js';
