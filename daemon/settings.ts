// Every setting of a tsnet daemon, read in one place: the flag when given, else its environment
// variable, else the default. `tsnet serve` runs with these settings and `tsnet doctor`, `status`
// and `port` look for the daemon, its state and its cluster store with the same ones, so the
// commands can never disagree about where things are (doctor once read an etcd variable that
// serve did not know). The usage text is made from the same table.
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { parseStoreUrl } from '../store/cluster/cluster-store.js';
import { instanceOf } from './paths.js';
import { UserError } from '../core/errors.js';
import { parseLogSize } from '../core/log.js';

export interface DaemonSettings {
  stateDir: string;
  /** the plugin socket; its file name is the plugin's name (tsnet.sock -> "tsnet") */
  socketPath: string;
  logFile: string;
  /** pino level of the log: info by default; debug adds each call's body and a CNI ADD's time per step */
  logLevel: string;
  /** the log file is rotated to FILE.1 when it passes this many bytes */
  logMaxBytes: number;
  /** where Prometheus scrapes GET /metrics (daemon/metrics-server.ts); null: no listener */
  metrics: ListenAddress | null;
  /** etcd://HOST:PORT[,HOST:PORT] for multi-host overlays; '' for none */
  store: string;
  /** VTEP address; '' to take the default route's source */
  vtep: string;
  /** this host's name in the cluster */
  hostName: string;
  /** seconds before a dead host's containers vanish from the others */
  leaseTtl: number;
  /** where dockerd answers (doctor and `tsnet port` ask it) */
  dockerSocket: string;
  /** IPv4 address the overlay name responder answers on (daemon/overlay-dns.ts); '' for none */
  dns: string;
  /** resolvers for the names the responder does not know */
  dnsUpstream: string[];
  /** where kernel settings are written: /proc/sys, or a writable view of it (the managed plugin's own is read-only) */
  procSys: string;
}

export type SettingKey = keyof DaemonSettings;

export interface SettingSpec {
  key: SettingKey;
  /** the command-line flag; '' for a setting read only from the environment */
  flag: string;
  env: string;
  fallback: () => string;
  /** one line of the usage text, after the flag */
  help: string;
}

export const SETTINGS: readonly SettingSpec[] = [
  { key: 'stateDir', flag: '--state-dir', env: 'TSNET_STATE_DIR', fallback: () => '/var/lib/tsnet', help: 'DIR   state directory' },
  { key: 'socketPath', flag: '--socket', env: 'TSNET_SOCKET', fallback: () => '/run/docker/plugins/tsnet.sock', help: 'PATH     plugin socket' },
  { key: 'logFile', flag: '--log', env: 'TSNET_LOG', fallback: () => '/var/log/tsnet/tsnet.log', help: 'FILE        log file for serve' },
  { key: 'logMaxBytes', flag: '--log-max-size', env: 'TSNET_LOG_MAX_SIZE', fallback: () => '10MiB', help: 'SIZE  rotate the log file to FILE.1 past this size, e.g. 10MiB, 512KiB (default 10MiB)' },
  { key: 'metrics', flag: '--metrics', env: 'TSNET_METRICS', fallback: () => '', help: 'ADDR:PORT  serve Prometheus metrics on GET /metrics there, e.g. 127.0.0.1:9469 (default off)' },
  { key: 'logLevel', flag: '--log-level', env: 'TSNET_LOG_LEVEL', fallback: () => 'info', help: 'LEVEL  log level for serve: info (default), debug, warn or error' },
  { key: 'store', flag: '--store', env: 'TSNET_STORE', fallback: () => '', help: 'URL       cluster store for multi-host overlays, etcd://HOST:PORT[,HOST:PORT] (default none)' },
  { key: 'vtep', flag: '--vtep', env: 'TSNET_VTEP', fallback: () => '', help: "IP         this host's VXLAN tunnel address (default the default route's source)" },
  { key: 'hostName', flag: '--host-name', env: 'TSNET_HOST_NAME', fallback: () => hostname(), help: "NAME  this host's name in the cluster (default the hostname)" },
  { key: 'leaseTtl', flag: '--lease-ttl', env: 'TSNET_LEASE_TTL', fallback: () => '10', help: "SEC   seconds before a dead host's containers vanish from the others (default 10)" },
  { key: 'dns', flag: '--dns', env: 'TSNET_DNS', fallback: () => '', help: "IP          answer names of other hosts' containers on overlays there (UDP 53; the VTEP), for daemon.json \"dns\" (default off)" },
  { key: 'dnsUpstream', flag: '--dns-upstream', env: 'TSNET_DNS_UPSTREAM', fallback: () => '', help: 'IP[,IP]  where --dns sends every other name (default the nameservers of /etc/resolv.conf)' },
  { key: 'dockerSocket', flag: '', env: 'DOCKER_SOCKET', fallback: () => '/var/run/docker.sock', help: '' },
  { key: 'procSys', flag: '', env: 'TSNET_PROC_SYS', fallback: () => '/proc/sys', help: '' },
];

