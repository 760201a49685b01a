// Living beside Docker's iptables rules.
//
// Once dockerd has run, iptables-nft's `table ip filter` (and `ip6 filter`) has a FORWARD chain
// with policy drop, and br_netfilter hands even bridged packets to it. A packet is accepted only
// if every base chain at the forward hook accepts it, in whatever table: tsnet's own accept in
// `inet tsnet` cannot overrule Docker's drop. Docker leaves the DOCKER-USER chain, which FORWARD
// jumps to first, for rules of others; tsnet puts two accepts per bridge there, for the packets
// its own forward chain admitted and marked (rules/names.ts ACCEPT_MARK):
//
//     iifname "<bridge>" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:<bridge>"
//     oifname "<bridge>" meta mark & 0x00540000 == 0x00540000 counter accept comment "tsnet:<bridge>"
//
// An accept in DOCKER-USER ends the packet's walk through Docker's FORWARD, past Docker's isolation
// and internal-network drops; an unconditional one per bridge opened Docker's networks to tsnet's
// containers and back. Traffic between a tsnet network and one of Docker's bridges is left
// unmarked, so Docker's rules decide it (published ports only; internal networks closed).
//
// With no DOCKER-USER but a FORWARD chain whose policy is drop (an admin's iptables setup), the
// rules go at the top of FORWARD instead. They are plain nft expressions that `iptables-nft -L`
// shows as `-i <bridge> -m mark --mark ... -m comment ... -j ACCEPT`, found again by their comment,
// removed by handle; rules of an older shape (without the mark) are replaced.
// tsnet's isolation (what may cross between networks) stays in its own table, where a drop is
// final whatever these accepts say.
//
// Where no such table exists nothing is done. Docker creates DOCKER-USER when it starts, after
// tsnet may have started: Firewall.refreshDockerCompat() applies the rules again.
import type { NftApi } from '../native/nftables.js';
import { checkIfname } from './addr.js';
import { ACCEPT_MARK } from './rules/names.js';

/** Default tag; a daemon registered under another plugin name tags its rules with that name. */
export const COMPAT_TAG = 'tsnet:';

export type CompatFamily = 'ip' | 'ip6';
const FAMILIES: CompatFamily[] = ['ip', 'ip6'];
const TABLE = 'filter';
const USER_CHAIN = 'DOCKER-USER';
const FORWARD_CHAIN = 'FORWARD';
/** Docker's chains tsnet's accepts may be in. */
export const COMPAT_CHAINS = [USER_CHAIN, FORWARD_CHAIN];

/** One tsnet rule found in a Docker-managed chain. */
export interface CompatRule {
  family: CompatFamily;
  chain: string;
  handle: number;
  bridge: string;
  /** 'iifname' or 'oifname' when the rule has the expected shape, else null */
  direction: 'iifname' | 'oifname' | null;
}

export class DockerCompat {
  constructor(
    private readonly nft: NftApi,
    /** prefix of the rule comments that mark this daemon's rules ("tsnet:" + bridge) */
    private readonly tag: string = COMPAT_TAG,
  ) {}

  /** Accepts the bridge's traffic in Docker's forward chains. Idempotent; no-op without them. */
  allowBridge(bridge: string): void {
    checkIfname(bridge);
    this.apply([bridge], (b) => b === bridge);
  }

  /** Removes the bridge's rules from Docker's chains; no error when there are none. */
  removeBridge(bridge: string): void {
    checkIfname(bridge);
    this.apply([], (b) => b === bridge);
  }

  /** Leaves exactly the rules of these bridges, in the right chain; removes every other tsnet rule. */
  syncBridges(bridges: string[]): void {
    bridges.forEach((b) => checkIfname(b));
    this.apply(bridges, () => true);
  }

  /** The chain tsnet's rules belong in for a family, or null when Docker's rules need none. */
  targetChain(family: CompatFamily): string | null {
    const chains = this.filterChains(family);
    const forward = chains.has(USER_CHAIN) ? items(this.nft.listJson(`list chain ${family} ${TABLE} ${FORWARD_CHAIN}`)) : [];
    return compatTarget(chains, jumpsTo(forward, USER_CHAIN));
  }

