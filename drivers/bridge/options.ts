// Docker's bridge option keys, accepted as they are so a compose file moves over by changing only
// the driver. Pure: parses and validates, touches nothing.
import { isIPv4 } from 'node:net';
import { UserError } from '../../core/errors.js';
import { TYPE_OPTION } from '../../core/protocol.js';
import { IFNAME_RULE, isValidIfName, parseBool, parseMtu, refuseUnknownOptions } from '../options.js';

export const BRIDGE_OPTIONS = {
  name: 'com.docker.network.bridge.name',
  mtu: 'com.docker.network.driver.mtu',
  icc: 'com.docker.network.bridge.enable_icc',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  hostBindingIpv4: 'com.docker.network.bridge.host_binding_ipv4',
  ifacePrefix: 'com.docker.network.container_iface_prefix',
  /** tsnet's own: containers may send only from their own MAC and addresses (default true) */
  antiSpoofing: 'anti_spoofing',
} as const;

export interface BridgeOptions {
  /** undefined: derived from the network ID */
  bridgeName?: string;
  mtu: number;
  icc: boolean;
  masquerade: boolean;
  /** '' = every host address */
  hostBindingIpv4: string;
  ifacePrefix: string;
  antiSpoofing: boolean;
}

export const BRIDGE_DEFAULTS: BridgeOptions = {
  mtu: 1500,
  icc: true,
  masquerade: true,
  hostBindingIpv4: '',
  ifacePrefix: 'eth',
  antiSpoofing: true,
};

export function parseBridgeOptions(options: Record<string, string>): BridgeOptions {
  refuseUnknownOptions(options, [TYPE_OPTION, ...Object.values(BRIDGE_OPTIONS)], 'bridge');
  const out: BridgeOptions = { ...BRIDGE_DEFAULTS };
  const name = options[BRIDGE_OPTIONS.name];
  if (name !== undefined && name !== '') {
    if (!isValidIfName(name)) {
      throw new UserError(
        `option ${BRIDGE_OPTIONS.name}: '${name}' is not a valid interface name (${IFNAME_RULE})`,
      );
    }
    out.bridgeName = name;
  }
  const mtu = options[BRIDGE_OPTIONS.mtu];
  if (mtu !== undefined && mtu !== '') out.mtu = parseMtu(BRIDGE_OPTIONS.mtu, mtu);
  const icc = options[BRIDGE_OPTIONS.icc];
  if (icc !== undefined && icc !== '') out.icc = parseBool(BRIDGE_OPTIONS.icc, icc);
  const masq = options[BRIDGE_OPTIONS.masquerade];
  if (masq !== undefined && masq !== '') out.masquerade = parseBool(BRIDGE_OPTIONS.masquerade, masq);
  const hostIp = options[BRIDGE_OPTIONS.hostBindingIpv4];
  if (hostIp !== undefined && hostIp !== '') {
    if (!isIPv4(hostIp)) {
      throw new UserError(`option ${BRIDGE_OPTIONS.hostBindingIpv4} must be an IPv4 address, got '${hostIp}'`);
    }
    // 0.0.0.0 is Docker's spelling of "every address"
    out.hostBindingIpv4 = hostIp === '0.0.0.0' ? '' : hostIp;
  }
  const spoof = options[BRIDGE_OPTIONS.antiSpoofing];
  if (spoof !== undefined && spoof !== '') out.antiSpoofing = parseBool(BRIDGE_OPTIONS.antiSpoofing, spoof);
  const prefix = options[BRIDGE_OPTIONS.ifacePrefix];
  if (prefix !== undefined && prefix !== '') {
    if (!/^[A-Za-z][A-Za-z0-9_-]{0,9}$/.test(prefix)) {
      throw new UserError(`option ${BRIDGE_OPTIONS.ifacePrefix} must be 1-10 letters, digits, '_' or '-', starting with a letter`);
    }
    out.ifacePrefix = prefix;
  }
  return out;
}
