import { describe, expect, it } from 'vitest';
import {
  addMappings,
  addNetwork,
  createTable,
  deleteMappingKeys,
  fullTable,
  mappingElement,
  removeMappings,
  removeNetwork,
  rulesFor,
} from './ruleset.js';
import { FirewallInputError, type FirewallNetwork, type PortMapping } from './model.js';

const netA: FirewallNetwork = { id: 'a', bridge: 'tsnet-abc', subnets: ['10.231.1.0/24', 'fd00:231:1::/64'], masquerade: true, internal: false };
const netI: FirewallNetwork = { id: 'i', bridge: 'br-int', subnets: ['10.231.3.7/24'], masquerade: true, internal: true };
const netNoMasq: FirewallNetwork = { id: 'n', bridge: 'br-nomasq', subnets: ['10.231.4.0/24'], masquerade: false, internal: false };

function m(over: Partial<PortMapping>): PortMapping {
  return { endpointId: 'ep', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '10.231.1.2', containerPort: 80, ...over };
}

const lines = (s: string) => s.split('\n').filter((l) => l !== '');

/** Position of the one rule containing `s`; a missing (or doubled) rule fails here, not as index -1. */
function position(rules: string[], s: string): number {
  const found = rules.flatMap((l, i) => (l.includes(s) ? [i] : []));
  expect(found, `rules containing '${s}'`).toHaveLength(1);
  return found[0];
}

/** Each of `parts` names exactly one rule, and the rules come in this order. */
function expectInOrder(rules: string[], parts: string[]): void {
  const at = parts.map((p) => position(rules, p));
  for (let i = 1; i < at.length; i++) expect(at[i], `'${parts[i]}' after '${parts[i - 1]}'`).toBeGreaterThan(at[i - 1]);
}

describe('createTable', () => {
  const t = createTable();

  it('declares the table, its sets, maps and base chains', () => {
    expect(lines(t)[0]).toMatch(/^add table inet tsnet \{ comment ".*"; \}$/);
    for (const set of ['bridges', 'bridge_pairs', 'internal', 'subnets4', 'subnets6', 'masq4', 'masq6']) {
      expect(t).toMatch(new RegExp(`^add set inet tsnet ${set} \\{`, 'm'));
    }
    expect(t).toContain('add map inet tsnet hostports4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;');
    expect(t).toContain('add map inet tsnet anyports4 { type inet_proto . inet_service : ipv4_addr . inet_service;');
    expect(t).toContain('add map inet tsnet hostports6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service;');
    expect(t).toContain('add map inet tsnet anyports6 { type inet_proto . inet_service : ipv6_addr . inet_service;');
    expect(t).toContain('add chain inet tsnet prerouting { type nat hook prerouting priority dstnat; policy accept; }');
    expect(t).toContain('add chain inet tsnet output { type nat hook output priority -100; policy accept; }');
    expect(t).toContain('add chain inet tsnet postrouting { type nat hook postrouting priority srcnat; policy accept; }');
    // just before iptables' filter chains, so the accept mark is set when Docker's FORWARD looks
    expect(t).toContain('add chain inet tsnet forward { type filter hook forward priority filter - 1; policy accept; }');
  });

  it('DNATs through map lookups, one rule per map', () => {
    const published = lines(t).filter((l) => l.startsWith('add rule inet tsnet published'));
    expect(published).toEqual([
      'add rule inet tsnet published dnat ip to ip daddr . meta l4proto . th dport map @hostports4',
      'add rule inet tsnet published meta nfproto ipv4 dnat ip to meta l4proto . th dport map @anyports4',
      'add rule inet tsnet published dnat ip6 to ip6 daddr . meta l4proto . th dport map @hostports6',
      'add rule inet tsnet published meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @anyports6',
    ]);
    expect(t).toContain('add rule inet tsnet prerouting fib daddr type local jump published');
    expect(t).toContain('add rule inet tsnet output fib daddr type local jump published');
  });

  it('masquerades loopback and hairpin connections, and traffic leaving a network', () => {
    const post = lines(t).filter((l) => l.startsWith('add rule inet tsnet postrouting'));
    expect(post[0]).toMatch(/ct status dnat ip saddr 127\.0\.0\.0\/8 masquerade/);
    // hairpin before the "stays on its bridge" return, which comes before the general masquerade
    for (const ip of ['ip', 'ip6']) {
      const subnets = ip === 'ip' ? '@subnets4' : '@subnets6';
      const masq = ip === 'ip' ? '@masq4' : '@masq6';
      expectInOrder(post, [
        'ct status dnat ip saddr 127.0.0.0/8 masquerade',
        `ct status dnat ${ip} saddr . oifname ${subnets} masquerade`,
        `postrouting ${ip} saddr . oifname ${subnets} return`,
        `${ip} saddr ${masq} masquerade`,
      ]);
    }
  });

  it('accepts DNATed traffic before isolating networks, and guards the loopback', () => {
    const fwd = lines(t).filter((l) => l.startsWith('add rule inet tsnet forward'));
    expect(position(fwd, 'iifname != @bridges oifname != @bridges accept')).toBe(0);
    expect(position(fwd, 'ct state established,related meta mark set meta mark | 0x00540000 accept')).toBe(1);
    // ICC off is enforced before traffic within a bridge is accepted; traffic within a bridge (also
    // an internal one) is accepted before internal networks are cut off; DNATed traffic is accepted
    // before the isolation drop, but never into an internal network; what comes from or goes to
    // one of Docker's bridges is accepted without the mark, for Docker's rules to decide
    expectInOrder(fwd, [
      'iifname . oifname @bridge_pairs iifname @no_icc ct status ! dnat drop',
      'iifname . oifname @bridge_pairs meta mark set meta mark | 0x00540000 accept',
      'iifname @internal drop',
      'oifname @internal drop',
      'ct status dnat iifname != @bridges iifname { "docker0", "br-*" } accept',
      'ct status dnat meta mark set meta mark | 0x00540000 accept',
      'oifname @bridges drop',
      'oifname { "docker0", "br-*" } accept',
    ]);
    expect(fwd[fwd.length - 1]).toMatch(/^add rule inet tsnet forward meta mark set meta mark \| 0x00540000 accept comment "out of a network"/);
    expect(t).toContain('add rule inet tsnet input iifname @bridges ip daddr 127.0.0.0/8 ct status ! dnat drop');
  });

  it('has no elements', () => {
    expect(t).not.toContain('add element');
  });
});

