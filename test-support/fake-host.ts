// A host as the bridge-based drivers see it, as plain data, for their unit tests
// (drivers/bridge/bridge-driver.test.ts, drivers/overlay/overlay-driver.test.ts): links (bridge,
// veth, vxlan) with addresses and bridge port flags, sysctls, the host ports held, and the link
// reaper; with the fake firewall and an in-memory store, the whole world such a driver is given,
// and Docker's requests to it. Calls are recorded, and a call can be made to fail, so a test can check that a failed
// step leaves nothing behind and that a refusal comes before anything is made. The real kernel is
// in netns-tests/. Only what those drivers call is modelled; anything else throws, naming itself.
import type { Netlink } from '../native/netlink/netlink.js';
import type { BridgePortInfo, BridgePortSettings, LinkChange, LinkInfo, LinkSpec } from '../native/netlink/links.js';
import type { HostPortReserver } from '../drivers/ports.js';
import { PortReservationError } from '../native/sockets.js';
import { canonicalCidr } from '../ipam/address.js';
import type { Proto } from '../core/protocol.js';
import { silentLogger } from '../core/log.js';
import { FakeFirewall } from './fake-firewall.js';
import type { PortMapping } from '../firewall/model.js';
import { openDatabase } from '../store/db.js';
import { NetworkRepo } from '../store/network-repo.js';
import { LinkOwner } from '../drivers/owner.js';
import type { BridgeDriverDeps } from '../drivers/bridge/bridge-driver.js';
import type { CreateEndpointRequest, CreateNetworkRequest, EndpointOptions, PortBindingRequest } from '../drivers/driver.js';

export interface FakeLink {
  name: string;
  kind: LinkSpec['kind'];
  up: boolean;
  mtu: number;
  mac: string;
  alias?: string;
  /** the bridge this link is a port of */
  master?: string;
  /** the other end of a veth */
  peer?: string;
  /** bridge port flags, once set */
  port?: BridgePortSettings;
  addresses: string[];
  /** the creation request, for kind-specific checks (vni, port, proxy, ...) */
  spec: LinkSpec;
}

export class FakeHost {
  readonly links = new Map<string, FakeLink>();
  readonly sysctls = new Map<string, string>();
  /** "proto/ip/port" of every host port held */
  readonly heldPorts = new Set<string>();
  /** every kernel call, as "createLink bridge NAME", "setLink NAME", ... */
  readonly calls: string[] = [];
  /** the first call starting with this text fails, once */
  failOn?: string;
  /** VNIs held by VXLAN devices the drivers cannot see (another namespace): creating one fails with EEXIST */
  readonly foreignVnis = new Set<number>();

  /** A link that exists before the test (the user's). */
  addLink(name: string, kind: LinkSpec['kind'] = 'bridge'): void {
    this.links.set(name, { name, kind, up: true, mtu: 1500, mac: '52:54:00:00:00:01', addresses: [], spec: { kind: 'bridge', name } });
  }

  /** Names of the links, sorted: what is left. */
  linkNames(): string[] {
    return [...this.links.keys()].sort();
  }

  private step(call: string): void {
    this.calls.push(call);
    if (this.failOn !== undefined && call.startsWith(this.failOn)) {
      this.failOn = undefined;
      throw new Error(`injected failure at ${call}`);
    }
  }

  /** ifindex of each link, given in creation order as the kernel does */
  private readonly indexes = new WeakMap<FakeLink, number>();
  private nextIndex = 1;

  private indexOf(l: FakeLink): number {
    if (!this.indexes.has(l)) this.indexes.set(l, this.nextIndex++);
    return this.indexes.get(l)!;
  }

  private info(l: FakeLink): LinkInfo {
    const master = l.master === undefined ? undefined : this.links.get(l.master);
    return { index: this.indexOf(l), name: l.name, kind: l.kind, mtu: l.mtu, mac: l.mac, up: l.up, operState: l.up ? 'up' : 'down', alias: l.alias, flags: 0, ...(master ? { masterIndex: this.indexOf(master) } : {}) };
  }

  private link(name: string): FakeLink {
    const l = this.links.get(name);
    if (!l) throw new Error(`Cannot find device "${name}"`);
    return l;
  }

