// Detection of Docker's firewall and whether tsnet's traffic is admitted, over what nft lists.
// testdata/docker28-ruleset.json and docker29-ruleset.json are `nft -j list ruleset` of the
// fixtures test-support/docker28-iptables.ts (policy drop) and docker29-nftables.ts (with
// bridge-accept-fwmark 0x00540000/0x00540000), loaded into a scratch namespace with nft 1.0.6,
// for docker0 (a published port) and an --internal br-0123456789ab.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assessDockerFirewall, coversTsnetMark, DAEMON_JSON_FWMARK, detectDockerFirewall, fwmarkAccepts } from './docker-firewall.js';
import { ACCEPT_MARK } from './rules/names.js';
import { TABLE_FAMILY } from './ruleset.js';
import { tableRules } from './rules/table.js';

type Obj = Record<string, unknown>;
const load = (name: string): Obj[] => (JSON.parse(readFileSync(join(import.meta.dirname, 'testdata', name), 'utf8')) as { nftables: Obj[] }).nftables;
const docker28 = () => load('docker28-ruleset.json');
const docker29 = () => load('docker29-ruleset.json');
const MARK = Number(ACCEPT_MARK);
const tsnet = { bridges: ['tsnet-a'], tag: 'tsnet:' };

/** tsnet's pair of accepts for a bridge in a chain, as libnftables lists them. */
function accepts(family: string, chain: string, bridge: string): Obj[] {
  return (['iifname', 'oifname'] as const).map((key) => ({
    rule: {
      family,
      table: 'filter',
      chain,
      handle: 900,
      comment: `tsnet:${bridge}`,
      expr: [
        { match: { op: '==', left: { meta: { key } }, right: bridge } },
        { match: { op: '==', left: { '&': [{ meta: { key: 'mark' } }, MARK] }, right: MARK } },
        { counter: { packets: 0, bytes: 0 } },
        { accept: null },
      ],
    },
  }));
}

const withoutFwmark = (objects: Obj[]) => objects.filter((o) => (o.rule as { comment?: string } | undefined)?.comment !== 'ALLOW FW MARK');

describe("which of Docker's firewalls", () => {
  it('tells the four apart', () => {
    expect(detectDockerFirewall([])).toBe('none');
    expect(detectDockerFirewall(docker28())).toBe('iptables-docker-forward');
    const docker2010 = docker28().filter((o) => (o.chain as { name?: string } | undefined)?.name !== 'DOCKER-FORWARD');
    expect(detectDockerFirewall(docker2010)).toBe('iptables');
    expect(detectDockerFirewall(docker29())).toBe('nftables');
    // nftables wins over a DOCKER-USER an earlier iptables Docker left behind
    expect(detectDockerFirewall([...docker28(), ...docker29()])).toBe('nftables');
  });

  it("an admin's FORWARD drop alone is no Docker firewall", () => {
    const admin = [{ table: { family: 'ip', name: 'filter' } }, { chain: { family: 'ip', table: 'filter', name: 'FORWARD', hook: 'forward', policy: 'drop' } }];
    expect(detectDockerFirewall(admin)).toBe('none');
    expect(assessDockerFirewall(admin, tsnet).admitted).toBe(false);
    expect(assessDockerFirewall([...admin, ...accepts('ip', 'FORWARD', 'tsnet-a')], tsnet).admitted).toBe(true);
  });
});

