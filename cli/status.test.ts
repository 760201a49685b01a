import { describe, expect, it } from 'vitest';
import { describeNetwork } from './status.js';
import type { NetworkRecord } from '../store/network-repo.js';

function record(driver: NetworkRecord['driver'], config: object): NetworkRecord {
  return { id: 'n1', driver, state: 'ready', config, ipv4: [], ipv6: [], createdAt: '' };
}

describe('network summary in tsnet status', () => {
  it('shows an overlay by its bridge, VNI, VXLAN device and cluster name', () => {
    expect(describeNetwork(record('overlay', { bridge: 'tob-1', mtu: 1450, overlay: { name: 'blue', vni: 4096, vxlan: 'tox-1' } }))).toEqual({
      link: 'tob-1',
      settings: 'vni=4096 vxlan=tox-1 overlay=blue mtu=1450',
    });
  });

  it('shows a bridge and a macvlan network by their link and what differs from the defaults', () => {
    expect(describeNetwork(record('bridge', { bridge: 'tsnet-1', mtu: 1500, icc: false }))).toEqual({ link: 'tsnet-1', settings: 'mtu=1500 icc=off' });
    expect(describeNetwork(record('macvlan', { parent: 'eth1', mode: 'private', internal: true }))).toEqual({ link: 'eth1', settings: 'mode=private internal' });
  });
});
