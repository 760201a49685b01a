// The bridge driver: one Linux bridge per network with the gateway on it, one veth pair per
// endpoint (host end on the bridge, container end handed to Docker), NAT, published ports and
// isolation through the firewall. Reads top to bottom as the steps a person would do with `ip`
// and `nft`; every step that makes something registers its undo.
import { isIPv6 } from 'node:net';
import { existsSync } from 'node:fs';
import { type CreateEndpointRequest, type CreateEndpointResult, type CreateNetworkRequest, type EndpointOperInfo, type EndpointRef, type JoinRequest, type JoinResult, type KernelView, type ManagedDriver, type PortBindingRequest, type ProgramExternalConnectivityRequest } from '../driver.js';
import type { NetworkRepo, NetworkRecord, EndpointRecord, PublishedPort } from '../../store/network-repo.js';
import type { Netlink } from '../../native/netlink/netlink.js';
import type { BridgePortInfo, LinkInfo } from '../../native/netlink/links.js';
import type { NetworkFirewall } from '../../firewall/api.js';
import type { FirewallEndpoint, FirewallNetwork, FirewallState, PortMapping } from '../../firewall/model.js';
import type { LinkOwner } from '../owner.js';
import { canonicalCidr } from '../../ipam/address.js';
import { closeFd, openNetnsFd } from '../../native/netns.js';
import { refuseSubnetOverlap } from '../subnets.js';
import { HELD_BY_RUNTIME, goneOwnersOf, refusePublishedElsewhere, reserveBindings, releaseBindings, toFirewallMappings, type HostPortReserver } from '../ports.js';
import {
  firewallNetwork,
  planEndpoint,
  planNetwork,
  type BridgeEndpointConfig,
  type BridgeNetworkConfig,
} from './plan.js';
import { UserError } from '../../core/errors.js';
import { withUndo, type Undo } from '../../core/undo.js';
import type { Logger } from '../../core/log.js';
import { bareIp, shortId } from '../../core/text.js';
import { macFromIPv4 } from '../options.js';
import { createEndpointRecord, createNetworkRecord, knownEndpoint, readyEndpoint, readyNetwork, refuseExistingEndpoint, refuseExistingNetwork, removeNetworkRecord } from '../records.js';

export interface BridgeEndpointState extends BridgeEndpointConfig {
  exposedPorts: { proto: string; port: number }[];
}

type BridgeNetwork<X extends object = object> = NetworkRecord<BridgeNetworkConfig & X>;
type BridgeEndpoint = EndpointRecord<BridgeEndpointState>;

/**
 * What a driver built on the bridge adds to each network (the overlay's VXLAN port). Runs inside
 * the bridge's own steps, so the extras share its undo, restore and sweep. X is the extra
 * configuration stored with the network.
 */
export interface BridgeExtension<X extends object> {
  /** after the bridge exists (create, or rebuild at start-up); registers its undos */
  build(networkId: string, config: BridgeNetworkConfig & X, undo: Undo): void;
  /** start-up with the bridge present: makes sure the extras exist and are attached */
  ensure(networkId: string, config: BridgeNetworkConfig & X): void;
  /** before the bridge goes */
  teardown(networkId: string, config: BridgeNetworkConfig & X): void;
  /** links the extras own, for the start-up sweep */
  links(config: BridgeNetworkConfig & X): string[];
  /** where the bridge and the container ports live when not in the host's namespace */
  placement?: PortPlacement<X>;
  /** what the firewall needs to know of the network besides its bridge (an overlay's tunnel) */
  firewall?(config: BridgeNetworkConfig & X): Pick<FirewallNetwork, 'tunnel'>;
}

/**
 * A bridge kept out of the host's namespace (the overlay's, drivers/overlay/netns-layout.ts). The
 * host then has a link named config.bridge with the gateway address on it (the firewall and the
 * routes treat it as they treat a bridge), and the container ports go where the placement says.
 */
