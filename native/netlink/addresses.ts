// Addresses: CIDR text to RTM_NEWADDR/DELADDR messages and back. Pure.
import { AF_INET, AF_INET6, IFA_F, RT_SCOPE } from './constants.js';
import type { AddrMessage, addrMessage } from './codec.js';
import { formatIp, ipv4Broadcast, parseCidr, type Family } from './ip.js';
import { scopeName } from './routes.js';

export interface AddressOptions {
  /** no route for the subnet (the caller adds the routes it wants) */
  noPrefixRoute?: boolean;
  /** IPv6: usable at once, without duplicate address detection */
  nodad?: boolean;
}

export interface AddressInfo {
  index: number;
  dev: string;
  family: Family;
  address: string;
  prefixLen: number;
  /** address/prefixLen, IPv6 in canonical form */
  cidr: string;
  scope: string;
  /** IFA_F_* flags */
  flags: number;
  label?: string;
  broadcast?: string;
}

export function addressRequest(index: number, cidr: string, opts: AddressOptions = {}): AddrMessage {
  const { family, ip, prefixLen } = parseCidr(cidr);
  const text = formatIp(ip);
  const flags = (opts.noPrefixRoute ? IFA_F.NOPREFIXROUTE : 0) | (opts.nodad ? IFA_F.NODAD : 0);
  const loopback = family === 4 && ip[0] === 127;
  return {
    header: { family: family === 4 ? AF_INET : AF_INET6, prefixlen: prefixLen, index, scope: loopback ? RT_SCOPE.host : RT_SCOPE.universe, flags: flags & 0xff },
    attrs: {
      local: text,
      address: text,
      // what `ip addr add ... brd +` and Docker set; /31 and /32 have no broadcast address
      broadcast: family === 4 && prefixLen < 31 ? formatIp(ipv4Broadcast(ip, prefixLen)) : undefined,
      // flags above 0xff exist only as the IFA_FLAGS attribute
      flags: flags ? flags : undefined,
    },
  };
}

export function toAddressInfo(m: ReturnType<typeof addrMessage.decode>, dev: string): AddressInfo {
  const { header, attrs } = m;
  const family: Family = header.family === AF_INET ? 4 : 6;
  // IPv4 keeps the local address in IFA_LOCAL (IFA_ADDRESS is the peer on point-to-point links)
  const address = (family === 4 ? (attrs.local ?? attrs.address) : (attrs.address ?? attrs.local)) ?? '';
  const info: AddressInfo = {
    index: header.index,
    dev,
    family,
    address,
    prefixLen: header.prefixlen,
    cidr: `${address}/${header.prefixlen}`,
    scope: scopeName(header.scope),
    flags: attrs.flags ?? header.flags,
  };
  if (attrs.label !== undefined) info.label = attrs.label;
  if (attrs.broadcast !== undefined) info.broadcast = attrs.broadcast;
  return info;
}
