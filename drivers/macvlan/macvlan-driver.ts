// The macvlan driver: containers sit directly on the LAN behind a parent link, each with its own
// MAC. One macvlan sub-interface per endpoint (made in the host namespace, moved into the
// container by Docker). No NAT and no published ports: traffic never passes through the host.
// Optional host access: the kernel keeps a parent's macvlan children from talking to the parent
// itself, so the host gets a macvlan "shim" sibling with an address and a route to the subnet.
import {
  UserError,
  type CreateEndpointRequest,
  type CreateEndpointResult,
  type CreateNetworkRequest,
  type EndpointOperInfo,
  type EndpointRef,
  type JoinRequest,
  type JoinResult,
  type ManagedDriver,
  type ProgramExternalConnectivityRequest,
} from '../driver.js';
import type { EndpointRecord, NetworkRecord, NetworkRepo } from '../../store/network-repo.js';
import type { Netlink } from '../../native/netlink/netlink.js';
import { isNetlinkError } from '../../native/netlink/errors.js';
import type { FirewallNetwork, PortMapping } from '../../firewall/model.js';
import type { LinkOwner } from '../owner.js';
import { withUndo, type Logger, type Undo } from '../undo.js';
import { refuseSubnetOverlap } from '../subnets.js';
import { planMacvlanEndpoint, planMacvlanNetwork, type MacvlanEndpointConfig, type MacvlanNetworkConfig } from './plan.js';

/** Stored config: the plan plus whether tsnet made the parent (then it removes it too). */
export interface MacvlanNetworkState extends MacvlanNetworkConfig {
  createdParent: boolean;
}

type MacvlanNetwork = NetworkRecord<MacvlanNetworkState>;
type MacvlanEndpoint = EndpointRecord<MacvlanEndpointConfig>;

export interface MacvlanDriverDeps {
  repo: NetworkRepo;
  netlink: Netlink;
  reaper: { remove(name: string): void };
  owner: LinkOwner;
  log: Logger;
}

export class MacvlanDriver implements ManagedDriver {
  readonly type = 'macvlan' as const;

  constructor(private readonly d: MacvlanDriverDeps) {}

