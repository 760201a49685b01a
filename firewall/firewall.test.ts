import { describe, expect, it } from 'vitest';
import { Firewall } from './firewall.js';
import { createTable, rulesFor } from './ruleset.js';
import { scriptShape } from './shape.js';
import type { FirewallNetwork, PortMapping } from './model.js';
import { NftError, type NftApi } from '../native/nftables.js';

/**
 * Records scripts; knows only whether the table exists and the anyports4 map's elements, which
 * is all the Firewall's decisions depend on. No Docker tables.
 */
class FakeNft implements NftApi {
  scripts: string[] = [];
  table = false;
  /** the bridge-family table of the same name (anti-spoofing, ICC off) */
  bridgeTable = false;
  anyports4 = new Map<string, string>();
  /** the next run fails with this libnftables text */
  failNext: string | null = null;
  /** how many listings were asked for: each reads the whole ruleset in libnftables */
  listings = 0;

  run(script: string): void {
    this.scripts.push(script);
    if (this.failNext !== null) {
      const detail = this.failNext;
      this.failNext = null;
      throw new NftError(script, detail);
    }
    // as libnftables: a script that names a table it neither has nor creates changes nothing
    for (const [family, exists] of [['inet', this.table], ['bridge', this.bridgeTable]] as const) {
      if (!exists && script.includes(` ${family} tsnet `) && !script.includes(`add table ${family} tsnet`)) {
        throw new NftError(script, 'Error: Could not process rule: No such file or directory');
      }
    }
    if (script.includes('add table inet tsnet')) this.table = true;
    if (script.includes('add table bridge tsnet')) this.bridgeTable = true;
    for (const m of script.matchAll(/^(add|delete) element inet tsnet anyports4 \{ (.*) \}$/gm)) {
      for (const el of m[2].split(', ')) {
        const [k, v] = el.split(' : ');
        if (m[1] === 'add') this.anyports4.set(k, v);
        else this.anyports4.delete(k);
      }
    }
  }

  listJson(cmd: string): unknown {
    this.listings++;
    if (cmd === 'list tables') {
      const tables = [...(this.table ? [{ table: { family: 'inet', name: 'tsnet' } }] : []), ...(this.bridgeTable ? [{ table: { family: 'bridge', name: 'tsnet' } }] : [])];
      return { nftables: tables };
    }
    if (cmd.startsWith('list chains')) return { nftables: [] };
    const m = /^list map inet tsnet (\w+)$/.exec(cmd);
    if (m) {
      const elem =
        m[1] === 'anyports4'
          ? [...this.anyports4].map(([k, v]) => {
              const [proto, port] = k.split(' . ');
              const [ip, cport] = v.split(' . ');
              return [{ concat: [proto, Number(port)] }, { concat: [ip, Number(cport)] }];
            })
          : [];
      return { nftables: [{ map: { name: m[1], elem } }] };
    }
    throw new Error(`fake: unexpected listing ${cmd}`);
  }

  listText(): string {
    return '';
  }
}

const net: FirewallNetwork = { id: 'a', bridge: 'br-a', subnets: ['10.231.1.0/24'], masquerade: true, internal: false };
const map = (ip: string): PortMapping => ({ endpointId: 'e', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: ip, containerPort: 80 });

