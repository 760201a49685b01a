// The shape of tsnet's nftables tables: which chains and named sets they hold and how many rules
// each chain has, elements left out. Drift repair (daemon/drift.ts) compares the shape of the live
// tables with the shape of the script a full sync would write: a table deleted, flushed, or with a
// chain, set or rule removed or added by someone else no longer matches, while the daemon's own
// work (which the store describes, so the script too) always does. Elements are not compared: they
// change with every published port and cost a full listing of every map to compare.
// Pure functions, exported for tests.

/** Sorted lines: "chain FAMILY TABLE NAME", "set FAMILY TABLE NAME", "rules FAMILY TABLE CHAIN N". */
export type TableShape = string[];

/** The shape of a script of `add ...` lines (ruleset.ts fullTable) for the tables named `table`. */
export function scriptShape(script: string, table: string): TableShape {
  const chains: string[] = [];
  const sets: string[] = [];
  const rules = new Map<string, number>();
  for (const line of script.split('\n')) {
    const [verb, object, family, name, sub] = line.trim().split(/\s+/);
    if (name !== table) continue;
    if (verb === 'add' && object === 'chain') chains.push(`chain ${family} ${name} ${sub}`);
    else if (verb === 'add' && (object === 'set' || object === 'map')) sets.push(`set ${family} ${name} ${sub}`);
    else if ((verb === 'add' || verb === 'insert') && object === 'rule') rules.set(`${family} ${name} ${sub}`, (rules.get(`${family} ${name} ${sub}`) ?? 0) + 1);
  }
  return shape(chains, sets, rules);
}

interface Named {
  family?: string;
  table?: string;
  name?: string;
  chain?: string;
}

/** The shape of `nft -j list table ...` answers (their `nftables` arrays, concatenated) for the tables named `table`. */
export function listingShape(items: Record<string, unknown>[], table: string): TableShape {
  const chains: string[] = [];
  const sets: string[] = [];
  const rules = new Map<string, number>();
  for (const item of items) {
    const chain = item.chain as Named | undefined;
    const set = (item.set ?? item.map) as Named | undefined;
    const rule = item.rule as Named | undefined;
    if (chain?.table === table) chains.push(`chain ${chain.family} ${table} ${chain.name}`);
    else if (set?.table === table) sets.push(`set ${set.family} ${table} ${set.name}`);
    else if (rule?.table === table) rules.set(`${rule.family} ${table} ${rule.chain}`, (rules.get(`${rule.family} ${table} ${rule.chain}`) ?? 0) + 1);
  }
  return shape(chains, sets, rules);
}

function shape(chains: string[], sets: string[], rules: Map<string, number>): TableShape {
  return [...chains, ...sets, ...[...rules].map(([chain, n]) => `rules ${chain} ${n}`)].sort();
}

/** The lines in which two shapes differ, '-' only expected, '+' only live; [] when they match. */
export function shapeDiff(expected: TableShape, live: TableShape): string[] {
  const e = new Set(expected);
  const l = new Set(live);
  return [...expected.filter((x) => !l.has(x)).map((x) => `-${x}`), ...live.filter((x) => !e.has(x)).map((x) => `+${x}`)];
}
