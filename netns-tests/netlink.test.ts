// The rtnetlink layer against the real kernel. Every test makes its own namespaces (deleted in
// afterEach, also on failure), works inside them through Netlink.openInNetns, and checks the
// result with iproute2 and with packets. The host namespace is never changed.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readlinkSync, statSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Netlink, NetlinkError, closeFd, openNetnsFd, readSysctl, withNetns, writeSysctl } from '../native/index.js';
import { NO_8021Q, kernelHas8021q, until } from './harness.js';

interface Ns {
  name: string;
  path: string;
  nl: Netlink;
}

let cleanups: (() => void)[] = [];

afterEach(() => {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch {
      // best effort: a namespace may be gone already
    }
  }
  cleanups = [];
});

function netns(): Ns {
  const name = `tsnet-t-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  cleanups.push(() => execFileSync('ip', ['netns', 'del', name]));
  const path = `/run/netns/${name}`;
  const nl = Netlink.openInNetns(path);
  cleanups.push(() => nl.close());
  return { name, path, nl };
}

/** An open fd of ns for the test's duration (peerNetnsFd, netnsFd). */
function nsFd(ns: Ns): number {
  const fd = openNetnsFd(ns.path);
  cleanups.push(() => closeFd(fd));
  return fd;
}

/** The identity of a namespace, as /proc/PID/ns/net links read: net:[inode]. */
function nsId(ns: Ns): string {
  return `net:[${statSync(ns.path).ino}]`;
}

function ipJson(ns: Ns, ...args: string[]): any[] {
  return JSON.parse(execFileSync('ip', ['-n', ns.name, '-j', ...args], { encoding: 'utf8' }) || '[]');
}

function linkJson(ns: Ns, name: string): any {
  return ipJson(ns, '-d', 'link', 'show', 'dev', name)[0];
}

function bridgeJson(ns: Ns, ...args: string[]): any[] {
  return JSON.parse(execFileSync('bridge', ['-n', ns.name, '-j', ...args], { encoding: 'utf8' }) || '[]');
}

function pings(from: Ns, ip: string): boolean {
  try {
    execFileSync('ip', ['netns', 'exec', from.name, 'ping', '-c', '1', '-W', '1', ip], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function thrown(fn: () => unknown): NetlinkError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NetlinkError);
    return err as NetlinkError;
  }
  throw new Error('expected a NetlinkError');
}

/** A host namespace with bridge br0 (10.77.0.1/24, fd77::1/64), lo up. */
function hostWithBridge(): Ns {
  const host = netns();
  host.nl.setLink('lo', { up: true });
  host.nl.createLink({ kind: 'bridge', name: 'br0', mac: '02:42:0a:4d:00:01' });
  host.nl.addAddress('br0', '10.77.0.1/24');
  host.nl.addAddress('br0', 'fd77::1/64', { nodad: true });
  host.nl.setLink('br0', { up: true });
  return host;
}

/** A container namespace on host's br0: veth hN (host end) and eth0 made directly inside. */
function container(host: Ns, n: number): Ns {
  const c = netns();
  host.nl.createLink({ kind: 'veth', name: `h${n}`, peerName: 'eth0', peerNetnsFd: nsFd(c), peerMac: `02:42:0a:4d:00:${(10 + n).toString(16).padStart(2, '0')}` });
  host.nl.setLink(`h${n}`, { master: 'br0', up: true });
  c.nl.setLink('lo', { up: true });
  c.nl.addAddress('eth0', `10.77.0.${10 + n}/24`);
  c.nl.addAddress('eth0', `fd77::${10 + n}/64`, { nodad: true });
  c.nl.setLink('eth0', { up: true });
  return c;
}

describe('namespaces', () => {
  it('openInNetns binds the socket to the namespace, and withNetns always comes back', () => {
    const a = netns();
    const before = readlinkSync('/proc/thread-self/ns/net');
    expect(a.nl.listLinks().map((l) => l.name)).toEqual(['lo']);
    a.nl.createLink({ kind: 'bridge', name: 'only-in-a' });
    expect(Netlink.open().getLink('only-in-a')).toBeUndefined();

    expect(withNetns(a.path, () => readlinkSync('/proc/thread-self/ns/net'))).toBe(nsId(a));
    expect(() => withNetns(a.path, () => Promise.resolve(1))).toThrow(/synchronous/);
    expect(() =>
      withNetns(a.path, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    // nested: the inner call returns to the outer namespace, not the original one
    const b = netns();
    const seen = withNetns(a.path, () => {
      const inner = withNetns(b.path, () => readlinkSync('/proc/thread-self/ns/net'));
      return [inner, readlinkSync('/proc/thread-self/ns/net')];
    });
    expect(seen).toEqual([nsId(b), nsId(a)]);
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(before);
  });

  it('reads and writes sysctls inside a namespace, dotted interface names as segments', () => {
    const a = netns();
    a.nl.createLink({ kind: 'bridge', name: 'br.20' });
    const host = readSysctl('net.ipv4.ip_forward');
    writeSysctl('net.ipv4.ip_forward', '1', { nsPath: a.path });
    expect(readSysctl('net.ipv4.ip_forward', { nsPath: a.path })).toBe('1');
    expect(readSysctl('net.ipv4.ip_forward')).toBe(host);
    writeSysctl(['net', 'ipv6', 'conf', 'br.20', 'accept_dad'], '0', { nsPath: a.path });
    expect(readSysctl(['net', 'ipv6', 'conf', 'br.20', 'accept_dad'], { nsPath: a.path })).toBe('0');
  });
});

describe('links', () => {
  it('creates a bridge and a veth pair with master, up, mtu, mac and aliases, as ip shows them', () => {
    const ns = netns();
    const nl = ns.nl;
    nl.createLink({ kind: 'bridge', name: 'br0', mtu: 1450, mac: '02:42:0a:00:00:01', alias: 'tsnet:net1' });
    nl.createLink({ kind: 'veth', name: 'vh0', peerName: 'vc0', mtu: 1450, mac: '02:42:0a:00:00:02', peerMac: '02:42:0a:00:00:03', alias: 'tsnet:ep1', peerAlias: 'tsnet:ep1c' });
    nl.setLink('vh0', { master: 'br0', up: true });

    const br = linkJson(ns, 'br0');
    expect(br).toMatchObject({ mtu: 1450, address: '02:42:0a:00:00:01', ifalias: 'tsnet:net1', linkinfo: { info_kind: 'bridge' } });
    expect(linkJson(ns, 'vh0')).toMatchObject({ mtu: 1450, address: '02:42:0a:00:00:02', ifalias: 'tsnet:ep1', master: 'br0', link: 'vc0' });
    expect(linkJson(ns, 'vh0').flags).toContain('UP');
    expect(linkJson(ns, 'vc0')).toMatchObject({ address: '02:42:0a:00:00:03', ifalias: 'tsnet:ep1c', linkinfo: { info_kind: 'veth' } });

    const vh0 = nl.getLink('vh0')!;
    expect(vh0).toMatchObject({ name: 'vh0', kind: 'veth', mtu: 1450, up: true, masterIndex: br.ifindex, alias: 'tsnet:ep1', parentIndex: nl.getLink('vc0')!.index });
    expect(nl.getLink(vh0.index)?.name).toBe('vh0');
    expect(nl.listLinks().map((l) => l.name).sort()).toEqual(['br0', 'lo', 'vc0', 'vh0']);
  });

  it('creates the veth peer directly in another namespace', () => {
    const host = netns();
    const c = netns();
    host.nl.createLink({ kind: 'veth', name: 'vh0', peerName: 'eth0', peerNetnsFd: nsFd(c), peerMac: '02:42:0a:00:00:09', peerAlias: 'tsnet:c' });
    expect(ipJson(host, 'link', 'show', 'dev', 'vh0')[0]).toMatchObject({ ifname: 'vh0', link_netnsid: expect.any(Number) });
    expect(host.nl.getLink('eth0')).toBeUndefined();
    expect(linkJson(c, 'eth0')).toMatchObject({ address: '02:42:0a:00:00:09', ifalias: 'tsnet:c' });
    // deleting one end removes the other
    host.nl.deleteLink('vh0');
    expect(c.nl.getLink('eth0')).toBeUndefined();
  });

  it('changes links: rename, mac, mtu, alias, down, nomaster, move by fd and by pid', async () => {
    const a = netns();
    const b = netns();
    a.nl.createLink({ kind: 'bridge', name: 'br0' });
    a.nl.createLink({ kind: 'veth', name: 'x0', peerName: 'x1', alias: 'old' });
    a.nl.setLink('x0', { master: 'br0', up: true });
    a.nl.setLink('x0', { master: null, up: false, mtu: 1300, mac: '02:00:00:00:00:aa', alias: '' });
    const x0 = linkJson(a, 'x0');
    expect(x0).toMatchObject({ mtu: 1300, address: '02:00:00:00:00:aa' });
    expect(x0.master).toBeUndefined();
    expect(x0.ifalias).toBeUndefined();
    expect(x0.flags).not.toContain('UP');

    a.nl.setLink('x0', { name: 'renamed' });
    expect(a.nl.getLink('x0')).toBeUndefined();
    expect(a.nl.getLink('renamed')?.mtu).toBe(1300);

    a.nl.setLink('renamed', { netnsFd: nsFd(b) });
    expect(b.nl.getLink('renamed')).toBeDefined();
    expect(a.nl.getLink('renamed')).toBeUndefined();

    // a process inside a: its pid names the namespace. `ip netns exec` starts in the host's
    // namespace and enters a before it execs the shell (same pid), so "ready" is printed from a.
    const sleeper: ChildProcess = spawn('ip', ['netns', 'exec', a.name, 'sh', '-c', 'echo ready; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    cleanups.push(() => sleeper.kill());
    let said = '';
    sleeper.stdout!.on('data', (d: Buffer) => (said += d.toString()));
    await until('the sleeper is inside namespace a', () => said.includes('ready'), 5000);
    // a pid still in the host's namespace would move the link there: refuse rather than try
    const where = readlinkSync(`/proc/${sleeper.pid}/ns/net`);
    if (where !== nsId(a)) throw new Error(`the sleeper is in ${where}, not in ${a.name} (${nsId(a)}): not moving a link by its pid`);
    b.nl.setLink('renamed', { netnsPid: sleeper.pid! });
    expect(a.nl.getLink('renamed')).toBeDefined();
    expect(b.nl.getLink('renamed')).toBeUndefined();
  });

  it('creates macvlans in all four modes on a veth parent', () => {
    const ns = netns();
    ns.nl.createLink({ kind: 'veth', name: 'uplink', peerName: 'uplink-peer' });
    for (const mode of ['bridge', 'private', 'vepa', 'passthru'] as const) {
      ns.nl.createLink({ kind: 'macvlan', name: `mv-${mode}`, parent: 'uplink', mode, mtu: 1400 });
      expect(linkJson(ns, `mv-${mode}`)).toMatchObject({ mtu: 1400, link: 'uplink', linkinfo: { info_kind: 'macvlan', info_data: { mode } } });
      expect(ns.nl.getLink(`mv-${mode}`)).toMatchObject({ kind: 'macvlan', macvlanMode: mode, parentIndex: ns.nl.getLink('uplink')!.index });
      ns.nl.deleteLink(`mv-${mode}`);
    }
  });

  it('macvlans in bridge mode, made directly in two containers, reach each other', () => {
    const host = netns();
    const c1 = netns();
    const c2 = netns();
    host.nl.createLink({ kind: 'veth', name: 'uplink', peerName: 'uplink-peer' });
    host.nl.setLink('uplink', { up: true });
    host.nl.setLink('uplink-peer', { up: true });
    for (const [c, n] of [[c1, 1], [c2, 2]] as const) {
      host.nl.createLink({ kind: 'macvlan', name: `mv${n}`, parent: 'uplink', mode: 'bridge', netnsFd: nsFd(c), alias: `tsnet:mv${n}` });
      c.nl.setLink(`mv${n}`, { name: 'eth0' });
      c.nl.addAddress('eth0', `10.78.0.${n}/24`);
      c.nl.setLink('eth0', { up: true });
    }
    expect(host.nl.getLink('mv1')).toBeUndefined();
    expect(linkJson(c1, 'eth0')).toMatchObject({ ifalias: 'tsnet:mv1', linkinfo: { info_kind: 'macvlan' } });
    expect(pings(c1, '10.78.0.2')).toBe(true);
  });

  it('creates a vxlan device with vni, local address, port and learning', () => {
    const ns = netns();
    ns.nl.createLink({ kind: 'veth', name: 'underlay', peerName: 'underlay-peer' });
    ns.nl.createLink({ kind: 'vxlan', name: 'vx42', vni: 42, local: '198.51.100.1', learning: false, parent: 'underlay', mtu: 1450 });
    expect(linkJson(ns, 'vx42')).toMatchObject({
      mtu: 1450,
      linkinfo: { info_kind: 'vxlan', info_data: { id: 42, local: '198.51.100.1', port: 4789, learning: false, link: 'underlay' } },
    });
    expect(ns.nl.getLink('vx42')).toMatchObject({ kind: 'vxlan', vxlanId: 42 });
  });

  const has8021q = kernelHas8021q();

  it('vlan: a kernel without 8021q gets a clear error', (ctx) => {
    if (has8021q) ctx.skip('this kernel has 8021q: the failure path cannot be shown here');
    const ns = netns();
    ns.nl.createLink({ kind: 'veth', name: 'eth1', peerName: 'eth1-peer' });
    const err = thrown(() => ns.nl.createLink({ kind: 'vlan', name: 'eth1.20', parent: 'eth1', vlanId: 20 }));
    expect(err.code).toBe('EOPNOTSUPP');
    expect(err.message).toMatch(/^kernel does not support link type 'vlan' \(module 8021q missing\)/);
    expect(err.op).toBe('createLink');
    expect(ns.nl.getLink('eth1.20')).toBeUndefined();
  });

  it('vlan: creates a tagged link on its parent', (ctx) => {
    if (!has8021q) ctx.skip(`${NO_8021Q}: the vlan success path cannot run here; its messages are unit-tested`);
    const ns = netns();
    ns.nl.createLink({ kind: 'veth', name: 'eth1', peerName: 'eth1-peer' });
    ns.nl.createLink({ kind: 'vlan', name: 'eth1.20', parent: 'eth1', vlanId: 20 });
    expect(linkJson(ns, 'eth1.20')).toMatchObject({ link: 'eth1', linkinfo: { info_kind: 'vlan', info_data: { id: 20 } } });
    expect(ns.nl.getLink('eth1.20')).toMatchObject({ kind: 'vlan', vlanId: 20 });
  });
});

describe('bridge ports', () => {
  it('isolated ports reach the bridge but not each other; others still reach them', () => {
    const host = hostWithBridge();
    const [c1, c2, c3] = [container(host, 1), container(host, 2), container(host, 3)];
    expect(pings(c1, '10.77.0.12')).toBe(true);

    host.nl.setBridgePort('h1', { isolated: true });
    host.nl.setBridgePort('h2', { isolated: true, hairpin: true, learning: false });
    expect(linkJson(host, 'h1').linkinfo.info_slave_data).toMatchObject({ isolated: true, hairpin: false, learning: true });
    expect(linkJson(host, 'h2').linkinfo.info_slave_data).toMatchObject({ isolated: true, hairpin: true, learning: false });

    host.nl.setBridgePort('h2', { hairpin: false, learning: true });
    expect(linkJson(host, 'h2').linkinfo.info_slave_data).toMatchObject({ isolated: true, hairpin: false, learning: true });

    expect(pings(c1, '10.77.0.1')).toBe(true);
    expect(pings(c1, '10.77.0.12')).toBe(false);
    expect(pings(c3, '10.77.0.11')).toBe(true);
    expect(pings(c2, '10.77.0.13')).toBe(true);
  });

  it('packets cross the bridge over IPv4 and IPv6', () => {
    const host = hostWithBridge();
    const c1 = container(host, 1);
    container(host, 2);
    expect(pings(c1, '10.77.0.1')).toBe(true);
    expect(pings(c1, '10.77.0.12')).toBe(true);
    expect(pings(c1, 'fd77::12')).toBe(true);
    expect(pings(c1, 'fd77::1')).toBe(true);
  });
});

describe('addresses', () => {
  it('adds, lists and deletes IPv4 and IPv6 addresses', () => {
    const ns = netns();
    ns.nl.createLink({ kind: 'bridge', name: 'br0' });
    ns.nl.addAddress('br0', '10.79.0.1/24');
    ns.nl.addAddress('br0', 'FD79:0::1/64', { nodad: true });
    ns.nl.addAddress('br0', '10.79.1.1/24', { noPrefixRoute: true });

    const shown = ipJson(ns, 'addr', 'show', 'dev', 'br0')[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    expect(shown).toEqual(expect.arrayContaining(['10.79.0.1/24', 'fd79::1/64', '10.79.1.1/24']));
    const listed = ns.nl.listAddresses('br0');
    expect(listed.map((a) => a.cidr)).toEqual(expect.arrayContaining(['10.79.0.1/24', 'fd79::1/64', '10.79.1.1/24']));
    expect(listed.find((a) => a.cidr === '10.79.0.1/24')).toMatchObject({ dev: 'br0', family: 4, broadcast: '10.79.0.255', scope: 'universe' });
    expect(ns.nl.listAddresses().filter((a) => a.dev === 'br0')).toHaveLength(listed.length);
    // noPrefixRoute: no route to the subnet
    expect(ipJson(ns, 'route').map((r: any) => r.dst)).not.toContain('10.79.1.0/24');

    ns.nl.deleteAddress('br0', '10.79.0.1/24');
    ns.nl.deleteAddress('br0', 'fd79::1/64');
    expect(ns.nl.listAddresses('br0').map((a) => a.cidr)).not.toContain('10.79.0.1/24');
    ns.nl.deleteAddress('br0', '10.79.0.1/24', { ignoreMissing: true });
    ns.nl.deleteAddress('gone0', '10.79.0.1/24', { ignoreMissing: true });
  });
});

describe('routes', () => {
  it('adds, replaces, lists and deletes routes, also in another table', () => {
    const ns = netns();
    const nl = ns.nl;
    nl.createLink({ kind: 'veth', name: 'r0', peerName: 'r1' });
    nl.setLink('r0', { up: true });
    nl.setLink('r1', { up: true });
    nl.addAddress('r0', '10.80.0.1/24');
    nl.addAddress('r0', 'fd80::1/64', { nodad: true });

    nl.addRoute({ dst: '10.81.0.0/16', gateway: '10.80.0.254', metric: 20 });
    nl.addRoute({ dst: '203.0.113.0/24', dev: 'r0', src: '10.80.0.1' });
    nl.addRoute({ dst: '198.51.100.0/24', gateway: '10.99.99.1', dev: 'r0', onlink: true });
    nl.addRoute({ dst: 'default', gateway: '10.80.0.254', table: 1000 });
    nl.addRoute({ dst: 'fd81::/64', gateway: 'fd80::fe' });

    const ip4 = ipJson(ns, 'route');
    expect(ip4).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dst: '10.81.0.0/16', gateway: '10.80.0.254', metric: 20, protocol: 'static' }),
        expect.objectContaining({ dst: '203.0.113.0/24', dev: 'r0', scope: 'link', prefsrc: '10.80.0.1' }),
        expect.objectContaining({ dst: '198.51.100.0/24', gateway: '10.99.99.1', flags: expect.arrayContaining(['onlink']) }),
      ]),
    );
    expect(ipJson(ns, 'route', 'show', 'table', '1000')).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.80.0.254' })]);

    const mine = nl.listRoutes(4);
    expect(mine.map((r) => r.dst).sort()).toEqual(ip4.map((r: any) => r.dst).sort());
    expect(mine.find((r) => r.dst === '10.81.0.0/16')).toMatchObject({ gateway: '10.80.0.254', dev: 'r0', metric: 20, table: 254, protocol: 4 });
    expect(mine.find((r) => r.dst === '198.51.100.0/24')?.onlink).toBe(true);
    expect(nl.listRoutes(4, { table: 1000 })).toEqual([expect.objectContaining({ dst: 'default', gateway: '10.80.0.254', table: 1000 })]);
    expect(nl.listRoutes(6).find((r) => r.dst === 'fd81::/64')).toMatchObject({ gateway: 'fd80::fe', family: 6 });

    nl.replaceRoute({ dst: '10.81.0.0/16', gateway: '10.80.0.253', metric: 20 });
    expect(ipJson(ns, 'route', 'show', '10.81.0.0/16')).toEqual([expect.objectContaining({ gateway: '10.80.0.253' })]);

    nl.deleteRoute({ dst: '10.81.0.0/16' });
    nl.deleteRoute({ dst: 'default', table: 1000 });
    nl.deleteRoute({ dst: 'fd81::/64' });
    expect(nl.listRoutes(4).map((r) => r.dst)).not.toContain('10.81.0.0/16');
    expect(nl.listRoutes(4, { table: 1000 })).toEqual([]);
    nl.deleteRoute({ dst: '10.81.0.0/16' }, { ignoreMissing: true });
    expect(thrown(() => nl.deleteRoute({ dst: '10.81.0.0/16' })).message).toMatch(/^no route 10.81.0.0\/16/);
    expect(thrown(() => nl.addRoute({ dst: '203.0.113.0/24', dev: 'r0' })).message).toMatch(/^route 203.0.113.0\/24 dev r0 already exists/);
  });
});

describe('neighbours', () => {
  it('replaces, lists and deletes IPv4 and IPv6 neighbours', () => {
    const ns = netns();
    ns.nl.createLink({ kind: 'veth', name: 'n0', peerName: 'n1' });
    ns.nl.replaceNeighbour({ dev: 'n0', ip: '10.82.0.5', mac: '02:00:00:00:00:05' });
    ns.nl.replaceNeighbour({ dev: 'n0', ip: 'fd82::5', mac: '02:00:00:00:00:06' });
    ns.nl.replaceNeighbour({ dev: 'n0', ip: '10.82.0.5', mac: '02:00:00:00:00:07' });

    expect(ipJson(ns, 'neigh', 'show', 'dev', 'n0')).toEqual(
      expect.arrayContaining([
        { dst: '10.82.0.5', lladdr: '02:00:00:00:00:07', state: ['PERMANENT'] },
        { dst: 'fd82::5', lladdr: '02:00:00:00:00:06', state: ['PERMANENT'] },
      ]),
    );
    const listed = ns.nl.listNeighbours('n0');
    expect(listed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ dev: 'n0', family: 4, ip: '10.82.0.5', mac: '02:00:00:00:00:07', state: ['permanent'] }),
        expect.objectContaining({ dev: 'n0', family: 6, ip: 'fd82::5', mac: '02:00:00:00:00:06', state: ['permanent'] }),
      ]),
    );
    expect(ns.nl.listNeighbours().filter((n) => n.dev === 'n0').length).toBe(listed.length);

    ns.nl.deleteNeighbour('n0', '10.82.0.5');
    ns.nl.deleteNeighbour('n0', 'fd82::5');
    expect(ipJson(ns, 'neigh', 'show', 'dev', 'n0').filter((n: any) => n.state.includes('PERMANENT'))).toEqual([]);
    ns.nl.deleteNeighbour('n0', '10.82.0.5', { ignoreMissing: true });
    expect(thrown(() => ns.nl.deleteNeighbour('n0', '10.82.0.5')).message).toBe('no neighbour entry for 10.82.0.5 on n0');
  });
});

describe('VXLAN forwarding database', () => {
  it('programs remote VTEPs, as bridge fdb shows them, and carries packets between two hosts', () => {
    // two hosts joined by an underlay veth, one vxlan each, flooding to the other VTEP
    const h1 = netns();
    const h2 = netns();
    h1.nl.createLink({ kind: 'veth', name: 'ul', peerName: 'ul', peerNetnsFd: nsFd(h2) });
    for (const [h, me, peer, ip] of [
      [h1, '198.51.100.1', '198.51.100.2', '10.83.0.1/24'],
      [h2, '198.51.100.2', '198.51.100.1', '10.83.0.2/24'],
    ] as const) {
      h.nl.addAddress('ul', `${me}/24`);
      h.nl.setLink('ul', { up: true });
      h.nl.createLink({ kind: 'vxlan', name: 'vx0', vni: 7, local: me, learning: false, parent: 'ul' });
      h.nl.appendFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: peer });
      h.nl.addAddress('vx0', ip);
      h.nl.setLink('vx0', { up: true });
    }
    expect(pings(h1, '10.83.0.2')).toBe(true);

    const nl = h1.nl;
    nl.appendFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.51.100.3' });
    nl.replaceFdb({ dev: 'vx0', mac: '02:00:00:00:00:0a', dst: '198.51.100.2' });
    nl.replaceFdb({ dev: 'vx0', mac: '02:00:00:00:00:0a', dst: '198.51.100.3' });
    const fdb = bridgeJson(h1, 'fdb', 'show', 'dev', 'vx0');
    expect(fdb).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ mac: '00:00:00:00:00:00', dst: '198.51.100.2', flags: ['self'] }),
        expect.objectContaining({ mac: '00:00:00:00:00:00', dst: '198.51.100.3' }),
        expect.objectContaining({ mac: '02:00:00:00:00:0a', dst: '198.51.100.3', state: 'static' }),
      ]),
    );
    expect(fdb.filter((e: any) => e.mac === '02:00:00:00:00:0a')).toHaveLength(1);
    expect(nl.listFdb('vx0').filter((e) => e.dst)).toEqual(
      expect.arrayContaining([
        { index: expect.any(Number), dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.51.100.2', self: true, master: false, state: ['reachable', 'noarp'] },
        expect.objectContaining({ mac: '02:00:00:00:00:0a', dst: '198.51.100.3' }),
      ]),
    );

    const replaceZero = thrown(() => nl.replaceFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.51.100.4' }));
    expect(replaceZero.message).toMatch(/use appendFdb/);

    nl.deleteFdb({ dev: 'vx0', mac: '00:00:00:00:00:00', dst: '198.51.100.3' });
    nl.deleteFdb({ dev: 'vx0', mac: '02:00:00:00:00:0a' });
    expect(bridgeJson(h1, 'fdb', 'show', 'dev', 'vx0').filter((e: any) => e.dst === '198.51.100.3')).toEqual([]);
    nl.deleteFdb({ dev: 'vx0', mac: '02:00:00:00:00:0a' }, { ignoreMissing: true });
    expect(thrown(() => nl.deleteFdb({ dev: 'vx0', mac: '02:00:00:00:00:0a' })).message).toBe('no forwarding entry for 02:00:00:00:00:0a on vx0');
    expect(pings(h1, '10.83.0.2')).toBe(true);
  });

  it('programs a static entry on a bridge port (master)', () => {
    const host = hostWithBridge();
    container(host, 1);
    host.nl.replaceFdb({ dev: 'h1', mac: '02:00:00:00:00:bb', master: true });
    expect(bridgeJson(host, 'fdb', 'show', 'dev', 'h1')).toEqual(
      expect.arrayContaining([expect.objectContaining({ mac: '02:00:00:00:00:bb', master: 'br0', state: 'static' })]),
    );
    expect(host.nl.listFdb('h1')).toEqual(expect.arrayContaining([expect.objectContaining({ mac: '02:00:00:00:00:bb', master: true, self: false })]));
    host.nl.deleteFdb({ dev: 'h1', mac: '02:00:00:00:00:bb', master: true });
    expect(host.nl.listFdb('h1').map((e) => e.mac)).not.toContain('02:00:00:00:00:bb');
  });
});

describe('errors', () => {
  it('name the object and carry errno, code, op and the kernel text', () => {
    const ns = netns();
    const nl = ns.nl;
    nl.createLink({ kind: 'bridge', name: 'tsnet-web' });
    nl.createLink({ kind: 'veth', name: 'v0', peerName: 'v1' });

    const exists = thrown(() => nl.createLink({ kind: 'bridge', name: 'tsnet-web' }));
    expect(exists).toMatchObject({ code: 'EEXIST', errno: 17, op: 'createLink', message: 'link tsnet-web already exists' });
    expect(thrown(() => nl.createLink({ kind: 'veth', name: 'v9', peerName: 'v1' })).message).toBe('link v1 already exists');

    const missing = thrown(() => nl.deleteLink('foo'));
    expect(missing).toMatchObject({ code: 'ENODEV', op: 'deleteLink', message: 'no link named foo' });
    nl.deleteLink('foo', { ignoreMissing: true });
    expect(thrown(() => nl.setLink('foo', { up: true }))).toMatchObject({ code: 'ENODEV', op: 'setLink', message: 'no link named foo' });
    expect(thrown(() => nl.setLink('v0', { master: 'nobridge' })).message).toBe('no link named nobridge');
    expect(thrown(() => nl.addAddress('foo', '10.84.0.1/24')).message).toBe('no link named foo');
    expect(nl.getLink('foo')).toBeUndefined();

    nl.addAddress('tsnet-web', '10.84.0.1/24');
    const dup = thrown(() => nl.addAddress('tsnet-web', '10.84.0.1/24'));
    expect(dup.message).toMatch(/^address 10.84.0.1\/24 already on tsnet-web: /);
    expect(dup.kernelMessage).toBeTruthy();
    expect(thrown(() => nl.deleteAddress('tsnet-web', '10.84.0.9/24')).message).toMatch(/^address 10.84.0.9\/24 is not on tsnet-web/);
    expect(thrown(() => nl.setLink('v0', { name: 'v1' })).message).toBe('link v1 already exists');
    expect(thrown(() => nl.setBridgePort('v0', { isolated: true })).message).toMatch(/^link v0 is not a bridge port/);
    expect(thrown(() => nl.addRoute({ dst: '10.85.0.0/16', gateway: '10.86.0.1' })).message).toMatch(
      /^cannot add route 10.85.0.0\/16 via 10.86.0.1: Network is unreachable/,
    );
  });
});