  /** Every tsnet rule in Docker's DOCKER-USER and FORWARD chains. */
  listRules(family: CompatFamily): CompatRule[] {
    const chains = this.filterChains(family);
    return COMPAT_CHAINS.filter((chain) => chains.has(chain)).flatMap((chain) =>
      compatRulesIn(items(this.nft.listJson(`list chain ${family} ${TABLE} ${chain}`)), family, chain, this.tag),
    );
  }

  /**
   * Brings the rules of both families for the bridges `concerns` selects to exactly `wanted`, in one
   * transaction; retried once if Docker changed its chains between listing and applying.
   */
  private apply(wanted: string[], concerns: (bridge: string) => boolean): void {
    for (let attempt = 0; ; attempt++) {
      const script = FAMILIES.map((family) => {
        const present = this.listRules(family).filter((r) => concerns(r.bridge));
        return planCompat(family, this.targetChain(family), present, wanted, this.tag);
      })
        .filter((s) => s !== '')
        .join('\n');
      if (script === '') return;
      try {
        this.nft.run(script);
        return;
      } catch (err) {
        if (attempt >= 1) throw err;
      }
    }
  }

  private filterChains(family: CompatFamily): Map<string, FilterChain> {
    return filterChainsIn(items(this.nft.listJson(`list chains ${family}`)));
  }
}

/** A chain of iptables-nft's `filter` table as `list chains` shows it. */
export interface FilterChain {
  hook?: string;
  policy?: string;
}

/** The chains of the `filter` table among listed nftables objects, by name. Pure. */
export function filterChainsIn(objects: Record<string, unknown>[]): Map<string, FilterChain> {
  const chains = new Map<string, FilterChain>();
  for (const obj of objects) {
    const c = obj.chain as { table?: string; name?: string; hook?: string; policy?: string } | undefined;
    if (c && c.table === TABLE && typeof c.name === 'string') chains.set(c.name, { hook: c.hook, policy: c.policy });
  }
  return chains;
}

/**
 * The chain tsnet's accepts belong in, given the `filter` table's chains: DOCKER-USER where FORWARD
 * jumps to it (Docker 20.10 to 28 put the jump first), else the top of a FORWARD whose policy is
 * drop, else none (nothing there drops tsnet's traffic). A DOCKER-USER without the jump (left
 * behind by a Docker that moved to its nftables backend, which neither adds nor removes the jump)
 * is never reached, so accepts there would not count. Pure.
 */
export function compatTarget(chains: Map<string, FilterChain>, forwardJumpsToUser: boolean): string | null {
  if (chains.has(USER_CHAIN) && forwardJumpsToUser) return USER_CHAIN;
  const fwd = chains.get(FORWARD_CHAIN);
  if (fwd && fwd.hook === 'forward' && fwd.policy === 'drop') return FORWARD_CHAIN;
  return null;
}

/** The rules tagged `tag` among the listed objects of one chain. Pure. */
export function compatRulesIn(objects: Record<string, unknown>[], family: CompatFamily, chain: string, tag: string): CompatRule[] {
  const rules: CompatRule[] = [];
  for (const obj of objects) {
    const rule = obj.rule as JsonRule | undefined;
    if (!rule || typeof rule.comment !== 'string' || !rule.comment.startsWith(tag)) continue;
    if (rule.chain !== undefined && rule.chain !== chain) continue;
    const bridge = rule.comment.slice(tag.length);
    rules.push({ family, chain, handle: rule.handle, bridge, direction: directionOf(rule, bridge) });
  }
  return rules;
}

/** Whether a bridge has exactly its pair of accepts (in and out, right shape) in `target`. Pure. */
export function compatComplete(rules: CompatRule[] | undefined, target: string | null): boolean {
  return (
    rules !== undefined &&
    rules.length === 2 &&
    rules.every((r) => r.chain === target) &&
    rules.some((r) => r.direction === 'iifname') &&
    rules.some((r) => r.direction === 'oifname')
  );
}