  // ---------------------------------------------------------------- networks

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const plan = planMacvlanNetwork(req);
    const createdParent = this.checkParent(req.networkId, plan);
    refuseSubnetOverlap(this.d.repo, plan.subnets);
    const config: MacvlanNetworkState = { ...plan, createdParent };
    withUndo(this.d.log, (undo) => {
      this.d.repo.insertNetwork({ id: req.networkId, driver: 'macvlan', state: 'creating', config, ipv4: req.ipv4, ipv6: req.ipv6 });
      undo.push('store row', () => this.d.repo.deleteNetwork(req.networkId));
      this.buildNetwork(req.networkId, config, undo);
      this.d.repo.setNetworkState(req.networkId, 'ready');
    });
  }

  /**
   * Validates the parent before anything is touched; returns whether tsnet must create it.
   * Errors name the interface and say what to do.
   */
  private checkParent(networkId: string, c: MacvlanNetworkConfig): boolean {
    const nl = this.d.netlink;
    const p = c.parentPlan;
    if (this.d.repo.getNetwork(networkId)) throw new UserError(`network ${networkId.slice(0, 12)} already exists in tsnet`);
    if (p.kind === 'isolated') return true;
    const onParent = this.macvlanNetworks().filter((n) => n.config.parent === p.name);
    if (c.mode === 'passthru' && onParent.length > 0) {
      throw new UserError(`parent ${p.name} already carries tsnet macvlan network ${onParent[0].id.slice(0, 12)}: passthru mode needs the parent to itself`);
    }
    const passthru = onParent.find((n) => n.config.mode === 'passthru');
    if (passthru) throw new UserError(`parent ${p.name} is used in passthru mode by tsnet network ${passthru.id.slice(0, 12)}: no other network can share it`);
    let link = nl.getLink(p.name);
    let create = false;
    if (!link && p.kind === 'vlan') {
      const base = nl.getLink(p.base);
      if (!base) throw new UserError(`parent interface ${p.base} (for VLAN ${p.name}) does not exist on this host`);
      link = base;
      create = true;
    }
    if (!link) throw new UserError(`parent interface ${p.name} does not exist on this host: give an existing link with -o parent=NAME`);
    if (!link.up) throw new UserError(`parent interface ${link.name} is down: bring it up (ip link set ${link.name} up) and create the network again`);
    if (c.mtu !== undefined && c.mtu > link.mtu) {
      throw new UserError(`MTU ${c.mtu} is above the MTU ${link.mtu} of parent ${link.name}: a macvlan cannot exceed its parent's MTU`);
    }
    return create;
  }

  private buildNetwork(id: string, c: MacvlanNetworkState, undo: Undo): void {
    const nl = this.d.netlink;
    const p = c.parentPlan;
    if (c.createdParent && p.kind === 'isolated') {
      nl.createLink({ kind: 'bridge', name: p.name, alias: this.d.owner.alias(id) });
      undo.push(`bridge ${p.name}`, () => nl.deleteLink(p.name, { ignoreMissing: true }));
      nl.setLink(p.name, { up: true });
    } else if (c.createdParent && p.kind === 'vlan') {
      try {
        nl.createLink({ kind: 'vlan', name: p.name, parent: p.base, vlanId: p.vlanId, alias: this.d.owner.alias(id) });
      } catch (err) {
        if (isNetlinkError(err, 'EOPNOTSUPP')) {
          throw new UserError(
            `cannot create VLAN parent ${p.name}: this kernel has no 802.1Q VLAN support (module 8021q). ` +
              `Create the VLAN link another way, or use an existing parent such as -o parent=${p.base}`,
          );
        }
        throw err;
      }
      undo.push(`vlan ${p.name}`, () => nl.deleteLink(p.name, { ignoreMissing: true }));
      nl.setLink(p.name, { up: true });
    }
    if (c.shim) this.buildShim(id, c, c.shim, undo);
  }

  private buildShim(id: string, c: MacvlanNetworkConfig, shim: NonNullable<MacvlanNetworkConfig['shim']>, undo: Undo): void {
    const nl = this.d.netlink;
    nl.createLink({ kind: 'macvlan', name: shim.name, parent: c.parent, mode: 'bridge', alias: this.d.owner.alias(id) });
    undo.push(`shim ${shim.name}`, () => nl.deleteLink(shim.name, { ignoreMissing: true }));
    nl.addAddress(shim.name, shim.address);
    nl.setLink(shim.name, { up: true });
    // the subnet through the shim, not the parent: the parent cannot reach its own macvlans
    for (const subnet of shim.subnets) nl.replaceRoute({ dst: subnet, dev: shim.name });
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = this.d.repo.getNetwork<MacvlanNetworkState>(networkId);
    if (!net) return;
    this.d.repo.setNetworkState(networkId, 'deleting');
    for (const ep of this.d.repo.listEndpoints<MacvlanEndpointConfig>(networkId)) this.teardownEndpoint(ep);
    this.teardownNetwork(net);
    this.d.repo.deleteNetwork(networkId);
  }

  /** Removes what tsnet made; a parent the user made is left exactly as it was. */
  private teardownNetwork(net: MacvlanNetwork): void {
    const nl = this.d.netlink;
    const c = net.config;
    if (c.shim) nl.deleteLink(c.shim.name, { ignoreMissing: true });
    if (!c.createdParent) return;
    const othersOnParent = this.macvlanNetworks().filter((n) => n.id !== net.id && n.config.parent === c.parent);
    if (othersOnParent.length === 0) nl.deleteLink(c.parent, { ignoreMissing: true });
  }

  // ---------------------------------------------------------------- endpoints

  async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    const net = this.readyNetwork(req.networkId);
    const plan = planMacvlanEndpoint(req);
    if (this.d.repo.getEndpoint(req.endpointId)) throw new UserError(`endpoint ${req.endpointId.slice(0, 12)} already exists in tsnet`);
    withUndo(this.d.log, (undo) => {
      this.d.repo.insertEndpoint({ id: req.endpointId, networkId: net.id, state: 'creating', address: req.address, addressIpv6: req.addressIpv6, mac: plan.mac, config: plan.config });
      undo.push('store row', () => this.d.repo.deleteEndpoint(req.endpointId));
      const nl = this.d.netlink;
      nl.createLink({ kind: 'macvlan', name: plan.config.link, parent: net.config.parent, mode: net.config.mode, mtu: net.config.mtu, mac: plan.mac, alias: this.d.owner.alias(req.endpointId) });
      undo.push(`macvlan ${plan.config.link}`, () => nl.deleteLink(plan.config.link, { ignoreMissing: true }));
      this.d.repo.setEndpointState(req.endpointId, 'ready');
    });
    return plan.macChosen ? { macAddress: plan.mac } : {};
  }

  async deleteEndpoint(ref: EndpointRef): Promise<void> {
    const ep = this.d.repo.getEndpoint<MacvlanEndpointConfig>(ref.endpointId);
    if (ep) this.teardownEndpoint(ep);
  }

  private teardownEndpoint(ep: MacvlanEndpoint): void {
    this.d.repo.deleteEndpoint(ep.id);
    this.d.reaper.remove(ep.config.link);
  }

  async join(req: JoinRequest): Promise<JoinResult> {
    const net = this.readyNetwork(req.networkId);
    const ep = this.d.repo.getEndpoint<MacvlanEndpointConfig>(req.endpointId);
    if (!ep || ep.state !== 'ready') throw new UserError(`endpoint ${req.endpointId.slice(0, 12)} is not known to tsnet`);
    this.d.repo.setSandbox(ep.id, req.sandboxKey);
    const c = net.config;
    const gateway = c.internal ? '' : c.gateway;
    return {
      srcName: ep.config.link,
      dstPrefix: 'eth',
      gateway,
      gatewayIpv6: c.internal || !ep.addressIpv6 ? '' : c.gatewayIpv6,
      staticRoutes: [],
      // without a gateway Docker would attach docker_gwbridge to give the container a way out
      disableGatewayService: gateway === '',
    };
  }

  async leave(ref: EndpointRef): Promise<void> {
    if (this.d.repo.getEndpoint(ref.endpointId)) this.d.repo.setSandbox(ref.endpointId, null);
  }

  async programExternalConnectivity(req: ProgramExternalConnectivityRequest): Promise<void> {
    // as with Docker's macvlan: containers are on the LAN with their own address, nothing to publish
    if (req.options.portBindings.length > 0) {
      this.d.log.warn({ endpoint: req.endpointId.slice(0, 12) }, 'published ports are ignored on macvlan networks: the container is reachable at its own address');
    }
  }

  async revokeExternalConnectivity(): Promise<void> {}

  async endpointOperInfo(ref: EndpointRef): Promise<EndpointOperInfo> {
    const ep = this.d.repo.getEndpoint<MacvlanEndpointConfig>(ref.endpointId);
    if (!ep) throw new UserError(`endpoint ${ref.endpointId.slice(0, 12)} is not known to tsnet`);
    const net = this.d.repo.getNetwork<MacvlanNetworkState>(ep.networkId);
    return { portBindings: [], exposedPorts: [], details: { link: ep.config.link, parent: net?.config.parent ?? '' } };
  }

  // ---------------------------------------------------------------- start-up reconcile

  restore(): void {
    const { repo, log, netlink: nl } = this.d;
    for (const net of this.macvlanNetworks()) {
      if (net.state !== 'ready') {
        log.info({ network: net.id, state: net.state }, 'finishing an interrupted macvlan network operation');
        for (const ep of repo.listEndpoints<MacvlanEndpointConfig>(net.id)) this.teardownEndpoint(ep);
        this.teardownNetwork(net);
        repo.deleteNetwork(net.id);
        continue;
      }
      const c = net.config;
      withUndo(log, (undo) => {
        // after a reboot: what tsnet made for the network is gone; a user's parent must be there
        if (c.createdParent && !nl.getLink(c.parent)) this.buildNetwork(net.id, { ...c, shim: undefined }, undo);
        if (c.shim && !nl.getLink(c.shim.name)) this.buildShim(net.id, c, c.shim, undo);
      });
      for (const ep of repo.listEndpoints<MacvlanEndpointConfig>(net.id)) {
        if (ep.state !== 'ready') this.teardownEndpoint(ep);
      }
    }
  }

  ownedLinks(): string[] {
    const names: string[] = [];
    for (const net of this.macvlanNetworks()) {
      if (net.config.createdParent) names.push(net.config.parent);
      if (net.config.shim) names.push(net.config.shim.name);
      for (const ep of this.d.repo.listEndpoints<MacvlanEndpointConfig>(net.id)) names.push(ep.config.link);
    }
    return names;
  }

  firewallState(): { networks: FirewallNetwork[]; mappings: PortMapping[] } {
    // macvlan traffic goes straight to the LAN: nothing for the host's firewall to do
    return { networks: [], mappings: [] };
  }

  private macvlanNetworks(): MacvlanNetwork[] {
    return this.d.repo.listNetworks<MacvlanNetworkState>('macvlan');
  }

  private readyNetwork(id: string): MacvlanNetwork {
    const net = this.d.repo.getNetwork<MacvlanNetworkState>(id);
    if (!net || net.state !== 'ready') throw new UserError(`network ${id.slice(0, 12)} is not known to tsnet: recreate the network`);
    return net;
  }
}