describe('Firewall', () => {
  it('creates the table with the first network, in the same transaction', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.addNetwork(net);
    // the first try finds no table (and changes nothing); the second creates it
    expect(nft.scripts).toHaveLength(2);
    expect(nft.scripts[1].startsWith(createTable())).toBe(true);
    expect(nft.scripts[1]).toContain('add element inet tsnet bridges { "br-a" }');
    fw.addNetwork({ ...net, bridge: 'br-b' });
    expect(nft.scripts[2]).not.toContain('add chain');
  });

  it('recreates a lost table with every network it knows', () => {
    const nft = new FakeNft();
    const warnings: string[] = [];
    const fw = new Firewall(nft, { warn: (_o, msg) => warnings.push(msg ?? '') });
    fw.addNetwork(net);
    nft.table = false;
    fw.publish([map('10.231.1.2')]);
    const last = nft.scripts.at(-1)!;
    expect(last).toContain('add chain inet tsnet forward');
    expect(last).toContain('add element inet tsnet bridges { "br-a" }');
    expect(last).toContain('add element inet tsnet anyports4 { tcp . 8080 : 10.231.1.2 . 80 }');
    expect(warnings[0]).toMatch(/was missing/);
  });

  it('sync replaces everything in one run', () => {
    const nft = new FakeNft();
    new Firewall(nft).sync([net], [map('10.231.1.2')]);
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toMatch(/^add table inet tsnet\ndelete table inet tsnet\n/);
  });

  it('the detached sync writes each table whole by a child, and knows what it wrote', async () => {
    const detached: string[] = [];
    const nft = Object.assign(new FakeNft(), { runDetached: async (script: string) => void detached.push(script) });
    const fw = new Firewall(nft);
    const ep = { endpointId: 'e1', port: 'tsv1', mac: '02:42:0a:e7:01:02', ipv4: ['10.231.1.2'], ipv6: [] };
    await fw.syncDetached([net], [map('10.231.1.2')], [ep]);
    expect(nft.scripts).toEqual([]);
    expect(detached).toHaveLength(2);
    expect(detached[0]).toMatch(/^add table inet tsnet\ndelete table inet tsnet\n/);
    expect(detached[0]).toContain('add element inet tsnet anyports4 { tcp . 8080 : 10.231.1.2 . 80 }');
    expect(detached[0]).not.toContain('bridge tsnet');
    expect(detached[1]).toMatch(/^add table bridge tsnet\ndelete table bridge tsnet\n/);
    expect(detached[1]).toContain('add element bridge tsnet guarded_ports { "tsv1" }');
    // what it wrote is known: a lost table comes back with the network, a port's removal names its elements
    fw.publish([map('10.231.1.3')]);
    expect(nft.scripts.at(-1)).toContain('add element inet tsnet bridges { "br-a" }');
    fw.removeEndpoint({ port: 'tsv1' });
    expect(nft.scripts.at(-1)).toContain('delete element bridge tsnet port_mac { "tsv1" . 02:42:0a:e7:01:02 }');
  });

  it('the detached sync is one run in process without a child runner', async () => {
    const nft = new FakeNft();
    await new Firewall(nft).syncDetached([net], [map('10.231.1.2')]);
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toMatch(/^add table inet tsnet\ndelete table inet tsnet\n/);
  });

  it('removing from a host without the table is no error and creates nothing', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.removeNetwork(net);
    fw.unpublish([map('10.231.1.2')]);
    fw.removeEndpoint({ port: 'tsv1' });
    expect(nft.table || nft.bridgeTable).toBe(false);
  });

  it('changes to tables that exist ask for no listing (libnftables reads the whole ruleset for one)', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.sync([net], [], []);
    fw.addEndpoint({ endpointId: 'e1', port: 'tsv1', mac: '02:42:0a:e7:01:02', ipv4: ['10.231.1.2'], ipv6: [], antiSpoofing: true, icc: true });
    nft.listings = 0;
    fw.publish([map('10.231.1.2')]);
    fw.unpublish([map('10.231.1.2')]);
    fw.addEndpoint({ endpointId: 'e2', port: 'tsv2', mac: '02:42:0a:e7:01:03', ipv4: ['10.231.1.3'], ipv6: [], antiSpoofing: true, icc: true });
    fw.removeEndpoint({ port: 'tsv2' });
    expect(nft.listings).toBe(0);
    expect(nft.anyports4.size).toBe(0);
  });

  it("a container port's elements: its old values go when it changes, all of them when it is removed by name", () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    const e1 = { endpointId: 'e1', port: 'tsv1', mac: '02:42:0a:e7:01:02', ipv4: ['10.231.1.2'], ipv6: [], antiSpoofing: true, icc: true };
    fw.sync([net], [], [e1]);
    // the same values again: nothing removed (the positive of the next step)
    fw.addEndpoint(e1);
    expect(nft.scripts.at(-1)).not.toMatch(/delete element bridge tsnet port_ipv4/);
    fw.addEndpoint({ ...e1, ipv4: ['10.231.1.9'] });
    expect(nft.scripts.at(-1)).toMatch(/delete element bridge tsnet port_ipv4 \{ "tsv1" \. 10\.231\.1\.2 \}/);
    expect(nft.scripts.at(-1)).toMatch(/add element bridge tsnet port_ipv4 \{ "tsv1" \. 10\.231\.1\.9 \}$/m);
    fw.removeEndpoint({ port: 'tsv1' });
    for (const el of ['port_mac { "tsv1" . 02:42:0a:e7:01:02 }', 'port_ipv4 { "tsv1" . 10.231.1.9 }', 'guarded_ports { "tsv1" }']) {
      expect(nft.scripts.at(-1)).toContain(`delete element bridge tsnet ${el}`);
    }
  });

  it('takes over a host port still mapped to another container', () => {
    const nft = new FakeNft();
    const warnings: object[] = [];
    const fw = new Firewall(nft, { warn: (o) => warnings.push(o as object) });
    fw.sync([net], [map('10.231.1.2')]);
    nft.failNext = 'Error: Could not process rule: File exists';
    fw.publish([map('10.231.1.3')]);
    expect(nft.scripts.at(-1)).toBe(
      'delete element inet tsnet anyports4 { tcp . 8080 }\nadd element inet tsnet anyports4 { tcp . 8080 : 10.231.1.3 . 80 }',
    );
    expect(nft.anyports4.get('tcp . 8080')).toBe('10.231.1.3 . 80');
    expect(warnings).toHaveLength(1);
  });

  it('unpublish leaves a key another container holds now', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.sync([net], [map('10.231.1.3')]);
    nft.failNext = 'Error: Could not process rule: File exists';
    fw.unpublish([map('10.231.1.2')]);
    expect(nft.anyports4.get('tcp . 8080')).toBe('10.231.1.3 . 80');
  });

  it('passes other errors on', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.sync([net], []);
    nft.failNext = 'Error: Could not process rule: Operation not permitted';
    expect(() => fw.publish([map('10.231.1.2')])).toThrow(/Operation not permitted/);
  });

  it('lists the published ports the table holds', () => {
    const nft = new FakeNft();
    const fw = new Firewall(nft);
    fw.sync([net], [map('10.231.1.2')]);
    expect(fw.listMappings()).toEqual([{ proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '10.231.1.2', containerPort: 80 }]);
  });
});

