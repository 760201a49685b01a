import { describe, expect, it } from 'vitest';
import { type CreateNetworkRequest } from '../driver.js';
import { derivedBridgeName, endpointLinkNames, planEndpoint, planNetwork } from './plan.js';
import { macFromIPv4 } from '../options.js';
import { parseBridgeOptions } from './options.js';
import { UserError } from '../../core/errors.js';

const NET_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';

function request(over: Partial<CreateNetworkRequest> = {}): CreateNetworkRequest {
  return {
    networkId: NET_ID,
    options: {},
    enableIpv6: false,
    internal: false,
    ipv4: [{ addressSpace: 'local', pool: '10.231.0.0/24', gateway: '10.231.0.1/24', auxAddresses: {} }],
    ipv6: [],
    ...over,
  };
}

describe('bridge options', () => {
  it('takes Docker defaults when no option is given', () => {
    expect(parseBridgeOptions({})).toEqual({ mtu: 1500, icc: true, masquerade: true, hostBindingIpv4: '', ifacePrefix: 'eth', antiSpoofing: true });
  });

  it("accepts Docker's option keys as they are", () => {
    const o = parseBridgeOptions({
      'com.docker.network.bridge.name': 'br-web',
      'com.docker.network.driver.mtu': '1400',
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.enable_ip_masquerade': 'false',
      'com.docker.network.bridge.host_binding_ipv4': '127.0.0.1',
      type: 'bridge',
    });
    expect(o).toMatchObject({ bridgeName: 'br-web', mtu: 1400, icc: false, masquerade: false, hostBindingIpv4: '127.0.0.1' });
  });

  it('refuses unknown options and lists the accepted ones', () => {
    expect(() => parseBridgeOptions({ foo: 'bar' })).toThrow(UserError);
    expect(() => parseBridgeOptions({ foo: 'bar' })).toThrow(/unknown option 'foo'.*accepted: type, com\.docker\.network\.bridge\.name/);
  });

  it.each([
    ['com.docker.network.driver.mtu', 'big', /whole number/],
    ['com.docker.network.driver.mtu', '20', /68 to 65535/],
    ['com.docker.network.bridge.enable_icc', 'maybe', /true or false/],
    ['com.docker.network.bridge.host_binding_ipv4', '::1', /IPv4 address/],
    ['com.docker.network.bridge.name', 'this-name-is-way-too-long', /not a valid interface name/],
    ['com.docker.network.bridge.name', 'a/b', /not a valid interface name/],
    // the firewall cannot write it into a rule: refused here, before the bridge is made
    ['com.docker.network.bridge.name', '_br0', /not a valid interface name \(1-15 characters: letters, digits, '_', '.', '-', starting with a letter or digit\)/],
  ])('refuses %s=%s', (key, value, message) => {
    expect(() => parseBridgeOptions({ [key]: value })).toThrow(message);
  });

  it('reads 0.0.0.0 as every host address', () => {
    expect(parseBridgeOptions({ 'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0' }).hostBindingIpv4).toBe('');
  });
});

describe('bridge network plan', () => {
  it('derives a bridge name within the 15-character limit', () => {
    expect(derivedBridgeName(NET_ID)).toBe('tsnet-a1b2c3d4e');
    expect(derivedBridgeName(NET_ID).length).toBeLessThanOrEqual(15);
  });

  it('puts the gateway on the bridge and keeps the subnets', () => {
    const p = planNetwork(request());
    expect(p).toMatchObject({ bridge: 'tsnet-a1b2c3d4e', derivedName: true, gatewayAddresses: ['10.231.0.1/24'], subnets: ['10.231.0.0/24'], masquerade: true });
  });

  it('turns masquerade off for internal networks', () => {
    expect(planNetwork(request({ internal: true })).masquerade).toBe(false);
  });

  it('adds the IPv6 gateway when --ipv6 is on', () => {
    const p = planNetwork(
      request({ enableIpv6: true, ipv6: [{ addressSpace: 'local', pool: 'fd00:1::/64', gateway: 'fd00:1::1/64', auxAddresses: {} }] }),
    );
    expect(p.gatewayAddresses).toEqual(['10.231.0.1/24', 'fd00:1::1/64']);
    expect(p.subnets).toEqual(['10.231.0.0/24', 'fd00:1::/64']);
  });

  it('refuses a network without IPv4 pool, without gateway, or --ipv6 without an IPv6 pool', () => {
    expect(() => planNetwork(request({ ipv4: [] }))).toThrow(/needs an IPv4 subnet/);
    expect(() => planNetwork(request({ ipv4: [{ addressSpace: 'null', pool: '0.0.0.0/0', auxAddresses: {} }] }))).toThrow(/needs an IPv4 subnet/);
    expect(() => planNetwork(request({ ipv4: [{ addressSpace: 'l', pool: '10.1.0.0/24', auxAddresses: {} }] }))).toThrow(/no gateway/);
    expect(() => planNetwork(request({ enableIpv6: true }))).toThrow(/needs an IPv6 subnet/);
  });
});

describe('bridge endpoint plan', () => {
  const ep = { networkId: NET_ID, endpointId: 'feedbeefcafe0123456789', address: '10.231.0.5/24', addressIpv6: '', macAddress: '', options: { portBindings: [], exposedPorts: [], other: {} } };

  it("chooses Docker's 02:42 MAC from the IPv4 address when Docker gives none", () => {
    expect(macFromIPv4('10.231.0.5/24')).toBe('02:42:0a:e7:00:05');
    expect(planEndpoint(ep)).toEqual({ config: endpointLinkNames(ep.endpointId), mac: '02:42:0a:e7:00:05', macChosen: true });
  });

  it("keeps Docker's MAC when it gives one", () => {
    expect(planEndpoint({ ...ep, macAddress: '02:00:00:00:00:01' })).toMatchObject({ mac: '02:00:00:00:00:01', macChosen: false });
  });

  it('names both veth ends within 15 characters', () => {
    const n = endpointLinkNames(ep.endpointId);
    expect(n).toEqual({ hostIf: 'tsvfeedbeefcafe', containerIf: 'tscfeedbeefcafe' });
  });

  it('refuses an endpoint without an IPv4 address', () => {
    expect(() => planEndpoint({ ...ep, address: '' })).toThrow(/needs an IPv4 address/);
  });
});
