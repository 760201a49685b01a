// Every setting of a tsnet daemon, read in one place: the flag when given, else its environment
// variable, else the default. `tsnet serve` runs with these settings and `tsnet doctor`, `status`
// and `port` look for the daemon, its state and its cluster store with the same ones, so the
// commands can never disagree about where things are (doctor once read an etcd variable that
// serve did not know). The usage text is made from the same table.
import { hostname } from 'node:os';
import { parseStoreUrl } from '../store/cluster/cluster-store.js';
import { instanceOf } from './paths.js';
import { UserError } from '../core/errors.js';

export interface DaemonSettings {
  stateDir: string;
  /** the plugin socket; its file name is the plugin's name (tsnet.sock -> "tsnet") */
  socketPath: string;
  logFile: string;
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
  { key: 'store', flag: '--store', env: 'TSNET_STORE', fallback: () => '', help: 'URL       cluster store for multi-host overlays, etcd://HOST:PORT[,HOST:PORT] (default none)' },
  { key: 'vtep', flag: '--vtep', env: 'TSNET_VTEP', fallback: () => '', help: "IP         this host's VXLAN tunnel address (default the default route's source)" },
  { key: 'hostName', flag: '--host-name', env: 'TSNET_HOST_NAME', fallback: () => hostname(), help: "NAME  this host's name in the cluster (default the hostname)" },
  { key: 'leaseTtl', flag: '--lease-ttl', env: 'TSNET_LEASE_TTL', fallback: () => '10', help: "SEC   seconds before a dead host's containers vanish from the others (default 10)" },
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
    store: values.store,
    vtep: values.vtep,
    hostName: checkHostName(values.hostName),
    leaseTtl: parseLeaseTtl(values.leaseTtl),
    dockerSocket: values.dockerSocket,
    procSys: values.procSys,
  };
}

/** The etcd endpoints (http://HOST:PORT) of the store setting; [] without a store. */
export function storeEndpoints(settings: Pick<DaemonSettings, 'store'>): string[] {
  return settings.store ? parseStoreUrl(settings.store).hosts : [];
}
