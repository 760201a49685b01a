// One NETLINK_ROUTE socket and the operations tsnet performs with it. A socket belongs to the
// network namespace it was opened in, for its whole life: openInNetns opens it inside another
// one. Every call is synchronous and checked: requests carry NLM_F_ACK and a sequence number,
// and errors come back as NetlinkError naming the object, with the kernel's own text appended.
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  AF_UNSPEC,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_ROUTE,
  NLM_F,
  NLMSG,
  RT_TABLE,
  RTM,
  RTM_F_CLONED,
  SOL_NETLINK,
} from './constants.js';
import {
  addrMessage,
  decodeDone,
  decodeError,
  decodeMessages,
  encodeMessage,
  isControl,
  linkMessage,
  neighMessage,
  routeMessage,
  type NlMsg,
  type NlStatus,
} from './codec.js';
import { NetlinkError, isNetlinkError, type OpContext } from './errors.js';
import {
  bridgePortRequest,
  changeLinkRequest,
  checkLinkName,
  createLinkRequest,
  KIND_MODULE,
  toBridgePortInfo,
  toLinkInfo,
  type BridgePortInfo,
  type BridgePortSettings,
  type LinkChange,
  type LinkInfo,
  type LinkSpec,
} from './links.js';
import { addressRequest, toAddressInfo, type AddressInfo, type AddressOptions } from './addresses.js';
import { routeRequest, toRouteInfo, type RouteInfo, type RouteSpec } from './routes.js';
import {
  fdbRequest,
  neighbourRequest,
  toFdbInfo,
  toNeighbourInfo,
  type FdbInfo,
  type FdbSpec,
  type NeighbourInfo,
  type NeighbourSpec,
} from './neighbours.js';
import { ENODEV, MSG_PEEK, MSG_TRUNC, SOCK_CLOEXEC, SOCK_RAW, SOL_SOCKET, SO_RCVTIMEO, bind, close, recv, send, sendAsync, setsockopt, setsockoptInt, socket } from '../libc.js';
import { withNetns } from '../netns.js';
import { netlinkDuration, timed } from '../../core/metrics.js';

/** A safety net: the kernel always answers, but a daemon must never hang on a lost reply. */
const RECV_TIMEOUT_SECONDS = 30;
/** A dump that raced with a change is marked NLM_F_DUMP_INTR; it is read again. */
const DUMP_ATTEMPTS = 5;

type IgnoreMissing = { ignoreMissing?: boolean };

/** Records a request's time under its op name (a fixed name in this file: the label stays bounded). */
const observeOp = (ctx: OpContext) => (seconds: number) => netlinkDuration.observe({ op: ctx.op }, seconds);

export class Netlink {
  private seq = 0;
  private buf = Buffer.alloc(64 * 1024);
  private fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** A socket in the calling thread's current network namespace. */
  static open(): Netlink {
    const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    try {
      // the kernel's own words in errors, and acks without a copy of our request
      setsockoptInt(fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
      setsockoptInt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
      const timeval = Buffer.alloc(16);
      timeval.writeBigInt64LE(BigInt(RECV_TIMEOUT_SECONDS));
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeval);
      // struct sockaddr_nl with nl_pid 0: the kernel picks our port id
      const addr = Buffer.alloc(12);
      addr.writeUInt16LE(AF_NETLINK);
      bind(fd, addr);
    } catch (err) {
      close(fd);
      throw err;
    }
    return new Netlink(fd);
  }

  /** A socket in the namespace at nsPath (e.g. /run/netns/x), usable from anywhere. */
  static openInNetns(nsPath: string): Netlink {
    return withNetns(nsPath, () => Netlink.open());
  }

  close(): void {
    if (this.fd < 0) return;
    close(this.fd);
    this.fd = -1;
  }

  // ------------------------------------------------------------------ links

