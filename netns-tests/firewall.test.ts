// tsnet's firewall with real packets. Every test builds its own little world of namespaces:
//
//   outside (198.51.100.2, fd00:198:51::2) ---- hout (198.51.100.1 and .3, fd00:198:51::1)
//                                                  |
//                                                host namespace: ip_forward=1, tsnet's table
//                                                  |
//                                 bridges 10.231.N.1/24 (fd00:231:N::1/64), route_localnet=1
//                                                  |
//                                 containers 10.231.N.x, default route via the bridge
//
// The outside has no route back to the container subnets (unless a test gives it one, as a router
// might): a reply only finds its way when the container's traffic was masqueraded. A dropped
// packet shows as a client timeout (DROPPED), a host where nothing listens as a refusal (REFUSED);
// every such negative is paired with a connection that works in the same test. Rules are loaded through an Nft opened inside the host
// namespace; packets are sent by small Python clients and servers run with `ip netns exec`.
// Everything is torn down after each test, also when it fails.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Nft } from '../native/nftables.js';
import { withNetns } from '../native/netns.js';
import { PortReserver, PortReservationError } from '../native/sockets.js';
import { Firewall } from '../firewall/firewall.js';
import type { FirewallNetwork, PortMapping } from '../firewall/model.js';
import { until } from './harness.js';

const TOOL = String.raw`
import socket, sys
mode = sys.argv[1]
def fam(h):
    return socket.AF_INET6 if ':' in h else socket.AF_INET
def peer(a):
    p = a[0]
    return p[7:] if p.startswith('::ffff:') else p
if mode in ('serve-tcp', 'serve-udp'):
    port, name = int(sys.argv[2]), sys.argv[3]
    kind = socket.SOCK_STREAM if mode == 'serve-tcp' else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('::', port))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    print('ready', flush=True)
    while True:
        if kind == socket.SOCK_STREAM:
            c, a = s.accept()
            print('from ' + peer(a), flush=True)
            c.sendall(('%s %s\n' % (name, peer(a))).encode())
            c.close()
        else:
            data, a = s.recvfrom(2048)
            print('from ' + peer(a), flush=True)
            s.sendto(('%s %s\n' % (name, peer(a))).encode(), a)
elif mode == 'serve-ports':
    import selectors
    sel = selectors.DefaultSelector()
    for port in map(int, sys.argv[2].split(',')):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('0.0.0.0', port))
        s.listen(64)
        sel.register(s, selectors.EVENT_READ, port)
    print('ready', flush=True)
    while True:
        for key, _ in sel.select():
            c, a = key.fileobj.accept()
            c.sendall(('port%d %s\n' % (key.data, peer(a))).encode())
            c.close()
elif mode in ('tcp', 'udp'):
    # one answer per port (a comma-separated list), in order
    host, timeout = sys.argv[2], float(sys.argv[4])
    for port in map(int, sys.argv[3].split(',')):
        try:
            if mode == 'tcp':
                c = socket.create_connection((host, port), timeout)
            else:
                # connected, so that an ICMP port unreachable comes back as a refusal
                c = socket.socket(fam(host), socket.SOCK_DGRAM)
                c.connect((host, port))
                c.send(b'hi')
            c.settimeout(timeout)
            print(c.recv(200).decode().strip(), flush=True)
            c.close()
        except Exception as e:
            print('ERR ' + type(e).__name__, flush=True)
elif mode == 'bind':
    host, port = sys.argv[2], int(sys.argv[3])
    kind = socket.SOCK_STREAM if sys.argv[4] == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(fam(host), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        print('bound')
    except OSError as e:
        print('ERR errno %d' % e.errno)
`;

/** How long a client waits before calling a connection lost (a drop shows as a timeout). */
const LOST = 1;
/** A client's answer when its packets were dropped: it heard nothing before LOST. */
const DROPPED = 'ERR TimeoutError';
/** A client's answer when a host answered that nothing listens (TCP RST, ICMP port unreachable). */
const REFUSED = 'ERR ConnectionRefusedError';

let toolDir: string;
let tool: string;

beforeAll(() => {
  toolDir = mkdtempSync(join(tmpdir(), 'fwtest-tool-'));
  tool = join(toolDir, 'tool.py');
  writeFileSync(tool, TOOL);
});

afterAll(() => {
  rmSync(toolDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------------------- world building

let counter = 0;
const RUN = (process.pid % 46656).toString(36).padStart(3, '0');

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function shQuiet(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // best effort: cleanup of something that may already be gone
  }
}

const cleanups: (() => void)[] = [];

afterEach(() => {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      fn();
    } catch (err) {
      console.warn('cleanup step failed', err);
    }
  }
});

