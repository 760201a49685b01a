import { describe, expect, it } from 'vitest';
import type { CreateNetworkRequest } from '../driver.js';
import { parseVlanParent, planMacvlanEndpoint, planMacvlanNetwork, shimAddress } from './plan.js';

const ID = 'c0ffee0123456789'.repeat(4);
const req = (options: Record<string, string>, over: Partial<CreateNetworkRequest> = {}): CreateNetworkRequest => ({
  networkId: ID,
  options,
  enableIpv6: false,
  internal: false,
  ipv4: [{ addressSpace: 'local', pool: '10.236.0.0/24', gateway: '10.236.0.1/24', auxAddresses: { printer: '10.236.0.200/24' } }],
  ipv6: [],
  ...over,
});

describe('macvlan network plan', () => {
  it("defaults to bridge mode on an existing parent, with the LAN's gateway", () => {
    expect(planMacvlanNetwork(req({ parent: 'eth1' }))).toMatchObject({
      parent: 'eth1',
      parentPlan: { kind: 'existing', name: 'eth1' },
      mode: 'bridge',
      internal: false,
      gateway: '10.236.0.1',
      subnets: ['10.236.0.0/24'],
    });
  });

  it('plans an 802.1Q sub-interface for parent=eth1.20', () => {
    expect(parseVlanParent('eth1.20')).toEqual({ base: 'eth1', vlanId: 20 });
    expect(parseVlanParent('eth1')).toBeUndefined();
    expect(() => parseVlanParent('eth1.4095')).toThrow(/1 to 4094/);
    expect(planMacvlanNetwork(req({ parent: 'eth1.20' })).parentPlan).toEqual({ kind: 'vlan', name: 'eth1.20', base: 'eth1', vlanId: 20 });
  });

  it('makes a network without parent internal, on a tsnet-owned bridge', () => {
    const p = planMacvlanNetwork(req({}));
    expect(p.parentPlan).toEqual({ kind: 'isolated', name: 'tsmb-c0ffee0123' });
    expect(p.internal).toBe(true);
  });

  it("gives the host's shim the subnet's last usable address", () => {
    expect(planMacvlanNetwork(req({ parent: 'eth1', host_access: 'true' })).shim).toEqual({ name: 'tsmh-c0ffee0123', address: '10.236.0.254/32', subnets: ['10.236.0.0/24'] });
    expect(() => shimAddress('10.236.0.0/24', ['10.236.0.254'])).toThrow(/taken by the gateway or an aux address/);
  });

  it.each([
    [{ parent: 'eth1', macvlan_mode: 'loud' }, /macvlan_mode must be one of bridge, private, vepa, passthru/],
    [{ parent: 'eth1', host_access: 'yes please' }, /true or false/],
    [{ host_access: 'true' }, /host_access needs a parent/],
    [{ parent: 'eth1', host_access: 'true', macvlan_mode: 'private' }, /host_access needs macvlan_mode=bridge/],
    [{ parent: 'eth1', 'com.docker.network.bridge.name': 'x' }, /unknown option 'com.docker.network.bridge.name'.*accepted: type, parent, macvlan_mode/],
    [{ parent: 'no/slash' }, /not a valid interface name/],
  ])('refuses %o', (options, message) => {
    expect(() => planMacvlanNetwork(req(options))).toThrow(message);
  });

  it('names sub-interfaces within 15 characters and picks the 02:42 MAC', () => {
    const e = planMacvlanEndpoint({ networkId: ID, endpointId: 'feedbeefcafe0123', address: '10.236.0.5/24', addressIpv6: '', macAddress: '', options: { portBindings: [], exposedPorts: [], other: {} } });
    expect(e).toEqual({ config: { link: 'tsmfeedbeefcafe' }, mac: '02:42:0a:ec:00:05', macChosen: true });
  });
});
