// Where an overlay network's layer 2 lives: a network namespace of the network's own
// (`<instance>-ov-<id>`), holding its bridge (br0), its VXLAN device and the container ports, as
// Docker's overlay keeps its own. Why: Docker leaves br_netfilter on, and in the host's namespace
// it sends every bridged frame through the IP hooks (conntrack, every table), which cost the
// overlay a quarter of its throughput (bench/README.md, overlay). br_netfilter is per namespace:
// it is off in this one. What stays in the host's namespace is a veth pair from the namespace's
// bridge (gw0) to the host, whose host end carries the network's bridge name (config.bridge) and
// its gateway address: the host routes, NATs, isolates and publishes ports for the network on that
// link exactly as on a bridge (firewall/), and the containers' way out is through it.
// The VXLAN device is made in the host's namespace and then moved: its UDP socket stays on the
// host's underlay. Anti-spoofing is a netdev-family table inside the namespace: the host's checks
// (firewall/rules/spoofing.ts), at each container port's own ingress hook, so the frames from the
// VXLAN port pass no rule; ICC off is a bridge-family table there, made only for a network with ICC
// off (the gateway port is never an ICC peer): a network with ICC on has no bridge hook at all.
// An older tsnet kept both in one bridge-family table whose prerouting hook every frame entered
// (about 5% of the throughput, bench/README.md (d)); it is replaced at the daemon's start.
import { Netlink } from '../../native/netlink/netlink.js';
import { Nft, type NftApi } from '../../native/nftables.js';
import { closeFd, openNetnsFd, withNetns } from '../../native/netns.js';
import { addNamedNetns, deleteNamedNetns, listNamedNetns, namedNetnsExists, namedNetnsPath } from '../../native/named-netns.js';
import type { FirewallEndpoint } from '../../firewall/model.js';
import { SPOOF_CHAIN, addIngressGuardRules, iccOffElementRules, iccOffTableRules, ingressGuardTableRules, removeIngressGuardRules } from '../../firewall/rules/spoofing.js';
import { quote } from '../../firewall/rules/names.js';
import type { BridgeNetworkConfig } from '../bridge/plan.js';
import type { PortPlacement } from '../bridge/bridge-driver.js';
import type { LinkOwner } from '../owner.js';
import type { Logger } from '../../core/log.js';
import type { Undo } from '../../core/undo.js';
import { macFromIPv4 } from '../options.js';
import { NS_BRIDGE, NS_GATEWAY, overlayNetnsName, type OverlayConfig } from './plan.js';

type Config = BridgeNetworkConfig & OverlayConfig;

/** anti-spoofing at each container port's ingress, in the network's namespace */
const GUARD_TABLE = 'netdev tsnet';
/** ICC off, in the network's namespace (an older tsnet's anti-spoofing table had this name too) */
const ICC_TABLE = 'bridge tsnet';

/** What the layout does to named namespaces (the kernel's; a fake in unit tests). */
export interface NamespaceKernel {
  /** every named namespace */
  list(): string[];
  exists(ns: string): boolean;
  add(ns: string): void;
  /** removes the name; what is inside goes with it */
  remove(ns: string): void;
  /** sockets inside the namespace; the layout closes them before removing it */
  open(ns: string): Handles;
  /** moves a link of the host's namespace into ns */
  moveIn(link: string, ns: string): void;
  /** a sysctl of the namespace; a missing key (a module not loaded) is no error */
  sysctl(ns: string, key: string, value: string): void;
}

export interface Handles {
  nl: Netlink;
  nft: NftApi & { close(): void };
}

export interface NetnsLayoutDeps {
  /** the host's namespace */
  netlink: Netlink;
  owner: LinkOwner;
  writeSysctl: (key: string | string[], value: string) => void;
  log: Logger;
  /** the kernel's named namespaces unless given */
  namespaces?: NamespaceKernel;
}

