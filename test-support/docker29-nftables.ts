// Docker 29's nftables rules for its bridge networks ("firewall-backend": "nftables"), as an `nft
// -f` script for a test namespace (only Docker 20.10 installs on the test machines). Written from
// moby docker-v29.1.4:
//   daemon/libnetwork/drivers/bridge/internal/nftabler/nftabler.go (the tables `ip docker-bridges`
//     and `ip6 docker-bridges`, their base chains, priorities and verdict maps),
//   daemon/libnetwork/drivers/bridge/internal/nftabler/network.go (a network's chains: conntrack,
//     ICC, the "ALLOW FW MARK" accept that --bridge-accept-fwmark adds, as `meta mark and MASK ==
//     VALUE`, before the final "UNPUBLISHED PORT DROP"; internal networks' ingress/egress drops),
//   integration/network/bridge/nftablesdoc/generated/usernet-portmap.md and usernet-internal.md
//     (the listings these reproduce: the published port's accept, DNAT and raw "DROP DIRECT ACCESS").
// Docker's documentation (docs.docker.com engine/network/firewall-nftables.md): there is no
// DOCKER-USER; other tools use tables of their own with base chains ordered by priority, and get
// past Docker's drops with --bridge-accept-fwmark and their mark set at priority filter - 1 or lower.
import type { DockerBridge } from './docker-iptables.js';

export interface Docker29Options {
  /** dockerd's --bridge-accept-fwmark, e.g. '0x00540000/0x00540000'; none when not set */
  acceptFwmark?: string;
}

/** The `nft` value of a mark option, as nftabler's nftFwMark writes it. */
function fwmarkMatch(option: string): string {
  const [mark, mask] = option.split('/');
  return mask === undefined ? String(Number(mark)) : `and ${Number(mask)} == ${Number(mark)}`;
}

/** `ip docker-bridges` (with these networks) and an empty `ip6 docker-bridges`, for `nft -f`. */
export function docker29Nftables(bridges: DockerBridge[], opts: Docker29Options = {}): string {
  return [tableOf('ip', bridges, opts), tableOf('ip6', [], opts), ''].join('\n');
}

function tableOf(family: 'ip' | 'ip6', bridges: DockerBridge[], opts: Docker29Options): string {
  const t = `${family} docker-bridges`;
  const loopback = family === 'ip' ? 'ip daddr != 127.0.0.0/8' : 'ip6 daddr != ::1';
  const lines = [
    `add table ${t}`,
    ...['filter-forward-in-jumps', 'filter-forward-out-jumps', 'nat-postrouting-in-jumps', 'nat-postrouting-out-jumps'].map((m) => `add map ${t} ${m} { type ifname : verdict; }`),
    `add chain ${t} filter-FORWARD { type filter hook forward priority filter; policy accept; }`,
    `add rule ${t} filter-FORWARD oifname vmap @filter-forward-in-jumps`,
    `add rule ${t} filter-FORWARD iifname vmap @filter-forward-out-jumps`,
    `add chain ${t} nat-OUTPUT { type nat hook output priority -100; policy accept; }`,
    `add chain ${t} nat-POSTROUTING { type nat hook postrouting priority srcnat; policy accept; }`,
    `add rule ${t} nat-POSTROUTING iifname vmap @nat-postrouting-out-jumps`,
    `add rule ${t} nat-POSTROUTING oifname vmap @nat-postrouting-in-jumps`,
    `add chain ${t} nat-PREROUTING { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${t} nat-prerouting-and-output`,
    `add rule ${t} nat-PREROUTING fib daddr type local counter jump nat-prerouting-and-output`,
    `add rule ${t} nat-OUTPUT ${loopback} fib daddr type local counter jump nat-prerouting-and-output`,
    `add chain ${t} raw-PREROUTING { type filter hook prerouting priority raw; policy accept; }`,
  ];
  for (const b of bridges) {
    const br = b.name;
    const [fin, fout, pin, pout] = ['filter-forward-in', 'filter-forward-out', 'nat-postrouting-in', 'nat-postrouting-out'].map((c) => `${c}__${br}`);
    lines.push(
      ...[fin, fout, pin, pout].map((c) => `add chain ${t} ${c}`),
      `add element ${t} filter-forward-in-jumps { "${br}" : jump ${fin} }`,
      `add element ${t} filter-forward-out-jumps { "${br}" : jump ${fout} }`,
      `add element ${t} nat-postrouting-in-jumps { "${br}" : jump ${pin} }`,
      `add element ${t} nat-postrouting-out-jumps { "${br}" : jump ${pout} }`,
      `add rule ${t} ${fin} ct state established,related counter accept`,
      `add rule ${t} ${fout} ct state established,related counter accept`,
    );
    if (b.internal) {
      lines.push(
        `add rule ${t} ${fin} iifname != "${br}" counter drop comment "INTERNAL NETWORK INGRESS"`,
        `add rule ${t} ${fin} counter accept comment "ICC"`,
        `add rule ${t} ${fout} oifname != "${br}" counter drop comment "INTERNAL NETWORK EGRESS"`,
      );
      continue;
    }
    const published = b.published ?? [];
    if (opts.acceptFwmark) lines.push(`add rule ${t} ${fin} meta mark ${fwmarkMatch(opts.acceptFwmark)} counter accept comment "ALLOW FW MARK"`);
    lines.push(
      `add rule ${t} ${fin} iifname "${br}" counter accept comment "ICC"`,
      ...published.map((m) => `add rule ${t} ${fin} ip daddr ${m.containerIp} tcp dport ${m.containerPort} counter accept`),
      `add rule ${t} ${fin} counter drop comment "UNPUBLISHED PORT DROP"`,
      `add rule ${t} ${fout} counter accept comment "OUTGOING"`,
      `add rule ${t} ${pout} oifname != "${br}" ${family} saddr ${b.subnet} counter masquerade comment "MASQUERADE"`,
      ...published.map((m) => `add rule ${t} nat-prerouting-and-output iifname != "${br}" tcp dport ${m.hostPort} counter dnat to ${m.containerIp}:${m.containerPort} comment "DNAT"`),
      ...published.map((m) => `add rule ${t} raw-PREROUTING ip daddr ${m.containerIp} iifname != "${br}" counter drop comment "DROP DIRECT ACCESS"`),
    );
  }
  return lines.join('\n');
}
