// Golden files of the nftables text tsnet loads: the whole table for a few representative states,
// and the incremental scripts the daemon runs as networks and ports come and go. They pin the
// exact bytes, so a refactor of the rule text (ruleset.ts and firewall/rules/) is proven not to
// change what the kernel is given, and a deliberate change shows up as a reviewable diff of
// firewall/testdata/*.nft. Update them with `vitest run --project unit -u firewall/`, then read
// the diff.
import { describe, expect, it } from 'vitest';
import { fullTable, rulesFor } from './ruleset.js';
import type { FirewallEndpoint, FirewallNetwork, PortMapping } from './model.js';
import type { Proto } from '../core/protocol.js';

// ------------------------------------------------------------------ representative networks

/** A dual-stack bridge network (--ipv6), masqueraded. */
const dualStack: FirewallNetwork = { id: 'web', bridge: 'tsnet-0a1b2c3d4', subnets: ['10.231.10.0/24', 'fd00:231:10::/64'], masquerade: true, internal: false };
/** --internal: never masqueraded (the bridge plan turns masquerade off for internal networks). */
const internal: FirewallNetwork = { id: 'int', bridge: 'br-internal', subnets: ['10.231.11.0/24'], masquerade: false, internal: true };
/**
 * enable_icc=false: a bridge port flag (port isolation) and the no_icc element, which drops what
 * is routed back out the bridge (a container reaching its peer through the gateway).
 */
const iccOff: FirewallNetwork = { id: 'noicc', bridge: 'br-noicc', subnets: ['10.231.12.0/24'], masquerade: true, internal: false, icc: false };
/** enable_ip_masquerade=false */
const noMasq: FirewallNetwork = { id: 'nomasq', bridge: 'br-nomasq', subnets: ['10.231.13.0/24'], masquerade: false, internal: false };
/** An overlay network: its gateway link named after the overlay (tob-...), IPv4 only, its VXLAN tunnel untracked. */
const overlay: FirewallNetwork = { id: 'ov', bridge: 'tob-0a1b2c3d4e5', subnets: ['10.237.0.0/24'], masquerade: true, internal: false, tunnel: { local: '198.51.100.7', port: 4789, vni: 4096 } };

/** `-p [HOSTIP:]FIRST-LAST:CFIRST-CLAST/proto` as the drivers hand it over: one mapping per port. */
function range(endpointId: string, proto: Proto, hostIp: string, hostFirst: number, containerIp: string, containerFirst: number, count: number): PortMapping[] {
  return Array.from({ length: count }, (_, i) => ({ endpointId, proto, hostIp, hostPort: hostFirst + i, containerIp, containerPort: containerFirst + i }));
}

const bridgeMappings: PortMapping[] = [
  // -p 9000-9003:9000-9003 on every host address, IPv4 and IPv6 (a dual-stack container)
  ...range('web1', 'tcp', '', 9000, '10.231.10.2', 9000, 4),
  ...range('web1', 'tcp', '', 9000, 'fd00:231:10::2', 9000, 4),
  // -p 198.51.100.10:5353:53/udp and a specific IPv6 host address, sctp
  ...range('web1', 'udp', '198.51.100.10', 5353, '10.231.10.2', 53, 1),
  ...range('web1', 'sctp', 'fd00:198:51::10', 7000, 'fd00:231:10::2', 7000, 1),
  // -p 203.0.113.5:8000-8001:80-81 on the ICC-off network
  ...range('noicc1', 'tcp', '203.0.113.5', 8000, '10.231.12.3', 80, 2),
];

const overlayMappings: PortMapping[] = range('ov1', 'tcp', '', 8080, '10.237.0.2', 80, 1);

/** Container ports under anti-spoofing: a dual-stack one and an IPv4-only one. */
const bridgeEndpoints: FirewallEndpoint[] = [
  { endpointId: 'web1', port: 'tsvweb1', mac: '02:42:0a:e7:0a:02', ipv4: ['10.231.10.2'], ipv6: ['fd00:231:10::2'] },
  { endpointId: 'noicc1', port: 'tsvnoicc1', mac: '02:42:0a:e7:0c:03', ipv4: ['10.231.12.3'], ipv6: [] },
];
/** An IPv6-only port: IPv4 and ARP from it are dropped whole. */
const v6Only: FirewallEndpoint = { endpointId: 'six', port: 'tsvsix', mac: '02:42:00:00:00:06', ipv4: [], ipv6: ['fd00:231:10::6'] };

// ------------------------------------------------------------------ goldens

describe('nftables text (golden files in firewall/testdata/)', () => {
  it('(a) the empty table', async () => {
    await expect(fullTable([], [])).toMatchFileSnapshot('testdata/empty.nft');
  });

  it('(b) bridge networks: dual-stack, internal, ICC off, no masquerade, with published ranges and host addresses', async () => {
    await expect(fullTable([dualStack, internal, iccOff, noMasq], bridgeMappings, bridgeEndpoints)).toMatchFileSnapshot('testdata/bridges.nft');
  });

  it('(c) an overlay network with a published port', async () => {
    await expect(fullTable([overlay], overlayMappings)).toMatchFileSnapshot('testdata/overlay.nft');
  });

  it('(d) the incremental scripts, on a table of another name', async () => {
    const r = rulesFor('tsnet_e2e');
    const sections: [string, string][] = [
      ['createTable()', r.createTable()],
      ['addNetwork(dual-stack)', r.addNetwork(dualStack)],
      ['addNetwork(internal)', r.addNetwork(internal)],
      ['removeNetwork(dual-stack)', r.removeNetwork(dualStack)],
      ['addNetwork(overlay)', r.addNetwork(overlay)],
      ['removeNetwork(overlay)', r.removeNetwork(overlay)],
      ['addMappings(bridge mappings)', r.addMappings(bridgeMappings)],
      ['removeMappings(bridge mappings)', r.removeMappings(bridgeMappings)],
      ['deleteMappingKeys(first and last)', r.deleteMappingKeys([r.mappingElement(bridgeMappings[0]), r.mappingElement(bridgeMappings.at(-1)!)])],
      ['createSpoofTable()', r.createSpoofTable()],
      ['addEndpoint(IPv6 only)', r.addEndpoint(v6Only)],
      ['removeEndpoint(IPv6 only)', r.removeEndpoint(v6Only)],
    ];
    const text = sections.map(([title, script]) => `# ${title}\n${script}\n`).join('\n');
    await expect(text).toMatchFileSnapshot('testdata/changes.nft');
  });
});
