// Kernel settings under /proc/sys. The net.* ones belong to the network namespace of the thread
// that opens the file, so with nsPath the file is opened inside that namespace.
import { readFileSync, writeFileSync } from 'node:fs';
import { withNetns } from './netns.js';

/** 'net.ipv4.ip_forward', or segments when one holds a dot: ['net', 'ipv4', 'conf', 'eth0.20', 'forwarding']. */
export type SysctlKey = string | string[];

export interface SysctlOptions {
  nsPath?: string;
  /** where /proc/sys is mounted writable; /proc/sys when not given (a managed Docker plugin's own is read-only) */
  root?: string;
}

export function sysctlPath(key: SysctlKey, root = '/proc/sys'): string {
  const segments = typeof key === 'string' ? key.split('.') : key;
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('/')) throw new TypeError(`invalid sysctl key ${JSON.stringify(key)}`);
  }
  return `${root}/${segments.join('/')}`;
}

export function readSysctl(key: SysctlKey, opts: SysctlOptions = {}): string {
  return inNs(opts, () => readFileSync(sysctlPath(key, opts.root), 'utf8').trimEnd());
}

export function writeSysctl(key: SysctlKey, value: string, opts: SysctlOptions = {}): void {
  inNs(opts, () => writeFileSync(sysctlPath(key, opts.root), value));
}

function inNs<T>(opts: SysctlOptions, fn: () => T): T {
  return opts.nsPath ? withNetns(opts.nsPath, fn) : fn();
}
