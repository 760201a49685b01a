// The macvlan driver: containers sit directly on the LAN behind a parent link, each with its own
// MAC. One macvlan sub-interface per endpoint (made in the host namespace, moved into the
// container by Docker). No NAT and no published ports: traffic never passes through the host.
// Optional host access: the kernel keeps a parent's macvlan children from talking to the parent
// itself, so the host gets a macvlan "shim" sibling with an address, and each container's address
// is routed through it.
import { type CreateEndpointRequest, type CreateEndpointResult, type CreateNetworkRequest, type EndpointOperInfo, type EndpointRef, type JoinRequest, type JoinResult, type ManagedDriver, type ProgramExternalConnectivityRequest } from '../driver.js';
import type { EndpointRecord, NetworkRecord, NetworkRepo } from '../../store/network-repo.js';
import { Netlink } from '../../native/netlink/netlink.js';
import type { LinkInfo } from '../../native/netlink/links.js';
import { existsSync } from 'node:fs';
import { closeFd, openNetnsFd } from '../../native/netns.js';
import { isNetlinkError } from '../../native/netlink/errors.js';
import type { FirewallState } from '../../firewall/model.js';
import type { LinkOwner } from '../owner.js';
import { refuseSubnetOverlap } from '../subnets.js';
import { bareIp } from '../../core/text.js';
import {
  decideParent,
  parentToRemove,
  planMacvlanEndpoint,
  planMacvlanNetwork,
  sameAddressHolders,
  vlanUnsupportedError,
  type LinkFacts,
  type MacvlanEndpointConfig,
  type MacvlanNetworkConfig,
  type ParentFacts,
  type MacvlanNetworkState,
  type ShimPlan,
} from './plan.js';
import { withUndo, type Undo } from '../../core/undo.js';
import { createEndpointRecord, createNetworkRecord, knownEndpoint, readyEndpoint, readyNetwork, refuseExistingEndpoint, refuseExistingNetwork, removeNetworkRecord } from '../records.js';
import type { Logger } from '../../core/log.js';
import { shortId } from '../../core/text.js';

export type { MacvlanNetworkState } from './plan.js';

type MacvlanNetwork = NetworkRecord<MacvlanNetworkState>;
type MacvlanEndpoint = EndpointRecord<MacvlanEndpointConfig>;

export interface MacvlanDriverDeps {
  repo: NetworkRepo;
  netlink: Netlink;
  /** removes endpoint links after the reply */
  reaper: { remove(name: string): void };
  /** tags the links this daemon makes */
  owner: LinkOwner;
  log: Logger;
}

export class MacvlanDriver implements ManagedDriver {
  readonly type = 'macvlan' as const;

  constructor(private readonly d: MacvlanDriverDeps) {}