export interface PortPlacement<X extends object> {
  /** instead of making the bridge: makes the host's link config.bridge and what lies behind it */
  gatewayLink(networkId: string, config: BridgeNetworkConfig & X, undo: Undo): void;
  /** a container's port, made in the host's namespace: onto its bridge, with its per-port rules */
  attachPort(networkId: string, config: BridgeNetworkConfig & X, hostIf: string, fw: FirewallEndpoint | undefined, undo: Undo): void;
  /** start-up: attaches the port again; false when it is gone */
  restorePort(networkId: string, config: BridgeNetworkConfig & X, hostIf: string, fw: FirewallEndpoint | undefined): boolean;
  /** removes the port's rules and link */
  removePort(networkId: string, config: BridgeNetworkConfig & X, hostIf: string): void;
  /** start-up, first: moves a network made in an older layout over; true when it did */
  migrate(networkId: string, config: BridgeNetworkConfig & X, hostIfs: string[]): boolean;
}

export interface BridgeDriverDeps {
  repo: NetworkRepo;
  netlink: Netlink;
  firewall: NetworkFirewall;
  ports: HostPortReserver;
  /** removes endpoint links after the reply: the kernel takes ~20 ms to delete a veth */
  reaper: { remove(name: string): void };
  /** tags the links this daemon makes */
  owner: LinkOwner;
  writeSysctl: (key: string | string[], value: string) => void;
  log: Logger;
}

export class BridgeDriver<X extends object = object> implements ManagedDriver {
  readonly type: 'bridge' | 'overlay';

  constructor(
    private readonly d: BridgeDriverDeps,
    /** for drivers built on this one: their type in the store and what they add to each network */
    private readonly ext?: { type: 'overlay'; extension: BridgeExtension<X> },
  ) {
    this.type = ext?.type ?? 'bridge';
  }

  // ---------------------------------------------------------------- networks

  /** `extra`: the extension's configuration, stored with the network. */
  async createNetwork(req: CreateNetworkRequest, extra?: X): Promise<void> {
    const config = { ...planNetwork(req), ...extra } as BridgeNetworkConfig & X;
    this.refuseConflicts(req.networkId, config);
    createNetworkRecord(this.d.repo, this.d.log, { id: req.networkId, driver: this.type, config, ipv4: req.ipv4, ipv6: req.ipv6 }, (undo) =>
      this.buildNetwork(req.networkId, config, undo),
    );
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & X>(networkId);
    if (net) this.removeNetwork(net);
  }

  private removeNetwork(net: BridgeNetwork<X>): void {
    removeNetworkRecord<BridgeNetworkConfig & X, BridgeEndpointState>(this.d.repo, net, {
      endpoint: (ep) => this.teardownEndpoint(ep),
      network: (n) => this.teardownNetwork(n),
    });
  }

  /** Makes the kernel objects of a network; used by create and by restore after a reboot. */
  private buildNetwork(id: string, c: BridgeNetworkConfig & X, undo: Undo): void {
    const nl = this.d.netlink;
    if (this.placement) {
      this.placement.gatewayLink(id, c, undo);
    } else {
      nl.createLink({ kind: 'bridge', name: c.bridge, mtu: c.mtu, mac: macFromIPv4(c.gatewayAddresses[0]), alias: this.d.owner.alias(id) });
      undo.push(`bridge ${c.bridge}`, () => nl.deleteLink(c.bridge, { ignoreMissing: true }));
    }
    this.configureBridge(c);
    if (!c.internal) {
      this.d.writeSysctl('net.ipv4.ip_forward', '1');
      if (c.enableIpv6) this.d.writeSysctl('net.ipv6.conf.all.forwarding', '1');
    }
    const fw = this.firewallNetworkOf(id, c);
    this.d.firewall.addNetwork(fw);
    undo.push(`firewall rules of ${c.bridge}`, () => this.d.firewall.removeNetwork(fw));
    this.ext?.extension.build(id, c, undo);
  }

  /**
   * Addresses, sysctls and link state of an existing bridge; idempotent. `seen`: its addresses and
   * state as the start-up reconcile read them for every bridge at once (else they are asked for).
   */
  private configureBridge(c: BridgeNetworkConfig, seen?: { addresses: ReadonlySet<string>; up: boolean }): void {
    const nl = this.d.netlink;
    if (c.enableIpv6) this.d.writeSysctl(['net', 'ipv6', 'conf', c.bridge, 'disable_ipv6'], '0');
    const present = seen?.addresses ?? new Set(nl.listAddresses(c.bridge).map((a) => a.cidr));
    for (const cidr of c.gatewayAddresses) {
      // nodad: the IPv6 gateway must answer at once, not after duplicate address detection
      if (!present.has(canonicalCidr(cidr))) nl.addAddress(c.bridge, cidr, { nodad: isIPv6(bareIp(cidr)) });
    }
    // lets the host reach published ports through 127.0.0.1: the DNATed packet keeps its
    // loopback source until masquerade, and the kernel drops such packets on other links otherwise
    this.d.writeSysctl(['net', 'ipv4', 'conf', c.bridge, 'route_localnet'], '1');
    if (!seen?.up) nl.setLink(c.bridge, { up: true });
  }

