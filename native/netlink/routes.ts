// Routes: RouteSpec to RTM_NEWROUTE/DELROUTE messages and replies to RouteInfo. Pure.
import { AF_INET, AF_INET6, RT_SCOPE, RT_TABLE, RTN, RTN_NAMES, RTNH_F_ONLINK, RTPROT_STATIC } from './constants.js';
import type { RouteMessage, routeMessage } from './codec.js';
import { ipFamily, parseCidr, formatIp, type Family } from './ip.js';
import type { ResolveLink } from './links.js';

export type RouteScope = keyof typeof RT_SCOPE;

export interface RouteSpec {
  /** CIDR, or 'default' (IPv4 unless gateway or src is IPv6; '::/0' is the IPv6 default without either) */
  dst: string;
  gateway?: string;
  dev?: string;
  /** the link by its index instead of dev: no lookup of its name */
  devIndex?: number;
  /** routing table, main (254) unless given */
  table?: number;
  /** 'link' for a route without gateway, 'universe' otherwise, unless given */
  scope?: RouteScope;
  /** the gateway is reachable on dev even though no address of dev covers it */
  onlink?: boolean;
  src?: string;
  metric?: number;
}

export interface RouteInfo {
  family: Family;
  /** CIDR or 'default' */
  dst: string;
  gateway?: string;
  dev?: string;
  devIndex?: number;
  table: number;
  scope: string;
  /** RTPROT_*: 2 kernel, 3 boot, 4 static (tsnet's) */
  protocol: number;
  type: string;
  metric?: number;
  src?: string;
  onlink: boolean;
}

const SCOPE_NAMES = new Map<number, string>(Object.entries(RT_SCOPE).map(([k, v]) => [v, k]));

export function scopeName(scope: number): string {
  return SCOPE_NAMES.get(scope) ?? String(scope);
}

function routeFamily(r: RouteSpec): Family {
  if (r.dst !== 'default') return parseCidr(r.dst).family;
  const other = r.gateway ?? r.src;
  return other === undefined ? 4 : ipFamily(other);
}

/**
 * The message adding, replacing or deleting r. A delete leaves out what the caller did not
 * give (scope "nowhere", protocol and type 0), so the kernel matches any value there.
 */
export function routeRequest(r: RouteSpec, resolve: ResolveLink, forDelete = false): RouteMessage {
  const family = routeFamily(r);
  const dst = r.dst === 'default' ? undefined : parseCidr(r.dst);
  const table = r.table ?? RT_TABLE.MAIN;
  const scope = r.scope ?? (forDelete ? 'nowhere' : r.gateway === undefined ? 'link' : 'universe');
  return {
    header: {
      family: family === 4 ? AF_INET : AF_INET6,
      dstLen: dst?.prefixLen ?? 0,
      // tables above 255 exist only as RTA_TABLE
      table: table < 256 ? table : RT_TABLE.UNSPEC,
      protocol: forDelete ? 0 : RTPROT_STATIC,
      scope: RT_SCOPE[scope],
      type: forDelete ? RTN.UNSPEC : RTN.UNICAST,
      flags: r.onlink ? RTNH_F_ONLINK : 0,
    },
    attrs: {
      dst: dst ? formatIp(dst.ip) : undefined,
      gateway: r.gateway,
      oif: r.devIndex ?? (r.dev === undefined ? undefined : resolve(r.dev)),
      prefsrc: r.src,
      priority: r.metric,
      table,
    },
  };
}

export function toRouteInfo(m: ReturnType<typeof routeMessage.decode>, devName: (index: number) => string | undefined): RouteInfo {
  const { header, attrs } = m;
  const info: RouteInfo = {
    family: header.family === AF_INET ? 4 : 6,
    dst: header.dstLen === 0 ? 'default' : `${attrs.dst}/${header.dstLen}`,
    table: attrs.table ?? header.table,
    scope: scopeName(header.scope),
    protocol: header.protocol,
    type: RTN_NAMES[header.type] ?? String(header.type),
    onlink: (header.flags & RTNH_F_ONLINK) !== 0,
  };
  if (attrs.gateway !== undefined) info.gateway = attrs.gateway;
  if (attrs.oif !== undefined) {
    info.devIndex = attrs.oif;
    const dev = devName(attrs.oif);
    if (dev !== undefined) info.dev = dev;
  }
  if (attrs.priority !== undefined) info.metric = attrs.priority;
  if (attrs.prefsrc !== undefined) info.src = attrs.prefsrc;
  return info;
}
