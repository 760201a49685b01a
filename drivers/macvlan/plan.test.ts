import { describe, expect, it } from 'vitest';
import type { CreateEndpointRequest, CreateNetworkRequest } from '../driver.js';
import {
  decideParent,
  parentToRemove,
  parseVlanParent,
  planMacvlanEndpoint,
  planMacvlanNetwork,
  sameAddressHolders,
  shimAddress,
  vlanUnsupportedError,
  type MacvlanNetworkConfig,
  type MacvlanNetworkState,
  type ParentFacts,
} from './plan.js';
import type { IpamData } from '../../core/protocol.js';

const ID = 'c0ffee0123456789'.repeat(4);
const pool = (over: Partial<IpamData> = {}): IpamData => ({
  addressSpace: 'local',
  pool: '10.236.0.0/24',
  gateway: '10.236.0.1/24',
  auxAddresses: { printer: '10.236.0.200/24' },
  ...over,
});
const req = (options: Record<string, string>, over: Partial<CreateNetworkRequest> = {}): CreateNetworkRequest => ({
  networkId: ID,
  options,
  enableIpv6: false,
  internal: false,
  ipv4: [pool()],
  ipv6: [],
  ...over,
});
const epReq = (over: Partial<CreateEndpointRequest> = {}): CreateEndpointRequest => ({
  networkId: ID,
  endpointId: 'feedbeefcafe0123'.repeat(4),
  address: '10.236.0.5/24',
  addressIpv6: '',
  macAddress: '',
  options: { portBindings: [], exposedPorts: [], other: {} },
  ...over,
});
const up = (name: string, mtu = 1500) => ({ name, up: true, mtu });
const state = (c: MacvlanNetworkConfig, createdParent: boolean): MacvlanNetworkState => ({ ...c, createdParent });

describe('macvlan network plan', () => {
  it("defaults to bridge mode on an existing parent, with the LAN's gateway", () => {
    expect(planMacvlanNetwork(req({ parent: 'eth1' }))).toEqual({
      parent: 'eth1',
      parentPlan: { kind: 'existing', name: 'eth1' },
      mode: 'bridge',
      mtu: undefined,
      internal: false,
      shim: undefined,
      gateway: '10.236.0.1',
      gatewayIpv6: '',
      subnets: ['10.236.0.0/24'],
    });
  });

  it('plans an 802.1Q sub-interface for parent=eth1.20', () => {
    expect(parseVlanParent('eth1.20')).toEqual({ base: 'eth1', vlanId: 20 });
    expect(parseVlanParent('br.lan.4094')).toEqual({ base: 'br.lan', vlanId: 4094 });
    expect(parseVlanParent('eth1')).toBeUndefined();
    expect(() => parseVlanParent('eth1.4095')).toThrow(/VLAN ID 4095 in parent 'eth1.4095' must be from 1 to 4094/);
    expect(() => parseVlanParent('eth1.0')).toThrow(/1 to 4094/);
    expect(planMacvlanNetwork(req({ parent: 'eth1.20' })).parentPlan).toEqual({ kind: 'vlan', name: 'eth1.20', base: 'eth1', vlanId: 20 });
  });

  it('makes a network without parent, or --internal, internal-only on a tsnet-owned bridge', () => {
    for (const r of [req({}), req({ parent: 'eth1' }, { internal: true })]) {
      const p = planMacvlanNetwork(r);
      expect(p.parentPlan).toEqual({ kind: 'isolated', name: 'tsmb-c0ffee0123' });
      expect(p.parent).toBe('tsmb-c0ffee0123');
      expect(p.internal).toBe(true);
    }
  });

  it('keeps IPv6 subnets only when IPv6 is on', () => {
    const v6 = [{ addressSpace: 'local', pool: 'fd00:236::/64', gateway: 'fd00:236::1/64', auxAddresses: {} }];
    expect(planMacvlanNetwork(req({ parent: 'eth1' }, { ipv6: v6 })).subnets).toEqual(['10.236.0.0/24']);
    expect(planMacvlanNetwork(req({ parent: 'eth1' }, { ipv6: v6, enableIpv6: true }))).toMatchObject({ subnets: ['10.236.0.0/24', 'fd00:236::/64'], gatewayIpv6: 'fd00:236::1' });
  });

  it.each([
    [{ parent: 'eth1', macvlan_mode: 'loud' }, {}, /macvlan_mode must be one of bridge, private, vepa, passthru/],
    [{ host_access: 'true' }, {}, /host_access needs a parent/],
    [{ parent: 'eth1', host_access: 'true' }, { internal: true }, /host_access needs a parent: a network without one \(or --internal\)/],
    [{ parent: 'eth1', host_access: 'true', macvlan_mode: 'private' }, {}, /host_access needs macvlan_mode=bridge/],
    [{ parent: 'eth1', 'com.docker.network.bridge.name': 'x' }, {}, /unknown option 'com.docker.network.bridge.name'.*accepted: type, parent, macvlan_mode/],
    [{ parent: 'eth1' }, { ipv4: [] }, /needs an IPv4 subnet: give --subnet/],
  ])('refuses %o %o', (options, over, message) => {
    expect(() => planMacvlanNetwork(req(options, over))).toThrow(message);
  });
});