  /** The network as the firewall sees it: its bridge's, and what the extension adds. */
  private firewallNetworkOf(id: string, c: BridgeNetworkConfig & X): FirewallNetwork {
    return { ...firewallNetwork(id, c), ...this.ext?.extension.firewall?.(c) };
  }

  private teardownNetwork(net: BridgeNetwork<X>): void {
    this.ext?.extension.teardown(net.id, net.config);
    this.d.firewall.removeNetwork(this.firewallNetworkOf(net.id, net.config));
    this.d.netlink.deleteLink(net.config.bridge, { ignoreMissing: true });
  }

  private refuseConflicts(networkId: string, c: BridgeNetworkConfig): void {
    refuseExistingNetwork(this.d.repo, networkId);
    const others = this.d.repo.listNetworks();
    const sameBridge = others.find((n) => (n.config as Partial<BridgeNetworkConfig>).bridge === c.bridge);
    if (sameBridge || this.d.netlink.getLink(c.bridge)) {
      throw new UserError(
        `interface ${c.bridge} already exists on this host` +
          (sameBridge ? ` (tsnet network ${shortId(sameBridge.id)})` : '') +
          `: choose another name with -o com.docker.network.bridge.name=NAME`,
      );
    }
    refuseSubnetOverlap(this.d.repo, c.subnets);
  }

  // ---------------------------------------------------------------- endpoints