describe('tablesDiff', () => {
  const rules = rulesFor('tsnet');
  const empty = scriptShape(rules.fullTable([], [], []), 'tsnet');

  it('the tables\' shape is that of the empty tables, whatever networks, ports and container ports they hold (so tablesDiff reads no state)', () => {
    const networks: FirewallNetwork[] = [
      net,
      { id: 'b', bridge: 'br-b', subnets: ['10.231.2.0/24', 'fd00:1::/64'], masquerade: false, internal: true, icc: false },
      { id: 'c', bridge: 'br-c', subnets: ['10.231.3.0/24'], masquerade: true, internal: false, tunnel: { local: '198.51.100.1', port: 4789, vni: 7 } },
    ];
    const endpoints = [
      { endpointId: 'e1', port: 'tsv1', mac: '02:42:0a:e7:01:02', ipv4: ['10.231.1.2'], ipv6: [], antiSpoofing: true, icc: true },
      { endpointId: 'e2', port: 'tsv2', mac: '02:42:0a:e7:02:02', ipv4: ['10.231.2.2'], ipv6: ['fd00:1::2'], antiSpoofing: true, icc: false },
      { endpointId: 'e3', port: 'tsv3', mac: '02:42:0a:e7:03:02', ipv4: ['10.231.3.2'], ipv6: [], antiSpoofing: false },
    ];
    const full = rules.fullTable(networks, [map('10.231.1.2'), { ...map('10.231.3.2'), hostIp: '198.51.100.1', hostPort: 8081 }], endpoints);
    expect(full).toContain('add element');
    expect(scriptShape(full, 'tsnet')).toEqual(empty);
  });

  it('compares one terse listing of the ruleset with that shape: [] when it matches, the missing when not', () => {
    // the live listing of a table whose shape is `shape` (what `nft -j -t list ruleset` gives, elements left out)
    type Item = { chain?: { family: string; table: string; name: string }; set?: { family: string; table: string; name: string }; rule?: { family: string; table: string; chain: string } };
    const listing = (shape: string[]): Item[] =>
      shape.flatMap((line): Item[] => {
        const [kind, family, table, name, n] = line.split(' ');
        if (kind === 'chain') return [{ chain: { family, table, name } }];
        if (kind === 'set') return [{ set: { family, table, name } }];
        return Array.from({ length: Number(n) }, () => ({ rule: { family, table, chain: name } }));
      });
    const calls: unknown[][] = [];
    let live = listing(empty);
    const nft: NftApi = { run() {}, listText: () => '', listJson: (...args) => (calls.push(args), { nftables: [{ metainfo: {} }, { table: { family: 'ip', name: 'filter' } }, ...live] }) };
    const fw = new Firewall(nft);
    expect(fw.tablesDiff()).toEqual([]);
    live = live.filter((item) => !(item.chain?.name === 'forward' && item.chain.family === 'inet'));
    expect(fw.tablesDiff()).toContain('-chain inet tsnet forward');
    expect(calls).toEqual([['list ruleset', { terse: true }], ['list ruleset', { terse: true }]]);
  });
});
