// The pure translation between Docker's wire shapes and tsnet's typed requests: defaults for what
// Docker leaves out, representation changes, and the CreateEndpoint no-echo rule.
import { describe, expect, it } from 'vitest';
import {
  fromCreateEndpoint,
  fromDefaultAddressSpaces,
  fromEndpointOperInfo,
  fromJoin,
  fromRequestAddress,
  fromRequestPool,
  stringOptions,
  toCreateEndpoint,
  toCreateNetwork,
  toEndpointOptions,
  toJoin,
  toProgramExternalConnectivity,
  toRequestAddress,
  toRequestPool,
} from './translate.js';
import type { CreateEndpointRequest } from '../drivers/driver.js';

const NET = 'n'.repeat(64);
const EP = 'e'.repeat(64);

describe('wire -> typed', () => {
  it('CreateNetwork: generic options as strings, flags as booleans, missing parts as empty', () => {
    expect(
      toCreateNetwork({
        NetworkID: NET,
        Options: { 'com.docker.network.generic': { mtu: 1400, flag: true, nested: { a: 1 }, gone: null }, 'com.docker.network.internal': 'true' },
        IPv4Data: [{ Pool: '10.1.0.0/24', Gateway: '', AuxAddresses: null }],
        IPv6Data: null,
      }),
    ).toEqual({
      networkId: NET,
      options: { mtu: '1400', flag: 'true', nested: '{"a":1}' },
      enableIpv6: false,
      internal: true,
      ipv4: [{ addressSpace: '', pool: '10.1.0.0/24', gateway: undefined, auxAddresses: {} }],
      ipv6: [],
    });
    expect(toCreateNetwork({ NetworkID: NET })).toEqual({ networkId: NET, options: {}, enableIpv6: false, internal: false, ipv4: [], ipv6: [] });
    expect(toCreateNetwork({ NetworkID: NET, Options: null, IPv4Data: null }).options).toEqual({});
  });

  it('endpoint options: numeric protocols decoded, HostPortEnd 0 or missing means no range, other options kept', () => {
    expect(
      toEndpointOptions({
        'com.docker.network.portmap': [
          { Proto: 132, Port: 9000, HostPort: 0, HostPortEnd: 0 },
          { Proto: 6, Port: 80, HostPort: 8080 },
          { Proto: 17, IP: '10.1.0.2', Port: 53, HostIP: '::1', HostPort: 5300, HostPortEnd: 5310 },
        ],
        'com.docker.network.endpoint.exposedports': [{ Proto: 132, Port: 9000 }],
        'com.docker.network.endpoint.sysctls': 'x',
      }),
    ).toEqual({
      portBindings: [
        { proto: 'sctp', port: 9000, ip: '', hostIp: '', hostPort: 0, hostPortEnd: 0 },
        { proto: 'tcp', port: 80, ip: '', hostIp: '', hostPort: 8080, hostPortEnd: 8080 },
        { proto: 'udp', port: 53, ip: '10.1.0.2', hostIp: '::1', hostPort: 5300, hostPortEnd: 5310 },
      ],
      exposedPorts: [{ proto: 'sctp', port: 9000 }],
      other: { 'com.docker.network.endpoint.sysctls': 'x' },
    });
    expect(toEndpointOptions(null)).toEqual({ portBindings: [], exposedPorts: [], other: {} });
    expect(toEndpointOptions({ 'com.docker.network.portmap': null, 'com.docker.network.endpoint.exposedports': null })).toEqual({
      portBindings: [],
      exposedPorts: [],
      other: {},
    });
  });

  it('refuses a protocol it cannot publish even without the schema in front', () => {
    expect(() => toEndpointOptions({ 'com.docker.network.portmap': [{ Proto: 1, Port: 1 }] })).toThrow(/unsupported protocol number 1/);
  });

  it('CreateEndpoint, Join and ProgramExternalConnectivity with null or missing parts', () => {
    expect(toCreateEndpoint({ NetworkID: NET, EndpointID: EP, Interface: null, Options: null })).toEqual({
      networkId: NET,
      endpointId: EP,
      address: '',
      addressIpv6: '',
      macAddress: '',
      options: { portBindings: [], exposedPorts: [], other: {} },
    });
    expect(toJoin({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/x' })).toEqual({
      networkId: NET,
      endpointId: EP,
      sandboxKey: '/var/run/docker/netns/x',
      options: { portBindings: [], exposedPorts: [], other: {} },
    });
    expect(toProgramExternalConnectivity({ NetworkID: NET, EndpointID: EP, Options: null }).options.portBindings).toEqual([]);
  });

  it('IPAM requests: null Options become {}, values strings', () => {
    expect(toRequestPool({ AddressSpace: 'local' })).toEqual({ addressSpace: 'local', pool: '', subPool: '', options: {}, v6: false });
    expect(toRequestPool({ AddressSpace: 'local', Pool: 'fd00::/64', Options: { n: 1 }, V6: true })).toEqual({
      addressSpace: 'local',
      pool: 'fd00::/64',
      subPool: '',
      options: { n: '1' },
      v6: true,
    });
    expect(toRequestAddress({ PoolID: 'p', Options: null })).toEqual({ poolId: 'p', address: '', options: {} });
    expect(stringOptions(undefined)).toEqual({});
  });
});

describe('typed -> wire', () => {
  const req = (over: Partial<CreateEndpointRequest> = {}): CreateEndpointRequest => ({
    networkId: NET,
    endpointId: EP,
    address: '10.1.0.3/24',
    addressIpv6: '',
    macAddress: '',
    options: { portBindings: [], exposedPorts: [], other: {} },
    ...over,
  });

  it('CreateEndpoint returns only what the driver filled where Docker left a blank', () => {
    expect(fromCreateEndpoint(req(), {})).toEqual({ Interface: {} });
    expect(fromCreateEndpoint(req(), { macAddress: '02:42:0a:01:00:03' })).toEqual({ Interface: { MacAddress: '02:42:0a:01:00:03' } });
    // echoing Docker's own value would make Docker roll the endpoint back: dropped
    expect(fromCreateEndpoint(req(), { address: '10.1.0.3/24', macAddress: '02:42:0a:01:00:03' })).toEqual({ Interface: { MacAddress: '02:42:0a:01:00:03' } });
    expect(fromCreateEndpoint(req({ address: '' }), { address: '10.1.0.9/24', addressIpv6: 'fd00::9/64' })).toEqual({
      Interface: { Address: '10.1.0.9/24', AddressIPv6: 'fd00::9/64' },
    });
  });

  it('CreateEndpoint: a driver overriding what Docker set is a bug, not a reply', () => {
    expect(() => fromCreateEndpoint(req(), { address: '10.1.0.4/24' })).toThrow(/returned Address 10.1.0.4\/24 for an endpoint Docker gave 10.1.0.3\/24/);
  });

  it('Join: every field Docker reads, routes with an empty NextHop when connected', () => {
    expect(
      fromJoin({
        srcName: 'tsc1',
        dstPrefix: 'eth',
        gateway: '',
        gatewayIpv6: 'fd00::1',
        staticRoutes: [
          { destination: '10.9.0.0/16', routeType: 1 },
          { destination: '0.0.0.0/0', routeType: 0, nextHop: '10.1.0.1' },
        ],
        disableGatewayService: true,
      }),
    ).toEqual({
      InterfaceName: { SrcName: 'tsc1', DstPrefix: 'eth' },
      Gateway: '',
      GatewayIPv6: 'fd00::1',
      StaticRoutes: [
        { Destination: '10.9.0.0/16', RouteType: 1, NextHop: '' },
        { Destination: '0.0.0.0/0', RouteType: 0, NextHop: '10.1.0.1' },
      ],
      DisableGatewayService: true,
    });
  });

  it('EndpointOperInfo: Docker keys win over details of the same name', () => {
    const v = fromEndpointOperInfo({
      portBindings: [{ proto: 'sctp', port: 9000, containerIp: '10.1.0.3', hostIp: '', hostPort: 40001 }],
      exposedPorts: [],
      details: { 'com.docker.network.portmap': 'bogus', link: 'tsv1' },
    }).Value;
    expect(v).toEqual({
      link: 'tsv1',
      'com.docker.network.portmap': [{ Proto: 132, IP: '10.1.0.3', Port: 9000, HostIP: '', HostPort: 40001, HostPortEnd: 40001 }],
      'com.docker.network.endpoint.exposedports': [],
    });
  });

  it('IPAM replies', () => {
    expect(fromDefaultAddressSpaces({ localDefaultAddressSpace: 'local', globalDefaultAddressSpace: 'global' })).toEqual({
      LocalDefaultAddressSpace: 'local',
      GlobalDefaultAddressSpace: 'global',
    });
    expect(fromRequestPool({ poolId: 'p', pool: '10.1.0.0/24', data: {} })).toEqual({ PoolID: 'p', Pool: '10.1.0.0/24', Data: {} });
    expect(fromRequestAddress({ address: '10.1.0.3/24', data: { k: 'v' } })).toEqual({ Address: '10.1.0.3/24', Data: { k: 'v' } });
  });
});
