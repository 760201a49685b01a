// The overlay driver: a bridge network on every host (drivers/bridge/ does the bridge, gateway,
// veths, NAT and published ports) with a VXLAN port that joins the hosts' bridges into one layer 2.
//
// Control plane, when the daemon has a cluster store (store/cluster/):
//  - create: the overlay's definition (VNI, subnet, port) is written by the first host and checked
//    by every later one, so the same name means the same network everywhere;
//  - each local endpoint is announced under this host's lease once its links exist, and withdrawn
//    before they go;
//  - every host watches all announcements and programs, for each remote container of an overlay it
//    has, a forwarding entry (MAC -> the remote VTEP) and a neighbour entry (IP -> MAC, answered by
//    the VXLAN device's ARP proxy). Nothing floods, nothing is learned from the wire.
// Without a cluster store an overlay works across this host's containers, with no remote entries.
import { type CreateEndpointRequest, type CreateEndpointResult, type CreateNetworkRequest, type EndpointOperInfo, type EndpointRef, type JoinRequest, type JoinResult, type ManagedDriver, type ProgramExternalConnectivityRequest } from '../driver.js';
import { BridgeDriver, type BridgeDriverDeps, type BridgeExtension } from '../bridge/bridge-driver.js';
import type { BridgeNetworkConfig } from '../bridge/plan.js';
import type { FirewallNetwork, PortMapping } from '../../firewall/model.js';
import type { AnnouncementListener, ClusterStore, EndpointAnnouncement } from '../../store/cluster/cluster-store.js';
import type { NetworkRecord } from '../../store/network-repo.js';
import {
  bridgeRequest,
  diffEntries,
  firstFreeLocalVni,
  overlayLinkNames,
  overlayMtu,
  parseOverlayOptions,
  remoteEntries,
  VXLAN_PORT,
  type OverlayConfig,
  type Underlay,
} from './plan.js';
import { UserError } from '../../core/errors.js';
import { shortId } from '../../core/text.js';

export interface OverlayDriverDeps extends BridgeDriverDeps {
  /** undefined: single-host overlays only */
  cluster?: ClusterStore;
  /** the host's underlay, read when a network is created (routes may change) */
  underlay: () => Underlay;
}

