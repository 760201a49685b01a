// Names across hosts on cluster overlays (issue 13 items 3 and 4: A, and AAAA on dual-stack ones). Docker's embedded DNS (127.0.0.11 in a
// container) answers only the names its own engine knows, and sends every other question to the
// container's DNS servers, from inside the container's namespace (moby libnetwork resolver.go,
// sandbox_dns_unix.go: `--dns` / daemon.json `dns` addresses are dialled from the container, and
// no remote driver is told a container's name or aliases). So with `"dns": ["VTEP"]` in
// daemon.json, those questions come here, to this responder on the host's VTEP address:
//   - the question's source is the container's address, so its overlay is the local tsnet network
//     whose subnet holds it;
//   - a name on that overlay is looked up in this host's engine (container names and
//     --network-alias, GET /networks/ID and the containers' inspect) and in every other live host's,
//     by asking their responders `NAME.OVERLAY.tsnet-overlay` with recursion off (the cluster
//     store lists the hosts); nothing is cached, so a name goes when its container goes;
//   - anything else goes, as it came, to the upstream resolvers (`--dns-upstream`).
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { dockerGet } from '../runtime/docker-api.js';
import { answerAddresses, buildAnswer, buildQuery, formErrReply, parseQuery, RCODE_NXDOMAIN, RCODE_SERVFAIL, TYPE_A, TYPE_AAAA, type DnsQuery } from './dns-wire.js';

/** The suffix of one host's question to another: NAME.OVERLAY.tsnet-overlay */
export const PEER_SUFFIX = 'tsnet-overlay';
const PEER_TIMEOUT_MS = 700;
const UPSTREAM_TIMEOUT_MS = 2_000;
/** seconds: short, so a name that went is not kept long by anyone */
const TTL = 5;

export interface OverlayDnsOptions {
  /** the address to answer on (port 53 unless port is given): the host's VTEP */
  listen: string;
  port?: number;
  /** this host's engine */
  dockerSocket: string;
  /** IDs of the networks tsnet has (Docker's network IDs): the plugin's name in Docker may differ from its instance's */
  networks: () => ReadonlySet<string>;
  /** the other live hosts' responders (their VTEPs) */
  peers: () => Promise<string[]>;
  /** resolvers for every other name */
  upstream: string[];
  log: Logger;
}

/** A tsnet network of this host's engine on a cluster overlay. */
export interface LocalOverlay {
  id: string;
  overlay: string;
  subnets: string[];
}

interface NetworkListRow {
  Id: string;
  Driver: string;
  Options?: Record<string, string>;
  IPAM?: { Config?: { Subnet?: string }[] };
}

interface NetworkDetail {
  Containers?: Record<string, { Name: string; IPv4Address: string; IPv6Address?: string }>;
}

/** Which records a question asks for: A (IPv4) or AAAA (IPv6, on a dual-stack overlay). */
type Family = 4 | 6;
const FAMILY_OF_TYPE = new Map<number, Family>([
  [TYPE_A, 4],
  [TYPE_AAAA, 6],
]);

interface ContainerDetail {
  NetworkSettings: { Networks: Record<string, { NetworkID: string; Aliases?: string[] | null; IPAddress: string }> };
}

/** True when IPv4 address ip is in subnet (CIDR). */
export function inSubnet(ip: string, subnet: string): boolean {
  const [base, len] = subnet.split('/');
  const toInt = (a: string) => a.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
  const bits = Number(len);
  if (!base.includes('.') || !ip.includes('.') || !(bits >= 0 && bits <= 32)) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (toInt(ip) & mask) === (toInt(base) & mask);
}

/** Splits a host's question NAME.OVERLAY.tsnet-overlay; undefined for any other name. */
export function peerQuestion(name: string): { name: string; overlay: string } | undefined {
  const labels = name.split('.');
  if (labels.length < 3 || labels.at(-1) !== PEER_SUFFIX) return undefined;
  return { name: labels.slice(0, -2).join('.'), overlay: labels.at(-2)! };
}

export class OverlayDns {
  private socket: Socket | undefined;

  constructor(private readonly o: OverlayDnsOptions) {}

