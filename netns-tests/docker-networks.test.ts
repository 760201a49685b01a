// tsnet beside Docker's own networks, and ICC off, tried the way an attacker would (issue 11,
// findings 3 and 4). A scratch "host" namespace gets the iptables-nft rules dockerd 20.10 writes
// for its default bridge and an --internal network (FORWARD policy drop, DOCKER-USER first,
// the isolation stages, the internal network's drops), br_netfilter on as dockerd leaves it, and
// tsnet's own table through the real Firewall class: a tsnet network with a published port and a
// tsnet network with ICC off. Containers are namespaces on veths; the outside is a namespace
// behind the host. Every negative is a TCP connection that must time out (a drop, not a refusal),
// paired in the same test with one that must get through.
//
// Before the fix, tsnet's unconditional accepts in DOCKER-USER ended Docker's FORWARD walk: a tsnet
// container reached an unpublished port on Docker's bridge and a container on Docker's internal
// network, which in turn reached tsnet's published port; and with ICC off a container reached its
// peer through the gateway.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Firewall } from '../firewall/firewall.js';
import { dockerIptables } from '../test-support/docker-iptables.js';
import { Nft } from '../native/nftables.js';
import { withNetns } from '../native/netns.js';
import { assertNoLeaks, execIn, makeNetns, onCleanup, runCleanups, uniqueName, until, vethBetween } from './harness.js';

const run = uniqueName('dn');

/** A tiny TCP server and client: the server answers its name; the client prints it or "ERR <why>". */
const TOOL = String.raw`
import socket, sys
if sys.argv[1] == 'serve':
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', int(sys.argv[2]))); s.listen(16); print('ready', flush=True)
    while True:
        c, a = s.accept(); c.sendall((sys.argv[3] + '\n').encode()); c.close()
elif sys.argv[1] == 'listen-udp':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', int(sys.argv[2]))); print('ready', flush=True)
    while True:
        data, a = s.recvfrom(200); print('got ' + data.decode(), flush=True)
elif sys.argv[1] == 'send-udp':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(sys.argv[4].encode(), (sys.argv[2], int(sys.argv[3])))
else:
    try:
        c = socket.create_connection((sys.argv[2], int(sys.argv[3])), 1.5); c.settimeout(1.5)
        print(c.recv(100).decode().strip())
    except Exception as e:
        print('ERR ' + type(e).__name__)
`;
const DROPPED = 'ERR TimeoutError';
const DOCKER0 = 'docker0';
const DOCKER_INTERNAL = `br-${randomBytes(6).toString('hex')}`;

interface World {
  host: string;
  outside: string;
  /** container namespaces by role */
  ctr: Record<'t1' | 't2' | 'n1' | 'n2' | 'dk' | 'di', string>;
}

let w: World;
let tool: string;
const servers: ChildProcess[] = [];

function tcp(from: string, host: string, port: number): string {
  return execIn(from, 'python3', [tool, 'connect', host, String(port)]);
}

/** A server in ns; resolves once it listens, with the lines it prints after that ("got ..." for UDP). */
async function serve(ns: string, port: number, name: string, mode: 'serve' | 'listen-udp' = 'serve'): Promise<string[]> {
  const p = spawn('ip', ['netns', 'exec', ns, 'python3', tool, mode, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(p);
  const heard: string[] = [];
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n').filter(Boolean)) {
        if (line === 'ready') resolve();
        else heard.push(line);
      }
    });
    p.once('exit', (code) => reject(new Error(`server ${name} exited ${code}`)));
  });
  return heard;
}

let udpHeard: { n2: string[]; t1: string[] };
/** the host end of each container's veth, by the container's namespace */
const ports = new Map<string, string>();

