// The driver seam. Every network driver (bridge, macvlan, overlay) implements NetworkDriver, and
// the daemon's controller implements the same interface to route each call to the driver that owns
// the network. The method set mirrors Docker's NetworkDriver protocol one to one, so a method name
// tells you the HTTP call; the types are the protocol's, parsed and validated (CIDRs checked,
// options split out, numbers as numbers) by plugin-api/ before they get here.

import type { FirewallState } from '../firewall/model.js';
import type { LinkInfo } from '../native/netlink/links.js';
import type { DriverType, IpamData, PortBinding, Proto } from '../core/protocol.js';


export interface CreateNetworkRequest {
  networkId: string;
  /** user `-o key=value` options (com.docker.network.generic), values as strings */
  options: Record<string, string>;
  enableIpv6: boolean;
  internal: boolean;
  ipv4: IpamData[];
  ipv6: IpamData[];
}

/** A published port as Docker sends it in com.docker.network.portmap, proto decoded. */
export interface PortBindingRequest {
  proto: Proto;
  /** container port */
  port: number;
  /** container IP when Docker gives one; usually empty */
  ip: string;
  /** '' = every host address */
  hostIp: string;
  /** 0 = tsnet chooses */
  hostPort: number;
  /** > hostPort: choose one host port from hostPort..hostPortEnd */
  hostPortEnd: number;
}

export interface ExposedPort {
  proto: Proto;
  port: number;
}

export interface EndpointOptions {
  portBindings: PortBindingRequest[];
  exposedPorts: ExposedPort[];
  /** every other endpoint option, as sent */
  other: Record<string, unknown>;
}

export interface CreateEndpointRequest {
  networkId: string;
  endpointId: string;
  /** CIDR, '' when none */
  address: string;
  /** CIDR, '' when none */
  addressIpv6: string;
  /** '' when Docker gave none: the driver may choose one and return it */
  macAddress: string;
  options: EndpointOptions;
  /**
   * The container's network namespace when the caller knows it before Join (CNI does, Docker does
   * not): the driver may make the container's end there at once, which saves moving it later
   * (~16 ms on this kernel). Join's srcName then names a link already inside.
   */
  netnsHint?: string;
}

export interface CreateEndpointResult {
  /** only fields Docker left empty may be filled */
  macAddress?: string;
  address?: string;
  addressIpv6?: string;
}

export interface JoinRequest {
  networkId: string;
  endpointId: string;
  /** path of the container's network namespace */
  sandboxKey: string;
  options: EndpointOptions;
}

export interface StaticRoute {
  destination: string;
  /** 0 = next hop, 1 = connected */
  routeType: 0 | 1;
  nextHop?: string;
}

export interface JoinResult {
  /** host-side name of the container end; Docker moves it into the sandbox */
  srcName: string;
  dstPrefix: string;
  /** bare IP, '' for none */
  gateway: string;
  gatewayIpv6: string;
  staticRoutes: StaticRoute[];
  disableGatewayService: boolean;
}

export interface EndpointRef {
  networkId: string;
  endpointId: string;
}

export interface ProgramExternalConnectivityRequest extends EndpointRef {
  options: EndpointOptions;
  /**
   * The runtime holds the host ports itself (podman binds them for its containers), so tsnet must
   * not bind them too; only exact host ports are possible then. Docker leaves this to the driver.
   */
  runtimeHoldsHostPorts?: boolean;
}

export interface EndpointOperInfo {
  /** bindings actually made, host ports chosen */
  portBindings: PortBinding[];
  exposedPorts: ExposedPort[];
  /** free-form extra details shown to the user (names of links etc.) */
  details: Record<string, string>;
}

export interface NetworkDriver {
  /** Refuse bad options before anything is touched. Throws UserError (core/errors.ts). */
  createNetwork(req: CreateNetworkRequest): Promise<void>;
  /** Idempotent: unknown IDs succeed. */
  deleteNetwork(networkId: string): Promise<void>;
  createEndpoint(req: CreateEndpointRequest): Promise<CreateEndpointResult>;
  /** Idempotent: unknown IDs succeed. */
  deleteEndpoint(ref: EndpointRef): Promise<void>;
  endpointOperInfo(ref: EndpointRef): Promise<EndpointOperInfo>;
  join(req: JoinRequest): Promise<JoinResult>;
  /** Idempotent: may come twice, or for endpoints that never joined. */
  leave(ref: EndpointRef): Promise<void>;
  programExternalConnectivity(req: ProgramExternalConnectivityRequest): Promise<void>;
  /** Idempotent. */
  revokeExternalConnectivity(ref: EndpointRef): Promise<void>;
}

/** What the start-up reconcile reads of the kernel once and hands to every driver: dumps instead of a request per link. */
export interface KernelView {
  /** the host namespace's links by name, when the reconcile began */
  links: ReadonlyMap<string, LinkInfo>;
}

/** What the daemon needs of a driver beyond the protocol: start-up reconcile and introspection. */
export interface ManagedDriver extends NetworkDriver {
  readonly type: DriverType;
  /**
   * Brings the kernel in line with the store (after a restart, crash or reboot). `kernel`: the host
   * namespace's links as the reconcile found them, read once for every driver (a driver reads
   * what it needs itself without it).
   */
  restore(kernel?: KernelView): void;
  /** Names of every link this driver's records own, for the sweep of leftovers. */
  ownedLinks(): string[];
  /** What the firewall should hold for this driver's networks, for the full sync at start-up. */
  firewallState(): FirewallState;
}
