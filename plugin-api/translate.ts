// Docker's remote plugin protocol as it travels, and its translation to and from tsnet's typed
// requests (drivers/driver.ts, ipam/types.ts). Pure: no I/O, no state. The Wire* shapes are what
// Docker really sends (shared/docs/protocol.md); schemas.ts has checked a body before it gets here,
// so these functions only fill defaults (null or missing Options, IPv6Data, AuxAddresses) and
// change representation (numeric protocols, option maps, booleans).
import type { CreateEndpointRequest, CreateEndpointResult, CreateNetworkRequest, EndpointOperInfo, EndpointOptions, EndpointRef, ExposedPort, JoinRequest, JoinResult, PortBindingRequest, ProgramExternalConnectivityRequest } from '../drivers/driver.js';
import type {
  AddressSpaces,
  RequestAddressRequest,
  RequestAddressResult,
  RequestPoolRequest,
  RequestPoolResult,
} from '../ipam/types.js';
import { UserError } from '../core/errors.js';
import type { IpamData, Proto } from '../core/protocol.js';

export const OPTION_GENERIC = 'com.docker.network.generic';
export const OPTION_ENABLE_IPV6 = 'com.docker.network.enable_ipv6';
export const OPTION_INTERNAL = 'com.docker.network.internal';
export const OPTION_PORTMAP = 'com.docker.network.portmap';
export const OPTION_EXPOSED = 'com.docker.network.endpoint.exposedports';

/** IP protocol numbers as Docker sends them in port maps. */
export const PROTO_BY_NUMBER: Readonly<Record<number, Proto>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
export const NUMBER_BY_PROTO: Readonly<Record<Proto, number>> = { tcp: 6, udp: 17, sctp: 132 };

// ---------------------------------------------------------------- wire shapes

type WireOptions = Record<string, unknown> | null;

export interface WireIpamData {
  AddressSpace?: string;
  Pool: string;
  Gateway?: string;
  AuxAddresses?: Record<string, string> | null;
}

