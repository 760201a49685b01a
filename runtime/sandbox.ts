// The container side of an attachment: what a runtime (dockerd, a CNI runtime, the overlay lab)
// does after a driver's Join hands it a link. The link moves into the container's namespace, takes
// its name there, its addresses and routes, and comes up. Works from any namespace: `from` is a
// netlink handle of the namespace the link is in now.
import { Netlink } from '../native/netlink/netlink.js';
import { closeFd, openNetnsFd } from '../native/netns.js';

export interface SandboxLink {
  /** the link's name where it is now */
  link: string;
  /** the container's network namespace, e.g. /run/netns/c1 or /proc/PID/ns/net */
  netnsPath: string;
  /** its name inside the container, e.g. eth0 */
  ifName: string;
  /** CIDRs */
  addresses: string[];
  /** default route via these, when given */
  gateway4?: string;
  gateway6?: string;
  mac?: string;
}

/** Moves and configures the link; returns its MAC and MTU inside the container. */
export function configureSandbox(from: Netlink, s: SandboxLink): { mac: string; mtu: number } {
  // a driver told the namespace up front (CNI) made the link inside already
  if (from.getLink(s.link)) {
    const fd = openNetnsFd(s.netnsPath);
    try {
      from.setLink(s.link, { netnsFd: fd });
    } finally {
      closeFd(fd);
    }
  }
  const inside = Netlink.openInNetns(s.netnsPath);
  try {
    inside.setLink(s.link, { name: s.ifName, ...(s.mac ? { mac: s.mac } : {}) });
    for (const cidr of s.addresses) inside.addAddress(s.ifName, cidr, { nodad: cidr.includes(':') });
    inside.setLink('lo', { up: true });
    inside.setLink(s.ifName, { up: true });
    if (s.gateway4) inside.replaceRoute({ dst: 'default', gateway: s.gateway4, dev: s.ifName });
    if (s.gateway6) inside.replaceRoute({ dst: '::/0', gateway: s.gateway6, dev: s.ifName });
    const link = inside.getLink(s.ifName);
    return { mac: link?.mac ?? '', mtu: link?.mtu ?? 0 };
  } finally {
    inside.close();
  }
}
