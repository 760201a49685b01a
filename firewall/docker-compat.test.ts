import { describe, expect, it } from 'vitest';
import { DockerCompat, planCompat, type CompatFamily, type CompatRule } from './docker-compat.js';
import type { NftApi } from '../native/nftables.js';

interface FakeRule {
  family: CompatFamily;
  chain: string;
  handle: number;
  comment?: string;
  expr: unknown[];
}

/**
 * Docker's filter tables as libnftables would list them, and the few commands docker-compat
 * sends, applied to that model.
 */
class FakeDockerTables implements NftApi {
  chains: { family: CompatFamily; name: string; hook?: string; policy?: string }[] = [];
  rules: FakeRule[] = [];
  scripts: string[] = [];
  private handle = 100;

  docker(family: CompatFamily, withUser = true): this {
    this.chains.push({ family, name: 'FORWARD', hook: 'forward', policy: 'drop' });
    if (withUser) {
      this.chains.push({ family, name: 'DOCKER-USER' });
      this.rules.push({ family, chain: 'FORWARD', handle: this.handle++, expr: [{ counter: null }, { jump: { target: 'DOCKER-USER' } }] });
      this.rules.push({ family, chain: 'DOCKER-USER', handle: this.handle++, expr: [{ counter: null }, { return: null }] });
    }
    return this;
  }

  listJson(cmd: string): unknown {
    let m = /^list chains (ip6?)$/.exec(cmd);
    if (m) {
      const family = m[1];
      return { nftables: this.chains.filter((c) => c.family === family).map((c) => ({ chain: { family: c.family, table: 'filter', name: c.name, hook: c.hook, policy: c.policy } })) };
    }
    m = /^list chain (ip6?) filter (\S+)$/.exec(cmd);
    if (m) {
      const [, family, chain] = m;
      return {
        nftables: this.rules
          .filter((r) => r.family === family && r.chain === chain)
          .map((r) => ({ rule: { family, table: 'filter', chain, handle: r.handle, comment: r.comment, expr: r.expr } })),
      };
    }
    throw new Error(`fake: unexpected listing ${cmd}`);
  }

  listText(): string {
    return '';
  }

  run(script: string): void {
    this.scripts.push(script);
    for (const line of script.split('\n')) {
      let m = /^delete rule (ip6?) filter (\S+) handle (\d+)$/.exec(line);
      if (m) {
        const i = this.rules.findIndex((r) => r.family === m![1] && r.chain === m![2] && r.handle === Number(m![3]));
        if (i < 0) throw new Error(`fake: no rule ${line}`);
        this.rules.splice(i, 1);
        continue;
      }
      m = /^insert rule (ip6?) filter (\S+) (iifname|oifname) "([^"]+)" meta mark & 0x00540000 == 0x00540000 counter accept comment "([^"]+)"$/.exec(line);
      if (m) {
        const [, family, chain, key, bridge, comment] = m;
        this.rules.unshift({
          family: family as CompatFamily,
          chain,
          handle: this.handle++,
          comment,
          // as libnftables lists the rule (checked against nft 1.0.6)
          expr: [
            { match: { op: '==', left: { meta: { key } }, right: bridge } },
            { match: { op: '==', left: { '&': [{ meta: { key: 'mark' } }, 0x540000] }, right: 0x540000 } },
            { counter: { packets: 0, bytes: 0 } },
            { accept: null },
          ],
        });
        continue;
      }
      throw new Error(`fake: unexpected command ${line}`);
    }
  }

  tsnetRules(family: CompatFamily = 'ip'): string[] {
    return this.rules.filter((r) => r.family === family && r.comment?.startsWith('tsnet:')).map((r) => `${r.chain} ${r.comment}`);
  }
}

describe('planCompat', () => {
  const rule = (bridge: string, direction: 'iifname' | 'oifname' | null, chain = 'DOCKER-USER', handle = 1): CompatRule => ({
    family: 'ip',
    chain,
    handle,
    bridge,
    direction,
  });

  it('inserts both accepts, at the top, for a new bridge', () => {
    expect(planCompat('ip', 'DOCKER-USER', [], ['br0']).split('\n')).toEqual([
      'insert rule ip filter DOCKER-USER oifname "br0" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:br0"',
      'insert rule ip filter DOCKER-USER iifname "br0" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:br0"',
    ]);
  });

  it('does nothing when the pair is in place', () => {
    expect(planCompat('ip', 'DOCKER-USER', [rule('br0', 'iifname', 'DOCKER-USER', 1), rule('br0', 'oifname', 'DOCKER-USER', 2)], ['br0'])).toBe('');
  });

  it('replaces a half pair, a mangled rule, or a pair in the wrong chain', () => {
    expect(planCompat('ip', 'DOCKER-USER', [rule('br0', 'iifname', 'DOCKER-USER', 7)], ['br0']).split('\n')[0]).toBe(
      'delete rule ip filter DOCKER-USER handle 7',
    );
    expect(planCompat('ip', 'DOCKER-USER', [rule('br0', 'iifname', 'DOCKER-USER', 1), rule('br0', null, 'DOCKER-USER', 2)], ['br0'])).toContain(
      'delete rule ip filter DOCKER-USER handle 2',
    );
    const moved = planCompat('ip', 'DOCKER-USER', [rule('br0', 'iifname', 'FORWARD', 3), rule('br0', 'oifname', 'FORWARD', 4)], ['br0']);
    expect(moved.split('\n')).toEqual([
      'delete rule ip filter FORWARD handle 3',
      'delete rule ip filter FORWARD handle 4',
      'insert rule ip filter DOCKER-USER oifname "br0" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:br0"',
      'insert rule ip filter DOCKER-USER iifname "br0" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:br0"',
    ]);
  });

  it('removes rules of unwanted bridges, and everything when there is no target', () => {
    expect(planCompat('ip6', 'DOCKER-USER', [rule('old', 'iifname', 'DOCKER-USER', 5)], [])).toBe('delete rule ip6 filter DOCKER-USER handle 5');
    expect(planCompat('ip', null, [rule('br0', 'iifname', 'FORWARD', 5)], ['br0'])).toBe('delete rule ip filter FORWARD handle 5');
    expect(planCompat('ip', null, [], ['br0'])).toBe('');
  });

  it('refuses names that are unsafe in rule text', () => {
    expect(() => planCompat('ip', 'DOCKER-USER', [], ['br" accept; flush ruleset; "'])).toThrow();
  });
});

