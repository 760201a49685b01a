// The overlay control plane against a fake kernel and a fake cluster store: what it announces and
// withdraws, and which entries the VXLAN device holds after each thing the watch delivers.
import { describe, expect, it } from 'vitest';
import { OverlayPeers, type OverlayNetwork, type OverlayPeersDeps } from './peers.js';
import type { AnnouncementListener, ClusterStore, EndpointAnnouncement } from '../../store/cluster/cluster-store.js';
import type { EndpointRecord } from '../../store/network-repo.js';
import type { FdbInfo, FdbSpec, NeighbourInfo, NeighbourSpec } from '../../native/netlink/neighbours.js';
import { silentLogger } from '../../core/log.js';

const VXLAN = 'tox-0123456789a';

/** The two tables and the neighbours of one VXLAN device, listed as the kernel lists them. */
class FakeKernel {
  readonly self = new Map<string, string>();
  /** mac -> state names */
  readonly bridge = new Map<string, string[]>([['ae:00:00:00:00:01', ['permanent']]]);
  readonly neighbours = new Map<string, string>();

  listFdb(dev?: string): FdbInfo[] {
    expect(dev).toBe(VXLAN);
    const base = { index: 7, dev: VXLAN };
    return [
      ...[...this.self].map(([mac, dst]) => ({ ...base, mac, dst, self: true, master: false, state: ['noarp', 'permanent'] })),
      ...[...this.bridge].map(([mac, state]) => ({ ...base, mac, self: false, master: true, state })),
    ];
  }
  listNeighbours(): NeighbourInfo[] {
    return [...this.neighbours].map(([ip, mac]) => ({ index: 7, dev: VXLAN, family: ip.includes(':') ? (6 as const) : (4 as const), ip, mac, state: ['permanent'], flags: 0 }));
  }
  replaceFdb(f: FdbSpec): void {
    if (f.master) this.bridge.set(f.mac, ['reachable', 'noarp']);
    else this.self.set(f.mac, f.dst!);
  }
  deleteFdb(f: Pick<FdbSpec, 'mac' | 'master'>): void {
    if (f.master) this.bridge.delete(f.mac);
    else this.self.delete(f.mac);
  }
  replaceNeighbour(n: NeighbourSpec): void {
    this.neighbours.set(n.ip, n.mac);
  }
  deleteNeighbour(_dev: string, ip: string): void {
    this.neighbours.delete(ip);
  }
  /** what a remote container left: sorted "mac" lists per table */
  macs(): { self: string[]; bridge: string[]; neighbours: string[] } {
    return {
      self: [...this.self.keys()].sort(),
      bridge: [...this.bridge].filter(([, s]) => !s.includes('permanent')).map(([m]) => m).sort(),
      neighbours: [...this.neighbours.values()].sort(),
    };
  }
}

class FakeCluster implements Pick<ClusterStore, 'host' | 'announce' | 'withdraw' | 'listAnnouncements' | 'watchAnnouncements' | 'joinOverlay' | 'leaveOverlay' | 'joinedOverlays'> {
  readonly host = 'h1';
  readonly vtep = '198.51.100.1';
  announcements: EndpointAnnouncement[] = [];
  listener?: AnnouncementListener;
  /** overlays this host is a member of */
  joined = new Set<string>();

  async joinOverlay(overlay: string): Promise<void> {
    this.joined.add(overlay);
  }
  async leaveOverlay(overlay: string): Promise<boolean> {
    return this.joined.delete(overlay);
  }
  async joinedOverlays(): Promise<string[]> {
    return [...this.joined];
  }

  async announce(a: Omit<EndpointAnnouncement, 'host' | 'vtep'>): Promise<void> {
    // as the store: an address another endpoint holds is refused
    if (this.announcements.some((x) => x.overlay === a.overlay && x.ip === a.ip && x.endpointId !== a.endpointId)) throw new Error(`${a.ip} is taken`);
    this.announcements = this.announcements.filter((x) => !(x.overlay === a.overlay && x.ip === a.ip));
    this.announcements.push({ ...a, host: this.host, vtep: this.vtep });
  }
  async withdraw(overlay: string, ip: string, endpointId: string): Promise<void> {
    this.announcements = this.announcements.filter((x) => !(x.overlay === overlay && x.ip === ip && x.endpointId === endpointId));
  }
  async listAnnouncements(): Promise<EndpointAnnouncement[]> {
    return [...this.announcements];
  }
  async watchAnnouncements(listener: AnnouncementListener): Promise<void> {
    this.listener = listener;
    listener.reset([...this.announcements]);
  }
}