describe('host-access shim', () => {
  it("takes the subnet's last usable address, as a /32", () => {
    expect(planMacvlanNetwork(req({ parent: 'eth1', host_access: 'true' })).shim).toEqual({ name: 'tsmh-c0ffee0123', address: '10.236.0.254/32' });
    expect(shimAddress(pool({ pool: '10.236.8.0/22', gateway: undefined }), '')).toBe('10.236.11.254/32');
    expect(shimAddress(pool({ pool: '10.236.0.0/30', gateway: '10.236.0.1/30', auxAddresses: {} }), '10.236.0.1')).toBe('10.236.0.2/32');
  });

  it('takes the aux address named host_access when the user reserved one', () => {
    expect(shimAddress(pool({ auxAddresses: { host_access: '10.236.0.250/24', printer: '10.236.0.254/24' } }), '10.236.0.1')).toBe('10.236.0.250/32');
    expect(() => shimAddress(pool({ auxAddresses: { host_access: '10.236.0.1/24' } }), '10.236.0.1')).toThrow(/aux address host_access=10.236.0.1 is the gateway/);
  });

  it('refuses an address that is the gateway, an aux address, or not there', () => {
    expect(() => shimAddress(pool({ gateway: '10.236.0.254/24' }), '10.236.0.254')).toThrow(
      'host_access gives the host the last usable address of 10.236.0.0/24, 10.236.0.254, but that is the gateway: choose the host\'s address with --aux-address host_access=IP',
    );
    expect(() => shimAddress(pool({ auxAddresses: { router: '10.236.0.254/24' } }), '10.236.0.1')).toThrow(/10.236.0.254, but that is aux address router/);
    expect(() => shimAddress(pool({ pool: '10.236.0.0/31', auxAddresses: {} }), '')).toThrow(/has none to spare: use a larger --subnet/);
  });
});

