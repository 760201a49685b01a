// JSON schemas of Docker's requests, checked by fastify's ajv before a handler runs, and the
// sentences that replace ajv's messages. Lenient where Docker is (extra fields allowed; Options,
// IPv6Data, AuxAddresses, Interface may be null or missing), strict on what tsnet relies on: IDs,
// types, protocol numbers, ports, and CIDR/IP/MAC formats (IPv4Data holds IPv4, IPv6Data IPv6).
// Methods without a schema (Plugin.Activate, *.GetCapabilities, Discover*...) take any JSON.
import { tryParseIp, type Family } from '../ipam/address.js';

// ---------------------------------------------------------------- formats

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;
const MAC = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;

function example(family: Family | undefined): string {
  return family === 6 ? 'fd00:1::/64' : '10.1.0.0/24';
}

/** Why text is not a CIDR (of the family, when given), in words a user can act on; undefined when it is one. */
export function cidrProblem(text: string, family?: Family): string | undefined {
  const want = family ? `an IPv${family} subnet like ${example(family)}` : `an address with a prefix length, like ${example(family)}`;
  if (text === '') return `it is empty: give ${want}`;
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const ip = tryParseIp(address);
  if (!ip) return `'${address}' is not an IP address: give ${want}`;
  if (family && ip.family !== family) return `it is IPv${ip.family} where IPv${family} is expected`;
  if (slash < 0) return `it has no prefix length: give ${want}`;
  const prefix = text.slice(slash + 1);
  if (!PREFIX.test(prefix)) return `'/${prefix}' is not a prefix length: give ${want}`;
  const bits = ip.family === 4 ? 32 : 128;
  if (Number(prefix) > bits) return `the prefix length ${prefix} is longer than the ${bits} bits of an IPv${ip.family} address`;
  return undefined;
}

/** Why text is not a bare IP address; undefined when it is one. */
export function ipProblem(text: string): string | undefined {
  if (tryParseIp(text)) return undefined;
  if (text.includes('/') && tryParseIp(text.slice(0, text.indexOf('/')))) return 'give the address without a prefix length, like 10.1.0.5';
  return 'it is not an IP address like 10.1.0.5';
}

export function macProblem(text: string): string | undefined {
  return MAC.test(text) ? undefined : 'it is not a MAC address like 02:42:0a:01:00:05';
}

const orEmpty =
  (problem: (v: string) => string | undefined) =>
  (v: string): string | undefined =>
    v === '' ? undefined : problem(v);

/** The string formats the schemas use: each says why a value fails (undefined = valid). */
export const FORMATS: Record<string, (value: string) => string | undefined> = {
  cidr: (v) => cidrProblem(v),
  cidr4: (v) => cidrProblem(v, 4),
  cidr6: (v) => cidrProblem(v, 6),
  'cidr-or-empty': orEmpty((v) => cidrProblem(v)),
  'cidr4-or-empty': orEmpty((v) => cidrProblem(v, 4)),
  'cidr6-or-empty': orEmpty((v) => cidrProblem(v, 6)),
  'ip-or-empty': orEmpty(ipProblem),
  'mac-or-empty': orEmpty(macProblem),
};

/** An ajv plugin (fastify's `ajv.plugins`) registering FORMATS. */
export function addFormats<A extends { addFormat(name: string, f: { type: 'string'; validate: (v: string) => boolean }): unknown }>(ajv: A): A {
  for (const [name, problem] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate: (v) => problem(v) === undefined });
  return ajv;
}

/**
 * Options for fastify's ajv: exact types (no coercion), extra fields kept, `$data` for HostPortEnd >= HostPort.
 * validateSchema off: the schemas are this file's constants (its tests use them); checking them
 * against JSON Schema's meta-schema compiled that meta-schema at every start, ~0.3 s before serving.
 */
export const AJV_OPTIONS = {
  customOptions: { verbose: true, allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: false, allowUnionTypes: true, $data: true, validateSchema: false },
  plugins: [addFormats],
};

// ---------------------------------------------------------------- schemas

const id = { type: 'string', minLength: 1 } as const;
const nullableObject = { type: ['object', 'null'] } as const;
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const protoNumber = { type: 'integer', enum: [6, 17, 132] } as const;

function ipamData(family: Family) {
  return {
    type: 'object',
    required: ['Pool'],
    properties: {
      AddressSpace: { type: 'string' },
      Pool: { type: 'string', format: `cidr${family}` },
      Gateway: { type: 'string', format: `cidr${family}-or-empty` },
      AuxAddresses: { type: ['object', 'null'], additionalProperties: { type: 'string', format: `cidr${family}` } },
    },
  } as const;
}

const portBinding = {
  type: 'object',
  required: ['Proto', 'Port'],
  properties: {
    Proto: protoNumber,
    IP: { type: 'string', format: 'ip-or-empty' },
    Port: port,
    HostIP: { type: 'string', format: 'ip-or-empty' },
    HostPort: port,
    HostPortEnd: port,
  },
  // a HostPortEnd of 0 (or none) means "no range"; otherwise the range must not end before it starts
  if: { required: ['HostPortEnd'], properties: { HostPortEnd: { type: 'integer', exclusiveMinimum: 0 } } },
  then: { properties: { HostPortEnd: { type: 'integer', minimum: { $data: '1/HostPort' } } } },
} as const;