/** Named namespaces as the kernel has them (native/named-netns.ts). */
export function kernelNamespaces(host: Netlink, writeSysctl: (key: string, value: string) => void): NamespaceKernel {
  return {
    list: listNamedNetns,
    exists: namedNetnsExists,
    add: addNamedNetns,
    remove: deleteNamedNetns,
    open(ns) {
      const path = namedNetnsPath(ns);
      const nl = Netlink.openInNetns(path);
      try {
        return { nl, nft: withNetns(path, () => Nft.open()) };
      } catch (err) {
        nl.close();
        throw err;
      }
    },
    moveIn(link, ns) {
      const fd = openNetnsFd(namedNetnsPath(ns));
      try {
        host.setLink(link, { netnsFd: fd });
      } finally {
        closeFd(fd);
      }
    },
    sysctl(ns, key, value) {
      withNetns(namedNetnsPath(ns), () => {
        try {
          writeSysctl(key, value);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      });
    },
  };
}

export class NetnsLayout implements PortPlacement<OverlayConfig> {
  /** netlink and nftables sockets opened inside each network's namespace, by namespace name */
  private readonly open = new Map<string, Handles>();
  private readonly ns: NamespaceKernel;
  /** each guarded container port's endpoint, so that its removal deletes every element of it (firewall/rules/spoofing.ts) */
  private readonly guarded = new Map<string, FirewallEndpoint>();

  constructor(private readonly d: NetnsLayoutDeps) {
    this.ns = d.namespaces ?? kernelNamespaces(d.netlink, d.writeSysctl);
  }

  /** The namespace's name for network `id` of this daemon. */
  netnsOf(id: string): string {
    return overlayNetnsName(this.d.owner.instance, id);
  }

  /** Netlink inside network `id`'s namespace (for the control plane's entries on its VXLAN device). */
  netlink(id: string): Netlink {
    return this.handles(id).nl;
  }

  // ---------------------------------------------------------------- the network

  /** The namespace (kept when a migration made it), its bridge, and the gateway veth to the host. */
  gatewayLink(id: string, c: Config, undo: Undo): void {
    const ns = this.netnsOf(id);
    if (!this.ns.exists(ns)) {
      this.ns.add(ns);
      undo.push(`namespace ${ns}`, () => this.removeNamespace(id));
    }
    const { nl, nft } = this.handles(id);
    // br_netfilter: off in here (the module may not be loaded: then there is nothing to turn off)
    for (const key of ['iptables', 'ip6tables', 'arptables']) this.ns.sysctl(ns, `net.bridge.bridge-nf-call-${key}`, '0');
    if (!nl.getLink(NS_BRIDGE)) nl.createLink({ kind: 'bridge', name: NS_BRIDGE, mtu: c.mtu });
    nl.setLink(NS_BRIDGE, { up: true });
    // an older tsnet's tables are replaced; its ports' elements come back with restorePort
    if (!hasCurrentTables(nft, c.icc)) nft.run(currentTables(c.icc));
    if (!nl.getLink(NS_GATEWAY)) {
      // the host end has the gateway's MAC, as the bridge had: containers' ARP entries stay right
      this.d.netlink.createLink({ kind: 'veth', name: c.bridge, peerName: NS_GATEWAY, mtu: c.mtu, mac: macFromIPv4(c.gatewayAddresses[0]), alias: this.d.owner.alias(id) });
      undo.push(`gateway veth ${c.bridge}`, () => this.d.netlink.deleteLink(c.bridge, { ignoreMissing: true }));
      this.ns.moveIn(NS_GATEWAY, ns);
    }
    nl.setLink(NS_GATEWAY, { master: NS_BRIDGE, up: true });
    nl.setBridgePort(NS_GATEWAY, { hairpin: false, isolated: false });
  }

  /** The VXLAN device: made in the host's namespace (its socket stays there), moved into the network's. */
  placeVxlan(id: string, c: Config, create: () => void, undo?: Undo): void {
    const { nl } = this.handles(id);
    const name = c.overlay.vxlan;
    if (!nl.getLink(name)) {
      if (!this.d.netlink.getLink(name)) {
        create();
        undo?.push(`vxlan ${name}`, () => this.d.netlink.deleteLink(name, { ignoreMissing: true }));
      }
      this.moveIn(id, name);
    }
    nl.setLink(name, { master: NS_BRIDGE, up: true });
    // no learning: the entries for remote containers come from the store (peers.ts)
    nl.setBridgePort(name, { isolated: false, hairpin: false, learning: false });
  }

  /** Removes the namespace: its bridge, VXLAN device, the containers' ports and the gateway veth go with it. */
  removeNamespace(id: string): void {
    this.remove(this.netnsOf(id));
  }

  /** Start-up: removes this daemon's overlay namespaces that no network record names (a state directory removed, a crash in between). */
  sweep(networkIds: string[]): void {
    const keep = new Set(networkIds.map((id) => this.netnsOf(id)));
    const prefix = overlayNetnsName(this.d.owner.instance, '');
    for (const ns of this.ns.list()) {
      if (!ns.startsWith(prefix) || keep.has(ns)) continue;
      this.d.log.info({ netns: ns }, 'removing a leftover overlay namespace');
      this.remove(ns);
    }
  }

  private remove(ns: string): void {
    const h = this.open.get(ns);
    if (h) {
      h.nl.close();
      h.nft.close();
      this.open.delete(ns);
    }
    this.ns.remove(ns);
  }

  // ---------------------------------------------------------------- container ports

  attachPort(id: string, c: Config, hostIf: string, fw: FirewallEndpoint | undefined, undo?: Undo): void {
    const { nl, nft } = this.handles(id);
    if (!nl.getLink(hostIf)) {
      this.moveIn(id, hostIf);
      // the host's undo of the veth no longer finds it there
      undo?.push(`veth ${hostIf} in ${this.netnsOf(id)}`, () => nl.deleteLink(hostIf, { ignoreMissing: true }));
    }
    // before the port joins the bridge, so no forged frame gets through in between
    const guard = fw && fw.antiSpoofing !== false ? fw : undefined;
    const rules = [guard ? addIngressGuardRules(GUARD_TABLE, guard) : removeIngressGuardRules(GUARD_TABLE, this.guarded.get(hostIf) ?? { port: hostIf })];
    if (!c.icc) rules.push(iccOffElementRules(ICC_TABLE, hostIf, true));
    nft.run(rules.join('\n'));
    if (guard) this.guarded.set(hostIf, guard);
    else this.guarded.delete(hostIf);
    undo?.push(`anti-spoofing and ICC of ${hostIf}`, () => nft.run(portRemoval(c, hostIf, guard)));
    nl.setLink(hostIf, { master: NS_BRIDGE, up: true });
    // no hairpin: a published port reached through a host address comes back through gw0
    nl.setBridgePort(hostIf, { hairpin: false, isolated: false });
  }

  restorePort(id: string, c: Config, hostIf: string, fw: FirewallEndpoint | undefined): boolean {
    if (!this.handles(id).nl.getLink(hostIf) && !this.d.netlink.getLink(hostIf)) return false;
    this.attachPort(id, c, hostIf, fw);
    return true;
  }

  removePort(id: string, c: Config, hostIf: string): void {
    if (!this.ns.exists(this.netnsOf(id))) return;
    const { nl, nft } = this.handles(id);
    nft.run(portRemoval(c, hostIf, this.guarded.get(hostIf)));
    this.guarded.delete(hostIf);
    // deleting either end removes both; the container end may be gone with its netns
    nl.deleteLink(hostIf, { ignoreMissing: true });
  }

  /**
   * A network made before this layout: its bridge in the host's namespace with the VXLAN port and
   * the containers' ports on it. Moves the ports and the VXLAN device into a new namespace and
   * removes the old bridge; restore then builds the gateway veth under the bridge's name and
   * attaches the ports, and the containers keep their links and addresses.
   */
  migrate(id: string, c: Config, hostIfs: string[]): boolean {
    if (this.d.netlink.getLink(c.bridge)?.kind !== 'bridge') return false;
    this.d.log.info({ network: id, bridge: c.bridge, netns: this.netnsOf(id) }, 'overlay: moving the bridge and the VXLAN device into the network\'s own namespace');
    const ns = this.netnsOf(id);
    if (!this.ns.exists(ns)) this.ns.add(ns);
    for (const name of [c.overlay.vxlan, ...hostIfs]) if (this.d.netlink.getLink(name)) this.moveIn(id, name);
    this.d.netlink.deleteLink(c.bridge, { ignoreMissing: true });
    return true;
  }

  // ---------------------------------------------------------------- sockets

  private moveIn(id: string, link: string): void {
    this.ns.moveIn(link, this.netnsOf(id));
  }

  private handles(id: string): Handles {
    const ns = this.netnsOf(id);
    let h = this.open.get(ns);
    if (!h) {
      h = this.ns.open(ns);
      this.open.set(ns, h);
    }
    return h;
  }
}

/** A port's rules gone: its ingress chain, its elements (every one, given its endpoint), its ICC-off membership. */
function portRemoval(c: Config, hostIf: string, guard: FirewallEndpoint | undefined): string {
  return [removeIngressGuardRules(GUARD_TABLE, guard ?? { port: hostIf }), ...(c.icc ? [] : [iccOffElementRules(ICC_TABLE, hostIf, false)])].join('\n');
}

/** Both tables anew, as the network needs them (an older tsnet's removed): no port in them yet. */
function currentTables(icc: boolean): string {
  return [
    `add table ${GUARD_TABLE}`,
    `delete table ${GUARD_TABLE}`,
    ingressGuardTableRules(GUARD_TABLE),
    `add table ${ICC_TABLE}`,
    `delete table ${ICC_TABLE}`,
    ...(icc ? [] : [iccOffTableRules(ICC_TABLE), gatewayIsNoIccPeer()]),
  ].join('\n');
}

/** ICC off drops what a container sends to another port; the gateway port (the host) is not a peer. */
function gatewayIsNoIccPeer(): string {
  return `insert rule ${ICC_TABLE} forward oifname ${quote(NS_GATEWAY)} accept comment "ICC off: the host is not another container"`;
}

/**
 * Whether the namespace has the tables of this layout (small listings: one chain each): the
 * checks' chain in the netdev table, no older anti-spoofing chain in the bridge table, and the
 * bridge table's forward hook exactly when ICC is off.
 */
function hasCurrentTables(nft: NftApi, icc: boolean): boolean {
  const has = (chain: string): boolean => {
    try {
      nft.listText(`list chain ${chain}`);
      return true;
    } catch {
      return false;
    }
  };
  return has(`${GUARD_TABLE} ${SPOOF_CHAIN}`) && !has(`${ICC_TABLE} ${SPOOF_CHAIN}`) && has(`${ICC_TABLE} forward`) === !icc;
}

/**
 * The overlay namespaces of daemon `instance` whose gateway veth ends in the namespace `host` is
 * opened in, found by the veth's two ends naming each other: for a lab that removes its hosts'
 * namespaces (the overlay's own would stay behind, empty but for its bridge). The name's prefix
 * counts too: interface indexes are per namespace, so another lab's veth may name the same pair.
 */
export function overlayNamespacesBehind(host: Netlink, instance: string): string[] {
  const hostLinks = host.listLinks();
  const prefix = overlayNetnsName(instance, '');
  return listNamedNetns().filter((ns) => {
    if (!ns.startsWith(prefix) || !/-ov-[0-9a-f]{12}$/.test(ns) || !namedNetnsExists(ns)) return false;
    let nl: Netlink | undefined;
    try {
      nl = Netlink.openInNetns(namedNetnsPath(ns));
      const gw = nl.getLink(NS_GATEWAY);
      return gw !== undefined && hostLinks.some((l) => l.index === gw.parentIndex && l.parentIndex === gw.index);
    } catch {
      // gone in between, or not a namespace we can read: not one of this host's
      return false;
    } finally {
      nl?.close();
    }
  });
}
