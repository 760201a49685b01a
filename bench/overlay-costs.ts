// The overlay's data path taken apart, for the throughput benchmark (bench/overlay.ts, STEPS=1):
// where the cost per packet between the underlay and tsnet's overlay goes (issue 14 item 1). Each
// step adds one piece of the overlay to the one before, all built by hand with `ip` on the lab's
// hosts in namespaces of the step's own (br_netfilter off there, as in tsnet's layout), so they are
// measured in the same alternation as the underlay and tsnet's overlay:
//   vxlan          the VXLAN devices alone, each with an address: encapsulation and the underlay
//   +bridge        the VXLAN device a port of a bridge that has the address
//   +veth          a container behind a veth on that bridge: tsnet's layout without its gateway
//                  veth and anti-spoofing table
//   +veth, GRO     the same with GRO on both ends of the container's veth (tried in tsnet's layout
//                  and taken out again: no consistent gain, bench/README.md (d))
//   +veth, VXLAN GRO off   +veth with GRO off on the VXLAN device: its decapsulated packets go
//                  straight to the bridge instead of through its GRO cells (not tsnet's: see
//                  bench/README.md (d) for why)
//   +veth, as tsnet  +veth with what tsnet's layout adds on this path: the VXLAN device's ARP
//                  proxy and tsnet's anti-spoofing table in the namespace, with the port's elements
//   +veth, ingress guard   +veth, as tsnet with the checks at the container port's own ingress
//                  hook (netdev family) instead of the bridge's prerouting hook, and no bridge-family
//                  table (ICC on): tsnet's layout since, firewall/rules/spoofing.ts
//   +veth, ingress guard, notrack   the same with the outer VXLAN packets exempt from conntrack
//                  in both hosts' namespaces (a raw-priority notrack rule for the VXLAN port; this
//                  step's devices use UDP port 4790 so that only they are exempt)
//   +veth, fwd     +veth, ingress guard, notrack with the bridge bypassed for unicast: the port's
//                  ingress hook forwards frames for the other host's container straight to the VXLAN
//                  device (nft `fwd`), and the VXLAN device's ingress forwards frames for the
//                  container straight to its port; broadcasts still take the bridge
//   macvlan        no bridge and no veth: the container's link is a macvlan child (bridge mode) of
//                  the VXLAN device, moved into the container (a layout tsnet does not have)
// The entries the control plane would program are written by hand; the cleanup removes it all.
import { setGro } from './ethtool.js';
import { withNetns } from '../native/netns.js';
import { namedNetnsPath } from '../native/named-netns.js';
import { MTU, container, ip, macOf, vxlan, type LabHostRef } from './overlay-layouts.js';
import { Cleanup, inNs, sh } from './lib.js';
import { addEndpointSpoofRules, addIngressGuardRules, ingressGuardTableRules, spoofTableRules } from '../firewall/rules/spoofing.js';

/** the bridge-family table tsnet loads in an overlay's namespace (drivers/overlay/netns-layout.ts) */
const TSNET_TABLE = 'bridge tsnet';
/** the netdev-family table of the per-port checks (the same module) */
const GUARD_TABLE = 'netdev tsnet';

export type CostStep = 'vxlan' | '+bridge' | '+veth' | '+veth, GRO' | '+veth, VXLAN GRO off' | '+veth, as tsnet' | '+veth, ingress guard' | '+veth, ingress guard, notrack' | '+veth, fwd' | 'macvlan';
export const COST_STEPS: CostStep[] = ['vxlan', '+bridge', '+veth', '+veth, GRO', '+veth, VXLAN GRO off', '+veth, as tsnet', '+veth, ingress guard', '+veth, ingress guard, notrack', '+veth, fwd', 'macvlan'];

