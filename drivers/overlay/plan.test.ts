import { describe, expect, it } from 'vitest';
import { bridgeRequest, firstFreeLocalVni, overlaySubnets, overlayLinkNames, overlayMtu, parseOverlayOptions } from './plan.js';
import { UserError } from '../../core/errors.js';

const underlay = { vtep: '198.51.100.11', link: 'eth0', mtu: 1500 };

describe('overlay options', () => {
  it('reads the overlay name, VNI (own key or Docker\'s), port and MTU and passes bridge options on', () => {
    expect(parseOverlayOptions({ type: 'overlay', overlay: 'blue', vni: '4242', vxlan_port: '8472', 'com.docker.network.driver.mtu': '1400', 'com.docker.network.bridge.enable_icc': 'false' })).toEqual({
      name: 'blue',
      vni: 4242,
      port: 8472,
      mtu: 1400,
      bridgeOptions: { 'com.docker.network.bridge.enable_icc': 'false' },
    });
    expect(parseOverlayOptions({ 'com.docker.network.driver.overlay.vxlanid_list': '300' }).vni).toBe(300);
  });

  it('refuses unknown keys, bad numbers, bad names and disagreeing VNIs', () => {
    expect(() => parseOverlayOptions({ parent: 'eth0' })).toThrow(/unknown option 'parent' for a tsnet overlay network; accepted: type, overlay/);
    expect(() => parseOverlayOptions({ vni: '0' })).toThrow('-o vni=0: must be 1..16777215');
    expect(() => parseOverlayOptions({ vni: 'x' })).toThrow('not a whole number');
    expect(() => parseOverlayOptions({ vxlan_port: '70000' })).toThrow('must be 1..65535');
    expect(() => parseOverlayOptions({ overlay: 'a/b' })).toThrow("'a/b' is not a valid overlay name");
    expect(() => parseOverlayOptions({ vni: '5', 'com.docker.network.driver.overlay.vxlanid_list': '6' })).toThrow('disagree');
    expect(() => parseOverlayOptions({ 'com.docker.network.bridge.name': 'br9' })).toThrow(UserError);
  });
});

describe('overlay MTU', () => {
  it('is the underlay MTU minus 50 unless a smaller one is given', () => {
    expect(overlayMtu(underlay, undefined)).toBe(1450);
    expect(overlayMtu({ ...underlay, mtu: 9000 }, undefined)).toBe(8950);
    expect(overlayMtu(underlay, 1400)).toBe(1400);
    expect(overlayMtu(underlay, 1450)).toBe(1450);
  });

  it('refuses an MTU that does not fit through VXLAN and says why', () => {
    expect(() => overlayMtu(underlay, 1451)).toThrow(/MTU 1451 does not fit through VXLAN: the underlay eth0 has MTU 1500 and VXLAN needs 50 bytes .* so 1450 is the largest/);
  });
});

describe('overlay links and VNIs', () => {
  it('names links from the network ID within 15 characters', () => {
    const n = overlayLinkNames('0123456789abcdef0123');
    expect(n).toEqual({ bridge: 'tob-0123456789a', vxlan: 'tox-0123456789a' });
    expect(n.bridge.length).toBeLessThanOrEqual(15);
  });

  it('picks the lowest free local VNI from 4096', () => {
    expect(firstFreeLocalVni([])).toBe(4096);
    expect(firstFreeLocalVni([4096, 4097, 4099])).toBe(4098);
  });

  it('hands the bridge driver its own options, the derived bridge name and the MTU', () => {
    const req = { networkId: 'abcdef0123456789', options: { type: 'overlay', overlay: 'x' }, enableIpv6: false, internal: false, ipv4: [], ipv6: [] };
    expect(bridgeRequest(req, { name: 'x', bridgeOptions: { 'com.docker.network.bridge.enable_icc': 'false' } }, 1450).options).toEqual({
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.name': 'tob-abcdef01234',
      'com.docker.network.driver.mtu': '1450',
    });
  });

  it('takes one IPv4 subnet, and with --ipv6 one IPv6 subnet too', () => {
    const v4 = { addressSpace: '', pool: '10.77.0.0/24', gateway: '10.77.0.1/24', auxAddresses: {} };
    const v6 = { addressSpace: '', pool: 'fd00:77::/64', gateway: 'fd00:77::1/64', auxAddresses: {} };
    const req = { networkId: 'abcdef0123456789', options: {}, enableIpv6: false, internal: false, ipv4: [v4], ipv6: [] };
    expect(overlaySubnets(req)).toEqual({ subnet: '10.77.0.0/24', subnet6: '' });
    expect(overlaySubnets({ ...req, enableIpv6: true, ipv6: [v6] })).toEqual({ subnet: '10.77.0.0/24', subnet6: 'fd00:77::/64' });
    // an IPv6 pool Docker sends without --ipv6 is not the overlay's
    expect(overlaySubnets({ ...req, ipv6: [v6] }).subnet6).toBe('');
    expect(() => overlaySubnets({ ...req, enableIpv6: true })).toThrow('--ipv6 needs an IPv6 subnet');
    expect(() => overlaySubnets({ ...req, enableIpv6: true, ipv6: [v6, { ...v6, pool: 'fd00:78::/64' }] })).toThrow('takes one IPv6 subnet');
    expect(() => overlaySubnets({ ...req, ipv4: [] })).toThrow('needs an IPv4 subnet');
  });
});