describe('parent link decisions', () => {
  const plan = (options: Record<string, string>) => planMacvlanNetwork(req(options));
  const facts = (over: Partial<ParentFacts> = {}): ParentFacts => ({ others: [], ...over });
  const other = (id: string, options: Record<string, string>, createdParent = false) => ({
    id: id.repeat(12),
    config: state(planMacvlanNetwork(req(options, { networkId: id.repeat(12) })), createdParent),
  });

  it("uses the user's parent as it is and never owns it", () => {
    expect(decideParent(plan({ parent: 'eth1' }), facts({ link: up('eth1') }))).toEqual({ create: false, owned: false });
  });

  it('creates a missing VLAN link on its base and owns it', () => {
    expect(decideParent(plan({ parent: 'eth1.20' }), facts({ base: up('eth1') }))).toEqual({ create: true, owned: true });
  });

  it("shares a VLAN link tsnet made for another network, and leaves a user's VLAN link alone", () => {
    const vlanNet = other('a', { parent: 'eth1.20' }, true);
    expect(decideParent(plan({ parent: 'eth1.20' }), facts({ link: up('eth1.20'), others: [vlanNet] }))).toEqual({ create: false, owned: true });
    const usersVlan = other('a', { parent: 'eth1.20' }, false);
    expect(decideParent(plan({ parent: 'eth1.20' }), facts({ link: up('eth1.20'), others: [usersVlan] }))).toEqual({ create: false, owned: false });
    expect(decideParent(plan({ parent: 'eth1.20' }), facts({ link: up('eth1.20') }))).toEqual({ create: false, owned: false });
  });

  it('creates the isolated bridge of a network without parent', () => {
    expect(decideParent(plan({}), facts())).toEqual({ create: true, owned: true });
    expect(() => decideParent(plan({}), facts({ link: up('tsmb-c0ffee0123') }))).toThrow(/interface tsmb-c0ffee0123 already exists/);
  });

  it.each([
    ['a missing parent', { parent: 'eth9' }, facts(), 'parent interface eth9 does not exist on this host: give an existing link with -o parent=NAME'],
    ['a missing VLAN base', { parent: 'eth9.20' }, facts(), 'parent interface eth9 (for VLAN eth9.20) does not exist'],
    ['a parent that is down', { parent: 'eth1' }, facts({ link: { name: 'eth1', up: false, mtu: 1500 } }), 'parent interface eth1 is down: bring it up (ip link set eth1 up)'],
    ['a VLAN base that is down', { parent: 'eth1.20' }, facts({ base: { name: 'eth1', up: false, mtu: 1500 } }), 'parent interface eth1 is down'],
    ['an MTU above the parent', { parent: 'eth1', 'com.docker.network.driver.mtu': '9000' }, facts({ link: up('eth1', 1500) }), 'MTU 9000 is above the MTU 1500 of parent eth1'],
    ['passthru on a shared parent', { parent: 'eth1', macvlan_mode: 'passthru' }, facts({ link: up('eth1'), others: [other('b', { parent: 'eth1' })] }), 'parent eth1 already carries tsnet macvlan network bbbbbbbbbbbb: passthru mode needs the parent to itself'],
    ['sharing a passthru parent', { parent: 'eth1' }, facts({ link: up('eth1'), others: [other('b', { parent: 'eth1', macvlan_mode: 'passthru' })] }), 'parent eth1 is used in passthru mode by tsnet network bbbbbbbbbbbb'],
  ])('refuses %s', (_what, options, f, message) => {
    expect(() => decideParent(plan(options), f)).toThrow(message);
  });

  it('allows an MTU up to the parent and networks side by side in the other modes', () => {
    expect(decideParent(plan({ parent: 'eth1', 'com.docker.network.driver.mtu': '9000' }), facts({ link: up('eth1', 9000) })).create).toBe(false);
    expect(decideParent(plan({ parent: 'eth1', macvlan_mode: 'private' }), facts({ link: up('eth1'), others: [other('b', { parent: 'eth1' })] })).owned).toBe(false);
  });

  it('removes an owned parent with the last network on it, never a user parent', () => {
    const a = other('a', { parent: 'eth1.20' }, true);
    const b = other('b', { parent: 'eth1.20' }, true);
    expect(parentToRemove(a, [a, b])).toBeUndefined();
    expect(parentToRemove(b, [b])).toBe('eth1.20');
    const user = other('c', { parent: 'eth1' }, false);
    expect(parentToRemove(user, [user])).toBeUndefined();
    const isolated = other('d', {}, true);
    expect(parentToRemove(isolated, [a, isolated])).toBe('tsmb-dddddddddd');
  });

  it('names the missing 8021q module and the way around it', () => {
    const p = planMacvlanNetwork(req({ parent: 'eth1.20' })).parentPlan;
    if (p.kind !== 'vlan') throw new Error('not a VLAN plan');
    expect(vlanUnsupportedError(p).message).toBe(
      'cannot create VLAN parent eth1.20: this kernel has no 802.1Q VLAN support (module 8021q). ' +
        'Load it (modprobe 8021q) where the kernel has it, or use an existing parent such as -o parent=eth1 or a VLAN link made beforehand',
    );
  });

  it("refuses a parent that is a tsnet link or one of Docker's bridges: containers would sit on that bridge unfiltered", () => {
    const tsnetBridge = { ...up('tsnet-012345678'), kind: 'bridge', alias: 'tsnet:0123456789ab' };
    expect(() => decideParent(plan({ parent: 'tsnet-012345678' }), facts({ link: tsnetBridge }))).toThrow(
      "parent tsnet-012345678 is tsnet's own link (tsnet:0123456789ab): give the host's LAN interface, e.g. -o parent=eth1",
    );
    const otherDaemons = { ...up('tsve2e0123456'), kind: 'veth', alias: 'tsnet-e2e:0123456789ab' };
    expect(() => decideParent(plan({ parent: 'tsve2e0123456' }), facts({ link: otherDaemons }))).toThrow(/is tsnet's own link/);
    for (const name of ['docker0', 'br-0123456789ab']) {
      expect(() => decideParent(plan({ parent: name }), facts({ link: { ...up(name), kind: 'bridge' } }))).toThrow(
        `parent ${name} is a bridge of Docker's: give the host's LAN interface, e.g. -o parent=eth1`,
      );
    }
    // a bridge of the user's (eth0 enslaved to br0, as many hosts do) stays a fine parent
    expect(decideParent(plan({ parent: 'br0' }), facts({ link: { ...up('br0'), kind: 'bridge' } }))).toEqual({ create: false, owned: false });
    expect(decideParent(plan({ parent: 'eth1' }), facts({ link: { ...up('eth1'), alias: 'uplink: lab' } }))).toEqual({ create: false, owned: false });
  });
});

describe('macvlan endpoint plan', () => {
  const net = (options: Record<string, string>) => planMacvlanNetwork(req(options));
  const ctx = { parentMac: '', endpointsOnNetwork: 0 };

  it('names sub-interfaces within 15 characters and picks the 02:42 MAC', () => {
    const e = planMacvlanEndpoint(epReq(), net({ parent: 'eth1' }), ctx);
    expect(e).toEqual({ config: { link: 'tsmfeedbeefcafe' }, linkMac: '02:42:0a:ec:00:05', mac: '02:42:0a:ec:00:05', replyMac: '02:42:0a:ec:00:05' });
    expect(e.config.link.length).toBeLessThanOrEqual(15);
  });

  it("keeps Docker's MAC and does not echo it back", () => {
    expect(planMacvlanEndpoint(epReq({ macAddress: '02:00:00:00:00:07' }), net({ parent: 'eth1' }), ctx)).toMatchObject({ linkMac: '02:00:00:00:00:07', replyMac: undefined });
  });

  it("routes the container's address through the shim, and refuses the shim's own address", () => {
    expect(planMacvlanEndpoint(epReq(), net({ parent: 'eth1', host_access: 'true' }), ctx).config).toEqual({ link: 'tsmfeedbeefcafe', hostRoute: '10.236.0.5/32' });
    expect(() => planMacvlanEndpoint(epReq({ address: '10.236.0.254/24' }), net({ parent: 'eth1', host_access: 'true' }), ctx)).toThrow(
      /10.236.0.254 is the host's address on this network \(host_access\).*--aux-address host_access=10.236.0.254/,
    );
  });

  it("gives a passthru container the parent's MAC, and the parent to one container only", () => {
    const pt = net({ parent: 'eth1', macvlan_mode: 'passthru' });
    const parentMac = '52:54:00:AA:BB:CC';
    expect(planMacvlanEndpoint(epReq(), pt, { parentMac, endpointsOnNetwork: 0 })).toEqual({ config: { link: 'tsmfeedbeefcafe' }, mac: '52:54:00:aa:bb:cc', replyMac: '52:54:00:aa:bb:cc' });
    expect(() => planMacvlanEndpoint(epReq({ macAddress: '02:00:00:00:00:07' }), pt, { parentMac, endpointsOnNetwork: 0 })).toThrow(/would change the parent's own MAC/);
    expect(() => planMacvlanEndpoint(epReq(), pt, { parentMac, endpointsOnNetwork: 1 })).toThrow(/passthru mode gives the parent eth1 to a single container/);
  });

  it('needs an IPv4 address', () => {
    expect(() => planMacvlanEndpoint(epReq({ address: '' }), net({ parent: 'eth1' }), ctx)).toThrow(/needs an IPv4 address/);
  });
});

describe('endpoints still holding an address given to a new one', () => {
  const eps = [
    { id: 'old', address: '10.236.1.2/24' },
    { id: 'live', address: '10.236.1.3/24' },
    { id: 'v6only', address: '' },
  ];
  it('names the holders of the same IPv4 address, never the new endpoint itself, nothing without an address', () => {
    expect(sameAddressHolders(eps, 'new', '10.236.1.2/24').map((e) => e.id)).toEqual(['old']);
    expect(sameAddressHolders(eps, 'new', '10.236.1.2').map((e) => e.id)).toEqual(['old']);
    expect(sameAddressHolders(eps, 'old', '10.236.1.2/24')).toEqual([]);
    expect(sameAddressHolders(eps, 'new', '10.236.1.9/24')).toEqual([]);
    expect(sameAddressHolders(eps, 'new', '')).toEqual([]);
  });
});
