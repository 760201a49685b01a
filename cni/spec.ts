// The CNI contract as data: versions, error codes, the network configuration tsnet reads, and the
// result in the shape each version wants. Pure: cni-service.ts does the work.
// Spec: https://github.com/containernetworking/cni/blob/main/SPEC.md
import { CNI_CODE_BY_KIND, UserError, userMessage } from '../core/errors.js';
import { tryParseIp, tryParsePrefix } from '../ipam/address.js';

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

/** The spec's well-known codes, and tsnet's own from 100 up. */
export const ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  CONTAINER_UNKNOWN: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  // tsnet's own
  /** the driver or IPAM refused the request (the message says why: a taken address, an exhausted pool...) */
  REFUSED: 100,
  /** CHECK: the attachment is not in tsnet's state */
  NOT_ATTACHED: 101,
  /** CHECK: the container's interface or address is missing or differs */
  CHECK_FAILED: 102,
  /** the delegated IPAM plugin failed or could not be run */
  IPAM_PLUGIN: 103,
  /** anything unexpected inside tsnet (see the daemon's log) */
  INTERNAL: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
    this.name = 'CniError';
  }
}

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';
const COMMANDS: CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifName: string;
  args: Record<string, string>;
  path: string[];
}

/** The CNI_* variables as the runtime set them; missing ones the command needs are an error (code 4). */
export function parseEnv(raw: Record<string, string | undefined>): CniEnv {
  const command = (raw.CNI_COMMAND ?? '') as CniCommand;
  if (!COMMANDS.includes(command)) throw new CniError(ERR.INVALID_ENV, `CNI_COMMAND '${raw.CNI_COMMAND ?? ''}' is not one of ${COMMANDS.join(', ')}`);
  const need = (name: string, commands: CniCommand[]) => {
    const v = raw[name] ?? '';
    if (!v && commands.includes(command)) throw new CniError(ERR.INVALID_ENV, `${name} is required for ${command}`);
    return v;
  };
  const containerId = need('CNI_CONTAINERID', ['ADD', 'DEL', 'CHECK']);
  const netns = need('CNI_NETNS', ['ADD', 'CHECK']);
  const ifName = need('CNI_IFNAME', ['ADD', 'DEL', 'CHECK']);
  if (ifName && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(ifName)) throw new CniError(ERR.INVALID_ENV, `CNI_IFNAME '${ifName}' is not a valid interface name`);
  const args: Record<string, string> = {};
  for (const pair of (raw.CNI_ARGS ?? '').split(';').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(ERR.INVALID_ENV, `CNI_ARGS item '${pair}' is not KEY=VALUE`);
    args[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { command, containerId, netns, ifName, args, path: (raw.CNI_PATH ?? '').split(':').filter(Boolean) };
}

// ---------------------------------------------------------------- configuration

export type Mode = 'bridge' | 'macvlan' | 'overlay';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP: string;
}

export interface TsnetIpam {
  type: 'tsnet';
  /** '' = tsnet picks a free subnet */
  subnet: string;
  gateway: string;
  /** dynamic range inside the subnet (Docker's --ip-range) */
  ipRange: string;
  /** name of a cluster-wide overlay pool (--ipam-opt overlay=NAME) */
  overlay: string;
}

export interface DelegatedIpam {
  type: string;
  /** the ipam object as given, handed to the plugin in the network configuration */
  raw: Record<string, unknown>;
}

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  mode: Mode;
  /** the driver options (Docker's -o KEY=VALUE), including the convenience keys below */
  options: Record<string, string>;
  ipam: TsnetIpam | DelegatedIpam;
  runtime: { portMappings: PortMapping[]; ips: string[]; mac: string };
  prevResult?: Result;
  /** GC: the attachments the runtime still has */
  validAttachments?: { containerId: string; ifName: string }[];
  /** the configuration as received, for a delegated IPAM plugin */
  raw: Record<string, unknown>;
}

/** Top-level keys that are driver options under another name, for a shorter conflist. */
const OPTION_KEYS: Record<string, string> = {
  mtu: 'com.docker.network.driver.mtu',
  parent: 'parent',
  macvlanMode: 'macvlan_mode',
  macvlan_mode: 'macvlan_mode',
  hostAccess: 'host_access',
  overlay: 'overlay',
  vni: 'vni',
  bridge: 'com.docker.network.bridge.name',
  icc: 'com.docker.network.bridge.enable_icc',
  ipMasq: 'com.docker.network.bridge.enable_ip_masquerade',
};
// `socket` is read by the plugin executable (where the daemon is), not here
const KNOWN_KEYS = new Set(['cniVersion', 'cniVersions', 'name', 'type', 'mode', 'options', 'socket', 'ipam', 'capabilities', 'runtimeConfig', 'args', 'prevResult', 'dns', 'disableCheck', 'disableGC', 'cni.dev/valid-attachments', 'cni.dev/attachments', ...Object.keys(OPTION_KEYS)]);

