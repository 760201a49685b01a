// Docker's remote plugin protocol as it travels, and its translation to and from tsnet's typed
// requests (drivers/driver.ts, ipam/types.ts). Pure: the shapes here are what Docker really sends
// (see shared/docs/protocol.md), the schemas in schemas.ts check them first.
import { UserError } from '../drivers/driver.js';
import type {
  CreateEndpointRequest,
  CreateEndpointResult,
  CreateNetworkRequest,
  EndpointOperInfo,
  EndpointOptions,
  ExposedPort,
  IpamData,
  JoinResult,
  PortBindingRequest,
  Proto,
} from '../drivers/driver.js';
import type { RequestAddressRequest, RequestPoolRequest } from '../ipam/types.js';

export const OPTION_GENERIC = 'com.docker.network.generic';
export const OPTION_ENABLE_IPV6 = 'com.docker.network.enable_ipv6';
export const OPTION_INTERNAL = 'com.docker.network.internal';
export const OPTION_PORTMAP = 'com.docker.network.portmap';
export const OPTION_EXPOSED = 'com.docker.network.endpoint.exposedports';

const PROTO_BY_NUMBER: Record<number, Proto> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const NUMBER_BY_PROTO: Record<Proto, number> = { tcp: 6, udp: 17, sctp: 132 };

// ---------------------------------------------------------------- wire shapes

export interface WireIpamData {
  AddressSpace?: string;
  Pool: string;
  Gateway?: string;
  AuxAddresses?: Record<string, string> | null;
}

export interface WireCreateNetwork {
  NetworkID: string;
  Options?: Record<string, unknown> | null;
  IPv4Data?: WireIpamData[] | null;
  IPv6Data?: WireIpamData[] | null;
}

export interface WirePortBinding {
  Proto: number;
  IP?: string;
  Port: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
}

export interface WireCreateEndpoint {
  NetworkID: string;
  EndpointID: string;
  Interface?: { Address?: string; AddressIPv6?: string; MacAddress?: string } | null;
  Options?: Record<string, unknown> | null;
}

export interface WireJoin {
  NetworkID: string;
  EndpointID: string;
  SandboxKey: string;
  Options?: Record<string, unknown> | null;
}

export interface WireEndpointRef {
  NetworkID: string;
  EndpointID: string;
  Options?: Record<string, unknown> | null;
}

export interface WireRequestPool {
  AddressSpace?: string;
  Pool?: string;
  SubPool?: string;
  Options?: Record<string, unknown> | null;
  V6?: boolean;
}

export interface WireRequestAddress {
  PoolID: string;
  Address?: string;
  Options?: Record<string, unknown> | null;
}

// ---------------------------------------------------------------- wire -> typed

