// Hand-built overlay data paths for the throughput benchmark (bench/overlay.ts, LAYOUTS=1), so a
// layout can be measured on the lab's hosts, beside tsnet's own overlay and the bare underlay,
// before the driver is changed to it (issue 14 item 1). Each layout joins one container on h1 and
// one on h2 with VXLAN over the lab's underlay, with br_netfilter left on in the hosts' namespaces:
//   bridge-in-host  a bridge with the VXLAN port in the host's namespace (tsnet's layout before)
//   netns           the bridge and the VXLAN device in a namespace of the network's own, with
//                   br_netfilter off there; a veth pair with the gateway on its host end is the way
//                   out through the own host (Docker's overlay keeps its bridge the same way)
//   routed          no bridge: each container's veth is routed by the host (a /32 route, proxy
//                   ARP), and the VXLAN device is a layer-3 device whose neighbours are the other
//                   hosts' VXLAN MACs (as Calico's VXLAN mode)
// The entries the control plane would program (forwarding and neighbour) are written by hand.
// Everything is made with `ip`, inside namespaces of the lab's own, and removed by the cleanup.
import { Cleanup, inNs, sh } from './lib.js';

export type LayoutKind = 'bridge-in-host' | 'netns' | 'routed';
export const LAYOUTS: LayoutKind[] = ['bridge-in-host', 'netns', 'routed'];

export interface LabHostRef {
  name: string;
  netns: string;
  /** CIDR on the underlay */
  underlay: string;
}

/** One container per host on a hand-built layout; iperf3 runs from `from` to `toIp` in `to`. */
export interface BuiltLayout {
  kind: LayoutKind;
  from: string;
  to: string;
  toIp: string;
}

export const MTU = '1450';
/** a subnet and VNI per layout, inside the lab's namespaces only */
const SUBNET: Record<LayoutKind, { prefix: string; vni: string }> = {
  'bridge-in-host': { prefix: '10.231.1', vni: '7101' },
  netns: { prefix: '10.231.2', vni: '7102' },
  routed: { prefix: '10.231.3', vni: '7103' },
};

export function ip(ns: string, ...args: string[]): void {
  inNs(ns, 'ip', args);
}

