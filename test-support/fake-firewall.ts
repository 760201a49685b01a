// A stand-in for the nftables firewall in the drivers' unit tests (drivers/bridge/ and
// drivers/overlay/ bridge-driver.test.ts, overlay-driver.test.ts): it holds what the real table
// would hold for NetworkFirewall's calls, as plain data, and can be told to fail. It refuses
// what the real one refuses (it spells every network and mapping through the real rule text
// first) and keys published ports as the real maps do, so a test can assert "nothing left".
import type { NetworkFirewall } from '../firewall/api.js';
import type { FirewallEndpoint, FirewallNetwork, PortMapping } from '../firewall/model.js';
import { addEndpoint as endpointRules, addNetwork as networkRules, mappingElement } from '../firewall/ruleset.js';

type Call = keyof NetworkFirewall;

export class FakeFirewall implements NetworkFirewall {
  /** the networks held, by bridge */
  readonly networks = new Map<string, FirewallNetwork>();
  /** the container ports under anti-spoofing, by port */
  readonly endpoints = new Map<string, FirewallEndpoint>();
  /** published ports as the table keys them ("map key") with the mapping that holds the key */
  private readonly ports = new Map<string, PortMapping>();
  /** every call, in order, as "call bridge-or-count" */
  readonly calls: string[] = [];
  /** the next call of this kind fails (before changing anything), as nft would on a full table */
  failNext?: Call;

  addNetwork(n: FirewallNetwork): void {
    this.step('addNetwork', n.bridge);
    networkRules(n);
    this.networks.set(n.bridge, n);
  }

  removeNetwork(n: FirewallNetwork): void {
    this.step('removeNetwork', n.bridge);
    this.networks.delete(n.bridge);
  }

  /** Like the real one, a host port still mapped to another container is taken over. */
  publish(ms: PortMapping[]): void {
    this.step('publish', String(ms.length));
    // every mapping is checked before any is held: one transaction, as in nftables
    const keyed = ms.map((m) => [keyOf(m), m] as const);
    for (const [key, m] of keyed) this.ports.set(key, m);
  }

  /** Like the real one, a key now mapped to another container is left alone. */
  unpublish(ms: PortMapping[]): void {
    this.step('unpublish', String(ms.length));
    for (const m of ms) {
      const key = keyOf(m);
      const held = this.ports.get(key);
      if (held && held.containerIp === m.containerIp && held.containerPort === m.containerPort) this.ports.delete(key);
    }
  }

  addEndpoint(e: FirewallEndpoint): void {
    this.step('addEndpoint', e.port);
    endpointRules(e);
    this.endpoints.set(e.port, e);
  }

  removeEndpoint(e: Pick<FirewallEndpoint, 'port'>): void {
    this.step('removeEndpoint', e.port);
    this.endpoints.delete(e.port);
  }

  /** The published ports held, in the order they were published. */
  mappings(): PortMapping[] {
    return [...this.ports.values()];
  }

  private step(call: Call, what: string): void {
    this.calls.push(`${call} ${what}`);
    if (this.failNext === call) {
      this.failNext = undefined;
      throw new Error(`injected firewall failure at ${call}`);
    }
  }
}

/** The map and key a mapping occupies in the real table; throws FirewallInputError as it would. */
function keyOf(m: PortMapping): string {
  const e = mappingElement(m);
  return `${e.map} ${e.key}`;
}