  // ---------------------------------------------------------------- networks

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const plan = planMacvlanNetwork(req);
    if (req.internal && req.options.parent) {
      this.d.log.warn({ network: shortId(req.networkId), parent: req.options.parent }, 'internal macvlan network: parent ignored, as Docker does');
    }
    // every check before anything is touched
    refuseExistingNetwork(this.d.repo, req.networkId);
    const parent = decideParent(plan, this.parentFacts(plan));
    refuseSubnetOverlap(this.d.repo, plan.subnets);
    const config: MacvlanNetworkState = { ...plan, createdParent: parent.owned };
    createNetworkRecord(this.d.repo, this.d.log, { id: req.networkId, driver: 'macvlan', config, ipv4: req.ipv4, ipv6: req.ipv6 }, (undo) => {
      if (parent.create) this.buildParent(req.networkId, config, undo);
      if (config.shim) this.buildShim(req.networkId, config, config.shim, undo);
    });
  }

  private parentFacts(c: MacvlanNetworkConfig): ParentFacts {
    const nl = this.d.netlink;
    const facts = (name: string): LinkFacts | undefined => {
      const l = nl.getLink(name);
      return l && { name: l.name, up: l.up, mtu: l.mtu, kind: l.kind, alias: l.alias };
    };
    const p = c.parentPlan;
    const link = facts(p.name);
    return {
      link,
      base: p.kind === 'vlan' && !link ? facts(p.base) : undefined,
      others: this.macvlanNetworks().map((n) => ({ id: n.id, config: n.config })),
    };
  }

  /** Makes a parent tsnet owns: the VLAN link or the isolated bridge. */
  private buildParent(id: string, c: MacvlanNetworkState, undo: Undo): void {
    const nl = this.d.netlink;
    const p = c.parentPlan;
    if (p.kind === 'isolated') {
      nl.createLink({ kind: 'bridge', name: p.name, mtu: c.mtu, alias: this.d.owner.alias(id) });
      undo.push(`bridge ${p.name}`, () => nl.deleteLink(p.name, { ignoreMissing: true }));
    } else if (p.kind === 'vlan') {
      try {
        nl.createLink({ kind: 'vlan', name: p.name, parent: p.base, vlanId: p.vlanId, alias: this.d.owner.alias(id) });
      } catch (err) {
        if (isNetlinkError(err, 'EOPNOTSUPP')) throw vlanUnsupportedError(p);
        throw err;
      }
      undo.push(`vlan ${p.name}`, () => nl.deleteLink(p.name, { ignoreMissing: true }));
    } else {
      throw new Error(`parent ${p.name} is the user's: tsnet does not make it`);
    }
    nl.setLink(p.name, { up: true });
  }

  private buildShim(id: string, c: MacvlanNetworkState, shim: ShimPlan, undo: Undo): void {
    const nl = this.d.netlink;
    nl.createLink({ kind: 'macvlan', name: shim.name, parent: c.parent, mode: 'bridge', alias: this.d.owner.alias(id) });
    undo.push(`shim ${shim.name}`, () => nl.deleteLink(shim.name, { ignoreMissing: true }));
    nl.addAddress(shim.name, shim.address);
    nl.setLink(shim.name, { up: true });
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = this.d.repo.getNetwork<MacvlanNetworkState>(networkId);
    if (net) this.removeNetwork(net);
  }

  private removeNetwork(net: MacvlanNetwork): void {
    removeNetworkRecord<MacvlanNetworkState, MacvlanEndpointConfig>(this.d.repo, net, {
      endpoint: (ep) => this.teardownEndpoint(net, ep),
      network: (n) => this.teardownNetwork(n),
    });
  }

  /** Removes what tsnet made; a parent the user made is left exactly as it was. */
  private teardownNetwork(net: MacvlanNetwork): void {
    const nl = this.d.netlink;
    // the shim's routes go with it
    if (net.config.shim) nl.deleteLink(net.config.shim.name, { ignoreMissing: true });
    const parent = parentToRemove(net, this.macvlanNetworks());
    if (parent) nl.deleteLink(parent, { ignoreMissing: true });
  }

  // ---------------------------------------------------------------- endpoints

  async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    const net = readyNetwork<MacvlanNetworkState>(this.d.repo, req.networkId);
    const nl = this.d.netlink;
    refuseExistingEndpoint(this.d.repo, req.endpointId);
    this.evictSameAddressHolders(net, req);
    // only passthru needs to look at the parent and the other endpoints
    const passthru = net.config.mode === 'passthru';
    const plan = planMacvlanEndpoint(req, net.config, {
      parentMac: passthru ? (nl.getLink(net.config.parent)?.mac ?? '') : '',
      endpointsOnNetwork: passthru ? this.d.repo.listEndpoints(net.id).length : 0,
    });
    const row = { id: req.endpointId, networkId: net.id, address: req.address, addressIpv6: req.addressIpv6, mac: plan.mac, config: plan.config };
    createEndpointRecord(this.d.repo, this.d.log, row, (undo) => {
      const link = plan.config.link;
      // a caller that knows the container's namespace (CNI) gets the link made there at once
      const hint = req.netnsHint;
      const fd = hint ? openNetnsFd(hint) : undefined;
      try {
        nl.createLink({ kind: 'macvlan', name: link, parent: net.config.parent, mode: net.config.mode, mtu: net.config.mtu, mac: plan.linkMac, alias: this.d.owner.alias(req.endpointId), netnsFd: fd });
      } finally {
        if (fd !== undefined) closeFd(fd);
      }
      undo.push(`macvlan ${link}`, () => (hint ? deleteLinkIn(hint, link) : nl.deleteLink(link, { ignoreMissing: true })));
      if (net.config.shim && plan.config.hostRoute) {
        const route = this.shimRoute(net.config.shim, plan.config.hostRoute);
        nl.replaceRoute(route);
        undo.push(`route ${route.dst}`, () => nl.deleteRoute(route, { ignoreMissing: true }));
      }
    });
    return plan.replyMac ? { macAddress: plan.replyMac } : {};
  }

  /**
   * Endpoints of the network still holding the address `req` is given lost their DeleteEndpoint
   * (plan.ts sameAddressHolders says why): their link, wherever it is (in the host namespace, or
   * in a container namespace left behind), and their records go before the new link is made.
   */
  private evictSameAddressHolders(net: MacvlanNetwork, req: CreateEndpointRequest): void {
    for (const old of sameAddressHolders(this.d.repo.listEndpoints<MacvlanEndpointConfig>(net.id), req.endpointId, req.address)) {
      this.d.log.warn(
        { network: shortId(net.id), endpoint: shortId(old.id), for: shortId(req.endpointId), address: req.address, link: old.config.link },
        'removing an endpoint whose container is gone: its address is given to a new endpoint (its DeleteEndpoint never came)',
      );
      const alias = this.d.owner.alias(old.id);
      this.d.netlink.deleteLink(old.config.link, { ignoreMissing: true });
      try {
        if (old.sandboxKey && existsSync(old.sandboxKey)) deleteLinksIn(old.sandboxKey, (l) => l.alias === alias);
      } catch (err) {
        // a sandbox path that is no namespace any more: nothing of the old link can be there
        this.d.log.info({ err: String(err), sandbox: old.sandboxKey }, 'the gone endpoint\'s sandbox could not be opened');
      }
      this.teardownEndpoint(net, old);
    }
  }

  /** The host reaches a container through the shim, from the shim's address. */
  private shimRoute(shim: ShimPlan, dst: string) {
    return { dst, dev: shim.name, src: bareIp(shim.address) };
  }

  async deleteEndpoint(ref: EndpointRef): Promise<void> {
    const ep = this.d.repo.getEndpoint<MacvlanEndpointConfig>(ref.endpointId);
    if (!ep) return;
    const net = this.d.repo.getNetwork<MacvlanNetworkState>(ep.networkId);
    this.teardownEndpoint(net, ep);
  }

  private teardownEndpoint(net: MacvlanNetwork | undefined, ep: MacvlanEndpoint): void {
    const shim = net?.config.shim;
    if (shim && ep.config.hostRoute) this.d.netlink.deleteRoute({ dst: ep.config.hostRoute, dev: shim.name }, { ignoreMissing: true });
    this.d.repo.deleteEndpoint(ep.id);
    // gone already when Docker moved it into a container whose namespace has since been removed
    this.d.reaper.remove(ep.config.link);
  }

  async join(req: JoinRequest): Promise<JoinResult> {
    const net = readyNetwork<MacvlanNetworkState>(this.d.repo, req.networkId);
    const ep = readyEndpoint<MacvlanEndpointConfig>(this.d.repo, req.endpointId);
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
    // As Docker's macvlan does, -p is accepted and ignored: the container is on the LAN at its own
    // address, every port of it reachable there, and nothing passes through the host to map.
    if (req.options.portBindings.length > 0) {
      this.d.log.warn(
        { network: shortId(req.networkId), endpoint: shortId(req.endpointId), ports: req.options.portBindings.length },
        'published ports are ignored on macvlan networks: the container is reachable at its own address',
      );
    }
  }

  async revokeExternalConnectivity(): Promise<void> {}

  async endpointOperInfo(ref: EndpointRef): Promise<EndpointOperInfo> {
    const ep = knownEndpoint<MacvlanEndpointConfig>(this.d.repo, ref.endpointId);
    const net = this.d.repo.getNetwork<MacvlanNetworkState>(ep.networkId);
    return { portBindings: [], exposedPorts: [], details: { link: ep.config.link, parent: net?.config.parent ?? '', mode: net?.config.mode ?? '' } };
  }

  // ---------------------------------------------------------------- start-up reconcile

  /**
   * Brings the kernel back in line with the store after a restart, a crash or a reboot:
   * operations interrupted half-way are rolled back or finished, a parent or shim tsnet made that
   * is missing is made again, the shim's routes match the endpoints.
   */
  restore(): void {
    const { repo, log, netlink: nl } = this.d;
    for (const net of this.macvlanNetworks()) {
      if (net.state !== 'ready') {
        log.info({ network: net.id, state: net.state }, 'finishing an interrupted macvlan network operation');
        this.removeNetwork(net);
        continue;
      }
      const c = net.config;
      for (const ep of repo.listEndpoints<MacvlanEndpointConfig>(net.id)) {
        if (ep.state !== 'ready') {
          log.info({ endpoint: ep.id }, 'rolling back an interrupted endpoint creation');
          this.teardownEndpoint(net, ep);
        }
      }
      try {
        withUndo(log, (undo) => {
          if (!nl.getLink(c.parent)) {
            // after a reboot what tsnet made is gone (and one VLAN link may serve several networks)
            if (c.createdParent) this.buildParent(net.id, c, undo);
            else log.warn({ network: net.id, parent: c.parent }, 'parent interface of a macvlan network is missing: its containers are cut off until it is back');
          }
          if (c.shim && nl.getLink(c.parent)) {
            if (!nl.getLink(c.shim.name)) this.buildShim(net.id, c, c.shim, undo);
            this.syncShimRoutes(net, c.shim);
          }
        });
      } catch (err) {
        log.error({ err, network: net.id }, 'could not restore a macvlan network');
      }
    }
  }

  /** The shim routes exactly the addresses of the network's endpoints. */
  private syncShimRoutes(net: MacvlanNetwork, shim: ShimPlan): void {
    const nl = this.d.netlink;
    const want = new Set(
      this.d.repo
        .listEndpoints<MacvlanEndpointConfig>(net.id)
        .map((ep) => ep.config.hostRoute)
        .filter((r): r is string => r !== undefined),
    );
    for (const r of nl.listRoutes(4)) {
      if (r.dev !== shim.name || !r.dst.endsWith('/32')) continue;
      if (want.has(r.dst)) want.delete(r.dst);
      else nl.deleteRoute({ dst: r.dst, dev: shim.name }, { ignoreMissing: true });
    }
    for (const dst of want) nl.replaceRoute(this.shimRoute(shim, dst));
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

  firewallState(): FirewallState {
    // macvlan traffic goes straight to the LAN: nothing for the host's firewall to do (a macvlan
    // child is no port of a host bridge, so anti-spoofing cannot be enforced by the host either)
    return { networks: [], mappings: [], endpoints: [] };
  }

  private macvlanNetworks(): MacvlanNetwork[] {
    return this.d.repo.listNetworks<MacvlanNetworkState>('macvlan');
  }
}

function deleteLinkIn(netnsPath: string, link: string): void {
  deleteLinksIn(netnsPath, (l) => l.name === link);
}

/** Deletes the links of another namespace that `which` picks (Docker renamed them there: found by alias). */
function deleteLinksIn(netnsPath: string, which: (l: LinkInfo) => boolean): void {
  const inside = Netlink.openInNetns(netnsPath);
  try {
    for (const l of inside.listLinks().filter(which)) inside.deleteLink(l.name, { ignoreMissing: true });
  } finally {
    inside.close();
  }
}
