// The overlay driver: a bridge network on every host (drivers/bridge/ does the bridge, gateway,
// veths, NAT and published ports) with a VXLAN port that joins the hosts' bridges into one layer 2.
// The bridge, the VXLAN device and the container ports live in a namespace of the network's own,
// and the host has a veth with the gateway on it (netns-layout.ts says why and how).
//
// This file keeps the protocol calls. With a cluster store (store/cluster/), create writes the
// overlay's definition (VNI, subnet, port) as the first host or checks it as a later one, so the
// same name means the same network everywhere; everything else the cluster needs (announcing and
// withdrawing endpoints, watching the others' and programming their forwarding and neighbour
// entries) is the control plane in peers.ts. The VXLAN device and its bridge port learn nothing
// from the wire. Without a cluster store an overlay works across this host's containers only.
import { isIPv4 } from 'node:net';
import { type CreateEndpointRequest, type CreateEndpointResult, type CreateNetworkRequest, type EndpointOperInfo, type EndpointRef, type JoinRequest, type JoinResult, type ManagedDriver, type ProgramExternalConnectivityRequest } from '../driver.js';
import { BridgeDriver, type BridgeDriverDeps, type BridgeExtension } from '../bridge/bridge-driver.js';
import type { BridgeNetworkConfig } from '../bridge/plan.js';
import type { FirewallState } from '../../firewall/model.js';
import type { ClusterStore } from '../../store/cluster/cluster-store.js';
import { bridgeRequest, firstFreeLocalVni, overlayLinkNames, overlayMtu, overlaySubnets, parseOverlayOptions, VXLAN_PORT, type OverlayConfig, type Underlay } from './plan.js';
import { OverlayPeers, type OverlayNetwork } from './peers.js';
import { NetnsLayout, type NamespaceKernel } from './netns-layout.js';
import { Undo } from '../../core/undo.js';
import { UserError } from '../../core/errors.js';
import { shortId } from '../../core/text.js';

export interface OverlayDriverDeps extends BridgeDriverDeps {
  /** undefined: single-host overlays only */
  cluster?: ClusterStore;
  /** the host's underlay, read when a network is created (routes may change) */
  underlay: () => Underlay;
  /** the kernel's named namespaces unless given (unit tests give a fake) */
  namespaces?: NamespaceKernel;
}

/** VNIs tried on this host before giving up on finding a free one. */
const MAX_VNI_ATTEMPTS = 64;

class VniTakenError extends UserError {
  constructor(vni: number, port: number) {
    super(`VNI ${vni} on UDP port ${port} is taken by another VXLAN device on this host: choose another -o vni=N`);
  }
}

export class OverlayDriver implements ManagedDriver {
  readonly type = 'overlay' as const;
  private readonly bridge: BridgeDriver<OverlayConfig>;
  private readonly peers: OverlayPeers;
  private readonly layout: NetnsLayout;

  constructor(private readonly d: OverlayDriverDeps) {
    this.layout = new NetnsLayout(d);
    this.bridge = new BridgeDriver<OverlayConfig>(d, { type: 'overlay', extension: this.vxlanPort() });
    this.peers = new OverlayPeers({ ...d, netlinkOf: (net) => this.layout.netlink(net.id) });
  }

  // ---------------------------------------------------------------- networks

