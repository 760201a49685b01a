// Docker's macvlan option keys, accepted as they are so a compose file moves over by changing only
// the driver, plus tsnet's own `host_access`. Pure: parses and validates, touches nothing.
import { IFNAME_RULE, isValidIfName, parseBool, parseMtu, refuseUnknownOptions } from '../options.js';
import { TYPE_OPTION } from '../../core/protocol.js';
import type { MacvlanMode } from '../../native/netlink/links.js';
import { UserError } from '../../core/errors.js';

export const MACVLAN_OPTIONS = {
  parent: 'parent',
  mode: 'macvlan_mode',
  mtu: 'com.docker.network.driver.mtu',
  hostAccess: 'host_access',
} as const;

export const MACVLAN_MODES: readonly MacvlanMode[] = ['bridge', 'private', 'vepa', 'passthru'];

export interface MacvlanOptions {
  /** '' = no parent: an internal-only network */
  parent: string;
  mode: MacvlanMode;
  /** undefined: the parent's MTU */
  mtu?: number;
  /** give the host a shim macvlan so it can reach its own containers */
  hostAccess: boolean;
}

export const MACVLAN_DEFAULTS: MacvlanOptions = { parent: '', mode: 'bridge', hostAccess: false };

/** Every option key a macvlan network accepts, in the order error messages list them. */
export const MACVLAN_ACCEPTED: readonly string[] = [TYPE_OPTION, ...Object.values(MACVLAN_OPTIONS)];

/** An empty value means "the default", as with Docker's `-o key=`. */
export function parseMacvlanOptions(options: Record<string, string>): MacvlanOptions {
  refuseUnknownOptions(options, MACVLAN_ACCEPTED, 'macvlan');
  const out: MacvlanOptions = { ...MACVLAN_DEFAULTS };
  const given = (key: string): string | undefined => {
    const v = options[key];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  const parent = given(MACVLAN_OPTIONS.parent);
  if (parent !== undefined) {
    if (!isValidIfName(parent)) {
      throw new UserError(`option parent: '${parent}' is not a valid interface name (${IFNAME_RULE})`);
    }
    // the kernel refuses macvlans on loopback; say so before anything is tried
    if (parent === 'lo') throw new UserError('option parent: the loopback interface lo cannot carry macvlan links: give an Ethernet interface such as eth1');
    out.parent = parent;
  }

  const mode = given(MACVLAN_OPTIONS.mode);
  if (mode !== undefined) {
    if (!MACVLAN_MODES.includes(mode as MacvlanMode)) {
      throw new UserError(`option macvlan_mode must be one of ${MACVLAN_MODES.join(', ')}, got '${options[MACVLAN_OPTIONS.mode]}'`);
    }
    out.mode = mode as MacvlanMode;
  }

  const mtu = given(MACVLAN_OPTIONS.mtu);
  // the upper bound that matters is the parent's MTU, checked against the kernel at create time
  if (mtu !== undefined) out.mtu = parseMtu(MACVLAN_OPTIONS.mtu, mtu);

  const hostAccess = given(MACVLAN_OPTIONS.hostAccess);
  if (hostAccess !== undefined) out.hostAccess = parseBool(MACVLAN_OPTIONS.hostAccess, hostAccess);
  return out;
}