  async start(): Promise<void> {
    const socket = createSocket('udp4');
    socket.on('message', (msg, from) => {
      this.handle(msg, from.address)
        .then((reply) => reply && socket.send(reply, from.port, from.address))
        .catch((err: unknown) => this.o.log.warn({ err: String(err), from: from.address }, 'name question not answered'));
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.o.port ?? 53, this.o.listen, () => {
        socket.off('error', reject);
        // later errors (an unreachable asker, a closed port) are logged, never thrown at the daemon
        socket.on('error', (err) => this.o.log.warn({ err: String(err) }, 'name responder socket error'));
        resolve();
      });
    });
    socket.on('error', (err) => this.o.log.warn({ err: String(err) }, 'name responder socket'));
    this.socket = socket;
    this.o.log.info({ listen: this.o.listen, upstream: this.o.upstream }, 'answering overlay names');
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }

  /** The reply to one message from address `from`, or undefined to drop it. */
  async handle(msg: Buffer, from: string): Promise<Buffer | undefined> {
    const q = parseQuery(msg);
    if (!q) return formErrReply(msg); // not a question tsnet reads: FORMERR or dropped, never passed on
    const peer = peerQuestion(q.name);
    const family = FAMILY_OF_TYPE.get(q.type);
    if (peer && !q.rd) {
      // another host asks what this one's engine has
      const ips = family ? await this.localAddresses(peer.overlay, peer.name, family) : [];
      return buildAnswer(q, ips, TTL, ips.length > 0 ? 0 : RCODE_NXDOMAIN);
    }
    // an engine that does not answer (stopped, restarting) knows no container: other names still go upstream
    const overlays = await this.localOverlays().catch(() => [] as LocalOverlay[]);
    const net = overlays.find((n) => n.subnets.some((s) => inSubnet(from, s)));
    if (!net || !family || q.name.includes('.')) return this.forward(msg, q);
    const ips = await this.clusterAddresses(net.overlay, q.name, family);
    if (ips.length > 0) return buildAnswer(q, ips, TTL);
    // a container of the overlay without an IPv6 address: the name exists, no AAAA record (not
    // passed on: a container's name means nothing to the upstream resolvers)
    if (family === 6 && (await this.clusterAddresses(net.overlay, q.name, 4)).length > 0) return buildAnswer(q, [], TTL);
    return this.forward(msg, q);
  }

  /** This host's tsnet networks on cluster overlays. */
  async localOverlays(): Promise<LocalOverlay[]> {
    const rows = await dockerGet<NetworkListRow[]>(this.o.dockerSocket, '/networks');
    return rows
      .filter((r) => this.o.networks().has(r.Id) && r.Options?.overlay)
      .map((r) => ({ id: r.Id, overlay: r.Options!.overlay, subnets: (r.IPAM?.Config ?? []).map((c) => c.Subnet ?? '').filter(Boolean) }));
  }

  /** Addresses (of `family`) of the containers named or aliased `name` on overlay `overlay` in this host's engine. */
  async localAddresses(overlay: string, name: string, family: Family = 4): Promise<string[]> {
    const out: string[] = [];
    for (const net of (await this.localOverlays()).filter((n) => n.overlay === overlay)) {
      const detail = await dockerGet<NetworkDetail>(this.o.dockerSocket, `/networks/${net.id}`);
      for (const [id, c] of Object.entries(detail.Containers ?? {})) {
        const ip = ((family === 4 ? c.IPv4Address : c.IPv6Address) ?? '').split('/')[0];
        if (!ip) continue;
        if (c.Name.toLowerCase() === name) {
          out.push(ip);
          continue;
        }
        const inspect = await dockerGet<ContainerDetail>(this.o.dockerSocket, `/containers/${id}/json`).catch(() => undefined);
        const on = Object.values(inspect?.NetworkSettings.Networks ?? {}).find((n) => n.NetworkID === net.id);
        if (on?.Aliases?.some((a) => a.toLowerCase() === name)) out.push(ip);
      }
    }
    return [...new Set(out)];
  }

  /** This host's answer, else the other hosts' (asked at once; one that does not answer in time counts as knowing nothing). */
  private async clusterAddresses(overlay: string, name: string, family: Family): Promise<string[]> {
    const local = await this.localAddresses(overlay, name, family);
    if (local.length > 0) return local;
    const peers = await this.o.peers().catch(() => [] as string[]);
    const question = (id: number) => buildQuery(id, `${name}.${overlay}.${PEER_SUFFIX}`, family === 4 ? TYPE_A : TYPE_AAAA);
    const answers = await Promise.all(peers.map((p) => this.ask(p, this.o.port ?? 53, question(randomId()), PEER_TIMEOUT_MS)));
    return [...new Set(answers.flatMap((a) => (a ? answerAddresses(a) : [])))];
  }

  /** msg to the upstream resolvers in turn, the first answer back; SERVFAIL when none answers. */
  private async forward(msg: Buffer, q?: DnsQuery): Promise<Buffer | undefined> {
    for (const server of this.o.upstream) {
      const reply = await this.ask(server, 53, msg, UPSTREAM_TIMEOUT_MS);
      if (reply) return reply;
    }
    return q ? buildAnswer(q, [], 0, RCODE_SERVFAIL) : undefined;
  }

  /** One question over UDP; undefined on timeout or error. */
  private ask(server: string, port: number, msg: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const s = createSocket('udp4');
      const done = (reply?: Buffer) => {
        clearTimeout(timer);
        s.close();
        resolve(reply);
      };
      const timer = setTimeout(() => done(), timeoutMs);
      s.on('error', () => done());
      s.on('message', (reply) => (reply.length >= 2 && reply.readUInt16BE(0) === msg.readUInt16BE(0) ? done(reply) : undefined));
      s.send(msg, port, server);
    });
  }
}

function randomId(): number {
  return Math.floor(Math.random() * 0x10000);
}

/** The IPv4 nameservers of a resolv.conf text (the responder's default upstream), the responder's own address left out. */
export function resolvConfServers(text: string, own: string): string[] {
  return text
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
    .filter((a): a is string => !!a && a !== own);
}

/** The responder of `tsnet serve --dns IP`, started; its upstream is --dns-upstream or /etc/resolv.conf's. */
export async function startOverlayDns(
  settings: { dns: string; dnsUpstream: string[]; dockerSocket: string },
  networks: () => ReadonlySet<string>,
  peers: () => Promise<string[]>,
  log: Logger,
): Promise<OverlayDns> {
  let upstream = settings.dnsUpstream;
  if (upstream.length === 0) {
    try {
      upstream = resolvConfServers(readFileSync('/etc/resolv.conf', 'utf8'), settings.dns);
    } catch {
      upstream = [];
    }
  }
  const dns = new OverlayDns({ listen: settings.dns, dockerSocket: settings.dockerSocket || '/var/run/docker.sock', networks, peers, upstream, log });
  await dns.start();
  return dns;
}