export interface WireCreateNetwork {
  NetworkID: string;
  Options?: WireOptions;
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

export interface WireExposedPort {
  Proto: number;
  Port: number;
}

export interface WireEndpointRef {
  NetworkID: string;
  EndpointID: string;
}

export interface WireInterface {
  Address?: string;
  AddressIPv6?: string;
  MacAddress?: string;
}

export interface WireCreateEndpoint extends WireEndpointRef {
  Interface?: WireInterface | null;
  Options?: WireOptions;
}

export interface WireJoin extends WireEndpointRef {
  SandboxKey: string;
  Options?: WireOptions;
}

export interface WireProgramExternalConnectivity extends WireEndpointRef {
  Options?: WireOptions;
}

export interface WireRequestPool {
  /** always given by Docker (schemas.ts refuses a body without it) */
  AddressSpace: string;
  Pool?: string;
  SubPool?: string;
  Options?: WireOptions;
  V6?: boolean;
}

export interface WireRequestAddress {
  PoolID: string;
  Address?: string;
  Options?: WireOptions;
}

export interface WireReleaseAddress {
  PoolID?: string;
  Address?: string;
}

/** A Join reply: the link to move into the sandbox, its name there (prefix + index), gateways, routes. */
export interface WireJoinReply {
  InterfaceName: { SrcName: string; DstPrefix: string };
  Gateway: string;
  GatewayIPv6: string;
  StaticRoutes: { Destination: string; RouteType: 0 | 1; NextHop: string }[];
  DisableGatewayService: boolean;
}

// ---------------------------------------------------------------- wire -> typed

/** Option values as strings: `-o mtu=1400` arrives as a string, other API clients may send numbers. */
export function stringOptions(o: WireOptions | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o ?? {})) {
    if (v === null || v === undefined) continue;
    out[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}

/** Docker sends booleans; a hand-written request may say "true". */
function flag(v: unknown): boolean {
  return v === true || v === 'true';
}

function ipamData(list: WireIpamData[] | null | undefined): IpamData[] {
  return (list ?? []).map((d) => ({
    addressSpace: d.AddressSpace ?? '',
    pool: d.Pool,
    gateway: d.Gateway || undefined,
    auxAddresses: { ...(d.AuxAddresses ?? {}) },
  }));
}

export function toCreateNetwork(w: WireCreateNetwork): CreateNetworkRequest {
  const opts = w.Options ?? {};
  const generic = opts[OPTION_GENERIC];
  return {
    networkId: w.NetworkID,
    options: stringOptions(typeof generic === 'object' && generic !== null && !Array.isArray(generic) ? (generic as Record<string, unknown>) : {}),
    enableIpv6: flag(opts[OPTION_ENABLE_IPV6]),
    internal: flag(opts[OPTION_INTERNAL]),
    ipv4: ipamData(w.IPv4Data),
    ipv6: ipamData(w.IPv6Data),
  };
}

function proto(n: number, where: string): Proto {
  const p = PROTO_BY_NUMBER[n];
  // schemas.ts refuses these first; this keeps the function total for direct callers
  if (!p) throw new UserError(`unsupported protocol number ${n} in ${where}: tsnet publishes tcp (6), udp (17) and sctp (132)`);
  return p;
}

/** Port maps and exposed ports split out of an endpoint's options, protocols decoded. */
export function toEndpointOptions(o: WireOptions | undefined): EndpointOptions {
  const { [OPTION_PORTMAP]: portmap, [OPTION_EXPOSED]: exposed, ...other } = o ?? {};
  const portBindings: PortBindingRequest[] = ((portmap as WirePortBinding[] | null | undefined) ?? []).map((b) => {
    const hostPort = b.HostPort ?? 0;
    return {
      proto: proto(b.Proto, OPTION_PORTMAP),
      port: b.Port,
      ip: b.IP ?? '',
      hostIp: b.HostIP ?? '',
      hostPort,
      // 0 or missing: no range, just hostPort
      hostPortEnd: Math.max(b.HostPortEnd ?? 0, hostPort),
    };
  });
  const exposedPorts: ExposedPort[] = ((exposed as WireExposedPort[] | null | undefined) ?? []).map((e) => ({
    proto: proto(e.Proto, OPTION_EXPOSED),
    port: e.Port,
  }));
  return { portBindings, exposedPorts, other };
}

export function toEndpointRef(w: WireEndpointRef): EndpointRef {
  return { networkId: w.NetworkID, endpointId: w.EndpointID };
}

export function toCreateEndpoint(w: WireCreateEndpoint): CreateEndpointRequest {
  return {
    ...toEndpointRef(w),
    address: w.Interface?.Address ?? '',
    addressIpv6: w.Interface?.AddressIPv6 ?? '',
    macAddress: w.Interface?.MacAddress ?? '',
    options: toEndpointOptions(w.Options),
  };
}

export function toJoin(w: WireJoin): JoinRequest {
  return { ...toEndpointRef(w), sandboxKey: w.SandboxKey, options: toEndpointOptions(w.Options) };
}

export function toProgramExternalConnectivity(w: WireProgramExternalConnectivity): ProgramExternalConnectivityRequest {
  return { ...toEndpointRef(w), options: toEndpointOptions(w.Options) };
}

export function toRequestPool(w: WireRequestPool): RequestPoolRequest {
  return {
    addressSpace: w.AddressSpace,
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

/**
 * The Interface of a CreateEndpoint reply: only fields the driver filled and Docker left empty.
 * Docker refuses a reply that sets a field it set itself and rolls the endpoint back, so a value
 * equal to Docker's is dropped, and a different one is a driver bug (an Error, not a UserError).
 */
export function fromCreateEndpoint(req: CreateEndpointRequest, r: CreateEndpointResult): { Interface: WireInterface } {
  const iface: WireInterface = {};
  const fill = (key: keyof WireInterface, given: string, filled: string | undefined) => {
    if (!filled) return;
    if (!given) iface[key] = filled;
    else if (filled !== given) throw new Error(`the driver returned ${key} ${filled} for an endpoint Docker gave ${given}`);
  };
  fill('MacAddress', req.macAddress, r.macAddress);
  fill('Address', req.address, r.address);
  fill('AddressIPv6', req.addressIpv6, r.addressIpv6);
  return { Interface: iface };
}

export function fromJoin(r: JoinResult): WireJoinReply {
  return {
    InterfaceName: { SrcName: r.srcName, DstPrefix: r.dstPrefix },
    Gateway: r.gateway,
    GatewayIPv6: r.gatewayIpv6,
    StaticRoutes: r.staticRoutes.map((s) => ({ Destination: s.destination, RouteType: s.routeType, NextHop: s.nextHop ?? '' })),
    DisableGatewayService: r.disableGatewayService,
  };
}

/** Bindings under Docker's own keys, protocols as numbers; a made binding is a range of one. */
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

export function fromDefaultAddressSpaces(s: AddressSpaces): { LocalDefaultAddressSpace: string; GlobalDefaultAddressSpace: string } {
  return { LocalDefaultAddressSpace: s.localDefaultAddressSpace, GlobalDefaultAddressSpace: s.globalDefaultAddressSpace };
}

export function fromRequestPool(r: RequestPoolResult): { PoolID: string; Pool: string; Data: Record<string, string> } {
  return { PoolID: r.poolId, Pool: r.pool, Data: { ...r.data } };
}

export function fromRequestAddress(r: RequestAddressResult): { Address: string; Data: Record<string, string> } {
  return { Address: r.address, Data: { ...r.data } };
}