/** A bridge in the host namespace with its gateway address, and one container on it per address. */
function bridgeWithContainers(host: string, bridge: string, gateway: string, addresses: string[]): string[] {
  execIn(host, 'ip', ['link', 'add', bridge, 'type', 'bridge']);
  execIn(host, 'ip', ['addr', 'add', gateway, 'dev', bridge]);
  execIn(host, 'ip', ['link', 'set', bridge, 'up']);
  return addresses.map((addr) => {
    const ns = makeNetns(run);
    const v = vethBetween(host, ns, { addrB: addr });
    execIn(host, 'ip', ['link', 'set', v.a, 'master', bridge]);
    ports.set(ns, v.a);
    execIn(ns, 'ip', ['route', 'add', 'default', 'via', gateway.split('/')[0]]);
    return ns;
  });
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-dn-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  tool = join(dir, 'tool.py');
  writeFileSync(tool, TOOL);
  onCleanup(() => servers.forEach((p) => p.kill('SIGKILL')));

  const host = makeNetns(run);
  const outside = makeNetns(run);
  vethBetween(host, outside, { addrA: '203.0.113.1/24', addrB: '203.0.113.2/24' });
  execIn(host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  // dockerd leaves br_netfilter on: bridged packets pass iptables FORWARD too (the module is
  // loaded by the test set-up, as dockerd loads it; its sysctls are per namespace)
  execIn(host, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);

  const [t1, t2] = bridgeWithContainers(host, `${run}t`, '10.51.0.1/24', ['10.51.0.2/24', '10.51.0.3/24']);
  // ICC off as the bridge driver makes it: no port isolation, the ports in the firewall with icc false
  const [n1, n2] = bridgeWithContainers(host, `${run}n`, '10.52.0.1/24', ['10.52.0.2/24', '10.52.0.3/24']);
  // Docker's bridges carry Docker's names (inside this namespace they clash with nothing)
  const [dk] = bridgeWithContainers(host, DOCKER0, '10.53.0.1/24', ['10.53.0.2/24']);
  // an attacker's container on Docker's internal network routes out through the bridge address
  const [di] = bridgeWithContainers(host, DOCKER_INTERNAL, '10.54.0.1/24', ['10.54.0.2/24']);
  w = { host, outside, ctr: { t1, t2, n1, n2, dk, di } };

  // Docker's rules first (tsnet finds DOCKER-USER and puts its own rules there)
  const rules = join(dir, 'docker.rules');
  writeFileSync(rules, dockerIptables([{ name: DOCKER0, subnet: '10.53.0.0/24' }, { name: DOCKER_INTERNAL, subnet: '10.54.0.0/24', internal: true }]));
  execIn(host, 'iptables-nft-restore', [rules]);
  const nft = withNetns(`/run/netns/${host}`, () => Nft.open());
  const fw = new Firewall(nft, { warn() {} }, { table: `t${run}`, compatTag: `t${run}:` });
  fw.sync(
    [
      { id: 't', bridge: `${run}t`, subnets: ['10.51.0.0/24'], masquerade: true, internal: false, icc: true },
      { id: 'n', bridge: `${run}n`, subnets: ['10.52.0.0/24'], masquerade: true, internal: false, icc: false },
    ],
    [
      { endpointId: 't1', proto: 'tcp', hostIp: '', hostPort: 18080, containerIp: '10.51.0.2', containerPort: 80 },
      { endpointId: 'n2', proto: 'tcp', hostIp: '', hostPort: 18081, containerIp: '10.52.0.3', containerPort: 80 },
    ],
    [n1, n2].map((ns) => ({ endpointId: ns, port: ports.get(ns)!, mac: '', ipv4: [], ipv6: [], antiSpoofing: false, icc: false })),
  );

  await serve(outside, 80, 'outside');
  await serve(t1, 80, 't1');
  await serve(t1, 81, 't1-unpublished');
  await serve(n2, 80, 'n2');
  await serve(dk, 80, 'docker');
  await serve(di, 80, 'docker-internal');
  udpHeard = { n2: await serve(n2, 9999, 'n2', 'listen-udp'), t1: await serve(t1, 9999, 't1', 'listen-udp') };
  // every link up and answering before the first negative is believed
  await until('the outside answers a tsnet container', () => tcp(t2, '203.0.113.2', 80) === 'outside');
}, 60_000);

afterAll(async () => {
  await runCleanups();
  assertNoLeaks(run);
});