/** Each setting's value before flags: its variable in `env` when set and not empty, else the default. */
export function settingDefaults(env: NodeJS.ProcessEnv = process.env): Record<SettingKey, string> {
  return Object.fromEntries(SETTINGS.map((s) => [s.key, env[s.env] || s.fallback()])) as Record<SettingKey, string>;
}

/**
 * A host's name in the cluster: it becomes part of the store's keys (hosts/<name>, members/...),
 * so no '/' or other character that would change a key's meaning.
 */
export function checkHostName(name: string, flag = '--host-name'): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
    throw new SettingError(`${flag} '${name}': give 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return name;
}

/** One of the log levels serve knows. */
export function checkLogLevel(level: string): string {
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new SettingError(`--log-level ${level}: give debug, info, warn or error`);
  return level;
}

export interface ListenAddress {
  /** an IP address (IPv6 without brackets) */
  host: string;
  port: number;
}

/**
 * "127.0.0.1:9469", "[::1]:9469", "0.0.0.0:9469" -> host and port. An IP, not a name: a name could
 * resolve to an address the operator did not mean to expose.
 */
export function parseListenAddress(text: string, flag = '--metrics'): ListenAddress {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || isIP(m[1]) !== (text.startsWith('[') ? 6 : 4) || !(port >= 1 && port <= 65535)) {
    throw new SettingError(`${flag} '${text}': give ADDRESS:PORT with an IP address and a port 1-65535, e.g. 127.0.0.1:9469 or [::1]:9469`);
  }
  return { host: m[1], port };
}

/** Whole seconds, 2 or more (a lease must outlive one keep-alive). */
export function parseLeaseTtl(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(n) || n < 2) throw new SettingError(`--lease-ttl ${text}: give whole seconds, 2 or more`);
  return n;
}

export class SettingError extends UserError {
  constructor(message: string) {
    super(message, 'invalid');
    this.name = 'SettingError';
  }
}

/** The typed, checked settings from their text values (flags already applied over settingDefaults()). */
export function resolveSettings(values: Record<SettingKey, string>): DaemonSettings {
  try {
    instanceOf(values.socketPath);
  } catch (err) {
    throw new SettingError(`--socket: ${(err as Error).message}`);
  }
  if (values.store) {
    try {
      parseStoreUrl(values.store);
    } catch (err) {
      throw new SettingError(`--store: ${(err as Error).message}`);
    }
  }
  return {
    stateDir: values.stateDir,
    socketPath: values.socketPath,
    logFile: values.logFile,
    logLevel: checkLogLevel(values.logLevel),
    logMaxBytes: parseLogSize(values.logMaxBytes) ?? fail(`--log-max-size ${values.logMaxBytes}: give a size of 4KiB or more, e.g. 10MiB, 512KiB or 65536 (bytes)`),
    metrics: values.metrics ? parseListenAddress(values.metrics) : null,
    store: values.store,
    vtep: values.vtep,
    hostName: checkHostName(values.hostName),
    leaseTtl: parseLeaseTtl(values.leaseTtl),
    dockerSocket: values.dockerSocket,
    dns: values.dns ? checkIpv4(values.dns, '--dns') : '',
    dnsUpstream: values.dnsUpstream ? values.dnsUpstream.split(',').map((a) => checkIpv4(a.trim(), '--dns-upstream')) : [],
    procSys: values.procSys,
  };
}

function checkIpv4(text: string, flag: string): string {
  if (isIP(text) !== 4) throw new SettingError(`${flag} '${text}': give an IPv4 address`);
  return text;
}

function fail(message: string): never {
  throw new SettingError(message);
}

/** The etcd endpoints (http://HOST:PORT) of the store setting; [] without a store. */
export function storeEndpoints(settings: Pick<DaemonSettings, 'store'>): string[] {
  return settings.store ? parseStoreUrl(settings.store).hosts : [];
}