/**
 * The transaction that takes tsnet rules from `present` to the `wanted` bridges in the `target`
 * chain (none when target is null): rules that are unwanted, misplaced, malformed or duplicated
 * are deleted by handle, and a bridge lacking its exact pair gets it afresh. '' when nothing is to
 * be done. Pure, exported for tests.
 */
export function planCompat(family: CompatFamily, target: string | null, present: CompatRule[], wanted: string[], tag = COMPAT_TAG): string {
  const want = new Set(target === null ? [] : wanted.map((b) => checkIfname(b)));
  const byBridge = new Map<string, CompatRule[]>();
  for (const r of present) byBridge.set(r.bridge, [...(byBridge.get(r.bridge) ?? []), r]);
  const complete = (rules: CompatRule[] | undefined) => compatComplete(rules, target);

  const lines: string[] = [];
  for (const [bridge, rules] of byBridge) {
    if (want.has(bridge) && complete(rules)) continue;
    for (const r of rules) lines.push(`delete rule ${family} ${TABLE} ${r.chain} handle ${r.handle}`);
  }
  for (const b of want) {
    if (complete(byBridge.get(b))) continue;
    // inserted at the top, so they come before DOCKER-USER's final `return`
    lines.push(`insert rule ${family} ${TABLE} ${target} oifname "${b}" meta mark & ${ACCEPT_MARK} == ${ACCEPT_MARK} counter accept comment "${tag}${b}"`);
    lines.push(`insert rule ${family} ${TABLE} ${target} iifname "${b}" meta mark & ${ACCEPT_MARK} == ${ACCEPT_MARK} counter accept comment "${tag}${b}"`);
  }
  return lines.join('\n');
}

interface JsonRule {
  handle: number;
  chain?: string;
  comment?: string;
  expr?: { match?: { op?: string; left?: { meta?: { key?: string } }; right?: unknown } }[];
}

/** 'iifname' or 'oifname' for a rule of exactly the shape planCompat writes (bridge, mark, accept), else null. */
function directionOf(rule: JsonRule, bridge: string): 'iifname' | 'oifname' | null {
  const matches = (rule.expr ?? []).filter((e) => e.match);
  if (matches.length !== 2) return null;
  const [m, mark] = [matches[0].match!, matches[1].match!];
  const key = m.left?.meta?.key;
  if (m.op !== '==' || m.right !== bridge || (key !== 'iifname' && key !== 'oifname')) return null;
  if (!isAcceptMarkTest(mark)) return null;
  const verdicts = (rule.expr ?? []).filter((e) => 'accept' in (e as object));
  return verdicts.length === 1 ? key : null;
}

/** `meta mark & ACCEPT_MARK == ACCEPT_MARK`, as libnftables' JSON spells it. */
function isAcceptMarkTest(m: { op?: string; left?: unknown; right?: unknown }): boolean {
  const mark = Number(ACCEPT_MARK);
  const and = (m.left as { '&'?: unknown[] } | undefined)?.['&'];
  return (
    m.op === '==' &&
    m.right === mark &&
    Array.isArray(and) &&
    and.length === 2 &&
    (and[0] as { meta?: { key?: string } }).meta?.key === 'mark' &&
    and[1] === mark
  );
}

/** Whether one of the listed rules jumps (or goes) to `target`. Pure. */
export function jumpsTo(objects: Record<string, unknown>[], target: string): boolean {
  return objects.some((obj) =>
    ((obj.rule as { expr?: Record<string, unknown>[] } | undefined)?.expr ?? []).some(
      (e) => (e.jump as { target?: string } | undefined)?.target === target || (e.goto as { target?: string } | undefined)?.target === target,
    ),
  );
}

/** The objects of a libnftables JSON answer. */
export function items(answer: unknown): Record<string, unknown>[] {
  const list = (answer as { nftables?: unknown[] } | null)?.nftables;
  return Array.isArray(list) ? (list as Record<string, unknown>[]) : [];
}