  /** The rtnetlink calls of native/netlink/netlink.ts that the bridge and overlay drivers make. */
  netlink(): Netlink {
    const h = this;
    const modelled = {
      getLink(name: string): LinkInfo | undefined {
        const l = h.links.get(name);
        return l && h.info(l);
      },
      listLinks(): LinkInfo[] {
        return [...h.links.values()].map((l) => h.info(l));
      },
      listBridgePorts(): BridgePortInfo[] {
        return [...h.links.values()]
          .filter((l) => l.master !== undefined)
          .map((l) => {
            const { index, name, up, masterIndex } = h.info(l);
            return { index, name, up, masterIndex: masterIndex!, hairpin: l.port?.hairpin ?? false, isolated: l.port?.isolated ?? false, learning: l.port?.learning ?? true };
          });
      },
      createLink(spec: LinkSpec): void {
        h.step(`createLink ${spec.kind} ${spec.name}`);
        if (h.links.has(spec.name)) throw new Error(`link ${spec.name}: File exists`);
        if (spec.kind === 'vxlan' && h.foreignVnis.has(spec.vni)) throw new Error(`vxlan ${spec.name}: VNI ${spec.vni}: File exists`);
        const mac = ('mac' in spec && spec.mac) || '02:00:00:00:00:99';
        const common = { kind: spec.kind, up: false, mtu: spec.mtu ?? 1500, addresses: [], spec };
        h.links.set(spec.name, { ...common, name: spec.name, mac, alias: spec.alias });
        if (spec.kind === 'veth') {
          h.links.get(spec.name)!.peer = spec.peerName;
          // a peer made straight in another namespace is not this host's business any more
          if (spec.peerNetnsFd === undefined) {
            h.links.set(spec.peerName, { ...common, name: spec.peerName, mac: spec.peerMac ?? mac, alias: spec.peerAlias, peer: spec.name });
          }
        }
      },
      deleteLink(name: string, opts: { ignoreMissing?: boolean } = {}): void {
        h.step(`deleteLink ${name}`);
        const l = h.links.get(name);
        if (!l) {
          if (opts.ignoreMissing) return;
          throw new Error(`Cannot find device "${name}"`);
        }
        h.links.delete(name);
        // both ends of a veth go together; a bridge's ports stay, released
        if (l.peer) h.links.delete(l.peer);
        for (const other of h.links.values()) {
          if (other.master === name) {
            other.master = undefined;
            other.port = undefined;
          }
        }
      },
      setLink(name: string, change: LinkChange): void {
        h.step(`setLink ${name}`);
        const l = h.link(name);
        if (change.master !== undefined && change.master !== null) {
          if (h.link(change.master).kind !== 'bridge') throw new Error(`${change.master} is not a bridge`);
          l.master = change.master;
        }
        if (change.up !== undefined) l.up = change.up;
      },
      setBridgePort(name: string, settings: BridgePortSettings): void {
        h.step(`setBridgePort ${name}`);
        const l = h.link(name);
        // the kernel refuses port flags on a link that is no bridge's port
        if (!l.master) throw new Error(`${name} is not a bridge port: Operation not supported`);
        l.port = { ...l.port, ...settings };
      },
      addAddress(name: string, cidr: string): void {
        h.step(`addAddress ${name} ${cidr}`);
        const l = h.link(name);
        if (l.addresses.includes(canonicalCidr(cidr))) throw new Error(`address ${cidr}: File exists`);
        l.addresses.push(canonicalCidr(cidr));
      },
      listAddresses(name?: string, family?: 4 | 6): { index: number; dev: string; cidr: string }[] {
        const links = name === undefined ? [...h.links.values()] : [h.link(name)];
        return links.flatMap((l) =>
          l.addresses.filter((cidr) => family === undefined || cidr.includes(':') === (family === 6)).map((cidr) => ({ index: h.indexOf(l), dev: l.name, cidr })),
        );
      },
    };
    return new Proxy(modelled, {
      get(target, prop) {
        if (prop in target) return target[prop as keyof typeof target];
        throw new Error(`fake host: netlink ${String(prop)} is not modelled`);
      },
    }) as unknown as Netlink;
  }

  /** Host ports held as a set; a port held twice is refused, as a bound socket would be. */
  ports(): HostPortReserver {
    const h = this;
    const key = (proto: Proto, ip: string, port: number) => `${proto}/${ip}/${port}`;
    const reserve = (proto: Proto, ip: string, port: number) => {
      h.step(`reserve ${key(proto, ip, port)}`);
      if (h.heldPorts.has(key(proto, ip, port))) throw new PortReservationError(`host port ${port}/${proto} on ${ip} is already in use`, 'in-use');
      h.heldPorts.add(key(proto, ip, port));
    };
    return {
      reserve,
      reserveFromRange(proto, ip, from, to) {
        for (let p = from; p <= to; p++) {
          if (!h.heldPorts.has(key(proto, ip, p))) {
            reserve(proto, ip, p);
            return p;
          }
        }
        throw new PortReservationError(`host ports ${from}-${to}/${proto} on ${ip} are all in use`, 'exhausted');
      },
      reserveEphemeral(proto, ip) {
        return this.reserveFromRange(proto, ip, 49152, 65535);
      },
      release(proto, ip, port) {
        h.heldPorts.delete(key(proto, ip, port));
      },
      holds(proto, ip, port) {
        return h.heldPorts.has(key(proto, ip, port));
      },
    };
  }

