// What every driver's option parsing shares: the refusal of unknown keys (with the list of the
// accepted ones, so a typo is fixed at once), and the parsers of booleans, MTUs and interface
// names in Docker's spelling. Pure: parses and validates, touches nothing.
import { UserError } from '../core/errors.js';
import { TYPE_OPTION } from '../core/protocol.js';
import { isRuleSafeIfname } from '../firewall/addr.js';

/** Throws naming every key not in `accepted` (the driver-choosing `type` key is always accepted). */
export function refuseUnknownOptions(options: Record<string, string>, accepted: readonly string[], networkKind: string): void {
  const all = accepted.includes(TYPE_OPTION) ? accepted : [TYPE_OPTION, ...accepted];
  const unknown = Object.keys(options).filter((k) => !all.includes(k));
  if (unknown.length === 0) return;
  throw new UserError(
    `unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} for a tsnet ${networkKind} network; ` +
      `accepted: ${all.join(', ')}`,
  );
}

/**
 * An interface name a user may give (a bridge's, a parent's): a Linux name (1-15 bytes) that the
 * firewall can also write into its rules, checked by the firewall's own rule so that a name is
 * refused before anything is made rather than after the bridge exists. Kept to the characters
 * of the message below, a subset of what the firewall takes.
 */
export function isValidIfName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(name) && isRuleSafeIfname(name);
}

/** The message part that says what isValidIfName accepts. */
export const IFNAME_RULE = "1-15 characters: letters, digits, '_', '.', '-', starting with a letter or digit";

export function parseBool(key: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new UserError(`option ${key} must be true or false, got '${value}'`);
}

export function parseMtu(key: string, value: string, max = 65535): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(n) || n < 68 || n > max) {
    throw new UserError(`option ${key} must be a whole number from 68 to ${max}, got '${value}'`);
  }
  return n;
}

/** Docker's MAC convention for a container: 02:42 and the four bytes of its IPv4 address. */
export function macFromIPv4(cidrOrIp: string): string {
  const ip = cidrOrIp.split('/')[0];
  const bytes = ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0'));
  return ['02', '42', ...bytes].join(':');
}