const endpointOptions = {
  type: ['object', 'null'],
  properties: {
    'com.docker.network.portmap': { type: ['array', 'null'], items: portBinding },
    'com.docker.network.endpoint.exposedports': {
      type: ['array', 'null'],
      items: { type: 'object', required: ['Proto', 'Port'], properties: { Proto: protoNumber, Port: port } },
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
      IPv4Data: { type: ['array', 'null'], items: ipamData(4) },
      IPv6Data: { type: ['array', 'null'], items: ipamData(6) },
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
          Address: { type: 'string', format: 'cidr4-or-empty' },
          AddressIPv6: { type: 'string', format: 'cidr6-or-empty' },
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
  // Docker always names the address space (one GetDefaultAddressSpaces gave it): a body without
  // one is not Docker's, and must not get a fresh subnet from the default pools
  'IpamDriver.RequestPool': {
    type: 'object',
    required: ['AddressSpace'],
    properties: {
      AddressSpace: id,
      Pool: { type: 'string', format: 'cidr-or-empty' },
      SubPool: { type: 'string', format: 'cidr-or-empty' },
      Options: nullableObject,
      V6: { type: 'boolean' },
    },
  },
  // the Release calls must never fail on what they are given (Docker's rollback paths): types only
  'IpamDriver.ReleasePool': { type: 'object', required: ['PoolID'], properties: { PoolID: { type: 'string' } } },
  'IpamDriver.RequestAddress': {
    type: 'object',
    required: ['PoolID'],
    properties: { PoolID: id, Address: { type: 'string', format: 'ip-or-empty' }, Options: nullableObject },
  },
  'IpamDriver.ReleaseAddress': { type: 'object', required: ['PoolID'], properties: { PoolID: { type: 'string' }, Address: { type: 'string' } } },
} as const;

export type SchemaMethod = keyof typeof SCHEMAS;

// ---------------------------------------------------------------- messages

/** The part of an ajv error this module reads (ajv runs with `verbose`, so `data` is set). */
export interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
  data?: unknown;
}

/** ["IPv4Data", "0", "Pool"] from ajv's "/IPv4Data/0/Pool" (JSON pointer, ~1 = "/", ~0 = "~"). */
function pathParts(instancePath: string): string[] {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** "IPv4Data[0].Pool" */
function fieldName(parts: string[]): string {
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || 'the request body';
}

/** What a format-checked value is, to the user: "subnet '10.0.0.0/33' in IPv4Data". */
function formatLabel(method: string, parts: string[], value: string): string {
  const last = parts[parts.length - 1];
  if (parts[0] === 'IPv4Data' || parts[0] === 'IPv6Data') {
    if (parts[2] === 'Pool') return `subnet '${value}' in ${parts[0]}`;
    if (parts[2] === 'Gateway') return `gateway '${value}' in ${parts[0]}`;
    if (parts[2] === 'AuxAddresses') return `aux address ${last} '${value}' in ${parts[0]}`;
  }
  if (method === 'IpamDriver.RequestPool') {
    if (last === 'Pool') return `subnet '${value}'`;
    if (last === 'SubPool') return `IP range '${value}'`;
  }
  if (method === 'IpamDriver.RequestAddress' && last === 'Address') return `address '${value}'`;
  if (parts[0] === 'Interface') return `${last === 'MacAddress' ? 'MAC address' : 'container address'} '${value}' in Interface.${last}`;
  if (last === 'HostIP') return `host IP '${value}' in ${fieldName(parts.slice(0, -1))}`;
  if (last === 'IP') return `container IP '${value}' in ${fieldName(parts.slice(0, -1))}`;
  return `${fieldName(parts)} '${value}'`;
}

function withArticle(type: string): string {
  if (type === 'null') return 'null';
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

const PORT_FIELDS = new Set(['Port', 'HostPort', 'HostPortEnd']);

/**
 * One sentence for the first schema violation, replacing ajv's: what is wrong, in which field, and
 * what is expected. Values a user typed (subnets, addresses, ports, protocols) are named as such;
 * structural faults (a missing ID, a wrong type) name the method, as only a broken client sends them.
 */
export function describeValidation(method: string, e: AjvError): string {
  const parts = pathParts(e.instancePath);
  const field = fieldName(parts);
  const last = parts[parts.length - 1] ?? '';
  const got = JSON.stringify(e.data);
  switch (e.keyword) {
    case 'format': {
      const value = String(e.data);
      const problem = FORMATS[e.params.format as string]?.(value) ?? `expected ${String(e.params.format)}`;
      return `invalid ${formatLabel(method, parts, value)}: ${problem}`;
    }
    case 'enum':
      if (last === 'Proto') return `unsupported protocol number ${got} in ${field}: tsnet publishes tcp (6), udp (17) and sctp (132)`;
      return `invalid ${method} request: ${field} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, got ${got}`;
    case 'minimum':
    case 'maximum':
      if (PORT_FIELDS.has(last)) {
        const n = e.data as number;
        if (last === 'HostPortEnd' && n >= 0 && n <= 65535) {
          const start = e.params.limit as number;
          return `host port range ${start}-${n} in ${fieldName(parts.slice(0, -1))} ends before it starts: HostPortEnd must be 0 (no range) or at least HostPort`;
        }
        return `port ${n} in ${field} is out of range: ports are 0 to 65535`;
      }
      return `invalid ${method} request: ${field} ${e.message ?? 'is out of range'}, got ${got}`;
    case 'required':
      return `invalid ${method} request: ${fieldName([...parts, String(e.params.missingProperty)])} is missing`;
    case 'minLength':
      return `invalid ${method} request: ${field} must not be empty`;
    case 'type': {
      if (parts.length === 0) return `invalid ${method} request: the request body must be a JSON object, got ${got}`;
      const types = Array.isArray(e.params.type) ? (e.params.type as string[]) : String(e.params.type).split(',');
      return `invalid ${method} request: ${field} must be ${types.map(withArticle).join(' or ')}, got ${got}`;
    }
    default:
      return `invalid ${method} request: ${field} ${e.message ?? 'is invalid'}${e.data !== undefined ? `, got ${got}` : ''}`;
  }
}