  async createNetwork(req: CreateNetworkRequest): Promise<void> {
    const opts = parseOverlayOptions(req.options);
    const cluster = this.d.cluster;
    if (opts.name !== undefined && !cluster) {
      throw new UserError(
        `overlay '${opts.name}' spans hosts and needs the cluster store: start tsnet with --store etcd://HOST:2379 (or TSNET_STORE), or leave out -o overlay for an overlay on this host only`,
      );
    }
    if (cluster && opts.name === undefined) {
      throw new UserError('name the overlay with -o overlay=NAME, the same on every host that joins it (this daemon has a cluster store)');
    }
    const { subnet, subnet6 } = overlaySubnets(req);
    const underlay = this.d.underlay();
    const mtu = overlayMtu(underlay, opts.mtu);
    const bridgeReq = bridgeRequest(req, opts, mtu);
    const names = overlayLinkNames(req.networkId);

    let vni: number;
    let port = opts.port ?? VXLAN_PORT;
    if (cluster && opts.name !== undefined) {
      const local = this.localNetworks().find((n) => n.config.overlay.name === opts.name);
      if (local) throw new UserError(`overlay '${opts.name}' is already joined on this host by network ${shortId(local.id)}`);
      // a member first: a last member leaving elsewhere cannot remove the definition under us
      await cluster.joinOverlay(opts.name);
      const def = await cluster.defineOverlay({ name: opts.name, vni: opts.vni, subnet, subnet6, port: opts.port }).catch(this.leavingOnError(opts.name));
      vni = def.vni;
      port = def.port;
    } else {
      const used = this.localNetworks().map((n) => n.config.overlay.vni);
      if (opts.vni !== undefined && used.includes(opts.vni)) {
        throw new UserError(`VNI ${opts.vni} is used by another overlay network on this host: choose another -o vni=N or leave it out`);
      }
      vni = opts.vni ?? firstFreeLocalVni(used);
    }
    // a VNI this host chose may still be held by a VXLAN device tsnet cannot see (Docker's own
    // overlay moves its devices into namespaces of its own, from 4096 up): take the next one
    const chosenHere = opts.vni === undefined && !opts.name;
    const taken: number[] = [];
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bridge.createNetwork(bridgeReq, { overlay: { name: opts.name ?? '', vni, port, vxlan: names.vxlan, local: underlay.vtep } });
        break;
      } catch (err) {
        if (!(err instanceof VniTakenError) || !chosenHere || attempt >= MAX_VNI_ATTEMPTS) return this.leavingOnError(opts.name)(err);
        taken.push(vni);
        vni = firstFreeLocalVni([...this.localNetworks().map((n) => n.config.overlay.vni), ...taken]);
      }
    }
    if (opts.name) this.peers.reconcile(opts.name);
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & OverlayConfig>(networkId);
    if (!net) return;
    // the other hosts forget these containers before their links go
    for (const ep of this.d.repo.listEndpoints(networkId)) await this.peers.withdraw(net, ep);
    await this.bridge.deleteNetwork(networkId);
    // the last host to leave takes the overlay's definition and pool with it
    await this.leaveCluster(net.config.overlay.name);
  }

  /** Leaves the overlay in the cluster (no network of it is left here); a failure is logged, the next start leaves. */
  private async leaveCluster(name: string | undefined): Promise<void> {
    if (!name || !this.d.cluster) return;
    await this.d.cluster.leaveOverlay(name).catch((err: unknown) => this.d.log.warn({ err, overlay: name }, 'could not leave the overlay in the cluster store; the next start does'));
  }

  /** A create that failed after joining leaves again, then fails with its own error. */
  private leavingOnError(name: string | undefined): (err: unknown) => Promise<never> {
    return async (err) => {
      await this.leaveCluster(name);
      throw err;
    };
  }

  /** The VXLAN port and the network's namespace, made and unmade inside the bridge driver's own steps. */
  private vxlanPort(): BridgeExtension<OverlayConfig> {
    const nl = this.d.netlink;
    // ICC off cuts remote containers off too: the firewall drops what passes between any two
    // ports of the bridge, the VXLAN port included (not port isolation, see the bridge driver).
    // No learning (netns-layout.ts): the entries for remote containers come from the store
    // (peers.ts), so one the store withdraws is gone at once.
    const create = (id: string, c: BridgeNetworkConfig & OverlayConfig) =>
      nl.createLink({
        kind: 'vxlan',
        name: c.overlay.vxlan,
        vni: c.overlay.vni,
        port: c.overlay.port,
        local: c.overlay.local || undefined,
        learning: false,
        proxy: true,
        mtu: c.mtu,
        alias: this.d.owner.alias(id),
      });
    return {
      build: (id, c, undo) => {
        const createChecked = () => {
          try {
            create(id, c);
          } catch (err) {
            const msg = (err as Error).message;
            if (/exists/i.test(msg) && !nl.getLink(c.overlay.vxlan)) throw new VniTakenError(c.overlay.vni, c.overlay.port);
            throw err;
          }
        };
        this.layout.placeVxlan(id, c, createChecked, undo);
      },
      ensure: (id, c) => {
        // idempotent: what is missing in the network's namespace is made again
        this.layout.gatewayLink(id, c, new Undo());
        this.layout.placeVxlan(id, c, () => create(id, c));
      },
      teardown: (id, c) => {
        this.layout.removeNamespace(id);
        nl.deleteLink(c.overlay.vxlan, { ignoreMissing: true });
      },
      links: (c) => [c.overlay.vxlan],
      placement: this.layout,
      // the VXLAN packets of a multi-host overlay (an IPv4 VTEP) are not tracked (firewall/rules/table.ts)
      firewall: (c) => (isIPv4(c.overlay.local) ? { tunnel: { local: c.overlay.local, port: c.overlay.port, vni: c.overlay.vni } } : {}),
    };
  }

  // ---------------------------------------------------------------- endpoints

  async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    const net = this.readyNetwork(req.networkId);
    if (!req.address) throw new UserError('a tsnet overlay endpoint needs an IPv4 address; the IPAM driver gave none');
    const result = await this.bridge.createEndpoint(req);
    try {
      await this.peers.announce(net, this.d.repo.getEndpoint(req.endpointId)!);
    } catch (err) {
      await this.bridge.deleteEndpoint(req);
      throw err;
    }
    return result;
  }

  async deleteEndpoint(ref: EndpointRef): Promise<void> {
    const ep = this.d.repo.getEndpoint(ref.endpointId);
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & OverlayConfig>(ref.networkId);
    if (ep && net) await this.peers.withdraw(net, ep);
    await this.bridge.deleteEndpoint(ref);
  }

  join(req: JoinRequest): Promise<JoinResult> {
    return this.bridge.join(req);
  }

  leave(ref: EndpointRef): Promise<void> {
    return this.bridge.leave(ref);
  }

  programExternalConnectivity(req: ProgramExternalConnectivityRequest): Promise<void> {
    return this.bridge.programExternalConnectivity(req);
  }

  revokeExternalConnectivity(ref: EndpointRef): Promise<void> {
    return this.bridge.revokeExternalConnectivity(ref);
  }

  async endpointOperInfo(ref: EndpointRef): Promise<EndpointOperInfo> {
    const info = await this.bridge.endpointOperInfo(ref);
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & OverlayConfig>(ref.networkId);
    if (net) Object.assign(info.details, { vxlan: net.config.overlay.vxlan, vni: String(net.config.overlay.vni), overlay: net.config.overlay.name });
    return info;
  }

  // ---------------------------------------------------------------- start-up and the control plane

  restore(): void {
    this.bridge.restore();
    this.layout.sweep(this.localNetworks().map((n) => n.id));
  }

  ownedLinks(): string[] {
    return this.bridge.ownedLinks();
  }

  firewallState(): FirewallState {
    return this.bridge.firewallState();
  }

  /** After restore(): the control plane announces, withdraws and watches (peers.ts). */
  startControlPlane(): Promise<void> {
    return this.peers.start();
  }

  /** This host has a network of cluster overlay `name`. */
  hasNetwork(name: string): boolean {
    return this.localNetworks().some((n) => n.config.overlay.name === name);
  }

  private localNetworks(): OverlayNetwork[] {
    return this.d.repo.listNetworks<BridgeNetworkConfig & OverlayConfig>('overlay');
  }

  private readyNetwork(id: string): OverlayNetwork {
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & OverlayConfig>(id);
    if (!net || net.state !== 'ready') {
      throw new UserError(`network ${shortId(id)} is not known to tsnet (was its state directory removed?): recreate the network`);
    }
    return net;
  }
}
