// Which address this host tunnels from (its VTEP) and the MTU of the link under it. Given with
// `tsnet serve --vtep IP`, or else the source of the host's default IPv4 route.
import type { Netlink } from '../../native/netlink/netlink.js';
import type { Underlay } from './plan.js';

const NO_UNDERLAY: Underlay = { vtep: '', link: '', mtu: 1500 };

export function discoverUnderlay(nl: Pick<Netlink, 'listAddresses' | 'listRoutes' | 'getLink'>, vtep?: string): Underlay {
  if (vtep) {
    const addr = nl.listAddresses().find((a) => a.address === vtep);
    if (!addr) throw new Error(`--vtep ${vtep} is not an address of this host: give one of its own IPv4 addresses`);
    return { vtep, link: addr.dev, mtu: nl.getLink(addr.dev)?.mtu ?? 1500 };
  }
  const route = nl
    .listRoutes(4)
    .filter((r) => r.dst === 'default' && r.dev)
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
  if (!route?.dev) return NO_UNDERLAY;
  const address = route.src ?? nl.listAddresses(route.dev).find((a) => a.family === 4 && a.scope === 'universe')?.address;
  if (!address) return NO_UNDERLAY;
  return { vtep: address, link: route.dev, mtu: nl.getLink(route.dev)?.mtu ?? 1500 };
}