  listLinks(): LinkInfo[] {
    const payload = linkMessage.encode({ header: { family: AF_UNSPEC }, attrs: {} });
    return this.dump(RTM.GETLINK, payload, { op: 'listLinks', what: 'list links' }).map((m) => toLinkInfo(linkMessage.decode(m.payload)));
  }

  getLink(nameOrIndex: string | number): LinkInfo | undefined {
    const byName = typeof nameOrIndex === 'string';
    if (byName) checkLinkName(nameOrIndex);
    const payload = linkMessage.encode({
      header: { family: AF_UNSPEC, index: byName ? 0 : nameOrIndex },
      attrs: { ifname: byName ? nameOrIndex : undefined },
    });
    try {
      const [reply] = this.request(RTM.GETLINK, 0, payload, { op: 'getLink', what: `look up link ${nameOrIndex}` });
      return reply && toLinkInfo(linkMessage.decode(reply.payload));
    } catch (err) {
      if (isNetlinkError(err, 'ENODEV')) return undefined;
      throw err;
    }
  }

  /**
   * Every bridge port of this namespace with its bridge settings, from one AF_BRIDGE dump: what a
   * reconcile compares instead of asking link by link.
   */
  listBridgePorts(): BridgePortInfo[] {
    const payload = linkMessage.encode({ header: { family: AF_BRIDGE }, attrs: {} });
    return this.dump(RTM.GETLINK, payload, { op: 'listBridgePorts', what: 'list bridge ports' })
      .map((m) => toBridgePortInfo(linkMessage.decode(m.payload)))
      .filter((p): p is BridgePortInfo => p !== undefined);
  }