type OverlayNetwork = NetworkRecord<BridgeNetworkConfig & OverlayConfig>;

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
  /** every announcement in the cluster, by overlay and IP, as the watch delivered them */
  private readonly announced = new Map<string, Map<string, EndpointAnnouncement>>();

  constructor(private readonly d: OverlayDriverDeps) {
    this.bridge = new BridgeDriver<OverlayConfig>(d, { type: 'overlay', extension: this.vxlanPort() });
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
    const subnet = req.ipv4.find((d) => d.pool !== '0.0.0.0/0')?.pool;
    if (!subnet) throw new UserError('a tsnet overlay network needs an IPv4 subnet: give --subnet');
    if (req.ipv4.length > 1) throw new UserError('a tsnet overlay network takes one IPv4 subnet');
    const underlay = this.d.underlay();
    const mtu = overlayMtu(underlay, opts.mtu);
    const bridgeReq = bridgeRequest(req, opts, mtu);
    const names = overlayLinkNames(req.networkId);

    let vni: number;
    let port = opts.port ?? VXLAN_PORT;
    if (cluster && opts.name !== undefined) {
      const local = this.localNetworks().find((n) => n.config.overlay.name === opts.name);
      if (local) throw new UserError(`overlay '${opts.name}' is already joined on this host by network ${shortId(local.id)}`);
      const def = await cluster.defineOverlay({ name: opts.name, vni: opts.vni, subnet, port: opts.port });
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
        if (!(err instanceof VniTakenError) || !chosenHere || attempt >= MAX_VNI_ATTEMPTS) throw err;
        taken.push(vni);
        vni = firstFreeLocalVni([...this.localNetworks().map((n) => n.config.overlay.vni), ...taken]);
      }
    }
    if (opts.name) this.reconcile(opts.name);
  }

  async deleteNetwork(networkId: string): Promise<void> {
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & OverlayConfig>(networkId);
    if (!net) return;
    // the other hosts forget these containers before their links go
    for (const ep of this.d.repo.listEndpoints(networkId)) await this.withdraw(net, ep.id, ep.address);
    await this.bridge.deleteNetwork(networkId);
  }

  /** The VXLAN port, made and unmade inside the bridge driver's own steps. */
  private vxlanPort(): BridgeExtension<OverlayConfig> {
    const nl = this.d.netlink;
    const attach = (c: BridgeNetworkConfig & OverlayConfig) => {
      nl.setLink(c.overlay.vxlan, { master: c.bridge, up: true });
      // ICC off: an isolated port reaches only non-isolated ones, so remote containers are cut off too
      nl.setBridgePort(c.overlay.vxlan, { isolated: !c.icc, hairpin: false });
    };
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
        try {
          create(id, c);
        } catch (err) {
          const msg = (err as Error).message;
          if (/exists/i.test(msg) && !nl.getLink(c.overlay.vxlan)) throw new VniTakenError(c.overlay.vni, c.overlay.port);
          throw err;
        }
        undo.push(`vxlan ${c.overlay.vxlan}`, () => nl.deleteLink(c.overlay.vxlan, { ignoreMissing: true }));
        attach(c);
      },
      ensure: (id, c) => {
        if (!nl.getLink(c.overlay.vxlan)) create(id, c);
        attach(c);
      },
      teardown: (_id, c) => nl.deleteLink(c.overlay.vxlan, { ignoreMissing: true }),
      links: (c) => [c.overlay.vxlan],
    };
  }

  // ---------------------------------------------------------------- endpoints

  async createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult> {
    const net = this.readyNetwork(req.networkId);
    if (!req.address) throw new UserError('a tsnet overlay endpoint needs an IPv4 address; the IPAM driver gave none');
    const result = await this.bridge.createEndpoint(req);
    if (net.config.overlay.name && this.d.cluster) {
      const ep = this.d.repo.getEndpoint(req.endpointId)!;
      try {
        await this.d.cluster.announce({ overlay: net.config.overlay.name, ip: bare(ep.address), mac: ep.mac, endpointId: ep.id });
      } catch (err) {
        await this.bridge.deleteEndpoint(req);
        throw err;
      }
    }
    return result;
  }

  async deleteEndpoint(ref: EndpointRef): Promise<void> {
    const ep = this.d.repo.getEndpoint(ref.endpointId);
    const net = this.d.repo.getNetwork<BridgeNetworkConfig & OverlayConfig>(ref.networkId);
    if (ep && net) await this.withdraw(net, ep.id, ep.address);
    await this.bridge.deleteEndpoint(ref);
  }

  private async withdraw(net: OverlayNetwork, endpointId: string, address: string): Promise<void> {
    if (!net.config.overlay.name || !this.d.cluster || !address) return;
    await this.d.cluster.withdraw(net.config.overlay.name, bare(address), endpointId);
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
  }

  ownedLinks(): string[] {
    return this.bridge.ownedLinks();
  }

  firewallState(): { networks: FirewallNetwork[]; mappings: PortMapping[] } {
    return this.bridge.firewallState();
  }

  /**
   * After restore(): announces this host's endpoints again (a new lease), withdraws announcements
   * of this host that no endpoint backs any more (a crash between the two steps of a delete), and
   * starts the watch, whose first snapshot brings every VXLAN device's entries in line.
   */
  async startControlPlane(): Promise<void> {
    const cluster = this.d.cluster;
    if (!cluster) return;
    const backed = new Set<string>();
    for (const net of this.localNetworks()) {
      if (!net.config.overlay.name || net.state !== 'ready') continue;
      for (const ep of this.d.repo.listEndpoints(net.id)) {
        if (ep.state !== 'ready' || !ep.address) continue;
        backed.add(`${net.config.overlay.name} ${ep.id}`);
        try {
          await cluster.announce({ overlay: net.config.overlay.name, ip: bare(ep.address), mac: ep.mac, endpointId: ep.id });
        } catch (err) {
          this.d.log.error({ err, endpoint: ep.id }, 'could not announce an endpoint again; other hosts will not reach it');
        }
      }
    }
    for (const a of await cluster.listAnnouncements()) {
      if (a.host === cluster.host && !backed.has(`${a.overlay} ${a.endpointId}`)) await cluster.withdraw(a.overlay, a.ip, a.endpointId);
    }
    await cluster.watchAnnouncements(this.listener());
  }

  private listener(): AnnouncementListener {
    return {
      reset: (all) => {
        this.announced.clear();
        for (const a of all) this.remember(a);
        for (const net of this.localNetworks()) if (net.config.overlay.name) this.reconcile(net.config.overlay.name);
      },
      put: (a) => {
        const before = this.announced.get(a.overlay)?.get(a.ip);
        this.remember(a);
        if (before && (before.mac !== a.mac || before.vtep !== a.vtep)) this.reconcile(a.overlay);
        else this.program(a);
      },
      delete: (a) => {
        this.announced.get(a.overlay)?.delete(a.ip);
        this.reconcile(a.overlay);
      },
    };
  }

  private remember(a: EndpointAnnouncement): void {
    let byIp = this.announced.get(a.overlay);
    if (!byIp) this.announced.set(a.overlay, (byIp = new Map()));
    byIp.set(a.ip, a);
  }

  /** One new remote container: its two entries, without listing the device's tables. */
  private program(a: EndpointAnnouncement): void {
    if (a.host === this.d.cluster?.host) return;
    const vxlan = this.vxlanOf(a.overlay);
    if (!vxlan) return;
    try {
      this.d.netlink.replaceFdb({ dev: vxlan, mac: a.mac, dst: a.vtep, self: true, permanent: true });
      this.d.netlink.replaceNeighbour({ dev: vxlan, ip: a.ip, mac: a.mac });
      this.d.log.info({ overlay: a.overlay, ip: a.ip, host: a.host }, 'remote endpoint programmed');
    } catch (err) {
      this.d.log.error({ err, announcement: a }, 'could not program a remote endpoint');
    }
  }

  /** Makes the overlay's VXLAN device hold exactly the remote containers the cluster announces. */
  private reconcile(overlay: string): void {
    const vxlan = this.vxlanOf(overlay);
    if (!vxlan || !this.d.cluster) return;
    const nl = this.d.netlink;
    try {
      const wanted = remoteEntries(this.announced.get(overlay)?.values() ?? [], overlay, this.d.cluster.host);
      const kernel = {
        fdb: nl
          .listFdb(vxlan)
          .filter((e) => e.self && e.dst && e.mac !== '00:00:00:00:00:00')
          .map((e) => ({ mac: e.mac, dst: e.dst! })),
        neighbours: nl
          .listNeighbours(vxlan)
          .filter((n) => n.mac && n.family === 4)
          .map((n) => ({ ip: n.ip, mac: n.mac! })),
      };
      const ch = diffEntries(wanted, kernel);
      for (const e of ch.removeFdb) nl.deleteFdb({ dev: vxlan, mac: e.mac, dst: e.dst, self: true }, { ignoreMissing: true });
      for (const e of ch.removeNeighbours) nl.deleteNeighbour(vxlan, e.ip, { ignoreMissing: true });
      for (const e of ch.addFdb) nl.replaceFdb({ dev: vxlan, mac: e.mac, dst: e.dst, self: true, permanent: true });
      for (const e of ch.addNeighbours) nl.replaceNeighbour({ dev: vxlan, ip: e.ip, mac: e.mac });
      const changed = ch.addFdb.length + ch.removeFdb.length + ch.addNeighbours.length + ch.removeNeighbours.length;
      if (changed > 0) this.d.log.info({ overlay, ...countsOf(ch) }, 'remote endpoints reconciled');
    } catch (err) {
      this.d.log.error({ err, overlay }, 'could not reconcile the remote endpoints of an overlay');
    }
  }

  private vxlanOf(overlay: string): string | undefined {
    return this.localNetworks().find((n) => n.config.overlay.name === overlay && n.state === 'ready')?.config.overlay.vxlan;
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

function bare(cidr: string): string {
  return cidr.split('/')[0];
}

function countsOf(ch: ReturnType<typeof diffEntries>): Record<string, number> {
  return { addFdb: ch.addFdb.length, removeFdb: ch.removeFdb.length, addNeighbours: ch.addNeighbours.length, removeNeighbours: ch.removeNeighbours.length };
}
