// Addresses, routes, neighbours and FDB entries: what each request puts on the wire.
import { describe, expect, it } from 'vitest';
import { AF_BRIDGE, AF_INET, AF_INET6, IFA_F, NTF, NUD, RT_SCOPE, RTNH_F_ONLINK, RTPROT_STATIC } from './constants.js';
import { addrMessage, neighMessage, routeMessage } from './codec.js';
import { addressRequest } from './addresses.js';
import { routeRequest } from './routes.js';
import { fdbRequest, neighbourRequest, nudNames } from './neighbours.js';

const resolve = (name: string) => ({ br0: 3, eth0: 2 })[name] ?? -1;

describe('addresses', () => {
  it('IPv4: local and address, broadcast as `brd +`', () => {
    expect(addressRequest(3, '10.88.0.1/24')).toEqual({
      header: { family: AF_INET, prefixlen: 24, index: 3, scope: RT_SCOPE.universe, flags: 0 },
      attrs: { local: '10.88.0.1', address: '10.88.0.1', broadcast: '10.88.0.255', flags: undefined },
    });
    expect(addressRequest(3, '10.88.0.1/31').attrs.broadcast).toBeUndefined();
    expect(addressRequest(1, '127.0.0.2/8').header.scope).toBe(RT_SCOPE.host);
  });

  it('IPv6: canonical text, flags above 8 bits only in IFA_FLAGS', () => {
    const m = addressRequest(3, 'FD88:0::1/64', { noPrefixRoute: true, nodad: true });
    expect(m.header).toMatchObject({ family: AF_INET6, prefixlen: 64, flags: IFA_F.NODAD });
    expect(m.attrs).toEqual({ local: 'fd88::1', address: 'fd88::1', broadcast: undefined, flags: IFA_F.NOPREFIXROUTE | IFA_F.NODAD });
    const back = addrMessage.decode(addrMessage.encode(m));
    expect(back.attrs.flags).toBe(0x202);
  });
});

describe('routes', () => {
  it('a gateway route: universe scope, static protocol, main table', () => {
    const m = routeRequest({ dst: '10.99.0.0/16', gateway: '10.88.0.254', metric: 100 }, resolve);
    expect(m.header).toEqual({ family: AF_INET, dstLen: 16, table: 254, protocol: RTPROT_STATIC, scope: RT_SCOPE.universe, type: 1, flags: 0 });
    expect(m.attrs).toEqual({ dst: '10.99.0.0', gateway: '10.88.0.254', oif: undefined, prefsrc: undefined, priority: 100, table: 254 });
  });

  it('a device route gets link scope; onlink and src are passed', () => {
    const m = routeRequest({ dst: '198.51.100.0/24', dev: 'br0', src: '198.51.100.1' }, resolve);
    expect(m.header.scope).toBe(RT_SCOPE.link);
    expect(m.attrs).toMatchObject({ oif: 3, prefsrc: '198.51.100.1' });
    expect(routeRequest({ dst: 'default', gateway: '203.0.113.1', dev: 'eth0', onlink: true }, resolve).header.flags).toBe(RTNH_F_ONLINK);
  });

  it('a device given by its index goes as it is: no lookup of a name (the CNI ADD\'s container side)', () => {
    const noLookup = (name: string): number => {
      throw new Error(`looked up ${name}`);
    };
    expect(routeRequest({ dst: 'default', gateway: '10.88.0.1', devIndex: 7 }, noLookup).attrs.oif).toBe(7);
    expect(routeRequest({ dst: 'default', gateway: '10.88.0.1', dev: 'eth0', devIndex: 7 }, noLookup).attrs.oif).toBe(7);
  });

  it("'default' takes its family from the gateway; tables above 255 only in RTA_TABLE", () => {
    const m = routeRequest({ dst: 'default', gateway: 'fd88::fffe', table: 1000 }, resolve);
    expect(m.header).toMatchObject({ family: AF_INET6, dstLen: 0, table: 0 });
    expect(m.attrs).toMatchObject({ dst: undefined, gateway: 'fd88::fffe', table: 1000 });
    expect(routeMessage.decode(routeMessage.encode(m)).attrs.table).toBe(1000);
  });

  it('a delete leaves scope, protocol and type open so the kernel matches any', () => {
    expect(routeRequest({ dst: '10.99.0.0/16' }, resolve, true).header).toMatchObject({ scope: RT_SCOPE.nowhere, protocol: 0, type: 0 });
  });
});

describe('neighbours and FDB', () => {
  it('a neighbour is permanent unless told otherwise', () => {
    const m = neighbourRequest(3, { ip: '10.88.0.7', mac: '02:00:00:00:00:07' });
    expect(m).toEqual({ header: { family: AF_INET, index: 3, state: NUD.permanent }, attrs: { dst: '10.88.0.7', lladdr: '02:00:00:00:00:07' } });
    expect(neighbourRequest(3, { ip: 'fd88::7', permanent: false }).header).toEqual({ family: AF_INET6, index: 3, state: NUD.reachable });
    expect(neighMessage.decode(neighMessage.encode(m)).attrs).toEqual(m.attrs);
  });

  it('an FDB entry is static in the device table by default, with the VTEP in NDA_DST', () => {
    expect(fdbRequest(5, { mac: '00:00:00:00:00:00', dst: '198.51.100.2' })).toEqual({
      header: { family: AF_BRIDGE, index: 5, state: NUD.noarp | NUD.reachable, flags: NTF.SELF },
      attrs: { lladdr: '00:00:00:00:00:00', dst: '198.51.100.2' },
    });
    expect(fdbRequest(5, { mac: '02:00:00:00:00:01', master: true, permanent: true }).header).toMatchObject({ flags: NTF.MASTER, state: NUD.noarp | NUD.permanent });
    expect(fdbRequest(5, { mac: '02:00:00:00:00:01', master: true, self: true }).header.flags).toBe(NTF.MASTER | NTF.SELF);
  });

  it('names NUD states', () => {
    expect(nudNames(0x42)).toEqual(['reachable', 'noarp']);
    expect(nudNames(0)).toEqual(['none']);
  });
});