function addNetns(name: string): string {
  sh('ip', ['netns', 'add', name]);
  cleanups.push(() => shQuiet('ip', ['netns', 'del', name]));
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  // As the bridge driver does for its bridges: link-local addresses usable at once. While a
  // link's link-local address is tentative, the kernel sends no neighbour solicitation for
  // forwarded IPv6 packets, and the first connections of a fresh namespace would be lost.
  // (On a real host the uplink has been up for long; here every link is seconds old.)
  sh('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
  return name;
}

interface NetSpec {
  name: string;
  /** third octet of 10.231.N.0/24 and N of fd00:231:N::/64 */
  n: number;
  internal?: boolean;
  masquerade?: boolean;
  ipv6?: boolean;
}

interface Net {
  spec: NetSpec;
  bridge: string;
  gw4: string;
  gw6: string;
  fw: FirewallNetwork;
}

interface Ctr {
  ns: string;
  net: Net;
  ip4: string;
  ip6: string;
}

/** A running server: the clients it heard, in the order it heard them. */
interface Server {
  peers: string[];
}

class World {
  readonly id: string;
  readonly host: string;
  readonly out: string;
  readonly nets = new Map<string, Net>();
  readonly ctrs = new Map<string, Ctr>();
  readonly nft: Nft;
  readonly fw: Firewall;
  private readonly procs: ChildProcess[] = [];
  /** every link can transmit; reset when links are added */
  private settled = false;

  constructor() {
    this.id = `${RUN}${(counter++).toString(36)}`;
    this.host = addNetns(`tsfw-${this.id}-host`);
    this.out = addNetns(`tsfw-${this.id}-out`);
    cleanups.push(() => this.stopServers());
    this.sysctl(this.host, 'net.ipv4.ip_forward', '1');
    this.sysctl(this.host, 'net.ipv6.conf.all.forwarding', '1');
    const hout = `h${this.id}o`;
    sh('ip', ['-n', this.host, 'link', 'add', hout, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.out]);
    sh('ip', ['-n', this.host, 'addr', 'add', '198.51.100.1/24', 'dev', hout]);
    sh('ip', ['-n', this.host, 'addr', 'add', '198.51.100.3/24', 'dev', hout]);
    sh('ip', ['-n', this.host, 'addr', 'add', 'fd00:198:51::1/64', 'dev', hout, 'nodad']);
    sh('ip', ['-n', this.host, 'link', 'set', hout, 'up']);
    sh('ip', ['-n', this.out, 'addr', 'add', '198.51.100.2/24', 'dev', 'eth0']);
    sh('ip', ['-n', this.out, 'addr', 'add', 'fd00:198:51::2/64', 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', this.out, 'link', 'set', 'eth0', 'up']);
    this.nft = withNetns(this.nsPath(this.host), () => Nft.open());
    cleanups.push(() => this.nft.close());
    this.fw = new Firewall(this.nft, { warn() {} });
  }

  nsPath(ns: string): string {
    return `/run/netns/${ns}`;
  }

  sysctl(ns: string, key: string, value: string): void {
    sh('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `${key}=${value}`]);
  }

  /** A bridge with its gateway addresses, as the bridge driver makes it (firewall not yet told). */
  network(spec: NetSpec): Net {
    this.settled = false;
    const bridge = `tsb${this.id}${spec.name}`;
    const gw4 = `10.231.${spec.n}.1`;
    const gw6 = `fd00:231:${spec.n}::1`;
    sh('ip', ['-n', this.host, 'link', 'add', bridge, 'type', 'bridge']);
    sh('ip', ['-n', this.host, 'addr', 'add', `${gw4}/24`, 'dev', bridge]);
    if (spec.ipv6) sh('ip', ['-n', this.host, 'addr', 'add', `${gw6}/64`, 'dev', bridge, 'nodad']);
    this.sysctl(this.host, `net.ipv4.conf.${bridge}.route_localnet`, '1');
    sh('ip', ['-n', this.host, 'link', 'set', bridge, 'up']);
    const subnets = [`10.231.${spec.n}.0/24`, ...(spec.ipv6 ? [`fd00:231:${spec.n}::/64`] : [])];
    const net: Net = {
      spec,
      bridge,
      gw4,
      gw6,
      fw: { id: `net-${spec.name}`, bridge, subnets, masquerade: spec.masquerade ?? true, internal: spec.internal ?? false },
    };
    this.nets.set(spec.name, net);
    return net;
  }

  container(name: string, netName: string, host: number): Ctr {
    this.settled = false;
    const net = this.nets.get(netName)!;
    const ns = addNetns(`tsfw-${this.id}-${name}`);
    const hostIf = `v${this.id}${name}`;
    sh('ip', ['-n', this.host, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', this.host, 'link', 'set', hostIf, 'master', net.bridge, 'up']);
    const ip4 = `10.231.${net.spec.n}.${host}`;
    const ip6 = `fd00:231:${net.spec.n}::${host}`;
    sh('ip', ['-n', ns, 'addr', 'add', `${ip4}/24`, 'dev', 'eth0']);
    if (net.spec.ipv6) sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', net.gw4]);
    if (net.spec.ipv6) sh('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', net.gw6]);
    const ctr = { ns, net, ip4, ip6 };
    this.ctrs.set(name, ctr);
    return ctr;
  }

  /**
   * A server answering every connection (or datagram) with "<name> <peer address>"; its `peers`
   * list every client it heard, in order, as the server saw them.
   */
  serve(ns: string, proto: 'tcp' | 'udp', port: number, name: string): Promise<Server> {
    return this.startServer(ns, [`serve-${proto}`, String(port), name], name);
  }

  /** One TCP server on each of ports, answering "port<N> <peer address>" on port N. */
  servePorts(ns: string, ports: number[]): Promise<Server> {
    return this.startServer(ns, ['serve-ports', ports.join(',')], `ports in ${ns}`);
  }

  private async startServer(ns: string, args: string[], name: string): Promise<Server> {
    const p = spawn('ip', ['netns', 'exec', ns, 'python3', tool, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.push(p);
    const server: Server = { peers: [] };
    await new Promise<void>((resolve, reject) => {
      let err = '';
      let out = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const line of lines) {
          if (line === 'ready') resolve();
          else if (line.startsWith('from ')) server.peers.push(line.slice(5));
        }
      });
      p.once('exit', (code) => reject(new Error(`server ${name} in ${ns} exited (${code}): ${err}`)));
    });
    return server;
  }

  /** A client's answer: the server's line, or "ERR <exception>" (a timeout means the packets were lost). */
  tcp(ns: string, host: string, port: number, timeout = LOST): string {
    this.settle();
    return sh('ip', ['netns', 'exec', ns, 'python3', tool, 'tcp', host, String(port), String(timeout)]);
  }

  udp(ns: string, host: string, port: number, timeout = LOST): string {
    this.settle();
    return sh('ip', ['netns', 'exec', ns, 'python3', tool, 'udp', host, String(port), String(timeout)]);
  }

  /** tcp() to each of ports in turn from one client process: the answers, in the same order. */
  tcpEach(ns: string, host: string, ports: number[]): string[] {
    this.settle();
    return sh('ip', ['netns', 'exec', ns, 'python3', tool, 'tcp', host, ports.join(','), String(LOST)]).split('\n');
  }

  /**
   * Waits until every link that is up is operationally up. The kernel reports a new carrier in
   * its link-watch work, up to a second later; until then IPv6 has not even joined the
   * neighbour-solicitation groups of the link's addresses, and packets vanish.
   */
  private settle(): void {
    if (this.settled) return;
    const namespaces = [this.host, this.out, ...[...this.ctrs.values()].map((c) => c.ns)];
    const deadline = Date.now() + 5000;
    for (const ns of namespaces) {
      for (;;) {
        const pending = sh('ip', ['-n', ns, '-o', 'link', 'show', 'up'])
          .split('\n')
          .filter((l) => l.includes('LOWER_UP') && (l.includes('NO-CARRIER') || l.includes('state DOWN')));
        if (pending.length === 0) break;
        if (Date.now() > deadline) throw new Error(`links not ready in ${ns}: ${pending.join('; ')}`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
    this.settled = true;
  }

  nftText(cmd: string): string {
    return sh('ip', ['netns', 'exec', this.host, 'nft', cmd]);
  }

  /** A listing without counter values, for before/after comparisons. */
  nftStateless(cmd: string): string {
    return sh('ip', ['netns', 'exec', this.host, 'nft', '-s', cmd]);
  }

  private stopServers(): void {
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
  }
}

function mapping(ctr: Ctr, proto: 'tcp' | 'udp', hostIp: string, hostPort: number, containerPort: number, v6 = false): PortMapping {
  return { endpointId: `ep-${ctr.ns}`, proto, hostIp, hostPort, containerIp: v6 ? ctr.ip6 : ctr.ip4, containerPort };
}

/** A world with one network "a" (IPv4 and IPv6), containers c1 and c2 on it, servers everywhere. */
async function standardWorld(): Promise<{ w: World; a: Net; c1: Ctr; c2: Ctr }> {
  const w = new World();
  const a = w.network({ name: 'a', n: 1, ipv6: true });
  const c1 = w.container('c1', 'a', 2);
  const c2 = w.container('c2', 'a', 3);
  await w.serve(c1.ns, 'tcp', 80, 'c1');
  await w.serve(c1.ns, 'udp', 53, 'c1u');
  await w.serve(c2.ns, 'tcp', 80, 'c2');
  await w.serve(w.out, 'tcp', 9000, 'out');
  await w.serve(w.out, 'udp', 9000, 'outu');
  return { w, a, c1, c2 };
}

// ------------------------------------------------------------------------------- tests

describe('nftables context in a namespace', () => {
  it('keeps programming the namespace it was opened in', () => {
    const w = new World();
    w.fw.sync([], []);
    expect(w.nftText('list tables')).toContain('table inet tsnet');
    // a context opened in another namespace does not see it
    const other = withNetns(w.nsPath(w.out), () => Nft.open());
    try {
      expect(new Firewall(other).ownedTableExists()).toBe(false);
    } finally {
      other.close();
    }
    expect(w.fw.ownedTableExists()).toBe(true);
  });
});

describe('NAT and published ports', () => {
  it('masquerades traffic leaving a network (IPv4 and IPv6)', async () => {
    const { w, a, c1 } = await standardWorld();
    // before tsnet knows the network, the outside cannot answer (it has no route back)
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe(DROPPED);
    w.fw.addNetwork(a.fw);
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
    expect(w.udp(c1.ns, '198.51.100.2', 9000)).toBe('outu 198.51.100.1');
    expect(w.tcp(c1.ns, 'fd00:198:51::2', 9000)).toBe('out fd00:198:51::1');
  });

  it('publishes tcp and udp ports to the outside, keeping the client address', async () => {
    const { w, a, c1 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80), mapping(c1, 'udp', '', 5353, 53), mapping(c1, 'tcp', '', 8080, 80, true)]);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c1 198.51.100.2');
    expect(w.udp(w.out, '198.51.100.1', 5353)).toBe('c1u 198.51.100.2');
    expect(w.tcp(w.out, 'fd00:198:51::1', 8080)).toBe('c1 fd00:198:51::2');
  });

  it('answers the host itself through 127.0.0.1 and through its own address', async () => {
    const { w, a, c1 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80), mapping(c1, 'udp', '', 5353, 53)]);
    // loopback sources are masqueraded to the bridge address (route_localnet on the bridge)
    expect(w.tcp(w.host, '127.0.0.1', 8080)).toBe('c1 10.231.1.1');
    expect(w.udp(w.host, '127.0.0.1', 5353)).toBe('c1u 10.231.1.1');
    expect(w.tcp(w.host, '198.51.100.1', 8080)).toBe('c1 198.51.100.1');
    // [::1] is deliberately not DNATed (IPv6 has no route_localnet): refused, not hanging
    expect(w.tcp(w.host, '::1', 8080)).toBe('ERR ConnectionRefusedError');
  });

  it('answers a container of the same network through a host address (hairpin)', async () => {
    const { w, a, c1, c2 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    expect(w.tcp(c2.ns, '198.51.100.1', 8080)).toBe('c1 10.231.1.1');
    // A container reaching its own published port: with br_netfilter on (the default in a new
    // namespace here, and what Docker leaves behind), the DNATed packet is bridged back out the
    // port it came in on, which the bridge allows only with hairpin mode on that port.
    expect(w.tcp(c1.ns, '198.51.100.1', 8080)).toBe(DROPPED);
    sh('ip', ['-n', w.host, 'link', 'set', `v${w.id}c1`, 'type', 'bridge_slave', 'hairpin', 'on']);
    expect(w.tcp(c1.ns, '198.51.100.1', 8080)).toBe('c1 10.231.1.1');
    // without br_netfilter the packet is routed, and needs no hairpin mode
    sh('ip', ['-n', w.host, 'link', 'set', `v${w.id}c1`, 'type', 'bridge_slave', 'hairpin', 'off']);
    w.sysctl(w.host, 'net.bridge.bridge-nf-call-iptables', '0');
    expect(w.tcp(c1.ns, '198.51.100.1', 8080)).toBe('c1 10.231.1.1');
    expect(w.tcp(c2.ns, '198.51.100.1', 8080)).toBe('c1 10.231.1.1');
    w.sysctl(w.host, 'net.bridge.bridge-nf-call-iptables', '1');
    // and the gateway address is a host address too
    expect(w.tcp(c2.ns, '10.231.1.1', 8080)).toBe('c1 10.231.1.1');
    // containers of one network still talk directly, with their own addresses
    expect(w.tcp(c2.ns, c1.ip4, 80)).toBe(`c1 ${c2.ip4}`);
  });

  it('publishes on one host address or on all of them', async () => {
    const { w, a, c1, c2 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '198.51.100.1', 8081, 80), mapping(c2, 'tcp', '', 8082, 80)]);
    expect(w.tcp(w.out, '198.51.100.1', 8081)).toBe('c1 198.51.100.2');
    // not mapped there: the host itself answers that nothing listens
    expect(w.tcp(w.out, '198.51.100.3', 8081)).toBe(REFUSED);
    expect(w.tcp(w.host, '127.0.0.1', 8081)).toBe(REFUSED);
    expect(w.tcp(w.out, '198.51.100.1', 8082)).toBe('c2 198.51.100.2');
    expect(w.tcp(w.out, '198.51.100.3', 8082)).toBe('c2 198.51.100.2');
    expect(w.tcp(w.host, '127.0.0.1', 8082)).toBe('c2 10.231.1.1');
    // a specific mapping and a wildcard mapping of the same port: the specific one wins on its address
    w.fw.publish([mapping(c1, 'tcp', '198.51.100.3', 8082, 80)]);
    expect(w.tcp(w.out, '198.51.100.3', 8082)).toBe('c1 198.51.100.2');
    expect(w.tcp(w.out, '198.51.100.1', 8082)).toBe('c2 198.51.100.2');
  });

  it('stops answering when mappings and networks are removed', async () => {
    const { w, a, c1 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    const ms = [mapping(c1, 'tcp', '', 8080, 80), mapping(c1, 'udp', '198.51.100.1', 5353, 53), mapping(c1, 'tcp', '', 8080, 80, true)];
    w.fw.publish(ms);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c1 198.51.100.2');
    expect(w.fw.listMappings()).toHaveLength(3);

    w.fw.unpublish(ms);
    expect(w.fw.listMappings()).toEqual([]);
    expect(w.nftText('list map inet tsnet anyports4')).not.toContain('elements');
    // no mapping any more: the packets reach the host, where nothing listens
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe(REFUSED);
    expect(w.udp(w.out, '198.51.100.1', 5353)).toBe(REFUSED);
    // unpublishing again is no error
    w.fw.unpublish(ms);

    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
    w.fw.removeNetwork(a.fw);
    for (const set of ['bridges', 'bridge_pairs', 'subnets4', 'subnets6', 'masq4', 'masq6']) {
      expect(w.nftText(`list set inet tsnet ${set}`)).not.toContain('elements');
    }
    // no masquerade any more: the outside cannot answer
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe(DROPPED);
    w.fw.removeNetwork(a.fw);
  });

  it('takes over a host port left mapped to another container', async () => {
    const { w, a, c1, c2 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    // as after a crash between the store and the table: the new owner publishes the same port
    w.fw.publish([mapping(c2, 'tcp', '', 8080, 80)]);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c2 198.51.100.2');
    // the old owner's late unpublish leaves the new mapping alone
    w.fw.unpublish([mapping(c1, 'tcp', '', 8080, 80)]);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c2 198.51.100.2');
  });
});

describe('isolation', () => {
  it('keeps networks apart both ways over TCP, except through published ports', async () => {
    const { w, a, c1 } = await standardWorld();
    const b = w.network({ name: 'b', n: 2 });
    const c3 = w.container('c3', 'b', 2);
    await w.serve(c3.ns, 'tcp', 80, 'c3');
    // without tsnet's rules the host routes between its bridges: both ways work
    expect(w.tcp(c3.ns, c1.ip4, 80)).toBe(`c1 ${c3.ip4}`);
    expect(w.tcp(c1.ns, c3.ip4, 80)).toBe(`c3 ${c1.ip4}`);
    w.fw.addNetwork(a.fw);
    w.fw.addNetwork(b.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    expect(w.tcp(c3.ns, c1.ip4, 80)).toBe(DROPPED);
    expect(w.tcp(c1.ns, c3.ip4, 80)).toBe(DROPPED);
    // the published port answers network b's container through the host address, masqueraded
    expect(w.tcp(c3.ns, '198.51.100.1', 8080)).toBe('c1 10.231.1.1');
    // both still reach the outside
    expect(w.tcp(c3.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
  });

  it('keeps the outside from reaching unpublished container ports', async () => {
    const { w, a, c1 } = await standardWorld();
    // give the outside a route to the containers, as a router on the host's segment might
    sh('ip', ['-n', w.out, 'route', 'add', '10.231.1.0/24', 'via', '198.51.100.1']);
    // without tsnet's rules that route reaches them
    expect(w.tcp(w.out, c1.ip4, 80)).toBe('c1 198.51.100.2');
    w.fw.addNetwork(a.fw);
    expect(w.tcp(w.out, c1.ip4, 80)).toBe(DROPPED);
    // the same port, published, does answer
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c1 198.51.100.2');
  });

  it('lets nothing out of an internal network, even to an outside that routes back', async () => {
    // The attacker's way: containers of an internal network route by default via their bridge's
    // address (as a container with NET_ADMIN could set up), and the outside HAS a route back to
    // their subnets, so only tsnet's rules stand in the way. Network a, not internal and not
    // masqueraded, takes the very same path and gets through; the outside server counts who it
    // heard.
    const w = new World();
    const i = w.network({ name: 'i', n: 3, internal: true, masquerade: true });
    const c4 = w.container('c4', 'i', 2);
    const a = w.network({ name: 'a', n: 1, masquerade: false });
    const c1 = w.container('c1', 'a', 2);
    const tcpOut = await w.serve(w.out, 'tcp', 9000, 'out');
    const udpOut = await w.serve(w.out, 'udp', 9000, 'outu');
    sh('ip', ['-n', w.out, 'route', 'add', '10.231.0.0/16', 'via', '198.51.100.1']);
    w.fw.addNetwork(i.fw);
    w.fw.addNetwork(a.fw);
    expect(sh('ip', ['-n', c4.ns, 'route', 'show', 'default'])).toContain(`default via ${i.gw4} dev eth0`);

    expect(w.tcp(c4.ns, '198.51.100.2', 9000)).toBe(DROPPED);
    expect(w.udp(c4.ns, '198.51.100.2', 9000)).toBe(DROPPED);
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe(`out ${c1.ip4}`);
    expect(w.udp(c1.ns, '198.51.100.2', 9000)).toBe(`outu ${c1.ip4}`);
    // each server handles its clients in order: once it has told of c1, it would have told of c4
    await until('the outside servers tell of c1', () => tcpOut.peers.includes(c1.ip4) && udpOut.peers.includes(c1.ip4));
    expect(tcpOut.peers).toEqual([c1.ip4]);
    expect(udpOut.peers).toEqual([c1.ip4]);
    expect(w.nftText('list set inet tsnet masq4')).not.toContain('10.231.3.0/24');
  });

  it('gives an internal network no way in from other networks or the outside, TCP both ways', async () => {
    const w = new World();
    const i = w.network({ name: 'i', n: 3, internal: true });
    const c4 = w.container('c4', 'i', 2);
    const c5 = w.container('c5', 'i', 3);
    const a = w.network({ name: 'a', n: 1 });
    const c1 = w.container('c1', 'a', 2);
    await w.serve(c5.ns, 'tcp', 80, 'c5');
    await w.serve(c4.ns, 'tcp', 80, 'c4');
    await w.serve(c1.ns, 'tcp', 80, 'c1');
    sh('ip', ['-n', w.out, 'route', 'add', '10.231.3.0/24', 'via', '198.51.100.1']);
    // without tsnet's rules the host routes between them all
    expect(w.tcp(c4.ns, c1.ip4, 80)).toBe(`c1 ${c4.ip4}`);
    expect(w.tcp(c1.ns, c4.ip4, 80)).toBe(`c4 ${c1.ip4}`);
    expect(w.tcp(w.out, c4.ip4, 80)).toBe('c4 198.51.100.2');
    w.fw.addNetwork(i.fw);
    w.fw.addNetwork(a.fw);
    expect(w.tcp(c4.ns, c1.ip4, 80)).toBe(DROPPED);
    expect(w.tcp(c1.ns, c4.ip4, 80)).toBe(DROPPED);
    expect(w.tcp(w.out, c4.ip4, 80)).toBe(DROPPED);
    // within the network all is well, both ways
    expect(w.tcp(c4.ns, c5.ip4, 80)).toBe(`c5 ${c4.ip4}`);
    expect(w.tcp(c5.ns, c4.ip4, 80)).toBe(`c4 ${c5.ip4}`);
  });
});

describe('coexistence with Docker iptables rules', () => {
  /** What dockerd leaves in iptables-nft's filter tables: FORWARD policy drop, jump to DOCKER-USER first. */
  function dockerChains(w: World, withUserChain: boolean): void {
    for (const cmd of ['iptables-nft', 'ip6tables-nft']) {
      const ipt = (...args: string[]) => sh('ip', ['netns', 'exec', w.host, cmd, ...args]);
      ipt('-P', 'FORWARD', 'DROP');
      if (withUserChain) {
        ipt('-N', 'DOCKER-USER');
        ipt('-A', 'DOCKER-USER', '-j', 'RETURN');
        ipt('-I', 'FORWARD', '-j', 'DOCKER-USER');
      }
    }
    // br_netfilter: even traffic between two ports of one bridge meets the FORWARD chain
    w.sysctl(w.host, 'net.bridge.bridge-nf-call-iptables', '1');
    w.sysctl(w.host, 'net.bridge.bridge-nf-call-ip6tables', '1');
  }

  it('accepts tsnet traffic in DOCKER-USER and leaves the chain as it was on removal', async () => {
    const { w, a, c1, c2 } = await standardWorld();
    dockerChains(w, true);
    const before = w.nftStateless('list chain ip filter DOCKER-USER');
    const before6 = w.nftStateless('list chain ip6 filter DOCKER-USER');

    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    const rules = sh('ip', ['netns', 'exec', w.host, 'iptables-nft', '-S', 'DOCKER-USER']);
    expect(rules).toContain(`-A DOCKER-USER -i ${a.bridge} -m mark --mark 0x540000/0x540000 -m comment --comment "tsnet:${a.bridge}" -j ACCEPT`);
    expect(rules).toContain(`-A DOCKER-USER -o ${a.bridge} -m mark --mark 0x540000/0x540000 -m comment --comment "tsnet:${a.bridge}" -j ACCEPT`);
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
    expect(w.tcp(c1.ns, 'fd00:198:51::2', 9000)).toBe('out fd00:198:51::1');
    expect(w.tcp(c2.ns, c1.ip4, 80)).toBe(`c1 ${c2.ip4}`);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c1 198.51.100.2');
    // idempotent
    w.fw.addNetwork(a.fw);
    w.fw.refreshDockerCompat();
    expect(w.fw.compat.listRules('ip')).toHaveLength(2);

    // without the compat rules Docker's drop policy wins, even within the bridge
    w.fw.compat.removeBridge(a.bridge);
    expect(w.nftStateless('list chain ip filter DOCKER-USER')).toBe(before);
    expect(w.nftStateless('list chain ip6 filter DOCKER-USER')).toBe(before6);
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe(DROPPED);
    expect(w.tcp(c2.ns, c1.ip4, 80)).toBe(DROPPED);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe(DROPPED);

    // dockerd (re)started after tsnet: refreshing puts them back
    w.fw.refreshDockerCompat();
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');

    w.fw.removeNetwork(a.fw);
    expect(w.nftStateless('list chain ip filter DOCKER-USER')).toBe(before);
    expect(w.nftStateless('list chain ip6 filter DOCKER-USER')).toBe(before6);
  });

  it('uses FORWARD when it drops and there is no DOCKER-USER', async () => {
    const { w, a, c1 } = await standardWorld();
    dockerChains(w, false);
    const before = w.nftStateless('list chain ip filter FORWARD');
    w.fw.sync([a.fw], []);
    expect(w.fw.compat.listRules('ip').map((r) => r.chain)).toEqual(['FORWARD', 'FORWARD']);
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
    w.fw.sync([], []);
    expect(w.nftStateless('list chain ip filter FORWARD')).toBe(before);
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe(DROPPED);
  });

  it('keeps isolation with Docker chains present, TCP both ways', async () => {
    const { w, a, c1, c2 } = await standardWorld();
    dockerChains(w, true);
    const b = w.network({ name: 'b', n: 2 });
    const c3 = w.container('c3', 'b', 2);
    await w.serve(c3.ns, 'tcp', 80, 'c3');
    w.fw.sync([a.fw, b.fw], [mapping(c1, 'tcp', '', 8080, 80)]);
    expect(w.tcp(c3.ns, c1.ip4, 80)).toBe(DROPPED);
    expect(w.tcp(c1.ns, c3.ip4, 80)).toBe(DROPPED);
    // what the compat rules let through: within a network, a published port, the outside
    expect(w.tcp(c2.ns, c1.ip4, 80)).toBe(`c1 ${c2.ip4}`);
    expect(w.tcp(c3.ns, '198.51.100.1', 8080)).toBe('c1 10.231.1.1');
    expect(w.tcp(c3.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
  });

  it('does nothing where no Docker table exists', () => {
    const w = new World();
    const a = w.network({ name: 'a', n: 1 });
    w.fw.addNetwork(a.fw);
    expect(w.nftText('list tables')).toBe('table inet tsnet');
  });
});

describe('start-up reconcile and scale', () => {
  it('replaces the whole table in one transaction', async () => {
    const { w, a, c1 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    // a hand-made leftover in tsnet's table is gone after sync
    w.nftText('add chain inet tsnet leftover');
    w.fw.sync([a.fw], [mapping(c1, 'tcp', '', 8090, 80)]);
    expect(w.nftText('list table inet tsnet')).not.toContain('leftover');
    expect(w.tcp(w.out, '198.51.100.1', 8090)).toBe('c1 198.51.100.2');
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe(REFUSED);
  });

  it('recreates a missing table on the next change', async () => {
    const { w, a, c1 } = await standardWorld();
    w.fw.addNetwork(a.fw);
    w.nftText('delete table inet tsnet');
    w.fw.publish([mapping(c1, 'tcp', '', 8080, 80)]);
    expect(w.tcp(w.out, '198.51.100.1', 8080)).toBe('c1 198.51.100.2');
    expect(w.tcp(c1.ns, '198.51.100.2', 9000)).toBe('out 198.51.100.1');
  });

  it('loads 10,000 published ports in one transaction, and a sample spread over them works', async () => {
    const { w, a, c1 } = await standardWorld();
    // every 500th host port (20000, 20500, ... 29500) maps to a port of its own on c1, whose
    // server names the port it answered on: each answer proves its own mapping
    const SAMPLE_EVERY = 500;
    const sampled = (i: number) => i % SAMPLE_EVERY === 0;
    const containerPort = (i: number) => 10_000 + i / SAMPLE_EVERY;
    const ms: PortMapping[] = [];
    for (let i = 0; i < 10_000; i++) {
      // ports 20000-29999 on the wildcard map, the last one on a specific address
      ms.push(
        sampled(i)
          ? mapping(c1, 'tcp', '', 20000 + i, containerPort(i))
          : { endpointId: `ep${i}`, proto: i % 2 ? 'udp' : 'tcp', hostIp: '', hostPort: 20000 + i, containerIp: `10.231.1.${2 + (i % 200)}`, containerPort: 80 },
      );
    }
    ms.push(mapping(c1, 'tcp', '198.51.100.1', 30000, 80));
    const sample = [...ms.keys()].filter((i) => i < 10_000 && sampled(i));
    expect(sample).toHaveLength(20);
    await w.servePorts(c1.ns, sample.map(containerPort));
    w.fw.sync([a.fw], ms);
    expect(w.fw.listMappings()).toHaveLength(10_001);
    const hostPorts = sample.map((i) => 20000 + i);
    expect(w.tcpEach(w.out, '198.51.100.1', hostPorts)).toEqual(sample.map((i) => `port${containerPort(i)} 198.51.100.2`));
    expect(w.tcp(w.out, '198.51.100.1', 30000)).toBe('c1 198.51.100.2');
    // and incremental changes on top of that many: the first half goes, the second stays
    w.fw.unpublish(ms.slice(0, 5000));
    expect(w.fw.listMappings()).toHaveLength(5001);
    expect(w.tcpEach(w.out, '198.51.100.1', hostPorts)).toEqual(sample.map((i) => (i < 5000 ? REFUSED : `port${containerPort(i)} 198.51.100.2`)));
  });
});

describe('host port reservation', () => {
  it('holds ports against host processes and picks free ephemeral ones', async () => {
    const w = new World();
    const ns = w.nsPath(w.host);
    const bind = (host: string, port: number, proto = 'tcp') => sh('ip', ['netns', 'exec', w.host, 'python3', tool, 'bind', host, String(port), proto]);
    const r = new PortReserver({ log: { warn() {} } });
    cleanups.push(() => r.releaseAll());

    withNetns(ns, () => r.reserve('tcp', '', 18080));
    expect(bind('0.0.0.0', 18080)).toBe('ERR errno 98');
    expect(bind('198.51.100.1', 18080)).toBe('ERR errno 98');
    expect(bind('::', 18080)).toBe('ERR errno 98');
    expect(bind('0.0.0.0', 18080, 'udp')).toBe('bound');
    expect(() => withNetns(ns, () => r.reserve('tcp', '198.51.100.1', 18080))).toThrow(
      'host port 18080/tcp on 198.51.100.1 is already in use: choose another host port',
    );
    r.release('tcp', '', 18080);
    expect(bind('0.0.0.0', 18080)).toBe('bound');

    expect(() => withNetns(ns, () => r.reserve('udp', '10.99.99.99', 5000))).toThrow(/not an address of this host/);

    // the ephemeral range is per namespace: three ports, one of them in use by a host process
    w.sysctl(w.host, 'net.ipv4.ip_local_port_range', '40000 40002');
    await w.serve(w.host, 'tcp', 40001, 'squatter');
    const picked = withNetns(ns, () => [r.reserveEphemeral('tcp', '0.0.0.0'), r.reserveEphemeral('tcp', '0.0.0.0')]);
    expect(picked).toEqual([40000, 40002]);
    expect(() => withNetns(ns, () => r.reserveEphemeral('tcp', '0.0.0.0'))).toThrow(PortReservationError);
    expect(bind('0.0.0.0', 40000)).toBe('ERR errno 98');

    expect(withNetns(ns, () => r.reserveFromRange('udp', '', 40000, 40005))).toBe(40000);
    r.releaseAll();
    expect(r.list()).toEqual([]);
    expect(bind('0.0.0.0', 40000)).toBe('bound');
  });
});