describe('comments', () => {
  it('every comment fits nftables (at most 128 bytes), or the whole transaction is refused', () => {
    const r = rulesFor('tsnet');
    const text = [r.createTable(), r.createSpoofTable(), r.addEndpoint({ endpointId: 'e', port: 'tsvx', mac: '02:42:0a:00:00:02', ipv4: ['10.0.0.2'], ipv6: [] })].join('\n');
    const comments = [...text.matchAll(/comment "([^"]*)"/g)].map((m) => m[1]);
    expect(comments.length).toBeGreaterThan(10);
    expect(comments.filter((c) => Buffer.byteLength(c) > 128)).toEqual([]);
  });
});

describe('fullTable', () => {
  it('replaces the table atomically: add, delete, then build', () => {
    const t = lines(fullTable([netA], [m({})]));
    expect(t.slice(0, 3)).toEqual(['add table inet tsnet', 'delete table inet tsnet', expect.stringMatching(/^add table inet tsnet \{/)]);
    expect(t.join('\n')).toContain('add element inet tsnet anyports4 { tcp . 8080 : 10.231.1.2 . 80 }');
    expect(t.join('\n')).toContain('add element inet tsnet bridges { "tsnet-abc" }');
  });

  it('takes a container port with anti-spoofing off and no MAC or addresses: it is only left out of guarded_ports', () => {
    const port = { endpointId: 'n1', port: 'tsv-n1', mac: '', ipv4: [], ipv6: [], antiSpoofing: false, icc: false };
    const t = fullTable([netA], [], [port]);
    expect(t).not.toMatch(/add element bridge tsnet guarded_ports \{[^}]*"tsv-n1"/);
    expect(t).toContain('add element bridge tsnet no_icc_ports { "tsv-n1" }');
    expect(t).not.toMatch(/port_mac \{ "tsv-n1"/);
  });

  it('with nothing in it is just the empty table', () => {
    expect(fullTable([], [])).toBe(
      `add table inet tsnet\ndelete table inet tsnet\n${createTable()}\nadd table bridge tsnet\ndelete table bridge tsnet\n${rulesFor('tsnet').createSpoofTable()}`,
    );
  });
});

describe('addNetwork / removeNetwork', () => {
  it('adds bridge, pair, subnets and masquerade elements', () => {
    const s = addNetwork(netA);
    const adds = lines(s).slice(lines(removeNetwork(netA)).length);
    expect(adds).toEqual([
      'add element inet tsnet bridges { "tsnet-abc" }',
      'add element inet tsnet bridge_pairs { "tsnet-abc" . "tsnet-abc" }',
      'add element inet tsnet subnets4 { 10.231.1.0/24 . "tsnet-abc" }',
      'add element inet tsnet masq4 { 10.231.1.0/24 }',
      'add element inet tsnet subnets6 { fd00:231:1::/64 . "tsnet-abc" }',
      'add element inet tsnet masq6 { fd00:231:1::/64 }',
    ]);
  });

  it('first clears whatever the network may have had, so re-adding converges', () => {
    const s = lines(addNetwork(netA));
    const rm = lines(removeNetwork(netA));
    expect(s.slice(0, rm.length)).toEqual(rm);
    expect(rm).toContain('add element inet tsnet internal { "tsnet-abc" }');
    expect(rm).toContain('delete element inet tsnet internal { "tsnet-abc" }');
  });

  it('marks internal networks and never masquerades them', () => {
    const adds = lines(addNetwork(netI)).slice(lines(removeNetwork(netI)).length);
    expect(adds).toContain('add element inet tsnet internal { "br-int" }');
    // host bits cleared
    expect(adds).toContain('add element inet tsnet subnets4 { 10.231.3.0/24 . "br-int" }');
    expect(adds.some((l) => l.includes('masq4'))).toBe(false);
  });

  it('leaves masquerade out when the network asks', () => {
    const adds = lines(addNetwork(netNoMasq)).slice(lines(removeNetwork(netNoMasq)).length);
    expect(adds.some((l) => /inet tsnet masq[46] /.test(l))).toBe(false);
  });

  it('removes with add + delete pairs, so missing elements are no error', () => {
    const rm = lines(removeNetwork(netA));
    expect(rm.length % 2).toBe(0);
    for (let i = 0; i < rm.length; i += 2) {
      expect(rm[i]).toMatch(/^add element /);
      expect(rm[i + 1]).toBe(rm[i].replace(/^add/, 'delete'));
    }
    expect(rm.some((l) => l.includes('add chain') || l.includes('add rule'))).toBe(false);
  });

  it('refuses interface names nft could misread', () => {
    for (const bridge of ['br"; flush ruleset; "', 'br*', 'a-very-long-bridge-name', '', 'br 0', 'br\\0']) {
      expect(() => addNetwork({ ...netA, bridge })).toThrow(FirewallInputError);
    }
    expect(() => addNetwork({ ...netA, bridge: 'br-0123456789a' })).not.toThrow();
  });

  it('refuses malformed subnets', () => {
    for (const subnet of ['10.231.1.0', '10.231.1.0/33', 'fd00::/129', 'nope/24', '10.231.1.0/24; flush ruleset']) {
      expect(() => addNetwork({ ...netA, subnets: [subnet] })).toThrow(FirewallInputError);
    }
  });
});

describe('mappings', () => {
  it('puts wildcard and specific, IPv4 and IPv6 mappings in their maps', () => {
    expect(mappingElement(m({}))).toEqual({ map: 'anyports4', key: 'tcp . 8080', value: '10.231.1.2 . 80' });
    expect(mappingElement(m({ hostIp: '198.51.100.1', proto: 'udp' }))).toEqual({
      map: 'hostports4',
      key: '198.51.100.1 . udp . 8080',
      value: '10.231.1.2 . 80',
    });
    expect(mappingElement(m({ containerIp: 'fd00:231:1:0::2' }))).toEqual({ map: 'anyports6', key: 'tcp . 8080', value: 'fd00:231:1::2 . 80' });
    expect(mappingElement(m({ hostIp: 'FD00:198:51::1', containerIp: 'fd00:231:1::2', proto: 'sctp' }))).toEqual({
      map: 'hostports6',
      key: 'fd00:198:51::1 . sctp . 8080',
      value: 'fd00:231:1::2 . 80',
    });
  });

  it('groups additions into one command per map', () => {
    const s = addMappings([m({}), m({ hostPort: 8081, proto: 'udp' }), m({ hostIp: '198.51.100.1' }), m({ containerIp: 'fd00::2' })]);
    expect(lines(s)).toEqual([
      'add element inet tsnet anyports4 { tcp . 8080 : 10.231.1.2 . 80, udp . 8081 : 10.231.1.2 . 80 }',
      'add element inet tsnet hostports4 { 198.51.100.1 . tcp . 8080 : 10.231.1.2 . 80 }',
      'add element inet tsnet anyports6 { tcp . 8080 : fd00::2 . 80 }',
    ]);
    expect(addMappings([])).toBe('');
  });

  it('removes with add + delete, keys only in the delete', () => {
    expect(lines(removeMappings([m({}), m({ hostPort: 9090 })]))).toEqual([
      'add element inet tsnet anyports4 { tcp . 8080 : 10.231.1.2 . 80, tcp . 9090 : 10.231.1.2 . 80 }',
      'delete element inet tsnet anyports4 { tcp . 8080, tcp . 9090 }',
    ]);
    expect(deleteMappingKeys([mappingElement(m({}))])).toBe('delete element inet tsnet anyports4 { tcp . 8080 }');
  });

  it('refuses what NAT cannot do or nft would misread', () => {
    const bad: Partial<PortMapping>[] = [
      { hostIp: '198.51.100.1', containerIp: 'fd00::2' },
      { hostIp: 'fd00::1' },
      { hostPort: 0 },
      { hostPort: 65536 },
      { containerPort: 1.5 },
      { proto: 'icmp' as 'tcp' },
      { containerIp: '10.231.1.2 . 80, tcp . 1' },
      { hostIp: 'fe80::1%eth0', containerIp: 'fd00::2' },
      { containerIp: '' },
    ];
    for (const b of bad) expect(() => addMappings([m(b)]), JSON.stringify(b)).toThrow(FirewallInputError);
  });

  it('scales to 10,000 mappings as one element command', () => {
    const ms: PortMapping[] = [];
    for (let i = 0; i < 10_000; i++) ms.push(m({ hostPort: 20000 + (i % 40000), proto: i < 5000 ? 'tcp' : 'udp' }));
    const s = lines(addMappings(ms));
    expect(s).toHaveLength(1);
    expect(s[0].split(' : ')).toHaveLength(10_001);
  });
});
