import { describe, expect, it } from 'vitest';
import { AF_BRIDGE, IFF_UP, IFLA, IFLA_BRPORT, IFLA_INFO, IFLA_VLAN, MACVLAN_MODE } from './constants.js';
import { decodeAttrList, linkMessage } from './codec.js';
import { bridgePortRequest, changeLinkRequest, checkLinkName, createLinkRequest, type LinkSpec } from './links.js';

const indexes: Record<string, number> = { eth0: 2, br0: 3, uplink: 7 };
const resolve = (name: string): number => {
  if (!(name in indexes)) throw new Error(`no link named ${name}`);
  return indexes[name];
};

/** What the kernel would read: encode, then decode the bytes. */
const onTheWire = (spec: LinkSpec) => linkMessage.decode(linkMessage.encode(createLinkRequest(spec, resolve)));

describe('link specs to RTM_NEWLINK', () => {
  it('bridge: name, mtu, mac; the alias is left to a second step (the kernel ignores it on creation)', () => {
    const { attrs } = onTheWire({ kind: 'bridge', name: 'br-x', mtu: 1450, mac: '02:42:0a:00:00:01', alias: 'tsnet:abc' });
    expect(attrs).toEqual({ ifname: 'br-x', mtu: 1450, address: '02:42:0a:00:00:01', linkinfo: { kind: 'bridge' } });
  });

  it('veth: the peer is a whole link message inside IFLA_INFO_DATA, with its own namespace fd', () => {
    const { attrs } = onTheWire({ kind: 'veth', name: 'vh1', peerName: 'eth0x', mtu: 1400, mac: '02:00:00:00:00:01', peerMac: '02:00:00:00:00:02', peerNetnsFd: 9 });
    expect(attrs.ifname).toBe('vh1');
    expect(attrs.address).toBe('02:00:00:00:00:01');
    expect(attrs.netnsFd).toBeUndefined();
    expect(attrs.linkinfo?.kind).toBe('veth');
    const peer = attrs.linkinfo?.kind === 'veth' ? attrs.linkinfo.data?.peer : undefined;
    expect(peer?.attrs).toEqual({ ifname: 'eth0x', address: '02:00:00:00:00:02', mtu: 1400, netnsFd: 9 });
  });

  it('vxlan: vni, local address, IANA port by default, learning, parent index', () => {
    expect(onTheWire({ kind: 'vxlan', name: 'vx1', vni: 4096, local: '198.51.100.1', learning: false, parent: 'eth0' }).attrs.linkinfo).toEqual({
      kind: 'vxlan',
      data: { id: 4096, local: '198.51.100.1', port: 4789, learning: false, link: 2 },
    });
    expect(onTheWire({ kind: 'vxlan', name: 'vx1', vni: 1, local: 'fd00::1', port: 8472 }).attrs.linkinfo).toEqual({
      kind: 'vxlan',
      data: { id: 1, local6: 'fd00::1', port: 8472 },
    });
  });

  it('vxlan: proxy ARP flag', () => {
    expect(onTheWire({ kind: 'vxlan', name: 'vx1', vni: 7, proxy: true, learning: false }).attrs.linkinfo).toEqual({
      kind: 'vxlan',
      data: { id: 7, port: 4789, learning: false, proxy: true },
    });
  });

  it('vxlan: the port goes in network byte order', () => {
    const bytes = linkMessage.encode(createLinkRequest({ kind: 'vxlan', name: 'vx1', vni: 1 }, resolve));
    expect(bytes.includes(Buffer.from([6, 0, 15, 0, 0x12, 0xb5]))).toBe(true); // IFLA_VXLAN_PORT 4789
  });

  it.each(['bridge', 'private', 'vepa', 'passthru'] as const)('macvlan in %s mode on its parent', (mode) => {
    const { attrs } = onTheWire({ kind: 'macvlan', name: 'mv1', parent: 'uplink', mode, netnsFd: 12 });
    expect(attrs).toMatchObject({ ifname: 'mv1', link: 7, netnsFd: 12, linkinfo: { kind: 'macvlan', data: { mode: MACVLAN_MODE[mode] } } });
  });

  it('vlan: parent in IFLA_LINK, id in IFLA_VLAN_ID (u16), bytes as the 8021q module reads them', () => {
    const msg = createLinkRequest({ kind: 'vlan', name: 'eth0.20', parent: 'eth0', vlanId: 20, mtu: 1496 }, resolve);
    expect(msg.attrs).toMatchObject({ ifname: 'eth0.20', link: 2, mtu: 1496, linkinfo: { kind: 'vlan', data: { id: 20 } } });
    const attrs = decodeAttrList(linkMessage.encode(msg).subarray(16));
    const linkinfo = attrs.find((a) => a.type === IFLA.LINKINFO)!;
    expect(linkinfo.nested).toBe(true);
    const [kind, data] = decodeAttrList(linkinfo.value);
    expect([kind.type, kind.value.toString()]).toEqual([IFLA_INFO.KIND, 'vlan\0']);
    expect([data.type, data.nested]).toEqual([IFLA_INFO.DATA, true]);
    expect(decodeAttrList(data.value)).toEqual([{ type: IFLA_VLAN.ID, nested: false, value: Buffer.from([20, 0]) }]);
  });

  it('vlan: refuses ids outside 1-4094', () => {
    expect(() => createLinkRequest({ kind: 'vlan', name: 'v', parent: 'eth0', vlanId: 4095 }, resolve)).toThrow(/out of range/);
    expect(() => createLinkRequest({ kind: 'vlan', name: 'v', parent: 'eth0', vlanId: 0 }, resolve)).toThrow(/out of range/);
  });

  it('passes parent lookup failures through', () => {
    expect(() => createLinkRequest({ kind: 'macvlan', name: 'mv1', parent: 'nope', mode: 'bridge' }, resolve)).toThrow(/no link named nope/);
  });
});

