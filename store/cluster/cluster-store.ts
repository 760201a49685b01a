// The overlay's control plane: what every host of a tsnet cluster must agree on, kept in a
// distributed store (etcd, store/cluster/etcd-store.ts). A host's own networks and endpoints stay
// in its SQLite store; the cluster store holds only what other hosts need to see:
//  - hosts, each with its VTEP address, under a lease: a host that dies disappears when the lease
//    expires, and with it every endpoint it announced;
//  - overlay definitions (name -> VNI, subnet, IPv6 subnet if dual-stack, UDP port), written once
//    by the first host to create the overlay and checked by every later one;
//  - endpoint announcements (overlay, IP -> MAC, host, VTEP), under the host's lease; one key per
//    IP, created only when absent, so two live endpoints never share an address;
//  - cluster-wide IPAM for overlay pools: the pools of each overlay (IPv4, and IPv6 when it is
//    dual-stack) and their allocated addresses;
//  - the members of each overlay (hosts with a network of it): the last one to leave removes the
//    overlay's definition and pool.

export interface HostRecord {
  name: string;
  /** underlay address of the host's VXLAN tunnel end */
  vtep: string;
  /** ISO 8601 */
  startedAt: string;
  /** which installation registered the name (a restart of the same one may take it back at once) */
  instance?: string;
}

export interface OverlayDefinition {
  name: string;
  vni: number;
  /** IPv4 CIDR */
  subnet: string;
  /** IPv6 CIDR of a dual-stack overlay; absent (older tsnet) or '' when it is IPv4 only */
  subnet6?: string;
  /** VXLAN UDP port */
  port: number;
  /** host that created it */
  createdBy: string;
  createdAt: string;
}

export interface OverlayRequest {
  name: string;
  /** undefined: the store picks a free one (or keeps the existing definition's) */
  vni?: number;
  subnet: string;
  /** IPv6 CIDR of a dual-stack overlay, '' or absent for IPv4 only */
  subnet6?: string;
  /** undefined: the existing definition's, or the IANA port for a new one */
  port?: number;
}

export interface EndpointAnnouncement {
  overlay: string;
  /** bare IPv4 or IPv6 address: a dual-stack endpoint is announced once per address, same MAC */
  ip: string;
  mac: string;
  endpointId: string;
  host: string;
  vtep: string;
}

/** Receives the cluster's endpoint announcements: a full snapshot first, then each change. */
export interface AnnouncementListener {
  /** every announcement that exists now (after a start or a reconnect that lost history) */
  reset(all: EndpointAnnouncement[]): void;
  put(a: EndpointAnnouncement): void;
  delete(a: EndpointAnnouncement): void;
}

export type AddressKind = 'gateway' | 'static' | 'dynamic';

/** Which of an overlay's pools: every overlay has an IPv4 one, a dual-stack overlay an IPv6 one too. */
export type PoolFamily = 4 | 6;

export interface ClusterPool {
  overlay: string;
  /** CIDR of the pool's family */
  subnet: string;
  /** CIDR of the dynamic range, '' for the whole subnet */
  subPool: string;
  /** bare address, '' until the first host asked for one */
  gateway: string;
}

export interface ClusterAddress {
  address: string;
  kind: AddressKind;
  host: string;
}

export interface ClusterStore {
  /** this host's name in the cluster */
  readonly host: string;
  readonly vtep: string;
  /** where the store is, for messages and status */
  readonly endpoint: string;

  /** Registers this host under a fresh lease and keeps it alive; announcements survive lease loss. */
  start(): Promise<void>;
  /** Stops the keep-alive and the watch; with `withdraw`, also revokes the lease at once. */
  close(opts?: { withdraw?: boolean }): Promise<void>;

  listHosts(): Promise<HostRecord[]>;

  /** Creates the overlay's definition, or checks the request against the existing one (UserError on a mismatch). */
  defineOverlay(req: OverlayRequest): Promise<OverlayDefinition>;
  listOverlays(): Promise<OverlayDefinition[]>;

  /**
   * Announces a local endpoint under this host's lease. Throws UserError when another endpoint
   * already holds the address. Re-announcing the same endpoint is a no-op.
   */
  announce(a: Omit<EndpointAnnouncement, 'host' | 'vtep'>): Promise<void>;
  /** Withdraws an announcement of this host's; no-op when it is gone or belongs to someone else. */
  withdraw(overlay: string, ip: string, endpointId: string): Promise<void>;
  listAnnouncements(): Promise<EndpointAnnouncement[]>;
  /** Starts delivering announcements of every overlay (one listener per store). */
  watchAnnouncements(listener: AnnouncementListener): Promise<void>;

  // membership: which hosts have a network of an overlay. Permanent keys, not under the lease: a
  // host whose daemon is down for a while still counts (`tsnet cluster forget` removes a dead one)
  /** Records this host as a member of the overlay, before its pool or definition is used. */
  joinOverlay(overlay: string): Promise<void>;
  /**
   * Removes this host from the overlay's members; when none is left, removes the overlay's
   * definition, pool and addresses in one transaction that fails if a host joined meanwhile.
   * True when the overlay went from the cluster.
   */
  leaveOverlay(overlay: string): Promise<boolean>;
  /** The overlays this host is a member of. */
  joinedOverlays(): Promise<string[]>;

  // cluster-wide IPAM
  // (an overlay's IPv4 and IPv6 pools are kept apart, `family` 4 unless given; their addresses
  // share one list, told apart by their text)
  /** The overlay's pool, created when absent from `want` (subnet required then); UserError on a mismatch. */
  claimPool(overlay: string, want: { subnet: string; subPool: string }, family?: PoolFamily): Promise<ClusterPool>;
  getPool(overlay: string, family?: PoolFamily): Promise<ClusterPool | undefined>;
  /** Sets the pool's gateway when none is set; returns the gateway that holds afterwards. */
  setGateway(overlay: string, address: string, family?: PoolFamily): Promise<string>;
  /** Both families' addresses. */
  listAddresses(overlay: string): Promise<ClusterAddress[]>;
  /** Insert-if-absent: false when the address is taken. */
  claimAddress(overlay: string, address: string, kind: AddressKind): Promise<boolean>;
  /** Frees an address this host holds; no-op otherwise. */
  releaseAddress(overlay: string, address: string): Promise<void>;
}

/** `etcd://host:2379[,host2:2379]` -> the client URLs. */
export function parseStoreUrl(url: string): { kind: 'etcd'; hosts: string[] } {
  const m = /^etcd:\/\/(.+)$/.exec(url.trim());
  if (!m) throw new Error(`unknown store '${url}': tsnet knows etcd://HOST:PORT[,HOST:PORT...]`);
  const hosts = m[1]
    .split(',')
    .map((h) => h.trim().replace(/\/+$/, ''))
    .filter(Boolean);
  if (hosts.length === 0) throw new Error(`store '${url}' names no etcd host: use etcd://HOST:PORT`);
  for (const h of hosts) {
    if (!/^[A-Za-z0-9.\-]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(h)) throw new Error(`etcd endpoint '${h}' in '${url}' is not HOST:PORT`);
  }
  return { kind: 'etcd', hosts: hosts.map((h) => `http://${h}`) };
}