/** STEPS=1: every step; STEPS='a;b': those named (an unknown name is an error); otherwise none. */
export function chosenSteps(env: string | undefined): CostStep[] {
  if (!env) return [];
  if (env === '1') return COST_STEPS;
  const names = env.split(';').map((n) => n.trim());
  const unknown = names.filter((n) => !(COST_STEPS as string[]).includes(n));
  if (unknown.length > 0) throw new Error(`STEPS: unknown step ${unknown.join(', ')}; the steps: 1 (all), ${COST_STEPS.join(' | ')}`);
  return names as CostStep[];
}

/** where iperf3 runs for one step: from `from` to `toIp` in `to` */
export interface BuiltStep {
  from: string;
  to: string;
  toIp: string;
}

/** inside the lab's namespaces only; apart from overlay-layouts.ts's 10.231.1-3 and 7101-7103 */
const NUMBER: Record<CostStep, number> = { vxlan: 4, '+bridge': 5, '+veth': 6, '+veth, GRO': 7, '+veth, VXLAN GRO off': 8, macvlan: 9, '+veth, as tsnet': 10, '+veth, ingress guard': 11, '+veth, ingress guard, notrack': 12, '+veth, fwd': 13 };

/** Builds step `step` on hosts h1 and h2 of a lab; the cleanup removes it. */
export function buildStep(step: CostStep, hosts: [LabHostRef, LabHostRef], labPrefix: string, cleanup: Cleanup): BuiltStep {
  const n = NUMBER[step];
  const prefix = `10.231.${n}`;
  const vni = String(7100 + n);
  const vx = `lvx${vni}`;
  const side = hosts.map((h, i) => ({
    h,
    vtep: h.underlay.split('/')[0],
    /** the step's own namespace on host i: the VXLAN device (and bridge) */
    ns: `${labPrefix}st${vni}-n${i + 1}`,
    ct: `${labPrefix}st${vni}-c${i + 1}`,
    address: `${prefix}.${11 + i}`,
  }));
  for (const [i, s] of side.entries()) {
    sh('ip', ['netns', 'add', s.ns]);
    cleanup.add(() => sh('ip', ['netns', 'del', s.ns]));
    ip(s.ns, 'link', 'set', 'lo', 'up');
    inNs(s.ns, 'sysctl', ['-qw', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', 'net.bridge.bridge-nf-call-arptables=0']);
    // made in the host's namespace and moved: its UDP socket stays on the host's underlay
    const fwd = step === '+veth, fwd';
    const notrack = step === '+veth, ingress guard, notrack' || fwd;
    if (notrack) {
      const t = `inet lbnotrack${vni}`;
      inNs(s.h.netns, 'nft', ['-f', '-'], [`add table ${t}`, ...['prerouting', 'output'].flatMap((hook) => [`add chain ${t} ${hook} { type filter hook ${hook} priority raw; }`, `add rule ${t} ${hook} udp dport 4790 notrack`])].join('\n'));
      cleanup.add(() => inNs(s.h.netns, 'nft', ['delete', 'table', ...t.split(' ')]));
    }
    if (step === '+veth, as tsnet' || step === '+veth, ingress guard' || notrack) ip(s.h.netns, 'link', 'add', vx, 'type', 'vxlan', 'id', vni, 'dstport', notrack ? '4790' : '4789', 'local', s.vtep, 'nolearning', 'proxy');
    else vxlan(s.h.netns, vx, vni, s.vtep);
    ip(s.h.netns, 'link', 'set', vx, 'netns', s.ns);
    ip(s.ns, 'link', 'set', vx, 'mtu', MTU, 'up');
    if (step === 'vxlan') {
      ip(s.ns, 'addr', 'add', `${s.address}/24`, 'dev', vx);
      continue;
    }
    if (step === 'macvlan') {
      sh('ip', ['netns', 'add', s.ct]);
      cleanup.add(() => sh('ip', ['netns', 'del', s.ct]));
      ip(s.ct, 'link', 'set', 'lo', 'up');
      ip(s.ns, 'link', 'add', 'link', vx, 'name', `lm${vni}`, 'type', 'macvlan', 'mode', 'bridge');
      ip(s.ns, 'link', 'set', `lm${vni}`, 'netns', s.ct);
      ip(s.ct, 'link', 'set', `lm${vni}`, 'name', 'eth0');
      ip(s.ct, 'link', 'set', 'eth0', 'mtu', MTU, 'up');
      ip(s.ct, 'addr', 'add', `${s.address}/24`, 'dev', 'eth0');
      continue;
    }
    ip(s.ns, 'link', 'add', 'br0', 'mtu', MTU, 'type', 'bridge');
    ip(s.ns, 'link', 'set', 'br0', 'up');
    ip(s.ns, 'link', 'set', vx, 'master', 'br0');
    inNs(s.ns, 'bridge', ['link', 'set', 'dev', vx, 'learning', 'off']);
    if (step === '+bridge') {
      ip(s.ns, 'addr', 'add', `${s.address}/24`, 'dev', 'br0');
      continue;
    }
    const port = `lp${vni}${i}`;
    container(cleanup, s.ct, s.ns, port, s.address, `${prefix}.1`);
    ip(s.ns, 'link', 'set', port, 'master', 'br0');
    if (step === '+veth, GRO') {
      withNetns(namedNetnsPath(s.ns), () => setGro(port, true));
      withNetns(namedNetnsPath(s.ct), () => setGro('eth0', true));
    }
    if (step === '+veth, VXLAN GRO off') withNetns(namedNetnsPath(s.ns), () => setGro(vx, false));
    if (step === '+veth, as tsnet') {
      const fw = { endpointId: `bench-${vni}-${i}`, port, mac: macOf(s.ct, 'eth0'), ipv4: [s.address], ipv6: [] };
      inNs(s.ns, 'nft', ['-f', '-'], [spoofTableRules(TSNET_TABLE), addEndpointSpoofRules(TSNET_TABLE, fw)].join('\n'));
    }
    if (step === '+veth, ingress guard' || notrack) {
      const fw = { endpointId: `bench-${vni}-${i}`, port, mac: macOf(s.ct, 'eth0'), ipv4: [s.address], ipv6: [] };
      inNs(s.ns, 'nft', ['-f', '-'], [ingressGuardTableRules(GUARD_TABLE), addIngressGuardRules(GUARD_TABLE, fw)].join('\n'));
    }
  }
  // the entries of the other host's end, as the control plane programs them
  const end = (s: (typeof side)[number]) =>
    step === 'vxlan' ? { ns: s.ns, dev: vx } : step === '+bridge' ? { ns: s.ns, dev: 'br0' } : { ns: s.ct, dev: 'eth0' };
  for (const [i, s] of side.entries()) {
    const o = side[1 - i];
    const mac = macOf(end(o).ns, end(o).dev);
    inNs(s.ns, 'bridge', ['fdb', 'add', mac, 'dev', vx, 'dst', o.vtep, 'self', 'permanent']);
    if (step !== 'vxlan' && step !== 'macvlan') inNs(s.ns, 'bridge', ['fdb', 'add', mac, 'dev', vx, 'master', 'static']);
    ip(end(s).ns, 'neigh', 'add', o.address, 'lladdr', mac, 'dev', end(s).dev, 'nud', 'permanent');
    if (step === '+veth, fwd') {
      const port = `lp${vni}${i}`;
      const t = 'netdev lbfwd';
      inNs(s.ns, 'nft', ['-f', '-'], [
        `add table ${t}`,
        `add chain ${t} out { type filter hook ingress device "${port}" priority 0; }`,
        `add rule ${t} out ether daddr ${mac} fwd to "${vx}"`,
        `add chain ${t} in { type filter hook ingress device "${vx}" priority 0; }`,
        `add rule ${t} in ether daddr ${macOf(s.ct, 'eth0')} fwd to "${port}"`,
      ].join('\n'));
    }
  }
  const [a, b] = side.map(end);
  inNs(a.ns, 'ping', ['-c', '1', '-W', '2', side[1].address]);
  return { from: a.ns, to: b.ns, toIp: side[1].address };
}