/** Option values as strings: `-o mtu=1400` arrives as a string, JSON clients may send numbers. */
export function stringOptions(o: Record<string, unknown> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o ?? {})) {
    if (v === null || v === undefined) continue;
    out[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}

function ipamData(list: WireIpamData[] | null | undefined): IpamData[] {
  return (list ?? []).map((d) => ({
    addressSpace: d.AddressSpace ?? '',
    pool: d.Pool,
    gateway: d.Gateway || undefined,
    auxAddresses: { ...(d.AuxAddresses ?? {}) },
  }));
}

function truthy(v: unknown): boolean {
  return v === true || v === 'true';
}

export function toCreateNetwork(w: WireCreateNetwork): CreateNetworkRequest {
  const opts = w.Options ?? {};
  const generic = opts[OPTION_GENERIC];
  return {
    networkId: w.NetworkID,
    options: stringOptions(typeof generic === 'object' && generic !== null ? (generic as Record<string, unknown>) : {}),
    enableIpv6: truthy(opts[OPTION_ENABLE_IPV6]),
    internal: truthy(opts[OPTION_INTERNAL]),
    ipv4: ipamData(w.IPv4Data),
    ipv6: ipamData(w.IPv6Data),
  };
}

function proto(n: number, where: string): Proto {
  const p = PROTO_BY_NUMBER[n];
  if (!p) throw new UserError(`unsupported protocol number ${n} in ${where}: tsnet publishes tcp (6), udp (17) and sctp (132)`);
  return p;
}

export function toEndpointOptions(o: Record<string, unknown> | null | undefined): EndpointOptions {
  const { [OPTION_PORTMAP]: portmap, [OPTION_EXPOSED]: exposed, ...other } = o ?? {};
  const portBindings: PortBindingRequest[] = ((portmap as WirePortBinding[] | null) ?? []).map((b) => {
    const hostPort = b.HostPort ?? 0;
    return {
      proto: proto(b.Proto, OPTION_PORTMAP),
      port: b.Port,
      ip: b.IP ?? '',
      hostIp: b.HostIP ?? '',
      hostPort,
      hostPortEnd: Math.max(b.HostPortEnd ?? hostPort, hostPort),
    };
  });
  const exposedPorts: ExposedPort[] = ((exposed as { Proto: number; Port: number }[] | null) ?? []).map((e) => ({
    proto: proto(e.Proto, OPTION_EXPOSED),
    port: e.Port,
  }));
  return { portBindings, exposedPorts, other };
}

export function toCreateEndpoint(w: WireCreateEndpoint): CreateEndpointRequest {
  return {
    networkId: w.NetworkID,
    endpointId: w.EndpointID,
    address: w.Interface?.Address ?? '',
    addressIpv6: w.Interface?.AddressIPv6 ?? '',
    macAddress: w.Interface?.MacAddress ?? '',
    options: toEndpointOptions(w.Options),
  };
}

export function toRequestPool(w: WireRequestPool): RequestPoolRequest {
  return {
    addressSpace: w.AddressSpace ?? '',
    pool: w.Pool ?? '',
    subPool: w.SubPool ?? '',
    options: stringOptions(w.Options),
    v6: w.V6 === true,
  };
}

export function toRequestAddress(w: WireRequestAddress): RequestAddressRequest {
  return { poolId: w.PoolID, address: w.Address ?? '', options: stringOptions(w.Options) };
}

// ---------------------------------------------------------------- typed -> wire

/** Only fields the driver filled: echoing a field Docker set makes Docker roll the endpoint back. */
export function fromCreateEndpoint(r: CreateEndpointResult): { Interface: Record<string, string> } {
  const iface: Record<string, string> = {};
  if (r.macAddress) iface.MacAddress = r.macAddress;
  if (r.address) iface.Address = r.address;
  if (r.addressIpv6) iface.AddressIPv6 = r.addressIpv6;
  return { Interface: iface };
}

export function fromJoin(r: JoinResult): Record<string, unknown> {
  return {
    InterfaceName: { SrcName: r.srcName, DstPrefix: r.dstPrefix },
    Gateway: r.gateway,
    GatewayIPv6: r.gatewayIpv6,
    StaticRoutes: r.staticRoutes.map((s) => ({ Destination: s.destination, RouteType: s.routeType, NextHop: s.nextHop ?? '' })),
    DisableGatewayService: r.disableGatewayService,
  };
}

export function fromEndpointOperInfo(r: EndpointOperInfo): { Value: Record<string, unknown> } {
  return {
    Value: {
      ...r.details,
      [OPTION_PORTMAP]: r.portBindings.map((b) => ({
        Proto: NUMBER_BY_PROTO[b.proto],
        IP: b.containerIp,
        Port: b.port,
        HostIP: b.hostIp,
        HostPort: b.hostPort,
        HostPortEnd: b.hostPort,
      })),
      [OPTION_EXPOSED]: r.exposedPorts.map((e) => ({ Proto: NUMBER_BY_PROTO[e.proto], Port: e.port })),
    },
  };
}
