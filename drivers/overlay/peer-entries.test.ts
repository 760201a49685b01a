import { describe, expect, it } from 'vitest';
import { changeCounts, diffEntries, kernelEntries, remoteEntries } from './peer-entries.js';
import type { EndpointAnnouncement } from '../../store/cluster/cluster-store.js';
import type { FdbInfo, NeighbourInfo } from '../../native/netlink/neighbours.js';

const ann = (ip: string, host: string, overlay = 'o'): EndpointAnnouncement => ({
  overlay,
  ip,
  mac: `02:42:0a:00:00:${ip.split('.')[3].padStart(2, '0')}`,
  endpointId: `ep${ip}`,
  host,
  vtep: `198.51.100.${host.slice(1)}`,
});

const fdb = (e: Partial<FdbInfo> & Pick<FdbInfo, 'mac' | 'state'>): FdbInfo => ({ index: 7, dev: 'tox-1', self: false, master: false, ...e });
const neigh = (ip: string, mac: string | undefined, family: 4 | 6 = 4): NeighbourInfo => ({ index: 7, dev: 'tox-1', family, ip, mac, state: ['permanent'], flags: 0 });

describe('remote entries', () => {
  it("wants every other host's endpoints of the overlay, not its own nor other overlays'", () => {
    const all = [ann('10.0.0.2', 'h1'), ann('10.0.0.3', 'h2'), ann('10.0.0.4', 'h3'), ann('10.0.0.5', 'h2', 'other')];
    expect(remoteEntries(all, 'o', 'h1').map((e) => e.ip)).toEqual(['10.0.0.3', '10.0.0.4']);
  });
});

describe('kernel entries of a VXLAN device', () => {
  it('keeps remote forwarding entries, bridge entries on the port (static or learned) and neighbours of both families but link-local ones', () => {
    const listed = [
      fdb({ mac: '00:00:00:00:00:00', dst: '198.51.100.2', self: true, state: ['permanent'] }),
      fdb({ mac: '02:42:0a:00:00:03', dst: '198.51.100.2', self: true, state: ['noarp', 'permanent'] }),
      // the port's own address in the bridge's table
      fdb({ mac: 'ae:11:22:33:44:55', master: true, state: ['permanent'] }),
      fdb({ mac: '02:42:0a:00:00:03', master: true, state: ['reachable', 'noarp'] }),
      fdb({ mac: '02:42:0a:00:00:09', master: true, state: ['reachable'] }),
      fdb({ mac: '02:42:0a:00:00:0a', master: true, state: ['stale'] }),
    ];
    expect(kernelEntries(listed, [neigh('10.0.0.3', '02:42:0a:00:00:03'), neigh('10.0.0.4', undefined), neigh('fd00::3', '02:42:0a:00:00:03', 6), neigh('fe80::ac11:22ff:fe33:4455', 'ae:11:22:33:44:55', 6)])).toEqual({
      fdb: [{ mac: '02:42:0a:00:00:03', dst: '198.51.100.2' }],
      bridge: [
        { mac: '02:42:0a:00:00:03', learned: false },
        { mac: '02:42:0a:00:00:09', learned: true },
        { mac: '02:42:0a:00:00:0a', learned: true },
      ],
      neighbours: [
        { ip: '10.0.0.3', mac: '02:42:0a:00:00:03' },
        { ip: 'fd00::3', mac: '02:42:0a:00:00:03' },
      ],
    });
  });
});

describe('entry changes', () => {
  const wanted = [
    { ip: '10.0.0.3', mac: '02:42:0a:00:00:03', vtep: '198.51.100.2' },
    { ip: '10.0.0.4', mac: '02:42:0a:00:00:99', vtep: '198.51.100.3' },
  ];
  const exact = {
    fdb: wanted.map((w) => ({ mac: w.mac, dst: w.vtep })),
    bridge: wanted.map((w) => ({ mac: w.mac, learned: false })),
    neighbours: wanted,
  };

  it('adds what is missing, removes what is stale, and replaces a moved address', () => {
    const kernel = {
      fdb: [
        { mac: '02:42:0A:00:00:03', dst: '198.51.100.2' },
        { mac: '02:42:0a:00:00:04', dst: '198.51.100.3' },
        { mac: '02:42:0a:00:00:07', dst: '198.51.100.9' },
      ],
      bridge: [
        { mac: '02:42:0A:00:00:03', learned: false },
        { mac: '02:42:0a:00:00:04', learned: false },
      ],
      neighbours: [
        { ip: '10.0.0.3', mac: '02:42:0a:00:00:03' },
        { ip: '10.0.0.4', mac: '02:42:0a:00:00:04' },
        { ip: '10.0.0.7', mac: '02:42:0a:00:00:07' },
      ],
    };
    expect(diffEntries(wanted, kernel)).toEqual({
      addFdb: [{ mac: '02:42:0a:00:00:99', dst: '198.51.100.3' }],
      removeFdb: [
        { mac: '02:42:0a:00:00:04', dst: '198.51.100.3' },
        { mac: '02:42:0a:00:00:07', dst: '198.51.100.9' },
      ],
      addBridge: ['02:42:0a:00:00:99'],
      removeBridge: ['02:42:0a:00:00:04'],
      addNeighbours: [{ ip: '10.0.0.4', mac: '02:42:0a:00:00:99' }],
      // 10.0.0.4's entry is replaced by the add, not removed
      removeNeighbours: [{ ip: '10.0.0.7', mac: '02:42:0a:00:00:07' }],
    });
  });

  it('changes nothing when the kernel holds exactly what is wanted', () => {
    const none = diffEntries(wanted, exact);
    expect(Object.values(changeCounts(none))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('removes a learned bridge entry of a MAC no one announces, and makes a learned one that is wanted static', () => {
    const kernel = {
      ...exact,
      bridge: [
        { mac: '02:42:0a:00:00:03', learned: true },
        { mac: '02:42:0a:00:00:99', learned: false },
        { mac: '02:42:0a:00:00:42', learned: true },
      ],
    };
    const ch = diffEntries(wanted, kernel);
    expect(ch.addBridge).toEqual(['02:42:0a:00:00:03']);
    expect(ch.removeBridge).toEqual(['02:42:0a:00:00:42']);
    expect(changeCounts(ch)).toEqual({ addFdb: 0, removeFdb: 0, addBridge: 1, removeBridge: 1, addNeighbours: 0, removeNeighbours: 0 });
  });

  it('removes every entry when nothing is wanted any more', () => {
    const ch = diffEntries([], exact);
    expect(ch.removeFdb).toHaveLength(2);
    expect(ch.removeBridge).toEqual(['02:42:0a:00:00:03', '02:42:0a:00:00:99']);
    expect(ch.removeNeighbours).toHaveLength(2);
    expect([...ch.addFdb, ...ch.addBridge, ...ch.addNeighbours]).toEqual([]);
  });
});
