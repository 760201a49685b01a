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
  const inside = Netlink.openInNetns(s.netnsPath);
  try {
    // looked for in the container first: a driver may have made it there (CNI's), and every
    // request saved counts on a host with thousands of links (bench/scale.ts); then by its index
    let link = inside.getLink(s.link);
    if (!link && from.getLink(s.link)) {
      const fd = openNetnsFd(s.netnsPath);
      try {
        from.setLink(s.link, { netnsFd: fd });
      } finally {
        closeFd(fd);
      }
      link = inside.getLink(s.link);
    }
    // a MAC the link has already (the driver made it with that MAC) is not set again
    const newMac = s.mac && s.mac.toLowerCase() !== link?.mac ? s.mac : undefined;
    inside.setLink(link?.index ?? s.link, { name: s.ifName, ...(newMac ? { mac: newMac } : {}) });
    const dev = link?.index ?? s.ifName;
    for (const cidr of s.addresses) inside.addAddress(dev, cidr, { nodad: cidr.includes(':') });
    inside.setLink('lo', { up: true });
    inside.setLink(dev, { up: true });
    const route = link ? { devIndex: link.index } : { dev: s.ifName };
    if (s.gateway4) inside.replaceRoute({ dst: 'default', gateway: s.gateway4, ...route });
    if (s.gateway6) inside.replaceRoute({ dst: '::/0', gateway: s.gateway6, ...route });
    // renaming and bringing it up change neither its MTU nor its MAC
    const now = link && !newMac ? link : inside.getLink(s.ifName);
    return { mac: now?.mac ?? '', mtu: now?.mtu ?? 0 };
  } finally {
    inside.close();
  }
}