export function parseConfig(text: string, command: CniCommand): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniError(ERR.DECODE_FAILURE, `the network configuration on stdin is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(ERR.DECODE_FAILURE, 'the network configuration on stdin is not a JSON object');
  const version = str(raw.cniVersion, 'cniVersion');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(version)) {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `tsnet does not speak CNI version '${version}': it supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if ((command === 'GC' || command === 'STATUS') && version !== '1.1.0') {
    throw new CniError(ERR.INCOMPATIBLE_VERSION, `${command} needs cniVersion 1.1.0, the configuration says ${version}`);
  }
  const name = str(raw.name, 'name');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) throw new CniError(ERR.INVALID_CONFIG, `network name '${name}': use 1-63 letters, digits, '_', '.', '-'`);
  const unknown = Object.keys(raw).filter((k) => !KNOWN_KEYS.has(k));
  if (unknown.length > 0) {
    throw new CniError(ERR.INVALID_CONFIG, `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} in the tsnet configuration of network '${name}'; driver options go in "options"`);
  }
  const mode = (raw.mode ?? 'bridge') as Mode;
  if (!['bridge', 'macvlan', 'overlay'].includes(mode)) throw new CniError(ERR.INVALID_CONFIG, `mode '${String(raw.mode)}': tsnet offers bridge, macvlan, overlay`);
  const options: Record<string, string> = {};
  if (raw.options !== undefined) {
    if (!isObject(raw.options)) throw new CniError(ERR.INVALID_CONFIG, '"options" must be an object of driver options (KEY: VALUE)');
    for (const [k, v] of Object.entries(raw.options)) options[k] = scalar(v, `options.${k}`);
  }
  for (const [key, option] of Object.entries(OPTION_KEYS)) if (raw[key] !== undefined) options[option] = scalar(raw[key], key);
  options.type = mode;
  const conf: NetConf = {
    cniVersion: version as CniVersion,
    name,
    mode,
    options,
    ipam: parseIpam(raw.ipam, name),
    runtime: parseRuntime(raw.runtimeConfig),
    raw,
  };
  if (raw.prevResult !== undefined) conf.prevResult = raw.prevResult as Result;
  const valid = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (valid !== undefined) {
    if (!Array.isArray(valid)) throw new CniError(ERR.INVALID_CONFIG, 'cni.dev/valid-attachments must be a list');
    conf.validAttachments = valid.map((a, i) => {
      if (!isObject(a)) throw new CniError(ERR.INVALID_CONFIG, `cni.dev/valid-attachments[${i}] is not an object`);
      return { containerId: str(a.containerID, `cni.dev/valid-attachments[${i}].containerID`), ifName: str(a.ifname, `cni.dev/valid-attachments[${i}].ifname`) };
    });
  } else if (command === 'GC') {
    // GC removes what the list leaves out: without the list, that would be everything
    throw new CniError(ERR.INVALID_CONFIG, `GC of network '${name}' needs "cni.dev/valid-attachments", the attachments the runtime still has ([] for none): without it tsnet removes nothing`);
  }
  return conf;
}

function parseIpam(v: unknown, name: string): TsnetIpam | DelegatedIpam {
  if (v === undefined) return { type: 'tsnet', subnet: '', gateway: '', ipRange: '', overlay: '' };
  if (!isObject(v)) throw new CniError(ERR.INVALID_CONFIG, `"ipam" of network '${name}' must be an object`);
  const type = str(v.type, 'ipam.type');
  if (type !== 'tsnet') return { type, raw: v };
  const allowed = new Set(['type', 'subnet', 'gateway', 'ipRange', 'overlay']);
  const unknown = Object.keys(v).filter((k) => !allowed.has(k));
  if (unknown.length) throw new CniError(ERR.INVALID_CONFIG, `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} in "ipam": tsnet's IPAM takes subnet, gateway, ipRange, overlay`);
  const opt = (k: string) => (v[k] === undefined ? '' : str(v[k], `ipam.${k}`));
  return { type: 'tsnet', subnet: opt('subnet'), gateway: opt('gateway'), ipRange: opt('ipRange'), overlay: opt('overlay') };
}