const remote = (n: number, host = 'h2'): EndpointAnnouncement => ({
  overlay: 'blue',
  ip: `10.77.0.${n}`,
  mac: `02:42:0a:4d:00:0${n}`,
  endpointId: `ep${n}`,
  host,
  vtep: `198.51.100.${host.slice(1)}`,
});

function setUp(endpoints: Pick<EndpointRecord, 'id' | 'address' | 'mac' | 'state'>[] = []) {
  const net = { id: 'net1', state: 'ready', config: { overlay: { name: 'blue', vni: 4096, port: 4789, vxlan: VXLAN, local: '198.51.100.1' } } } as unknown as OverlayNetwork;
  const kernel = new FakeKernel();
  const cluster = new FakeCluster();
  const repo = {
    listNetworks: () => [net],
    listEndpoints: () => endpoints,
  } as unknown as OverlayPeersDeps['repo'];
  const peers = new OverlayPeers({ repo, netlinkOf: () => kernel, cluster: cluster as unknown as ClusterStore, log: silentLogger });
  return { net, kernel, cluster, peers };
}

describe('overlay peers', () => {
  it('on start announces ready endpoints again, withdraws its own unbacked ones, and programs the snapshot', async () => {
    const { kernel, cluster, peers } = setUp([
      { id: 'ep2', address: '10.77.0.2/24', mac: '02:42:0a:4d:00:02', state: 'ready' },
      { id: 'ep5', address: '10.77.0.5/24', mac: '02:42:0a:4d:00:05', state: 'creating' },
    ]);
    cluster.announcements = [remote(3), remote(4, 'h3'), { ...remote(6), host: 'h1', vtep: cluster.vtep }];
    // left from before: a learned entry and a remote container that is gone
    kernel.bridge.set('02:42:0a:4d:00:09', ['reachable']);
    kernel.self.set('02:42:0a:4d:00:08', '198.51.100.2');
    kernel.neighbours.set('10.77.0.8', '02:42:0a:4d:00:08');

    await peers.start();

    expect(cluster.announcements.filter((a) => a.host === 'h1').map((a) => a.ip)).toEqual(['10.77.0.2']);
    const wanted = ['02:42:0a:4d:00:03', '02:42:0a:4d:00:04'];
    expect(kernel.macs()).toEqual({ self: wanted, bridge: wanted, neighbours: wanted });
    expect(kernel.self.get('02:42:0a:4d:00:04')).toBe('198.51.100.3');
    // the port's own address is the bridge's, not the control plane's
    expect(kernel.bridge.get('ae:00:00:00:00:01')).toEqual(['permanent']);
  });

  it('on start joins the overlays of its networks and leaves no other (a create may be in flight)', async () => {
    const { cluster, peers } = setUp();
    cluster.joined = new Set(['pool-claimed-network-not-made-yet']);
    await peers.start();
    expect([...cluster.joined].sort()).toEqual(['blue', 'pool-claimed-network-not-made-yet']);
  });

  it('programs a new remote container, not its own host\'s, and removes every entry of a withdrawn one', async () => {
    const { kernel, cluster, peers } = setUp();
    await peers.start();
    cluster.listener!.put(remote(3));
    cluster.listener!.put({ ...remote(7), host: 'h1', vtep: cluster.vtep });
    expect(kernel.macs()).toEqual({ self: ['02:42:0a:4d:00:03'], bridge: ['02:42:0a:4d:00:03'], neighbours: ['02:42:0a:4d:00:03'] });
    expect(kernel.bridge.get('02:42:0a:4d:00:03')).toEqual(['reachable', 'noarp']);

    cluster.listener!.delete(remote(3));
    expect(kernel.macs()).toEqual({ self: [], bridge: [], neighbours: [] });
  });

  it('moves a container that comes back on another host', async () => {
    const { kernel, cluster, peers } = setUp();
    await peers.start();
    cluster.listener!.put(remote(3));
    cluster.listener!.put(remote(3, 'h3'));
    expect(kernel.self.get('02:42:0a:4d:00:03')).toBe('198.51.100.3');
    expect(kernel.macs().bridge).toEqual(['02:42:0a:4d:00:03']);
  });

  it('announces and withdraws only endpoints of a named overlay', async () => {
    const { net, cluster, peers } = setUp();
    const ep = { id: 'ep2', address: '10.77.0.2/24', addressIpv6: '', mac: '02:42:0a:4d:00:02' };
    await peers.announce(net, ep);
    expect(cluster.announcements).toEqual([{ overlay: 'blue', ip: '10.77.0.2', mac: ep.mac, endpointId: 'ep2', host: 'h1', vtep: '198.51.100.1' }]);
    await peers.withdraw(net, ep);
    expect(cluster.announcements).toEqual([]);

    const local = { ...net, config: { ...net.config, overlay: { ...net.config.overlay, name: '' } } };
    await peers.announce(local, ep);
    expect(cluster.announcements).toEqual([]);
  });

  it('announces a dual-stack endpoint once per address with one MAC, and withdraws both', async () => {
    const { net, cluster, peers } = setUp();
    // a non-canonical IPv6 text is announced as the kernel writes it
    const ep = { id: 'ep2', address: '10.77.0.2/24', addressIpv6: 'fd00:77:0:0::2/64', mac: '02:42:0a:4d:00:02' };
    await peers.announce(net, ep);
    expect(cluster.announcements.map((a) => [a.ip, a.mac, a.endpointId])).toEqual([
      ['10.77.0.2', ep.mac, 'ep2'],
      ['fd00:77::2', ep.mac, 'ep2'],
    ]);
    await peers.withdraw(net, ep);
    expect(cluster.announcements).toEqual([]);
  });

  it('takes back the IPv4 announcement when the IPv6 address is held by another endpoint: nothing half-announced', async () => {
    const { net, cluster, peers } = setUp();
    cluster.announcements = [{ ...remote(3), ip: 'fd00:77::2' }];
    await expect(peers.announce(net, { id: 'ep2', address: '10.77.0.2/24', addressIpv6: 'fd00:77::2/64', mac: '02:42:0a:4d:00:02' })).rejects.toThrow('fd00:77::2 is taken');
    expect(cluster.announcements.map((a) => a.endpointId)).toEqual(['ep3']);
  });

  it('programs a remote dual-stack container as one forwarding entry and two neighbours, and removes all of it', async () => {
    const { kernel, cluster, peers } = setUp();
    await peers.start();
    // the VXLAN device's own link-local neighbour is the kernel's, not the control plane's
    kernel.neighbours.set('fe80::1', '02:42:0a:4d:00:aa');
    cluster.listener!.put(remote(3));
    cluster.listener!.put({ ...remote(3), ip: 'fd00:77::3' });
    expect(kernel.macs()).toEqual({
      self: ['02:42:0a:4d:00:03'],
      bridge: ['02:42:0a:4d:00:03'],
      neighbours: ['02:42:0a:4d:00:03', '02:42:0a:4d:00:03', '02:42:0a:4d:00:aa'],
    });
    expect(kernel.neighbours.get('fd00:77::3')).toBe('02:42:0a:4d:00:03');
    cluster.listener!.delete({ ...remote(3), ip: 'fd00:77::3' });
    // the IPv4 address still stands: the forwarding entry stays, the IPv6 neighbour goes
    expect(kernel.macs()).toEqual({ self: ['02:42:0a:4d:00:03'], bridge: ['02:42:0a:4d:00:03'], neighbours: ['02:42:0a:4d:00:03', '02:42:0a:4d:00:aa'] });
    cluster.listener!.delete(remote(3));
    expect(kernel.macs()).toEqual({ self: [], bridge: [], neighbours: ['02:42:0a:4d:00:aa'] });
  });
});