describe('Docker 28 iptables (DOCKER-FORWARD, policy drop)', () => {
  it("admits tsnet's traffic only with its accepts in DOCKER-USER, for every bridge", () => {
    const without = assessDockerFirewall(docker28(), tsnet);
    expect(without).toMatchObject({ kind: 'iptables-docker-forward', admitted: false });
    expect(without.findings.join(' ')).toContain('missing in DOCKER-USER for tsnet-a');
    expect(assessDockerFirewall([...docker28(), ...accepts('ip', 'DOCKER-USER', 'tsnet-a')], tsnet).admitted).toBe(true);
    // accepts at the top of FORWARD are not where they belong while DOCKER-USER is reached
    expect(assessDockerFirewall([...docker28(), ...accepts('ip', 'FORWARD', 'tsnet-a')], tsnet).admitted).toBe(false);
    // a second bridge without its accepts
    expect(assessDockerFirewall([...docker28(), ...accepts('ip', 'DOCKER-USER', 'tsnet-a')], { ...tsnet, bridges: ['tsnet-a', 'tsnet-b'] }).admitted).toBe(false);
  });

  it('with ip-forward-no-drop (policy accept) nothing is needed', () => {
    const accepting = docker28().map((o) => {
      const c = o.chain as { name?: string; table?: string } | undefined;
      return c?.table === 'filter' && c.name === 'FORWARD' ? { chain: { ...c, policy: 'accept' } } : o;
    });
    expect(assessDockerFirewall(accepting, tsnet)).toMatchObject({ kind: 'iptables-docker-forward', admitted: true, findings: [] });
  });
});

describe('Docker 29 nftables (table docker-bridges)', () => {
  it("admits tsnet's traffic: Docker's forward chain jumps only for Docker's bridges", () => {
    const r = assessDockerFirewall(withoutFwmark(docker29()), tsnet);
    expect(r).toMatchObject({ kind: 'nftables', admitted: true, fwmarkCoversTsnet: false, fwmarks: [] });
    expect(r.findings).toEqual([expect.stringContaining(`bridge-accept-fwmark for tsnet's mark is not set (${DAEMON_JSON_FWMARK} in /etc/docker/daemon.json)`)]);
  });

  it("finds bridge-accept-fwmark's accept and whether it covers tsnet's mark", () => {
    expect(fwmarkAccepts(docker29())).toEqual([{ value: MARK, mask: MARK }]);
    const r = assessDockerFirewall(docker29(), tsnet);
    expect(r).toMatchObject({ admitted: true, fwmarkCoversTsnet: true });
    expect(r.findings[0]).toMatch(/^bridge-accept-fwmark covers tsnet's mark 0x00540000/);
    // a mark without a mask compares the whole mark: tsnet's published traffic carries another bit too
    expect(coversTsnetMark({ value: MARK, mask: 0xffffffff })).toBe(false);
    expect(coversTsnetMark({ value: 1, mask: 1 })).toBe(false);
    expect(coversTsnetMark({ value: MARK, mask: MARK })).toBe(true);
    expect(DAEMON_JSON_FWMARK).toBe('"bridge-accept-fwmark": "0x00540000/0x00540000"');
  });

  it('says what would drop: a forward chain with policy drop, a bridge name Docker also claims, a FORWARD drop left by iptables', () => {
    const dropping = docker29().map((o) => {
      const c = o.chain as { name?: string } | undefined;
      return c?.name === 'filter-FORWARD' ? { chain: { ...c, policy: 'drop' } } : o;
    });
    expect(assessDockerFirewall(dropping, tsnet).admitted).toBe(false);
    expect(assessDockerFirewall(docker29(), { ...tsnet, bridges: ['docker0'] }).findings.join(' ')).toContain('treats docker0 as');
    const leftover = [{ table: { family: 'ip', name: 'filter' } }, { chain: { family: 'ip', table: 'filter', name: 'FORWARD', hook: 'forward', policy: 'drop' } }];
    expect(assessDockerFirewall([...docker29(), ...leftover], tsnet).admitted).toBe(false);
    expect(assessDockerFirewall([...docker29(), ...leftover, ...accepts('ip', 'FORWARD', 'tsnet-a')], tsnet).admitted).toBe(true);
  });

  it("tsnet's mark is set before Docker's chains run (priority filter - 1 against Docker's filter)", () => {
    // Docker's forward base chains run at priority filter (0); tsnet's forward chain must be lower
    const forward = /add chain \S+ \S+ forward \{ type filter hook forward priority ([^;]+);/.exec(tableRules(`${TABLE_FAMILY} t`));
    expect(forward?.[1]).toBe('filter - 1');
    const dockerForward = docker29().map((o) => o.chain as { hook?: string; prio?: number } | undefined).filter((c) => c?.hook === 'forward');
    expect(dockerForward.map((c) => c!.prio)).toEqual([0, 0]);
  });
});
