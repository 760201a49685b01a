// Anti-spoofing (issue 11), with real frames: a container on a tsnet bridge may send only from its
// own MAC and addresses. Two attackers sit on the same bridge, one under tsnet's anti-spoofing and
// one on a port without it (the control, in the same test), and try the same forgeries: an IPv4
// source not their own, a MAC not their own, an ARP reply claiming the victim's address, and an
// IPv6 neighbour advertisement claiming the victim's address. What the victim hears, and what the
// host's neighbour table ends up believing, tells whether each forgery got through. The frames are
// built by hand (AF_PACKET) so each carries exactly the forgery under test. Both places tsnet puts
// the checks are run: the host's bridges (the bridge-family table's prerouting hook) and an
// overlay's namespace (a netdev-family chain at each guarded port's ingress hook).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Firewall } from '../firewall/firewall.js';
import type { FirewallEndpoint } from '../firewall/model.js';
import { Nft } from '../native/nftables.js';
import { addIngressGuardRules, ingressGuardTableRules } from '../firewall/rules/spoofing.js';
import { withNetns } from '../native/netns.js';
import { assertNoLeaks, execIn, makeNetns, onCleanup, runCleanups, uniqueName, until, vethBetween } from './harness.js';

const run = uniqueName('as');

const TOOL = String.raw`
import socket, struct, sys
def mac(m): return bytes(int(x, 16) for x in m.split(':'))
def csum(data):
    if len(data) % 2: data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
mode = sys.argv[1]
if mode == 'listen':
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', 9999)); print('ready', flush=True)
    while True:
        data, a = s.recvfrom(200); src = a[0][7:] if a[0].startswith('::ffff:') else a[0]
        print('%s from %s' % (data.decode(), src), flush=True)
elif mode == 'udp':
    # udp SRC DST TEXT: from a source address of this namespace
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[2], 0)); s.sendto(sys.argv[4].encode(), (sys.argv[3], 9999))
elif mode == 'arp-reply':
    # arp-reply IFACE SRC_MAC CLAIMED_IP DST_MAC DST_IP: "CLAIMED_IP is at SRC_MAC"
    ifc, smac, sip, dmac, dip = sys.argv[2:7]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((ifc, 0))
    arp = struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, 2, mac(smac), socket.inet_aton(sip), mac(dmac), socket.inet_aton(dip))
    s.send(mac(dmac) + mac(smac) + b'\x08\x06' + arp)
elif mode == 'na':
    # na IFACE SRC_MAC SRC_IP6 DST_MAC DST_IP6 TARGET_IP6: "TARGET is at SRC_MAC", override set
    ifc, smac, sip, dmac, dip, target = sys.argv[2:8]
    src, dst, tgt = (socket.inet_pton(socket.AF_INET6, a) for a in (sip, dip, target))
    body = struct.pack('!BBHI16sBB6s', 136, 0, 0, 0x20000000, tgt, 2, 1, mac(smac))
    pseudo = src + dst + struct.pack('!I3xB', len(body), 58)
    body = body[:2] + struct.pack('!H', csum(pseudo + body)) + body[4:]
    ip6 = struct.pack('!IHBB16s16s', 0x60000000, len(body), 58, 255, src, dst)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((ifc, 0))
    s.send(mac(dmac) + mac(smac) + b'\x86\xdd' + ip6 + body)
`;

interface Ctr {
  ns: string;
  v4: string;
  v6: string;
  mac: string;
  port: string;
}

let tool: string;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-as-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  tool = join(dir, 'tool.py');
  writeFileSync(tool, TOOL);
});

afterAll(async () => {
  await runCleanups();
  assertNoLeaks(run);
});

function fw(c: Ctr): FirewallEndpoint {
  return { endpointId: c.port, port: c.port, mac: c.mac, ipv4: [c.v4], ipv6: [c.v6] };
}

function py(ns: string, args: string[]): void {
  execIn(ns, 'python3', [tool, ...args]);
}

/** How a layout puts the guarded ports under anti-spoofing in the host's namespace. */
type Install = (host: string, guardedPorts: FirewallEndpoint[]) => void;