  async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    const net = this.readyNetwork(req.networkId);
    const plan = planEndpoint(req);
    const state: BridgeEndpointState = { ...plan.config, exposedPorts: req.options.exposedPorts };
    refuseExistingEndpoint(this.d.repo, req.endpointId);
    const row = { id: req.endpointId, networkId: req.networkId, address: req.address, addressIpv6: req.addressIpv6, mac: plan.mac, config: state };
    createEndpointRecord(this.d.repo, this.d.log, row, (undo) => this.buildEndpoint(net, row, undo, req.netnsHint));
    return plan.macChosen ? { macAddress: plan.mac } : {};
  }

  private buildEndpoint(net: BridgeNetwork<X>, ep: Pick<BridgeEndpoint, 'id' | 'mac' | 'address' | 'addressIpv6' | 'config'>, undo: Undo, netnsHint?: string): void {
    const nl = this.d.netlink;
    const { mac, config: c } = ep;
    const alias = this.d.owner.alias(ep.id);
    const fd = netnsHint ? openNetnsFd(netnsHint) : undefined;
    try {
      nl.createLink({ kind: 'veth', name: c.hostIf, peerName: c.containerIf, mtu: net.config.mtu, peerMac: mac, alias, peerAlias: alias, peerNetnsFd: fd });
    } finally {
      if (fd !== undefined) closeFd(fd);
    }
    undo.push(`veth ${c.hostIf}`, () => nl.deleteLink(c.hostIf, { ignoreMissing: true }));
    if (this.placement) {
      this.placement.attachPort(net.id, net.config, c.hostIf, needsPortRules(net.config) ? firewallEndpoint(ep, net.config) : undefined, undo);
      return;
    }
    // before the port joins the bridge, so no forged frame gets through in between
    if (needsPortRules(net.config)) {
      const fw = firewallEndpoint(ep, net.config);
      this.d.firewall.addEndpoint(fw);
      undo.push(`anti-spoofing of ${c.hostIf}`, () => this.d.firewall.removeEndpoint(fw));
    }
    this.withoutIpv6(c.hostIf);
    nl.setLink(c.hostIf, { master: net.config.bridge, up: true });
    nl.setBridgePort(c.hostIf, bridgePortSettings());
  }

  /**
   * A container's host end has IPv6 turned off before it comes up: a bridge port forwards frames
   * and needs no address of its own (the bridge keeps its IPv6 gateway; containers' IPv6 frames are
   * bridged as before). With IPv6 each port came up with a link-local address and fe80::/64 and
   * ff00::/8 routes in the host's tables, where the kernel keeps the routes of one prefix in one
   * list: attaching one more veth to a bridge took ~15 ms with 3,500 such ports against ~1.4 ms
   * with 500, and ~2.2 ms with 3,500 ports without IPv6 (bench/README.md (f)). Written while no
   * port has IPv6 routes, the write itself is cheap (it walks the host's IPv6 routes). A host
   * without IPv6 has no such file: nothing to turn off.
   */
  private withoutIpv6(hostIf: string): void {
    try {
      this.d.writeSysctl(['net', 'ipv6', 'conf', hostIf, 'disable_ipv6'], '1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  async deleteEndpoint(ref: EndpointRef): Promise<void> {
    const ep = this.d.repo.getEndpoint<BridgeEndpointState>(ref.endpointId);
    if (!ep) return;
    this.teardownEndpoint(ep);
  }

  private teardownEndpoint(ep: BridgeEndpoint): void {
    this.unpublish(ep.id);
    const net = this.placement && this.d.repo.getNetwork<BridgeNetworkConfig & X>(ep.networkId);
    if (net) {
      this.placement!.removePort(net.id, net.config, ep.config.hostIf);
      this.d.repo.deleteEndpoint(ep.id);
      return;
    }
    this.d.firewall.removeEndpoint({ port: ep.config.hostIf });
    this.d.repo.deleteEndpoint(ep.id);
    // deleting either end of a veth removes both; the container end may be gone with its netns
    this.d.reaper.remove(ep.config.hostIf);
  }

  async join(req: JoinRequest): Promise<JoinResult> {
    const net = this.readyNetwork(req.networkId);
    const ep = this.readyEndpoint(req.endpointId);
    this.d.repo.setSandbox(ep.id, req.sandboxKey);
    const c = net.config;
    const gw4 = c.gatewayAddresses.find((a) => !isIPv6(bareIp(a)));
    const gw6 = c.gatewayAddresses.find((a) => isIPv6(bareIp(a)));
    return {
      srcName: ep.config.containerIf,
      dstPrefix: c.ifacePrefix,
      // an internal network has no way out, so no default route through it
      gateway: c.internal || !gw4 ? '' : bareIp(gw4),
      gatewayIpv6: c.internal || !gw6 || !ep.addressIpv6 ? '' : bareIp(gw6),
      staticRoutes: [],
      // without a gateway Docker would otherwise attach docker_gwbridge for a way out
      disableGatewayService: c.internal,
    };
  }

  async leave(ref: EndpointRef): Promise<void> {
    if (this.d.repo.getEndpoint(ref.endpointId)) this.d.repo.setSandbox(ref.endpointId, null);
  }

  // ---------------------------------------------------------------- published ports

  async programExternalConnectivity(req: ProgramExternalConnectivityRequest): Promise<void> {
    const net = this.readyNetwork(req.networkId);
    const ep = this.readyEndpoint(req.endpointId);
    // Docker re-sends this when a container's gateway endpoint changes: what is published stays
    if (this.d.repo.listPorts({ endpointId: ep.id }).length > 0) return;
    if (net.config.internal || req.options.portBindings.length === 0) return;
    this.unpublishGoneOwners(req.options.portBindings, ep);
    const bindings = reserveBindings(
      req.options.portBindings,
      { ipv4: ep.address ? bareIp(ep.address) : '', ipv6: ep.addressIpv6 ? bareIp(ep.addressIpv6) : '' },
      net.config.hostBindingIpv4,
      req.runtimeHoldsHostPorts ? HELD_BY_RUNTIME : this.d.ports,
    );
    withUndo(this.d.log, (undo) => {
      undo.push('host port reservations', () => releaseBindings(bindings, req.runtimeHoldsHostPorts ? HELD_BY_RUNTIME : this.d.ports));
      // only the rows on the same protocol and port: no full listing on the request path
      refusePublishedElsewhere(bindings, bindings.flatMap((b) => this.d.repo.portsOn(b.proto, b.hostPort)), ep.id);
      this.d.repo.insertPorts(bindings.map((b) => ({ ...b, endpointId: ep.id, networkId: net.id, heldByRuntime: req.runtimeHoldsHostPorts === true })));
      undo.push('port rows', () => this.d.repo.deletePorts(ep.id));
      this.d.firewall.publish(toFirewallMappings(ep.id, bindings));
    });
  }

  async revokeExternalConnectivity(ref: EndpointRef): Promise<void> {
    this.unpublish(ref.endpointId);
  }

  /**
   * Frees the host ports `requests` ask for that endpoints of gone containers still publish
   * (ports.ts goneOwnersOf): after a reboot, or a dockerd that restarted a container as a new
   * endpoint, Docker never revoked them. Gone: its sandbox no longer exists, or Docker gave its
   * address on the network to `ep` (so Docker let go of it). Their records stay for Docker's own
   * DeleteEndpoint.
   */
  private unpublishGoneOwners(requests: PortBindingRequest[], ep: BridgeEndpoint): void {
    const gone = (id: string) => {
      const owner = this.d.repo.getEndpoint(id);
      if (!owner) return false;
      const addressTaken = owner.networkId === ep.networkId && owner.address !== '' && owner.address === ep.address;
      return addressTaken || (owner.sandboxKey !== null && !existsSync(owner.sandboxKey));
    };
    for (const owner of goneOwnersOf(requests, (proto, port) => this.d.repo.portsOn(proto, port), ep.id, gone)) {
      this.d.log.warn({ endpoint: owner, for: ep.id }, 'unpublishing the host ports of an endpoint whose container is gone');
      this.unpublish(owner);
    }
  }

  private unpublish(endpointId: string): void {
    const ports = this.d.repo.listPorts({ endpointId });
    if (ports.length === 0) return;
    this.d.firewall.unpublish(toFirewallMappings(endpointId, ports));
    releaseBindings(ports.filter((p) => !p.heldByRuntime), this.d.ports);
    this.d.repo.deletePorts(endpointId);
  }

  async endpointOperInfo(ref: EndpointRef): Promise<EndpointOperInfo> {
    const ep = knownEndpoint<BridgeEndpointState>(this.d.repo, ref.endpointId);
    const net = this.d.repo.getNetwork<BridgeNetworkConfig>(ep.networkId);
    return {
      portBindings: this.d.repo.listPorts({ endpointId: ep.id }).map(({ proto, port, containerIp, hostIp, hostPort }) => ({
        proto,
        port,
        containerIp,
        hostIp,
        hostPort,
      })),
      exposedPorts: ep.config.exposedPorts.map((p) => ({ proto: p.proto as 'tcp', port: p.port })),
      details: { hostInterface: ep.config.hostIf, bridge: net?.config.bridge ?? '' },
    };
  }

  // ---------------------------------------------------------------- start-up reconcile

  /**
   * Brings the kernel back in line with the store after a restart, a crash or a reboot:
   * operations interrupted half-way are rolled back or finished, missing bridges are rebuilt,
   * endpoints are re-attached. Firewall state is synced by the caller from firewallState(), as a
   * whole (so no network's elements are written here one by one).
   *
   * Thousands of endpoints make this the daemon's start-up time, so it reads each thing once: the
   * store's endpoints and ports in one query each, the kernel's links, bridge ports and the
   * bridges' addresses in one dump each (`kernel` brings the links), and it writes only what
   * differs. An endpoint whose port is on its bridge, up, with its settings, costs no request.
   */
  restore(kernel?: KernelView): void {
    const { repo, log } = this.d;
    const networks = repo.listNetworks<BridgeNetworkConfig & X>(this.type);
    if (networks.length === 0) return;
    // a placement keeps its ports in namespaces of its own: it looks at them itself
    const seen = this.placement ? undefined : readHost(this.d.netlink, networks, kernel);
    const endpoints = groupBy(repo.listEndpoints<BridgeEndpointState>(), (ep) => ep.networkId);
    // the host ports a runtime holds itself (CNI's) are not held again: thousands of rows not read
    const ports = groupBy(repo.listPorts({ heldByTsnet: true }), (p) => p.networkId);
    for (const net of networks) {
      if (net.state !== 'ready') {
        log.info({ network: net.id, state: net.state }, 'finishing an interrupted network operation');
        this.removeNetwork(net);
        continue;
      }
      const eps = endpoints.get(net.id) ?? [];
      this.placement?.migrate(net.id, net.config, eps.map((ep) => ep.config.hostIf));
      const bridgeIndex = this.restoreBridge(net, seen);
      const rolledBack = new Set(eps.filter((ep) => !this.restoreEndpoint(net, ep, seen, bridgeIndex)).map((ep) => ep.id));
      this.holdPorts((ports.get(net.id) ?? []).filter((p) => !rolledBack.has(p.endpointId)));
    }
  }

  /** A network's bridge at start-up: rebuilt when missing, else brought in line; its index (undefined with a placement). */
  private restoreBridge(net: BridgeNetwork<X>, seen: HostView | undefined): number | undefined {
    const { netlink: nl, log } = this.d;
    const link = seen ? seen.links.get(net.config.bridge) : nl.getLink(net.config.bridge);
    if (!link) {
      log.warn({ network: net.id, bridge: net.config.bridge }, 'bridge missing: rebuilding it');
      withUndo(log, (undo) => this.buildNetwork(net.id, net.config, undo));
      return seen && nl.getLink(net.config.bridge)?.index;
    }
    this.configureBridge(net.config, seen && { addresses: seen.addresses.get(link.index) ?? new Set(), up: link.up });
    this.ext?.extension.ensure(net.id, net.config);
    return link.index;
  }

  /**
   * The daemon's sockets held the host ports; hold them again so no host process takes them (those
   * it still holds, when this is a repair while running, are left as they are).
   */
  private holdPorts(ports: PublishedPort[]): void {
    // only rows with heldByRuntime false come here (restore reads those alone)
    for (const p of ports) {
      if (this.d.ports.holds(p.proto, p.hostIp, p.hostPort)) continue;
      try {
        this.d.ports.reserve(p.proto, p.hostIp, p.hostPort);
      } catch (err) {
        this.d.log.warn({ err, port: p }, 'could not hold a published host port again; a host process took it while tsnet was down');
      }
    }
  }

  /** An endpoint at start-up; false when it was rolled back (an interrupted creation). */
  private restoreEndpoint(net: BridgeNetwork<X>, ep: BridgeEndpoint, seen: HostView | undefined, bridgeIndex: number | undefined): boolean {
    const { netlink: nl, log } = this.d;
    if (ep.state !== 'ready') {
      log.info({ endpoint: ep.id }, 'rolling back an interrupted endpoint creation');
      this.teardownEndpoint(ep);
      return false;
    }
    const hostIf = ep.config.hostIf;
    if (this.placement) {
      const fw = needsPortRules(net.config) ? firewallEndpoint(ep, net.config) : undefined;
      if (this.placement.restorePort(net.id, net.config, hostIf, fw)) return true;
    } else if (portInPlace(seen?.ports.get(hostIf), bridgeIndex)) {
      return true;
    } else if (seen?.links.has(hostIf)) {
      // the bridge may have been rebuilt: put the port back on it
      nl.setLink(hostIf, { master: net.config.bridge, up: true });
      nl.setBridgePort(hostIf, bridgePortSettings());
      return true;
    }
    if (ep.sandboxKey === null || !existsSync(ep.sandboxKey)) {
      // container gone (e.g. after a reboot): Docker deletes such endpoints itself when it
      // starts, through DeleteEndpoint, which also frees their host ports
      log.info({ endpoint: ep.id }, 'endpoint link gone with its container');
    } else {
      log.warn({ endpoint: ep.id, sandbox: ep.sandboxKey }, 'endpoint host link missing while its sandbox exists');
    }
    return true;
  }

  /** Link names this driver owns, for the sweep of leftovers at start-up. */
  ownedLinks(): string[] {
    const networks = this.d.repo.listNetworks<BridgeNetworkConfig & X>(this.type);
    if (networks.length === 0) return [];
    const names = networks.flatMap((net) => [net.config.bridge, ...(this.ext?.extension.links(net.config) ?? [])]);
    const ids = new Set(networks.map((n) => n.id));
    for (const ep of this.d.repo.listEndpoints<BridgeEndpointState>()) if (ids.has(ep.networkId)) names.push(ep.config.hostIf, ep.config.containerIf);
    return names;
  }

  firewallState(): FirewallState {
    const ready = this.d.repo.listNetworks<BridgeNetworkConfig & X>(this.type).filter((n) => n.state === 'ready');
    if (ready.length === 0) return { networks: [], mappings: [], endpoints: [] };
    const networks = ready.map((n) => this.firewallNetworkOf(n.id, n.config));
    const ids = new Set(networks.map((n) => n.id));
    const ports = this.d.repo.listPorts().filter((p) => ids.has(p.networkId));
    // a placement keeps its ports' rules where the ports are, not in the host's table
    const withPortRules = new Map(ready.filter((n) => needsPortRules(n.config) && !this.placement).map((n) => [n.id, n.config]));
    const endpoints = withPortRules.size === 0 ? [] : this.d.repo.listEndpoints<BridgeEndpointState>().flatMap((ep) => {
      const c = withPortRules.get(ep.networkId);
      return c && ep.state === 'ready' ? [firewallEndpoint(ep, c)] : [];
    });
    return { networks, mappings: mappingsOf(ports), endpoints };
  }

  // ---------------------------------------------------------------- lookups

  private get placement(): PortPlacement<X> | undefined {
    return this.ext?.extension.placement;
  }

  private readyNetwork(id: string): BridgeNetwork<X> {
    return readyNetwork<BridgeNetworkConfig & X>(this.d.repo, id);
  }

  private readyEndpoint(id: string): BridgeEndpoint {
    return readyEndpoint<BridgeEndpointState>(this.d.repo, id);
  }
}

/** What the start-up reconcile of bridges reads of the host's namespace, once for every network. */
interface HostView {
  links: ReadonlyMap<string, LinkInfo>;
  /** bridge ports by name */
  ports: ReadonlyMap<string, BridgePortInfo>;
  /** canonical CIDRs by link index, of the families the networks' gateways use */
  addresses: ReadonlyMap<number, Set<string>>;
}

function readHost(nl: Netlink, networks: NetworkRecord<BridgeNetworkConfig>[], kernel: KernelView | undefined): HostView {
  const links = kernel?.links ?? new Map(nl.listLinks().map((l) => [l.name, l]));
  const ports = new Map(nl.listBridgePorts().map((p) => [p.name, p]));
  const families = new Set(networks.flatMap((n) => n.config.gatewayAddresses.map((a) => (isIPv6(bareIp(a)) ? 6 : 4) as 4 | 6)));
  const addresses = new Map<number, Set<string>>();
  for (const family of families) {
    for (const a of nl.listAddresses(undefined, family)) addresses.set(a.index, (addresses.get(a.index) ?? new Set()).add(a.cidr));
  }
  return { links, ports, addresses };
}

/** Whether a container's port is on its bridge, up, with the settings bridgePortSettings() gives. */
function portInPlace(port: BridgePortInfo | undefined, bridgeIndex: number | undefined): boolean {
  const want = bridgePortSettings();
  return port !== undefined && port.masterIndex === bridgeIndex && port.up && port.hairpin === want.hairpin && port.isolated === want.isolated;
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Whether a container's port needs rules of its own: anti-spoofing (on unless anti_spoofing=false) or ICC off. */
function needsPortRules(c: BridgeNetworkConfig): boolean {
  return c.antiSpoofing !== false || !c.icc;
}

/** A container's port as the firewall sees it: its MAC and addresses, and its network's two settings. */
function firewallEndpoint(ep: Pick<BridgeEndpoint, 'id' | 'mac' | 'address' | 'addressIpv6' | 'config'>, c: BridgeNetworkConfig): FirewallEndpoint {
  return {
    endpointId: ep.id,
    port: ep.config.hostIf,
    mac: ep.mac,
    ipv4: ep.address ? [bareIp(ep.address)] : [],
    ipv6: ep.addressIpv6 ? [bareIp(ep.addressIpv6)] : [],
    antiSpoofing: c.antiSpoofing !== false,
    icc: c.icc,
  };
}

/**
 * Hairpin: with br_netfilter on (Docker leaves it on), a container reaching its own published
 * port through a host address has its DNATed packet bridged back out the port it came in on,
 * which a bridge refuses unless the port is in hairpin mode.
 * ICC off is not port isolation (which also dropped a published port reached through a host
 * address, which Docker allows): the firewall's bridge-family table drops what passes between the
 * ports of such a bridge (firewall/rules/spoofing.ts). isolated is set false explicitly, so
 * restore turns it off on ports made when ICC off used it.
 */
function bridgePortSettings(): { hairpin: boolean; isolated: boolean } {
  return { hairpin: true, isolated: false };
}

export function mappingsOf(ports: PublishedPort[]): PortMapping[] {
  return [...groupBy(ports, (p) => p.endpointId)].flatMap(([id, ps]) => toFirewallMappings(id, ps));
}