describe("tsnet beside Docker's networks (Docker 20.10 iptables rules loaded)", () => {
  it("a tsnet container reaches the outside, but no port on Docker's networks", () => {
    expect(tcp(w.ctr.t2, '203.0.113.2', 80)).toBe('outside');
    expect(tcp(w.ctr.t2, '10.53.0.2', 80)).toBe(DROPPED);
    expect(tcp(w.ctr.t2, '10.54.0.2', 80)).toBe(DROPPED);
  });

  it("a container on Docker's bridge reaches tsnet's published port through the host, not an unpublished one", () => {
    expect(tcp(w.ctr.dk, '10.53.0.1', 18080)).toBe('t1');
    expect(tcp(w.ctr.dk, '10.51.0.2', 81)).toBe(DROPPED);
    expect(tcp(w.ctr.dk, '10.51.0.2', 80)).toBe(DROPPED);
  });

  it("Docker's internal network stays closed both ways: not even tsnet's published port", () => {
    // the positive: the published port answers from Docker's other network and from the outside
    expect(tcp(w.ctr.dk, '10.53.0.1', 18080)).toBe('t1');
    expect(tcp(w.outside, '203.0.113.1', 18080)).toBe('t1');
    expect(tcp(w.ctr.di, '10.54.0.1', 18080)).toBe(DROPPED);
    expect(tcp(w.ctr.di, '10.51.0.2', 80)).toBe(DROPPED);
    expect(tcp(w.ctr.di, '203.0.113.2', 80)).toBe(DROPPED);
  });
});

describe('ICC off (enable_icc=false)', () => {
  it("no packet reaches a peer, directly or routed through the gateway; the peer's published port and the outside still answer", async () => {
    // straight over the bridge, and the attacker's way round: a route to the peer via the gateway;
    // a packet delivered one way is already a breach: count what the peer's UDP socket receives
    execIn(w.ctr.n1, 'python3', [tool, 'send-udp', '10.52.0.3', '9999', 'direct-n1']);
    execIn(w.ctr.n1, 'ip', ['route', 'replace', '10.52.0.3/32', 'via', '10.52.0.1']);
    execIn(w.ctr.t2, 'ip', ['route', 'replace', '10.51.0.2/32', 'via', '10.51.0.1']);
    expect(tcp(w.ctr.n1, '203.0.113.2', 80)).toBe('outside');
    for (let i = 0; i < 3; i++) {
      execIn(w.ctr.n1, 'python3', [tool, 'send-udp', '10.52.0.3', '9999', `from-n1-${i}`]);
      // the same routed path on a network with ICC on gets through (the control, in the same loop)
      execIn(w.ctr.t2, 'python3', [tool, 'send-udp', '10.51.0.2', '9999', `from-t2-${i}`]);
    }
    await until('the control datagrams arrive', () => udpHeard.t1.length === 3);
    expect(udpHeard.t1).toEqual(['got from-t2-0', 'got from-t2-1', 'got from-t2-2']);
    expect(udpHeard.n2).toEqual([]);
    expect(tcp(w.ctr.n1, '10.52.0.3', 80)).toBe(DROPPED);
    // what Docker allows with ICC off: the peer's published port through a host address
    expect(tcp(w.ctr.n1, '203.0.113.1', 18081)).toBe('n2');
    expect(tcp(w.ctr.n1, '10.52.0.1', 18081)).toBe('n2');
  });

  it('holds without br_netfilter too (a host without Docker): nothing passes between the ports', async () => {
    // bridged frames then never reach the inet forward chain: the bridge-family table alone decides
    execIn(w.host, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0']);
    try {
      // straight over the bridge (whether or not the test above left its /32 routes)
      execIn(w.ctr.n1, 'sh', ['-c', 'ip route del 10.52.0.3/32 2>/dev/null; true']);
      execIn(w.ctr.t2, 'sh', ['-c', 'ip route del 10.51.0.2/32 2>/dev/null; true']);
      execIn(w.ctr.n1, 'python3', [tool, 'send-udp', '10.52.0.3', '9999', 'nobrnf-n1']);
      execIn(w.ctr.t2, 'python3', [tool, 'send-udp', '10.51.0.2', '9999', 'nobrnf-t2']);
      await until('the control datagram arrives', () => udpHeard.t1.includes('got nobrnf-t2'));
      expect(udpHeard.n2).toEqual([]);
    } finally {
      execIn(w.host, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=1']);
    }
  });
});
