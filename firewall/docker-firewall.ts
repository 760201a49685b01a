// Which firewall the host's Docker engine programs, and whether tsnet's traffic gets through it:
// pure functions over what `nft -j list ...` shows, for `tsnet doctor` and the tests.
//
// Docker's firewall, version by version (sources in test-support/docker28-iptables.ts and
// docker29-nftables.ts, which are fixtures of each):
//
//   20.10-27  iptables-nft `table ip filter`: FORWARD jumps to DOCKER-USER first, then to Docker's
//             isolation chains; policy drop once dockerd turned forwarding on.
//   28+       the same DOCKER-USER, then everything else in DOCKER-FORWARD (DOCKER-CT,
//             DOCKER-ISOLATION-STAGE-1/DOCKER-INTERNAL, DOCKER-BRIDGE); policy drop only when
//             Docker turned forwarding on itself and ip-forward-no-drop is off.
//   29        with "firewall-backend": "nftables": tables `ip docker-bridges` and `ip6
//             docker-bridges`, no DOCKER-USER. Their forward base chain (priority filter, policy
//             accept) only jumps, through verdict maps keyed by Docker's own bridge names, to a chain
//             per Docker bridge; those end in drops. Traffic of tsnet's bridges is in no map, so it
//             passes. Docker's way for other tools is `bridge-accept-fwmark`: packets with that mark
//             are accepted in the per-bridge chain, before its drops, so it only ever concerns
//             packets entering Docker's own bridges. tsnet sets its mark (rules/names.ts
//             ACCEPT_MARK) in its forward chain at priority filter - 1, before Docker's chains, but
//             deliberately not on new connections into Docker's bridges (those stay Docker's to
//             decide), so the setting changes nothing for tsnet's networks; doctor reports it.
//
// In every case what can drop tsnet's traffic is an iptables FORWARD chain with policy drop
// (Docker's, or left behind by a Docker that moved to nftables, or an admin's): tsnet's accepts then
// belong where docker-compat.ts puts them, and they must be there for every tsnet bridge.
import { ACCEPT_MARK } from './rules/names.js';
import { compatComplete, compatRulesIn, compatTarget, filterChainsIn, jumpsTo, type CompatFamily } from './docker-compat.js';

export type DockerFirewallKind = 'none' | 'iptables' | 'iptables-docker-forward' | 'nftables';

export const DOCKER_FIREWALL_LABELS: Record<DockerFirewallKind, string> = {
  none: 'none',
  iptables: 'iptables (Docker 20.10-27)',
  'iptables-docker-forward': 'iptables with DOCKER-FORWARD (Docker 28+)',
  nftables: 'nftables (Docker 29, table docker-bridges)',
};

/** Docker's nftables tables (firewall-backend nftables). */
export const DOCKER_NFT_TABLE = 'docker-bridges';

/** The /etc/docker/daemon.json line that makes Docker's nftables chains accept tsnet's mark. */
export const DAEMON_JSON_FWMARK = `"bridge-accept-fwmark": "${ACCEPT_MARK}/${ACCEPT_MARK}"`;

const FAMILIES: CompatFamily[] = ['ip', 'ip6'];

type Obj = Record<string, unknown>;
interface JsonChain {
  family?: string;
  table?: string;
  name?: string;
  hook?: string;
  policy?: string;
}
interface JsonRule {
  family?: string;
  table?: string;
  chain?: string;
  comment?: string;
  expr?: Obj[];
}

const chainOf = (o: Obj) => o.chain as JsonChain | undefined;
const ruleOf = (o: Obj) => o.rule as JsonRule | undefined;

/** What a listing holds of one table: its objects. */
function inTable(objects: Obj[], family: string, table: string): Obj[] {
  return objects.filter((o) => {
    const x = (o.table ?? o.chain ?? o.rule ?? o.map ?? o.set) as { family?: string; table?: string; name?: string } | undefined;
    if (!x) return false;
    const name = o.table ? x.name : x.table;
    return x.family === family && name === table;
  });
}

/** Which of Docker's firewalls the listed objects show. Pure. */
export function detectDockerFirewall(objects: Obj[]): DockerFirewallKind {
  const hasTable = (family: string, name: string) => objects.some((o) => (o.table as JsonChain | undefined)?.family === family && (o.table as JsonChain).name === name);
  if (FAMILIES.some((f) => hasTable(f, DOCKER_NFT_TABLE))) return 'nftables';
  const filterChains = filterChainsIn(inTable(objects, 'ip', 'filter'));
  if (filterChains.has('DOCKER-FORWARD')) return 'iptables-docker-forward';
  if (filterChains.has('DOCKER-USER') || filterChains.has('DOCKER')) return 'iptables';
  return 'none';
}

/** An fwmark accept rule of Docker's nftables chains: `meta mark [and MASK ==] VALUE ... accept`. */
export interface FwmarkAccept {
  value: number;
  /** 0xffffffff when the rule gives no mask */
  mask: number;
}

/** The fwmark accepts in Docker's nftables tables (what bridge-accept-fwmark adds). Pure. */
export function fwmarkAccepts(objects: Obj[]): FwmarkAccept[] {
  const found = new Map<string, FwmarkAccept>();
  for (const f of FAMILIES) {
    for (const o of inTable(objects, f, DOCKER_NFT_TABLE)) {
      const expr = ruleOf(o)?.expr ?? [];
      if (!expr.some((e) => 'accept' in e)) continue;
      for (const e of expr) {
        const m = e.match as { op?: string; left?: unknown; right?: unknown } | undefined;
        const mark = m ? markTest(m) : undefined;
        if (mark) found.set(`${mark.value}/${mark.mask}`, mark);
      }
    }
  }
  return [...found.values()];
}