describe('link names', () => {
  it.each(['eth0', 'tsnet-0123456a', 'br.20', 'a'])('accepts %s', (n) => expect(() => checkLinkName(n)).not.toThrow());
  it.each(['', 'sixteen-chars-xx', '.', '..', 'a/b', 'a:b', 'a b'])('refuses %j', (n) => expect(() => checkLinkName(n)).toThrow(/invalid link name/));
});

describe('link changes', () => {
  it('sets and clears IFF_UP through flags and change mask', () => {
    expect(changeLinkRequest(5, { up: true }, resolve).header).toEqual({ family: 0, index: 5, flags: IFF_UP, change: IFF_UP });
    expect(changeLinkRequest(5, { up: false }, resolve).header).toEqual({ family: 0, index: 5, flags: 0, change: IFF_UP });
    expect(changeLinkRequest(5, { mtu: 1400 }, resolve).header).toEqual({ family: 0, index: 5 });
  });

  it('enslaves by index, releases with master 0', () => {
    expect(changeLinkRequest(5, { master: 'br0' }, resolve).attrs.master).toBe(3);
    expect(changeLinkRequest(5, { master: null }, resolve).attrs.master).toBe(0);
    expect(changeLinkRequest(5, {}, resolve).attrs.master).toBeUndefined();
  });

  it('renames, moves to a namespace, sets mac and alias', () => {
    const m = changeLinkRequest(5, { name: 'eth1', netnsFd: 3, mac: '02:00:00:00:00:09', alias: '' }, resolve);
    expect(linkMessage.decode(linkMessage.encode(m)).attrs).toEqual({ ifname: 'eth1', netnsFd: 3, address: '02:00:00:00:00:09', ifalias: '' });
    expect(() => changeLinkRequest(5, { name: 'x'.repeat(16) }, resolve)).toThrow(/invalid link name/);
  });

  it('bridge port options: AF_BRIDGE, nested IFLA_PROTINFO of u8 flags', () => {
    const msg = bridgePortRequest(5, { isolated: true, hairpin: false });
    expect(msg.header).toEqual({ family: AF_BRIDGE, index: 5 });
    const [protinfo] = decodeAttrList(linkMessage.encode(msg).subarray(16));
    expect(protinfo.type).toBe(IFLA.PROTINFO);
    expect(protinfo.nested).toBe(true);
    expect(decodeAttrList(protinfo.value).map((a) => [a.type, [...a.value]])).toEqual([
      [IFLA_BRPORT.MODE, [0]],
      [IFLA_BRPORT.ISOLATED, [1]],
    ]);
  });

  it("bridge port learning off (the overlay's VXLAN port): IFLA_BRPORT_LEARNING = 0, only when given", () => {
    const flags = (settings: Parameters<typeof bridgePortRequest>[1]) => {
      const [protinfo] = decodeAttrList(linkMessage.encode(bridgePortRequest(5, settings)).subarray(16));
      return decodeAttrList(protinfo.value).map((a) => [a.type, [...a.value]]);
    };
    expect(IFLA_BRPORT.LEARNING).toBe(8);
    expect(flags({ learning: false })).toEqual([[IFLA_BRPORT.LEARNING, [0]]]);
    expect(flags({ learning: true, isolated: false })).toEqual([
      [IFLA_BRPORT.LEARNING, [1]],
      [IFLA_BRPORT.ISOLATED, [0]],
    ]);
    expect(linkMessage.decode(linkMessage.encode(bridgePortRequest(5, { learning: false }))).attrs.protinfo).toEqual({ learning: false });
  });
});