/** A container namespace with eth0 at ADDR/24 (default route via .1), its peer `hostIf` left in `hostNs`. */
export function container(cleanup: Cleanup, name: string, hostNs: string, hostIf: string, address: string, gateway: string): void {
  sh('ip', ['netns', 'add', name]);
  cleanup.add(() => sh('ip', ['netns', 'del', name]));
  ip(name, 'link', 'set', 'lo', 'up');
  ip(hostNs, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
  ip(hostNs, 'link', 'set', hostIf, 'mtu', MTU, 'up');
  ip(name, 'link', 'set', 'eth0', 'mtu', MTU, 'up');
  ip(name, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
  ip(name, 'route', 'add', 'default', 'via', gateway);
}

export function vxlan(ns: string, name: string, vni: string, vtep: string): void {
  ip(ns, 'link', 'add', name, 'type', 'vxlan', 'id', vni, 'dstport', '4789', 'local', vtep, 'nolearning');
}

export function macOf(ns: string, link: string): string {
  return inNs(ns, 'cat', [`/sys/class/net/${link}/address`]);
}

/** Builds layout `kind` on hosts h1 and h2 of a lab; the cleanup removes it. */
export function buildLayout(kind: LayoutKind, hosts: [LabHostRef, LabHostRef], labPrefix: string, cleanup: Cleanup): BuiltLayout {
  const { prefix, vni } = SUBNET[kind];
  const gateway = `${prefix}.1`;
  const vx = `lvx${vni}`;
  const tag = `${labPrefix}lay${vni}`;
  const side = hosts.map((h, i) => ({
    h,
    vtep: h.underlay.split('/')[0],
    ct: `${tag}-c${i + 1}`,
    address: `${prefix}.${11 + i}`,
    // where the bridge and the VXLAN device live
    ns: kind === 'netns' ? `${tag}-n${i + 1}` : h.netns,
  }));
  for (const [i, s] of side.entries()) {
    const port = `lp${vni}${i}`;
    if (kind === 'routed') {
      vxlan(s.h.netns, vx, vni, s.vtep);
      cleanup.add(() => ip(s.h.netns, 'link', 'del', vx));
      ip(s.h.netns, 'link', 'set', vx, 'mtu', MTU, 'up');
      // the gateway is an address of the host, answered on every container's veth
      ip(s.h.netns, 'addr', 'add', `${gateway}/32`, 'dev', vx);
      container(cleanup, s.ct, s.h.netns, port, s.address, gateway);
      inNs(s.h.netns, 'sysctl', ['-qw', `net.ipv4.conf.${port}.proxy_arp=1`, 'net.ipv4.ip_forward=1']);
      ip(s.h.netns, 'route', 'add', `${s.address}/32`, 'dev', port);
      continue;
    }
    const br = `lbr${vni}`;
    if (kind === 'netns') {
      sh('ip', ['netns', 'add', s.ns]);
      cleanup.add(() => sh('ip', ['netns', 'del', s.ns]));
      ip(s.ns, 'link', 'set', 'lo', 'up');
      // br_netfilter is per namespace: off in the network's own, on in the host's
      inNs(s.ns, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', 'net.bridge.bridge-nf-call-arptables=0']);
    }
    ip(s.ns, 'link', 'add', br, 'type', 'bridge');
    if (s.ns === s.h.netns) cleanup.add(() => ip(s.ns, 'link', 'del', br));
    ip(s.ns, 'link', 'set', br, 'mtu', MTU, 'up');
    // made in the host's namespace and moved: its UDP socket stays on the host's underlay
    vxlan(s.h.netns, vx, vni, s.vtep);
    if (kind === 'netns') ip(s.h.netns, 'link', 'set', vx, 'netns', s.ns);
    ip(s.ns, 'link', 'set', vx, 'mtu', MTU, 'master', br, 'up');
    if (kind === 'netns') {
      const gw = `lgw${vni}`;
      ip(s.h.netns, 'link', 'add', gw, 'type', 'veth', 'peer', 'name', 'gwp', 'netns', s.ns);
      cleanup.add(() => ip(s.h.netns, 'link', 'del', gw));
      ip(s.h.netns, 'addr', 'add', `${gateway}/24`, 'dev', gw);
      ip(s.h.netns, 'link', 'set', gw, 'mtu', MTU, 'up');
      ip(s.ns, 'link', 'set', 'gwp', 'mtu', MTU, 'master', br, 'up');
    } else {
      ip(s.ns, 'addr', 'add', `${gateway}/24`, 'dev', br);
    }
    container(cleanup, s.ct, s.ns, port, s.address, gateway);
    ip(s.ns, 'link', 'set', port, 'master', br);
  }
  // the entries of the other host's container, as the control plane programs them
  for (const [i, s] of side.entries()) {
    const o = side[1 - i];
    if (kind === 'routed') {
      const mac = macOf(o.h.netns, vx);
      inNs(s.h.netns, 'bridge', ['fdb', 'add', mac, 'dev', vx, 'dst', o.vtep, 'self', 'permanent']);
      ip(s.h.netns, 'neigh', 'add', o.address, 'lladdr', mac, 'dev', vx, 'nud', 'permanent');
      ip(s.h.netns, 'route', 'add', `${o.address}/32`, 'dev', vx);
    } else {
      const mac = macOf(o.ct, 'eth0');
      inNs(s.ns, 'bridge', ['fdb', 'add', mac, 'dev', vx, 'dst', o.vtep, 'self', 'permanent']);
      inNs(s.ns, 'bridge', ['fdb', 'add', mac, 'dev', vx, 'master', 'static']);
      ip(s.ct, 'neigh', 'add', o.address, 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent');
    }
  }
  // the same container reaches the other host's and (the way out) its own host's address
  inNs(side[0].ct, 'ping', ['-c', '1', '-W', '2', side[1].address]);
  inNs(side[0].ct, 'ping', ['-c', '1', '-W', '2', side[0].vtep]);
  return { kind, from: side[0].ct, to: side[1].ct, toIp: side[1].address };
}