function markTest(m: { op?: string; left?: unknown; right?: unknown }): FwmarkAccept | undefined {
  if ((m.op !== '==' && m.op !== 'in') || typeof m.right !== 'number') return undefined;
  const left = m.left as { meta?: { key?: string }; '&'?: unknown[] } | undefined;
  if (left?.meta?.key === 'mark') return { value: m.right, mask: 0xffffffff };
  const and = left?.['&'];
  if (Array.isArray(and) && and.length === 2 && (and[0] as { meta?: { key?: string } }).meta?.key === 'mark' && typeof and[1] === 'number') {
    return { value: m.right, mask: and[1] };
  }
  return undefined;
}

/**
 * Whether an fwmark accept matches every packet tsnet marked: its mask tests only ACCEPT_MARK's bits
 * (tsnet ORs its mark onto whatever mark a packet has, PUBLISHED_MARK among them, so a rule without
 * a mask, which compares the whole mark, matches only by chance). Pure.
 */
export function coversTsnetMark(f: FwmarkAccept): boolean {
  const mark = Number(ACCEPT_MARK);
  return f.mask !== 0 && (f.mask & ~mark) === 0 && ((f.value ^ (mark & f.mask)) & 0xffffffff) === 0;
}


/** What tsnet needs to know of the host's Docker firewall. */
export interface DockerFirewallReport {
  kind: DockerFirewallKind;
  /** whether nothing in Docker's firewall (or an iptables FORWARD drop) stops tsnet's bridges' traffic */
  admitted: boolean;
  /** one sentence per finding, for doctor */
  findings: string[];
  /** the fwmark accepts Docker's nftables chains hold, and whether one covers tsnet's mark */
  fwmarks: FwmarkAccept[];
  fwmarkCoversTsnet: boolean;
}

/** tsnet's side: its bridges (from its table) and the tag of its accepts in Docker's chains. */
export interface TsnetSide {
  bridges: string[];
  tag: string;
}

/**
 * Whether tsnet's traffic is admitted, from the listed objects: tables, chains (with hooks and
 * policies), the rules of `ip`/`ip6 filter` FORWARD and DOCKER-USER, and Docker's nftables tables
 * whole. Pure.
 */
export function assessDockerFirewall(objects: Obj[], tsnet: TsnetSide): DockerFirewallReport {
  const kind = detectDockerFirewall(objects);
  const findings: string[] = [];
  let admitted = true;

  // an iptables FORWARD drop, whoever set it: tsnet's accepts must be in the chain that is reached
  for (const family of FAMILIES) {
    const filter = inTable(objects, family, 'filter');
    const chains = filterChainsIn(filter);
    const forward = chains.get('FORWARD');
    if (!forward || forward.policy !== 'drop') continue;
    const rulesOf = (chain: string) => filter.filter((o) => ruleOf(o)?.chain === chain);
    const target = compatTarget(chains, jumpsTo(rulesOf('FORWARD'), 'DOCKER-USER'));
    const present = ['DOCKER-USER', 'FORWARD'].flatMap((chain) => compatRulesIn(rulesOf(chain), family, chain, tsnet.tag));
    const missing = tsnet.bridges.filter((b) => !compatComplete(present.filter((r) => r.bridge === b), target));
    if (missing.length > 0) {
      admitted = false;
      findings.push(`${family} filter FORWARD drops by policy and tsnet's accepts are missing in ${target} for ${missing.join(', ')} (the daemon puts them back within a second while it runs)`);
    } else {
      findings.push(`${family} filter FORWARD drops by policy; tsnet's accepts in ${target} let its ${tsnet.bridges.length} bridge(s) through`);
    }
  }

  const fwmarks = fwmarkAccepts(objects);
  const fwmarkCoversTsnet = fwmarks.some(coversTsnetMark);
  if (kind === 'nftables') {
    for (const family of FAMILIES) {
      const docker = inTable(objects, family, DOCKER_NFT_TABLE);
      if (docker.length === 0) continue;
      for (const c of docker.map(chainOf).filter((c): c is JsonChain => c?.hook === 'forward')) {
        if (c.policy === 'drop') {
          admitted = false;
          findings.push(`${family} ${DOCKER_NFT_TABLE} chain ${c.name} drops by policy: tsnet's traffic is dropped there`);
        }
      }
      const keys = new Set(docker.flatMap((o) => ((o.map as { elem?: unknown[] } | undefined)?.elem ?? []).map((e) => (Array.isArray(e) ? e[0] : undefined))));
      const clash = tsnet.bridges.filter((b) => keys.has(b));
      if (clash.length > 0) {
        admitted = false;
        findings.push(`${family} ${DOCKER_NFT_TABLE} treats ${clash.join(', ')} as Docker's bridge(s): a Docker network has the same bridge name`);
      }
    }
    findings.push(
      fwmarkCoversTsnet
        ? `bridge-accept-fwmark covers tsnet's mark ${ACCEPT_MARK} (tsnet leaves new connections into Docker's bridges unmarked, so Docker's isolation still holds)`
        : `bridge-accept-fwmark for tsnet's mark is not set (${DAEMON_JSON_FWMARK} in /etc/docker/daemon.json); tsnet's networks do not need it: Docker's chains see only Docker's bridges`,
    );
  }
  return { kind, admitted, findings, fwmarks, fwmarkCoversTsnet };
}
