// TSNET_PROC_SYS checked when `tsnet serve` starts: the folder where kernel settings are written
// (the host's /proc/sys, or the writable view of it a managed plugin gets, its own being read-only).
// A wrong path used to show only at the first network create, as a failed sysctl write in the
// middle of a request; now the daemon refuses to start and says which path and why.
import { accessSync, constants, statSync } from 'node:fs';
import { UserError } from '../core/errors.js';
import { sysctlPath } from '../native/sysctl.js';

/** The setting every driver writes first: present and writable means the folder is a usable /proc/sys. */
const PROBE = 'net.ipv4.ip_forward';

/** Throws an 'invalid' UserError naming the path unless `root` holds a writable net/ipv4/ip_forward. */
export function checkProcSys(root: string, variable = 'TSNET_PROC_SYS'): void {
  const probe = sysctlPath(PROBE, root);
  const why = problemWith(root, probe);
  if (why) throw new UserError(`${variable} '${root}': ${why}; give the folder where the host's /proc/sys is mounted writable (default /proc/sys)`, 'invalid');
}

function problemWith(root: string, probe: string): string | undefined {
  try {
    if (!statSync(root).isDirectory()) return 'not a folder';
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  try {
    if (!statSync(probe).isFile()) return `${probe} is not a kernel setting`;
  } catch (err) {
    return `has no ${probe} (${(err as NodeJS.ErrnoException).code ?? String(err)}): not a /proc/sys`;
  }
  try {
    accessSync(probe, constants.W_OK);
  } catch (err) {
    return `${probe} cannot be written (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  return undefined;
}
