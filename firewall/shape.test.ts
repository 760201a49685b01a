// The shape of tsnet's tables (shape.ts): what drift repair compares between the live tables and
// the script a full sync writes. The live side against the real kernel is in
// netns-tests/drift-repair.test.ts.
import { describe, expect, it } from 'vitest';
import { listingShape, scriptShape, shapeDiff } from './shape.js';
import { rulesFor } from './ruleset.js';

const rules = rulesFor('tsnet');
const network = { id: 'n1', bridge: 'tsbr1', subnets: ['10.1.0.0/24'], masquerade: true, internal: false };
const endpoint = { endpointId: 'e1', port: 'tsv1', mac: '02:42:0a:01:00:02', ipv4: ['10.1.0.2'], ipv6: [] };

describe('the shape of a script', () => {
  it('counts the rules of each chain, names chains and sets (maps too), and ignores elements and other tables', () => {
    const script = [
      'add table inet tsnet',
      'delete table inet tsnet',
      'add set inet tsnet bridges { type ifname; }',
      'add map inet tsnet anyports4 { type inet_proto . inet_service : ipv4_addr . inet_service; }',
      'add chain inet tsnet forward { type filter hook forward priority filter - 1; policy accept; }',
      'add rule inet tsnet forward iifname != @bridges accept',
      'add rule inet tsnet forward drop',
      'add element inet tsnet bridges { "tsbr1" }',
      'add chain bridge tsnet port_tsv1',
      'add rule bridge tsnet port_tsv1 ether saddr != 02:42:0a:01:00:02 drop',
      'add rule inet other forward drop',
    ].join('\n');
    expect(scriptShape(script, 'tsnet')).toEqual([
      'chain bridge tsnet port_tsv1',
      'chain inet tsnet forward',
      'rules bridge tsnet port_tsv1 1',
      'rules inet tsnet forward 2',
      'set inet tsnet anyports4',
      'set inet tsnet bridges',
    ]);
  });

  it('of a full sync holds both tables; container ports are elements only, so they leave the shape as it is', () => {
    const shape = scriptShape(rules.fullTable([network], [], [endpoint]), 'tsnet');
    expect(shape).toContain('chain inet tsnet forward');
    expect(shape.some((l) => l.startsWith('chain bridge tsnet '))).toBe(true);
    expect(shape.some((l) => /^rules inet tsnet forward \d+$/.test(l))).toBe(true);
    // no chain per container port (rules/spoofing.ts): a port's elements are not in the shape, its set is
    expect(shape).toContain('set bridge tsnet guarded_ports');
    expect(scriptShape(rules.fullTable([network], [], []), 'tsnet')).toEqual(shape);
  });
});

describe('the shape of a listing, against a script', () => {
  const script = ['add chain inet tsnet forward { type filter hook forward priority 0; }', 'add rule inet tsnet forward accept', 'add rule inet tsnet forward drop', 'add set inet tsnet bridges { type ifname; }'].join('\n');
  const listing = (ruleCount: number): Record<string, unknown>[] => [
    { metainfo: { version: '1.0.6' } },
    { table: { family: 'inet', name: 'tsnet', handle: 1 } },
    { chain: { family: 'inet', table: 'tsnet', name: 'forward', handle: 1 } },
    { set: { family: 'inet', table: 'tsnet', name: 'bridges', handle: 2, elem: ['tsbr1'] } },
    ...Array.from({ length: ruleCount }, (_, i) => ({ rule: { family: 'inet', table: 'tsnet', chain: 'forward', handle: 3 + i } })),
  ];

  it('the same tables: no difference', () => {
    expect(shapeDiff(scriptShape(script, 'tsnet'), listingShape(listing(2), 'tsnet'))).toEqual([]);
  });

  it('flushed, a rule gone, a rule added, a table gone: each a difference', () => {
    const expected = scriptShape(script, 'tsnet');
    expect(shapeDiff(expected, listingShape(listing(0), 'tsnet'))).toEqual(['-rules inet tsnet forward 2']);
    expect(shapeDiff(expected, listingShape(listing(1), 'tsnet'))).toEqual(['-rules inet tsnet forward 2', '+rules inet tsnet forward 1']);
    expect(shapeDiff(expected, listingShape(listing(3), 'tsnet'))).toEqual(['-rules inet tsnet forward 2', '+rules inet tsnet forward 3']);
    expect(shapeDiff(expected, listingShape([], 'tsnet'))).toEqual(['-chain inet tsnet forward', '-rules inet tsnet forward 2', '-set inet tsnet bridges']);
  });
});