/** The host's bridges: the firewall's bridge-family table, checks in the bridge's prerouting hook. */
const hostBridgeLayout: Install = (host, ports) => {
  const nft = withNetns(`/run/netns/${host}`, () => Nft.open());
  const firewall = new Firewall(nft, { warn() {} }, { table: `t${run}`, compatTag: `t${run}:` });
  firewall.sync([{ id: 'n', bridge: 'br0', subnets: ['10.56.0.0/24', 'fd00:56::/64'], masquerade: false, internal: false }], [], ports);
};

/** An overlay's namespace: the same checks at each guarded port's own ingress hook (netdev family). */
const portIngressLayout: Install = (host, ports) => {
  const t = `netdev t${run}`;
  const nft = withNetns(`/run/netns/${host}`, () => Nft.open());
  nft.run([ingressGuardTableRules(t), ...ports.map((p) => addIngressGuardRules(t, p))].join('\n'));
};

describe.each([
  ["on a tsnet bridge (the bridge's prerouting hook)", hostBridgeLayout],
  ["in an overlay's namespace (each port's ingress hook)", portIngressLayout],
] as const)('anti-spoofing %s', (_layout, install) => {
  let host: string;
  let hostMac: string;
  let victim: Ctr;
  /** under anti-spoofing */
  let guarded: Ctr;
  /** on a port without it: the control */
  let free: Ctr;
  const heard: string[] = [];
  const procs: ChildProcess[] = [];

  function ctr(n: number): Ctr {
    const ns = makeNetns(run);
    const mac = `02:42:0a:38:00:0${n}`;
    const v = vethBetween(host, ns, { addrB: `10.56.0.${n}/24` });
    execIn(ns, 'ip', ['link', 'set', v.b, 'down']);
    execIn(ns, 'ip', ['link', 'set', v.b, 'name', 'eth0']);
    execIn(ns, 'ip', ['link', 'set', 'eth0', 'address', mac]);
    execIn(ns, 'ip', ['addr', 'add', `fd00:56::${n}/64`, 'dev', 'eth0', 'nodad']);
    execIn(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    execIn(host, 'ip', ['link', 'set', v.a, 'master', 'br0']);
    return { ns, v4: `10.56.0.${n}`, v6: `fd00:56::${n}`, mac, port: v.a };
  }

  /** The MAC the host's neighbour table holds for an address ('' when none). */
  function hostBelieves(ip: string): string {
    const entries = JSON.parse(execIn(host, 'ip', ['-j', ip.includes(':') ? '-6' : '-4', 'neigh', 'show', 'dev', 'br0'])) as { dst: string; lladdr?: string }[];
    return entries.find((e) => e.dst === ip)?.lladdr ?? '';
  }

  /** The host learns the victim's real MAC for ip, and enough time passes for a later claim to count. */
  async function hostLearnsVictim(ip: string): Promise<void> {
    execIn(host, 'ping', ['-c', '1', '-W', '2', ip]);
    expect(hostBelieves(ip)).toBe(victim.mac);
    // the kernel ignores a different link-layer address within locktime (1 s) of the last update
    await new Promise((r) => setTimeout(r, 1200));
  }

  beforeAll(async () => {
    onCleanup(() => procs.forEach((p) => p.kill('SIGKILL')));

    host = makeNetns(run);
    // a MAC of its own: a bridge without one takes its lowest port's, which changes as ports come
    execIn(host, 'ip', ['link', 'add', 'br0', 'address', '02:42:0a:38:00:01', 'type', 'bridge']);
    execIn(host, 'ip', ['addr', 'add', '10.56.0.1/24', 'dev', 'br0']);
    execIn(host, 'ip', ['addr', 'add', 'fd00:56::1/64', 'dev', 'br0', 'nodad']);
    execIn(host, 'ip', ['link', 'set', 'br0', 'up']);
    hostMac = (JSON.parse(execIn(host, 'ip', ['-j', 'link', 'show', 'br0'])) as { address: string }[])[0].address;
    victim = ctr(3);
    guarded = ctr(2);
    free = ctr(4);

    install(host, [fw(guarded), fw(victim)]);

    const p = spawn('ip', ['netns', 'exec', victim.ns, 'python3', tool, 'listen'], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    await new Promise<void>((resolve, reject) => {
      p.stdout!.on('data', (d: Buffer) => {
        for (const line of d.toString().split('\n').filter(Boolean)) {
          if (line === 'ready') resolve();
          else heard.push(line);
        }
      });
      p.once('exit', (code) => reject(new Error(`listener exited ${code}`)));
    });
    // carrier up everywhere before the first negative is believed
    await until('both attackers reach the victim', () => {
      py(guarded.ns, ['udp', guarded.v4, victim.v4, 'hello-guarded']);
      py(free.ns, ['udp', free.v4, victim.v4, 'hello-free']);
      return heard.includes(`hello-guarded from ${guarded.v4}`) && heard.includes(`hello-free from ${free.v4}`);
    });
  }, 60_000);

    it('an IPv4 source address not its own never reaches the peer', async () => {
      for (const c of [guarded, free]) execIn(c.ns, 'ip', ['addr', 'add', `10.56.0.9${c === guarded ? 2 : 4}/32`, 'dev', 'eth0']);
      py(guarded.ns, ['udp', '10.56.0.92', victim.v4, 'forged-guarded']);
      py(free.ns, ['udp', '10.56.0.94', victim.v4, 'forged-free']);
      py(guarded.ns, ['udp', guarded.v4, victim.v4, 'own-guarded']);
      await until('the control and the own-address datagram arrive', () => heard.includes('forged-free from 10.56.0.94') && heard.includes(`own-guarded from ${guarded.v4}`));
      expect(heard.filter((l) => l.startsWith('forged-guarded'))).toEqual([]);
    });

    it('a MAC not its own gets nothing through, even from its own address', async () => {
      for (const c of [guarded, free]) {
        // the victim's MAC known in advance: the forged frame itself goes out, no ARP needed
        execIn(c.ns, 'ip', ['neigh', 'replace', victim.v4, 'lladdr', victim.mac, 'dev', 'eth0']);
        execIn(c.ns, 'ip', ['link', 'set', 'eth0', 'address', c === guarded ? '02:00:00:00:00:92' : '02:00:00:00:00:94']);
      }
      try {
        py(guarded.ns, ['udp', guarded.v4, victim.v4, 'newmac-guarded']);
        py(free.ns, ['udp', free.v4, victim.v4, 'newmac-free']);
        await until('the control arrives', () => heard.includes(`newmac-free from ${free.v4}`));
        expect(heard.filter((l) => l.startsWith('newmac-guarded'))).toEqual([]);
      } finally {
        for (const c of [guarded, free]) execIn(c.ns, 'ip', ['link', 'set', 'eth0', 'address', c.mac]);
      }
    });

    it("an ARP reply claiming the victim's address is dropped", async () => {
      await hostLearnsVictim(victim.v4);
      py(guarded.ns, ['arp-reply', 'eth0', guarded.mac, victim.v4, hostMac, '10.56.0.1']);
      await new Promise((r) => setTimeout(r, 300));
      expect(hostBelieves(victim.v4)).toBe(victim.mac);
      // the control: the same forgery from the port without anti-spoofing poisons the host's table
      py(free.ns, ['arp-reply', 'eth0', free.mac, victim.v4, hostMac, '10.56.0.1']);
      await until('the control poisons the entry', () => hostBelieves(victim.v4) === free.mac);
    });

    it("an IPv6 neighbour advertisement claiming the victim's address is dropped", async () => {
      await hostLearnsVictim(victim.v6);
      py(guarded.ns, ['na', 'eth0', guarded.mac, guarded.v6, hostMac, 'fd00:56::1', victim.v6]);
      await new Promise((r) => setTimeout(r, 300));
      expect(hostBelieves(victim.v6)).toBe(victim.mac);
      py(free.ns, ['na', 'eth0', free.mac, free.v6, hostMac, 'fd00:56::1', victim.v6]);
      await until('the control poisons the entry', () => hostBelieves(victim.v6) === free.mac);
    });
});