  createLink(spec: LinkSpec): void {
    const payload = linkMessage.encode(createLinkRequest(spec, (name) => this.index(name, 'createLink')));
    const ctx: OpContext = {
      op: 'createLink',
      what: `create ${spec.kind} link ${spec.name}`,
      messages: { EEXIST: `link ${spec.name} already exists` },
    };
    try {
      this.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, payload, ctx);
    } catch (err) {
      throw this.explainCreateError(spec, err);
    }
    // the kernel ignores IFLA_IFALIAS when it creates a link: aliases are a second step
    const home = spec.kind === 'macvlan' ? spec.netnsFd : undefined;
    try {
      if (spec.alias !== undefined) this.inNetns(home, (nl) => nl.setLink(spec.name, { alias: spec.alias }));
      if (spec.kind === 'veth' && spec.peerAlias !== undefined) {
        this.inNetns(spec.peerNetnsFd, (nl) => nl.setLink(spec.peerName, { alias: spec.peerAlias }));
      }
    } catch (err) {
      this.inNetns(home, (nl) => nl.deleteLink(spec.name, { ignoreMissing: true }));
      throw err;
    }
  }

  /** Runs fn with this socket, or with a short-lived one in the namespace of netnsFd. */
  private inNetns(netnsFd: number | undefined, fn: (nl: Netlink) => void): void {
    if (netnsFd === undefined) return fn(this);
    const there = withNetns(netnsFd, () => Netlink.open());
    try {
      fn(there);
    } finally {
      there.close();
    }
  }

  private explainCreateError(spec: LinkSpec, err: unknown): unknown {
    if (!(err instanceof NetlinkError)) return err;
    if (err.code === 'EOPNOTSUPP' && (err.kernelMessage === undefined || /unknown device type/i.test(err.kernelMessage))) {
      const message = `kernel does not support link type '${spec.kind}' (module ${KIND_MODULE[spec.kind]} missing)`;
      return new NetlinkError('createLink', err.errno, message, err.kernelMessage);
    }
    // a veth has two names: say which one is taken
    if (err.code === 'EEXIST' && spec.kind === 'veth' && !this.getLink(spec.name)) {
      const where = spec.peerNetnsFd === undefined ? '' : ' in the peer namespace';
      return new NetlinkError('createLink', err.errno, `link ${spec.peerName} already exists${where}`, err.kernelMessage);
    }
    return err;
  }

  deleteLink(name: string, opts: IgnoreMissing = {}): void {
    checkLinkName(name);
    const payload = linkMessage.encode({ header: { family: AF_UNSPEC }, attrs: { ifname: name } });
    this.requestMaybeMissing(opts, ['ENODEV'], RTM.DELLINK, 0, payload, {
      op: 'deleteLink',
      what: `delete link ${name}`,
      messages: { ENODEV: `no link named ${name}` },
    });
  }

  /**
   * deleteLink with the kernel's work on another thread: deleting a link waits for an RCU grace
   * period inside send(2). Requests on one socket must not interleave, so use a Netlink
   * dedicated to this and one deletion at a time (native/link-reaper.ts does both).
   */
  async deleteLinkAsync(name: string, opts: IgnoreMissing = {}): Promise<void> {
    checkLinkName(name);
    if (this.fd < 0) throw new Error('netlink socket is closed');
    const payload = linkMessage.encode({ header: { family: AF_UNSPEC }, attrs: { ifname: name } });
    const seq = ++this.seq;
    await sendAsync(this.fd, encodeMessage({ type: RTM.DELLINK, flags: NLM_F.REQUEST | NLM_F.ACK, seq, payload }));
    // the kernel has answered by the time send returns: the ack is already queued
    const { status } = this.readReplies(seq);
    if (!status.errno) return;
    const err = NetlinkError.from({ op: 'deleteLink', what: `delete link ${name}`, messages: { ENODEV: `no link named ${name}` } }, status.errno, status.message);
    if (!(opts.ignoreMissing && isNetlinkError(err, 'ENODEV'))) throw err;
  }

  /**
   * Changes a link, by name or index. A change that does not rename it names the link in the
   * request itself (index 0 and IFLA_IFNAME, as `ip link set dev NAME` does), so the kernel looks it
   * up: no GETLINK first (each one costs more on a host with thousands of links, bench/scale.ts).
   */
  setLink(name: string | number, change: LinkChange): void {
    const byName = typeof name === 'string' && change.name === undefined;
    if (byName) checkLinkName(name);
    const request = changeLinkRequest(byName ? 0 : this.index(name, 'setLink'), byName ? { ...change, name } : change, (n) => this.index(n, 'setLink'));
    this.request(RTM.NEWLINK, 0, linkMessage.encode(request), {
      op: 'setLink',
      what: `change link ${name}`,
      messages: {
        ENODEV: `no link named ${name}`,
        EEXIST:
          change.name !== undefined
            ? `link ${change.name} already exists`
            : `a link named ${name} already exists in the target namespace`,
      },
    });
  }

  setBridgePort(name: string, settings: BridgePortSettings): void {
    const payload = linkMessage.encode(bridgePortRequest(this.index(name, 'setBridgePort'), settings));
    this.request(RTM.SETLINK, 0, payload, {
      op: 'setBridgePort',
      what: `set bridge port options of ${name}`,
      messages: { EOPNOTSUPP: `link ${name} is not a bridge port` },
    });
  }

  // ------------------------------------------------------------------ addresses

  addAddress(link: string | number, cidr: string, opts: AddressOptions = {}): void {
    const payload = addrMessage.encode(addressRequest(this.index(link, 'addAddress'), cidr, opts));
    this.request(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, payload, {
      op: 'addAddress',
      what: `add address ${cidr} to ${link}`,
      messages: { EEXIST: `address ${cidr} already on ${link}` },
    });
  }

  deleteAddress(link: string, cidr: string, opts: IgnoreMissing = {}): void {
    const index = this.indexMaybeMissing(link, opts, 'deleteAddress');
    if (index === undefined) return;
    this.requestMaybeMissing(opts, ['EADDRNOTAVAIL'], RTM.DELADDR, 0, addrMessage.encode(addressRequest(index, cidr)), {
      op: 'deleteAddress',
      what: `delete address ${cidr} from ${link}`,
      messages: { EADDRNOTAVAIL: `address ${cidr} is not on ${link}` },
    });
  }

  /** Addresses of one link or of all; of one family (4 or 6) when given, which the kernel filters. */
  listAddresses(link?: string, family?: 4 | 6): AddressInfo[] {
    const only = link === undefined ? undefined : this.index(link, 'listAddresses');
    const names = this.linkNames(link, only);
    const header = { family: family === undefined ? AF_UNSPEC : family === 4 ? AF_INET : AF_INET6 };
    return this.dump(RTM.GETADDR, addrMessage.encode({ header, attrs: {} }), { op: 'listAddresses', what: 'list addresses' })
      .map((m) => addrMessage.decode(m.payload))
      .filter((m) => only === undefined || m.header.index === only)
      .map((m) => toAddressInfo(m, names.get(m.header.index) ?? ''));
  }

  // ------------------------------------------------------------------ routes

  addRoute(r: RouteSpec): void {
    this.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.EXCL, this.routePayload(r, 'addRoute'), {
      op: 'addRoute',
      what: `add ${describeRoute(r)}`,
      messages: { EEXIST: `${describeRoute(r)} already exists` },
    });
  }

  replaceRoute(r: RouteSpec): void {
    this.request(RTM.NEWROUTE, NLM_F.CREATE | NLM_F.REPLACE, this.routePayload(r, 'replaceRoute'), { op: 'replaceRoute', what: `replace ${describeRoute(r)}` });
  }

  deleteRoute(r: RouteSpec, opts: IgnoreMissing = {}): void {
    if (r.dev !== undefined && this.indexMaybeMissing(r.dev, opts, 'deleteRoute') === undefined) return;
    this.requestMaybeMissing(opts, ['ESRCH'], RTM.DELROUTE, 0, this.routePayload(r, 'deleteRoute', true), {
      op: 'deleteRoute',
      what: `delete ${describeRoute(r)}`,
      messages: { ESRCH: `no ${describeRoute(r)}` },
    });
  }

  /** Routes of one table, main unless given, as `ip route show` lists them. */
  listRoutes(family: 4 | 6, opts: { table?: number } = {}): RouteInfo[] {
    const table = opts.table ?? RT_TABLE.MAIN;
    const names = this.linkNames();
    const payload = routeMessage.encode({ header: { family: family === 4 ? AF_INET : AF_INET6 }, attrs: {} });
    return this.dump(RTM.GETROUTE, payload, { op: 'listRoutes', what: 'list routes' })
      .map((m) => routeMessage.decode(m.payload))
      .filter((m) => !(m.header.flags & RTM_F_CLONED) && (m.attrs.table ?? m.header.table) === table)
      .map((m) => toRouteInfo(m, (i) => names.get(i)));
  }

  private routePayload(r: RouteSpec, op: string, forDelete = false): Buffer {
    return routeMessage.encode(routeRequest(r, (name) => this.index(name, op), forDelete));
  }

  // ------------------------------------------------------------------ neighbours

  replaceNeighbour(n: NeighbourSpec): void {
    const payload = neighMessage.encode(neighbourRequest(this.index(n.dev, 'replaceNeighbour'), n));
    this.request(RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.REPLACE, payload, {
      op: 'replaceNeighbour',
      what: `set neighbour ${n.ip} on ${n.dev}`,
    });
  }

  deleteNeighbour(dev: string, ip: string, opts: IgnoreMissing = {}): void {
    const index = this.indexMaybeMissing(dev, opts, 'deleteNeighbour');
    if (index === undefined) return;
    this.requestMaybeMissing(opts, ['ENOENT'], RTM.DELNEIGH, 0, neighMessage.encode(neighbourRequest(index, { ip })), {
      op: 'deleteNeighbour',
      what: `delete neighbour ${ip} on ${dev}`,
      messages: { ENOENT: `no neighbour entry for ${ip} on ${dev}` },
    });
  }

  listNeighbours(dev?: string): NeighbourInfo[] {
    const only = dev === undefined ? undefined : this.index(dev, 'listNeighbours');
    const names = this.linkNames(dev, only);
    return this.dump(RTM.GETNEIGH, neighMessage.encode({ header: { family: AF_UNSPEC }, attrs: {} }), { op: 'listNeighbours', what: 'list neighbours' })
      .map((m) => neighMessage.decode(m.payload))
      .filter((m) => (m.header.family === AF_INET || m.header.family === AF_INET6) && (only === undefined || m.header.index === only))
      .map((m) => toNeighbourInfo(m, names.get(m.header.index) ?? ''));
  }

  // ------------------------------------------------------------------ forwarding database

  /** Adds or replaces the entry for a unicast mac. */
  replaceFdb(f: FdbSpec): void {
    this.fdbRequest(f, NLM_F.CREATE | NLM_F.REPLACE, 'replaceFdb', {
      // VXLAN refuses to create these by replace: they are lists of remotes
      EOPNOTSUPP: `the kernel creates no ${f.mac} forwarding entry on ${f.dev} by replace: use appendFdb for all-zero and multicast addresses`,
    });
  }

  /** Adds one more remote for mac: several all-zero entries flood BUM traffic to every VTEP. */
  appendFdb(f: FdbSpec): void {
    this.fdbRequest(f, NLM_F.CREATE | NLM_F.APPEND, 'appendFdb', {});
  }

  private fdbRequest(f: FdbSpec, flags: number, op: string, messages: OpContext['messages']): void {
    const payload = neighMessage.encode(fdbRequest(this.index(f.dev, op), f));
    this.request(RTM.NEWNEIGH, flags, payload, { op, what: `add forwarding entry ${f.mac}${f.dst ? ` dst ${f.dst}` : ''} on ${f.dev}`, messages });
  }

  deleteFdb(f: Pick<FdbSpec, 'dev' | 'mac' | 'dst' | 'self' | 'master'>, opts: IgnoreMissing = {}): void {
    const index = this.indexMaybeMissing(f.dev, opts, 'deleteFdb');
    if (index === undefined) return;
    this.requestMaybeMissing(opts, ['ENOENT'], RTM.DELNEIGH, 0, neighMessage.encode(fdbRequest(index, f)), {
      op: 'deleteFdb',
      what: `delete forwarding entry ${f.mac} on ${f.dev}`,
      messages: { ENOENT: `no forwarding entry for ${f.mac}${f.dst ? ` dst ${f.dst}` : ''} on ${f.dev}` },
    });
  }

  listFdb(dev?: string): FdbInfo[] {
    const only = dev === undefined ? undefined : this.index(dev, 'listFdb');
    const names = this.linkNames(dev, only);
    return this.dump(RTM.GETNEIGH, neighMessage.encode({ header: { family: AF_BRIDGE }, attrs: {} }), { op: 'listFdb', what: 'list forwarding entries' })
      .map((m) => neighMessage.decode(m.payload))
      .filter((m) => only === undefined || m.header.index === only)
      .map((m) => toFdbInfo(m, names.get(m.header.index) ?? ''));
  }

  // ------------------------------------------------------------------ names and indexes

  /** The index of a link in this socket's namespace (if_nametoindex would look in the thread's); an index is its own. */
  private index(name: string | number, op: string): number {
    if (typeof name === 'number') return name;
    const link = this.getLink(name);
    if (!link) throw new NetlinkError(op, ENODEV, `no link named ${name}`);
    return link.index;
  }

  /** With ignoreMissing a missing link means there is nothing to delete. */
  private indexMaybeMissing(name: string, opts: IgnoreMissing, op: string): number | undefined {
    if (!opts.ignoreMissing) return this.index(name, op);
    return this.getLink(name)?.index;
  }

  /**
   * Index -> name, for listings: each index the listing names is looked up once, by a request of
   * its own. A listing names few links (the bridges holding addresses, a route's devices), so this
   * costs far less than a dump of every link on a host with thousands of veths.
   */
  private linkNames(name?: string, index?: number): { get(index: number): string | undefined } {
    if (name !== undefined && index !== undefined) return new Map([[index, name]]);
    const names = new Map<number, string | undefined>();
    return {
      get: (i) => {
        if (!names.has(i)) names.set(i, this.getLink(i)?.name);
        return names.get(i);
      },
    };
  }

  // ------------------------------------------------------------------ the exchange

  private requestMaybeMissing(opts: IgnoreMissing, missing: string[], type: number, flags: number, payload: Buffer, ctx: OpContext): void {
    try {
      this.request(type, flags, payload, ctx);
    } catch (err) {
      if (!(opts.ignoreMissing && isNetlinkError(err, ...missing))) throw err;
    }
  }

  /** Sends one request and reads its replies up to the kernel's ack. */
  private request(type: number, flags: number, payload: Buffer, ctx: OpContext): NlMsg[] {
    const { messages, status } = timed(observeOp(ctx), () => this.exchange(type, NLM_F.REQUEST | NLM_F.ACK | flags, payload));
    if (status.errno) throw NetlinkError.from(ctx, status.errno, status.message);
    return messages;
  }

  /** A dump ends with NLMSG_DONE (no ack follows it); one that raced with a change is read again. */
  private dump(type: number, payload: Buffer, ctx: OpContext): NlMsg[] {
    for (let attempt = 1; ; attempt++) {
      const { messages, status, interrupted } = timed(observeOp(ctx), () => this.exchange(type, NLM_F.REQUEST | NLM_F.ACK | NLM_F.DUMP, payload));
      if (status.errno) throw NetlinkError.from(ctx, status.errno, status.message);
      if (!interrupted || attempt === DUMP_ATTEMPTS) return messages;
    }
  }

  private exchange(type: number, flags: number, payload: Buffer): { messages: NlMsg[]; status: NlStatus; interrupted: boolean } {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    const seq = ++this.seq;
    send(this.fd, encodeMessage({ type, flags, seq, payload }));
    return this.readReplies(seq);
  }

  private readReplies(seq: number): { messages: NlMsg[]; status: NlStatus; interrupted: boolean } {
    const messages: NlMsg[] = [];
    let interrupted = false;
    for (;;) {
      for (const m of decodeMessages(this.receive())) {
        // left over from a request abandoned half-way (e.g. by a decode error)
        if (m.seq !== seq) continue;
        if (m.flags & NLM_F.DUMP_INTR) interrupted = true;
        if (m.type === NLMSG.ERROR) return { messages, status: decodeError(m), interrupted };
        if (m.type === NLMSG.DONE) return { messages, status: decodeDone(m), interrupted };
        if (!isControl(m)) messages.push(m);
      }
    }
  }

  /** One datagram, whatever its size: peek at its length first, then read it. */
  private receive(): Buffer {
    const len = recv(this.fd, this.buf, MSG_PEEK | MSG_TRUNC);
    if (len > this.buf.length) this.buf = Buffer.alloc(len);
    const n = recv(this.fd, this.buf);
    // copied: the buffer is reused, the messages may outlive the next read
    return Buffer.from(this.buf.subarray(0, n));
  }
}

function describeRoute(r: RouteSpec): string {
  const via = r.gateway ? ` via ${r.gateway}` : '';
  const dev = r.dev ? ` dev ${r.dev}` : r.devIndex !== undefined ? ` dev #${r.devIndex}` : '';
  const table = r.table !== undefined && r.table !== RT_TABLE.MAIN ? ` in table ${r.table}` : '';
  return `route ${r.dst}${via}${dev}${table}`;
}