  /** Sysctl writes, kept by dotted key. */
  writeSysctl = (key: string | string[], value: string): void => {
    const k = Array.isArray(key) ? key.join('.') : key;
    this.step(`sysctl ${k}=${value}`);
    this.sysctls.set(k, value);
  };

  /** The daemon's link reaper, which deletes links after the reply: here at once. */
  reaper(): { remove(name: string): void } {
    const nl = this.netlink();
    return { remove: (name) => nl.deleteLink(name, { ignoreMissing: true }) };
  }
}

// ---------------------------------------------------------------- a bridge-based driver's world

/** Everything a BridgeDriver (or an OverlayDriver, which builds on it) is given, all fake but the store. */
export interface FakeWorld {
  host: FakeHost;
  firewall: FakeFirewall;
  repo: NetworkRepo;
  deps: BridgeDriverDeps;
}

export function fakeWorld(): FakeWorld {
  const host = new FakeHost();
  const firewall = new FakeFirewall();
  const repo = new NetworkRepo(openDatabase(':memory:'));
  const deps: BridgeDriverDeps = {
    repo,
    netlink: host.netlink(),
    firewall,
    ports: host.ports(),
    reaper: host.reaper(),
    owner: new LinkOwner(),
    writeSysctl: host.writeSysctl,
    log: silentLogger,
  };
  return { host, firewall, repo, deps };
}

/** What a world holds that a driver may have made, as plain data for one comparison. */
export interface Leftovers {
  links: string[];
  firewallNetworks: string[];
  /** container ports under anti-spoofing */
  firewallEndpoints: string[];
  mappings: PortMapping[];
  heldPorts: string[];
  networks: string[];
  endpoints: string[];
  ports: unknown[];
}

export function leftovers(w: FakeWorld): Leftovers {
  const networks = w.repo.listNetworks().map((n) => n.id);
  return {
    links: w.host.linkNames(),
    firewallNetworks: [...w.firewall.networks.keys()],
    firewallEndpoints: [...w.firewall.endpoints.keys()],
    mappings: w.firewall.mappings(),
    heldPorts: [...w.host.heldPorts],
    networks,
    endpoints: networks.flatMap((id) => w.repo.listEndpoints(id).map((e) => e.id)),
    ports: w.repo.listPorts(),
  };
}

/** Nothing left but these links (the user's, there before the test). */
export function nothingBut(links: string[]): Leftovers {
  return { links: [...links].sort(), firewallNetworks: [], firewallEndpoints: [], mappings: [], heldPorts: [], networks: [], endpoints: [], ports: [] };
}

// ---------------------------------------------------------------- requests as Docker sends them

let serial = 0;

/** A fresh 64-hex-digit ID starting with `c`, unique within the test run. */
export function newId(c: string): string {
  return `${c}${String(++serial).padStart(4, '0')}`.padEnd(64, c);
}

export const NO_ENDPOINT_OPTIONS: EndpointOptions = { portBindings: [], exposedPorts: [], other: {} };

/** A CreateNetwork request for one IPv4 subnet (gateway .1) and optionally one IPv6 subnet (gateway ::1). */
export function networkRequest(v4: string, over: Partial<CreateNetworkRequest> & { v6?: string } = {}): CreateNetworkRequest {
  const { v6, ...rest } = over;
  return {
    networkId: newId('a'),
    options: {},
    enableIpv6: v6 !== undefined,
    internal: false,
    ipv4: [{ addressSpace: 'local', pool: v4, gateway: v4.replace(/0\/(\d+)$/, '1/$1'), auxAddresses: {} }],
    ipv6: v6 === undefined ? [] : [{ addressSpace: 'local', pool: v6, gateway: v6.replace(/::\/(\d+)$/, '::1/$1'), auxAddresses: {} }],
    ...rest,
  };
}

export function endpointRequest(networkId: string, address: string, over: Partial<CreateEndpointRequest> = {}): CreateEndpointRequest {
  return { networkId, endpointId: newId('e'), address, addressIpv6: '', macAddress: '', options: NO_ENDPOINT_OPTIONS, ...over };
}

/** `-p [hostIp:]hostPort[-hostPortEnd]:port/proto` */
export function binding(port: number, hostPort: number, over: Partial<PortBindingRequest> = {}): PortBindingRequest {
  return { proto: 'tcp', port, ip: '', hostIp: '', hostPort, hostPortEnd: hostPort, ...over };
}