function parseRuntime(v: unknown): NetConf['runtime'] {
  const out: NetConf['runtime'] = { portMappings: [], ips: [], mac: '' };
  if (v === undefined) return out;
  if (!isObject(v)) throw new CniError(ERR.INVALID_CONFIG, '"runtimeConfig" must be an object');
  if (v.portMappings !== undefined) {
    if (!Array.isArray(v.portMappings)) throw new CniError(ERR.INVALID_CONFIG, 'runtimeConfig.portMappings must be a list');
    out.portMappings = v.portMappings.map((p, i) => {
      if (!isObject(p)) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.portMappings[${i}] is not an object`);
      const port = (x: unknown, what: string) => {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 65535) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.portMappings[${i}].${what} must be a port number 1-65535`);
        return x;
      };
      const protocol = String(p.protocol ?? 'tcp').toLowerCase();
      if (!['tcp', 'udp', 'sctp'].includes(protocol)) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.portMappings[${i}].protocol '${String(p.protocol)}' is not tcp, udp or sctp`);
      return { hostPort: port(p.hostPort, 'hostPort'), containerPort: port(p.containerPort, 'containerPort'), protocol: protocol as PortMapping['protocol'], hostIP: hostIp(p.hostIP, i) };
    });
  }
  if (v.ips !== undefined) {
    if (!Array.isArray(v.ips) || v.ips.some((x) => typeof x !== 'string')) throw new CniError(ERR.INVALID_CONFIG, 'runtimeConfig.ips must be a list of addresses');
    out.ips = v.ips.map((x: string, i) => {
      if (tryParsePrefix(x)?.family !== 4) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.ips[${i}] '${x}' is not an IPv4 address (bare or ADDRESS/PREFIX)`);
      return x;
    });
  }
  if (v.mac !== undefined) out.mac = unicastMac(str(v.mac, 'runtimeConfig.mac'));
  return out;
}

/** A port mapping's host address: '' (every address) or one IP address. */
function hostIp(v: unknown, i: number): string {
  if (v === undefined || v === null || v === '') return '';
  if (typeof v !== 'string' || !tryParseIp(v)) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.portMappings[${i}].hostIP '${String(v)}' is not an IP address`);
  return v;
}

/** Six hexadecimal octets separated by ':', the group bit clear (a container's MAC is unicast). */
function unicastMac(v: string): string {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(v)) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.mac '${v}' is not a MAC address (six hexadecimal octets separated by ':')`);
  if (parseInt(v.slice(0, 2), 16) & 1) throw new CniError(ERR.INVALID_CONFIG, `runtimeConfig.mac '${v}' is a multicast address: a container's MAC must be unicast`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new CniError(ERR.INVALID_CONFIG, `"${what}" must be a non-empty string`);
  return v;
}

function scalar(v: unknown, what: string): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new CniError(ERR.INVALID_CONFIG, `"${what}" must be a string, number or boolean`);
}

// ---------------------------------------------------------------- results

export interface Result {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; mtu?: number; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

export interface Attached {
  /** host-side interfaces of the attachment (the bridge, the host end of the veth), listed first as
   * the reference plugins do: chained plugins such as bandwidth look for the host end there */
  hostInterfaces?: { name: string; mac: string }[];
  ifName: string;
  mac: string;
  mtu: number;
  netns: string;
  /** CIDR */
  address: string;
  /** bare, '' for none */
  gateway: string;
}

/** The ADD result in the configuration's version, after what earlier plugins in a chain reported. */
export function buildResult(version: CniVersion, a: Attached, prev?: Result): Result {
  const interfaces = [...(prev?.interfaces ?? []), ...(a.hostInterfaces ?? [])];
  const index = interfaces.push({ name: a.ifName, mac: a.mac, ...(version === '0.4.0' ? {} : { mtu: a.mtu }), sandbox: a.netns }) - 1;
  const ip: NonNullable<Result['ips']>[number] = { address: a.address, ...(a.gateway ? { gateway: a.gateway } : {}), interface: index };
  if (version === '0.4.0') ip.version = a.address.includes(':') ? '6' : '4';
  return {
    cniVersion: version,
    interfaces,
    ips: [...(prev?.ips ?? []).map((p) => (version === '0.4.0' ? p : withoutVersion(p))), ip],
    routes: [...(prev?.routes ?? []), ...(a.gateway ? [{ dst: '0.0.0.0/0', gw: a.gateway }] : [])],
    dns: prev?.dns ?? {},
  };
}

function withoutVersion<T extends { version?: string }>(p: T): Omit<T, 'version'> {
  const { version: _v, ...rest } = p;
  return rest;
}

/**
 * Any thrown value as a CNI error: a CniError as it is, a UserError by its kind (core/errors.ts:
 * 100 for a refusal, 11 for "try again later"), anything else as internal error 999 pointing to the
 * log (`where` names the request).
 */
export function toCniError(err: unknown, where = ''): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof UserError) return new CniError(CNI_CODE_BY_KIND[err.kind], err.message);
  return new CniError(ERR.INTERNAL, userMessage(err, where));
}

/** The cniVersion of a configuration that may not parse, for the error's own cniVersion. */
export function versionOf(stdin: string): string {
  const m = /"cniVersion"\s*:\s*"([0-9A-Za-z.+-]{1,20})"/.exec(stdin);
  return m ? m[1] : LATEST_VERSION;
}

export function errorOutput(version: string, err: CniError): string {
  return JSON.stringify({ cniVersion: version, code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) }) + '\n';
}

export function versionOutput(version: string = LATEST_VERSION): string {
  return JSON.stringify({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS }) + '\n';
}
