// JSON schemas of Docker's requests, checked by fastify before a handler runs. Lenient where
// Docker is (extra fields allowed, Options and IPv6Data may be null or missing), strict on what
// tsnet relies on: IDs, types, protocol numbers, ports, and CIDR/IP formats.
import { isIP } from 'node:net';
import { tryParseCidr } from '../ipam/address.js';

/** Formats registered on fastify's ajv; names appear in validation messages (see server.ts). */
export const FORMATS: Record<string, (value: string) => boolean> = {
  cidr: (v) => tryParseCidr(v) !== undefined,
  'cidr-or-empty': (v) => v === '' || tryParseCidr(v) !== undefined,
  'ip-or-empty': (v) => v === '' || isIP(v) !== 0,
  'ip-or-cidr': (v) => isIP(v) !== 0 || tryParseCidr(v) !== undefined,
  'mac-or-empty': (v) => v === '' || /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(v),
};

/** What each format means, for messages a user can act on. */
export const FORMAT_HINTS: Record<string, string> = {
  cidr: 'an address with prefix length, like 10.1.0.0/24',
  'cidr-or-empty': 'an address with prefix length, like 10.1.0.0/24',
  'ip-or-empty': 'an IP address like 10.1.0.5',
  'ip-or-cidr': 'an IP address like 10.1.0.5',
  'mac-or-empty': 'a MAC address like 02:42:0a:01:00:05',
};

const id = { type: 'string', minLength: 1 } as const;
const nullableObject = { type: ['object', 'null'] } as const;
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;

const ipamData = {
  type: 'object',
  required: ['Pool'],
  properties: {
    AddressSpace: { type: 'string' },
    Pool: { type: 'string', format: 'cidr' },
    Gateway: { type: 'string', format: 'cidr-or-empty' },
    AuxAddresses: { type: ['object', 'null'], additionalProperties: { type: 'string', format: 'cidr' } },
  },
} as const;

const portBinding = {
  type: 'object',
  required: ['Proto', 'Port'],
  properties: {
    Proto: { type: 'integer', enum: [6, 17, 132] },
    IP: { type: 'string', format: 'ip-or-empty' },
    Port: { ...port, minimum: 1 },
    HostIP: { type: 'string', format: 'ip-or-empty' },
    HostPort: port,
    HostPortEnd: port,
  },
} as const;

const endpointOptions = {
  type: ['object', 'null'],
  properties: {
    'com.docker.network.portmap': { type: ['array', 'null'], items: portBinding },
    'com.docker.network.endpoint.exposedports': {
      type: ['array', 'null'],
      items: { type: 'object', required: ['Proto', 'Port'], properties: { Proto: { type: 'integer', enum: [6, 17, 132] }, Port: port } },
    },
  },
} as const;

const endpointRef = { type: 'object', required: ['NetworkID', 'EndpointID'], properties: { NetworkID: id, EndpointID: id } } as const;

export const SCHEMAS = {
  'NetworkDriver.CreateNetwork': {
    type: 'object',
    required: ['NetworkID'],
    properties: {
      NetworkID: id,
      Options: {
        type: ['object', 'null'],
        properties: {
          'com.docker.network.generic': nullableObject,
          'com.docker.network.enable_ipv6': { type: ['boolean', 'string'] },
          'com.docker.network.internal': { type: ['boolean', 'string'] },
        },
      },
      IPv4Data: { type: ['array', 'null'], items: ipamData },
      IPv6Data: { type: ['array', 'null'], items: ipamData },
    },
  },
  'NetworkDriver.DeleteNetwork': { type: 'object', required: ['NetworkID'], properties: { NetworkID: id } },
  'NetworkDriver.CreateEndpoint': {
    type: 'object',
    required: ['NetworkID', 'EndpointID'],
    properties: {
      NetworkID: id,
      EndpointID: id,
      Interface: {
        type: ['object', 'null'],
        properties: {
          Address: { type: 'string', format: 'cidr-or-empty' },
          AddressIPv6: { type: 'string', format: 'cidr-or-empty' },
          MacAddress: { type: 'string', format: 'mac-or-empty' },
        },
      },
      Options: endpointOptions,
    },
  },
  'NetworkDriver.DeleteEndpoint': endpointRef,
  'NetworkDriver.EndpointOperInfo': endpointRef,
  'NetworkDriver.Join': {
    type: 'object',
    required: ['NetworkID', 'EndpointID', 'SandboxKey'],
    properties: { NetworkID: id, EndpointID: id, SandboxKey: id, Options: endpointOptions },
  },
  'NetworkDriver.Leave': endpointRef,
  'NetworkDriver.ProgramExternalConnectivity': {
    type: 'object',
    required: ['NetworkID', 'EndpointID'],
    properties: { NetworkID: id, EndpointID: id, Options: endpointOptions },
  },
  'NetworkDriver.RevokeExternalConnectivity': endpointRef,
  'IpamDriver.RequestPool': {
    type: 'object',
    properties: {
      AddressSpace: { type: 'string' },
      Pool: { type: 'string', format: 'cidr-or-empty' },
      SubPool: { type: 'string', format: 'cidr-or-empty' },
      Options: nullableObject,
      V6: { type: 'boolean' },
    },
  },
  'IpamDriver.ReleasePool': { type: 'object', required: ['PoolID'], properties: { PoolID: { type: 'string' } } },
  'IpamDriver.RequestAddress': {
    type: 'object',
    required: ['PoolID'],
    properties: { PoolID: id, Address: { type: 'string', format: 'ip-or-empty' }, Options: nullableObject },
  },
  'IpamDriver.ReleaseAddress': {
    type: 'object',
    required: ['PoolID'],
    properties: { PoolID: { type: 'string' }, Address: { type: 'string' } },
  },
} as const;

export type SchemaMethod = keyof typeof SCHEMAS;