describe('DockerCompat', () => {
  it('does nothing at all without Docker tables', () => {
    const nft = new FakeDockerTables();
    const c = new DockerCompat(nft);
    c.allowBridge('br0');
    c.syncBridges(['br0']);
    c.removeBridge('br0');
    expect(nft.scripts).toEqual([]);
  });

  it('puts rules in DOCKER-USER of both families, in one transaction, idempotently', () => {
    const nft = new FakeDockerTables().docker('ip').docker('ip6');
    const c = new DockerCompat(nft);
    c.allowBridge('br0');
    c.allowBridge('br0');
    expect(nft.scripts).toHaveLength(1);
    expect(nft.scripts[0]).toMatch(/ ip filter DOCKER-USER [^]* ip6 filter DOCKER-USER /);
    expect(nft.tsnetRules('ip')).toEqual(['DOCKER-USER tsnet:br0', 'DOCKER-USER tsnet:br0']);
    expect(nft.tsnetRules('ip6')).toEqual(['DOCKER-USER tsnet:br0', 'DOCKER-USER tsnet:br0']);
    // Docker's own return stays last
    expect(nft.rules.filter((r) => r.family === 'ip').at(-1)?.comment).toBeUndefined();
  });

  it("replaces an earlier version's unconditional accepts, which opened Docker's networks, with marked ones", () => {
    const nft = new FakeDockerTables().docker('ip');
    const unconditional = (key: string, handle: number) => ({
      family: 'ip' as const,
      chain: 'DOCKER-USER',
      handle,
      comment: 'tsnet:br0',
      expr: [{ match: { op: '==', left: { meta: { key } }, right: 'br0' } }, { counter: { packets: 0, bytes: 0 } }, { accept: null }],
    });
    nft.rules.unshift(unconditional('iifname', 1), unconditional('oifname', 2));
    new DockerCompat(nft).syncBridges(['br0']);
    expect(nft.scripts.join('\n').split('\n')).toEqual([
      'delete rule ip filter DOCKER-USER handle 1',
      'delete rule ip filter DOCKER-USER handle 2',
      'insert rule ip filter DOCKER-USER oifname "br0" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:br0"',
      'insert rule ip filter DOCKER-USER iifname "br0" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:br0"',
    ]);
  });

  it('falls back to FORWARD only when its policy drops', () => {
    const nft = new FakeDockerTables().docker('ip', false);
    const c = new DockerCompat(nft);
    expect(c.targetChain('ip')).toBe('FORWARD');
    c.allowBridge('br0');
    expect(nft.tsnetRules()).toEqual(['FORWARD tsnet:br0', 'FORWARD tsnet:br0']);
    nft.chains[0].policy = 'accept';
    expect(c.targetChain('ip')).toBeNull();
    // no longer needed: sync removes them
    c.syncBridges(['br0']);
    expect(nft.tsnetRules()).toEqual([]);
  });

  it('moves rules from FORWARD to DOCKER-USER once Docker has made it', () => {
    const nft = new FakeDockerTables().docker('ip', false);
    const c = new DockerCompat(nft);
    c.allowBridge('br0');
    nft.chains.push({ family: 'ip', name: 'DOCKER-USER' });
    // a DOCKER-USER that FORWARD does not jump to (left by a Docker now on nftables) is never reached
    c.syncBridges(['br0']);
    expect(nft.tsnetRules()).toEqual(['FORWARD tsnet:br0', 'FORWARD tsnet:br0']);
    nft.rules.push({ family: 'ip', chain: 'FORWARD', handle: 999, expr: [{ counter: null }, { jump: { target: 'DOCKER-USER' } }] });
    c.syncBridges(['br0']);
    expect(nft.tsnetRules()).toEqual(['DOCKER-USER tsnet:br0', 'DOCKER-USER tsnet:br0']);
  });

  it('removes one bridge without touching the others or Docker rules', () => {
    const nft = new FakeDockerTables().docker('ip');
    const c = new DockerCompat(nft);
    c.allowBridge('br0');
    c.allowBridge('br1');
    c.removeBridge('br0');
    c.removeBridge('br0');
    expect(nft.tsnetRules()).toEqual(['DOCKER-USER tsnet:br1', 'DOCKER-USER tsnet:br1']);
    // Docker's own: the jump in FORWARD and the return in DOCKER-USER
    expect(nft.rules.filter((r) => !r.comment)).toHaveLength(2);
  });

  it('sync leaves exactly the given bridges', () => {
    const nft = new FakeDockerTables().docker('ip');
    const c = new DockerCompat(nft);
    c.allowBridge('gone');
    c.allowBridge('br1');
    c.syncBridges(['br1', 'br2']);
    expect(nft.tsnetRules().sort()).toEqual(['DOCKER-USER tsnet:br1', 'DOCKER-USER tsnet:br1', 'DOCKER-USER tsnet:br2', 'DOCKER-USER tsnet:br2']);
    c.syncBridges([]);
    expect(nft.tsnetRules()).toEqual([]);
  });
});
