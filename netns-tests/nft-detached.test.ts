// Nft.runDetached (native/nftables.ts): the daemon's start writes its whole table through a child
// `nft -f -`, so libnftables' memory for it leaves with the child. What must hold: the script
// lands, whole, in the namespace the context programs; a refused script is an NftError with nft's
// own text and changes nothing; a context opened in another namespace than the process's runs the
// script in process instead (a child would program the wrong namespace). A stand-in `nft` first
// in PATH records each child, then runs the real one. And the full table it writes, whose
// container ports' elements go in one command per set, holds what per-port adds would.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Nft, NftError } from '../native/nftables.js';
import { Firewall } from '../firewall/firewall.js';
import type { FirewallEndpoint } from '../firewall/model.js';
import { withNetns } from '../native/netns.js';
import { assertNoLeaks, execIn, makeNetns, runCleanups, sh, tryIn, uniqueName } from './harness.js';

const run = uniqueName('tsrd');
const TABLE = 'tsnet_detached_test';
const dir = mkdtempSync(join(tmpdir(), 'tsnet-nft-detached-'));
const calls = join(dir, 'calls');
const realNft = sh('sh', ['-c', 'command -v nft']);
const PATH = process.env.PATH;

/** A table with a set of many elements: what a start-up sync looks like, small. */
function script(elements: number): string {
  const els = Array.from({ length: elements }, (_, i) => `10.9.${i >> 8}.${i & 255}`).join(', ');
  return [`add table inet ${TABLE}`, `add set inet ${TABLE} s { type ipv4_addr; }`, `add element inet ${TABLE} s { ${els} }`].join('\n');
}

/** How many elements the set holds in the namespace, or null without the table. */
function elementsIn(ns: string): number | null {
  const r = tryIn(ns, 'nft', ['-j', 'list', 'set', 'inet', TABLE, 's']);
  if (r.code !== 0) return null;
  const set = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables.find((o) => o.set)?.set;
  return set?.elem?.length ?? 0;
}

/** The children the stand-in saw. */
function children(): string[] {
  return existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : [];
}

/** Starts runDetached with the thread inside ns (as the daemon's main thread is in its own). */
function detachedFrom(ns: string, nft: Nft, text: string): Promise<void> {
  let done!: Promise<void>;
  withNetns(`/run/netns/${ns}`, () => void (done = nft.runDetached(text)));
  return done;
}

beforeAll(() => {
  writeFileSync(join(dir, 'nft'), `#!/bin/sh\necho "$*" >> ${calls}\nexec ${realNft} "$@"\n`);
  chmodSync(join(dir, 'nft'), 0o755);
  process.env.PATH = `${dir}:${PATH}`;
});
afterEach(() => rmSync(calls, { force: true }));
afterAll(async () => {
  process.env.PATH = PATH;
  rmSync(dir, { recursive: true, force: true });
  await runCleanups();
  assertNoLeaks(run);
});

describe('runDetached', () => {
  it('writes the script through a child in the namespace of the context, whole', async () => {
    const ns = makeNetns(run);
    const nft = withNetns(`/run/netns/${ns}`, () => Nft.open());
    try {
      await detachedFrom(ns, nft, script(3000));
      expect(children()).toEqual(['-f -']);
      expect(elementsIn(ns)).toBe(3000);
      // and the context itself sees it: the same namespace
      expect(nft.listText(`list set inet ${TABLE} s`)).toContain('10.9.11.183');
    } finally {
      nft.close();
    }
  });

  it("refuses a bad script with nft's text, and applies nothing of it", async () => {
    const ns = makeNetns(run);
    const nft = withNetns(`/run/netns/${ns}`, () => Nft.open());
    try {
      // the table is added first, then an element of a set that does not exist
      const bad = `${script(10)}\nadd element inet ${TABLE} absent { 10.9.0.1 }`;
      const err = await detachedFrom(ns, nft, bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(NftError);
      expect((err as NftError).isMissing).toBe(true);
      expect((err as NftError).detail).toContain('absent');
      expect(children()).toEqual(['-f -']);
      expect(elementsIn(ns)).toBeNull();
      // the same context goes on working
      await detachedFrom(ns, nft, script(10));
      expect(elementsIn(ns)).toBe(10);
    } finally {
      nft.close();
    }
  });

  it('runs in process for a context opened in another namespace than the caller is in', async () => {
    const home = makeNetns(run);
    const elsewhere = makeNetns(run);
    const nft = withNetns(`/run/netns/${elsewhere}`, () => Nft.open());
    try {
      // the caller is in `home`: a child would program `home`
      await detachedFrom(home, nft, script(20));
      expect(children()).toEqual([]);
      expect(elementsIn(elsewhere)).toBe(20);
      expect(elementsIn(home)).toBeNull();
    } finally {
      nft.close();
    }
  });

  it('runs in process when there is no nft command', async () => {
    const ns = makeNetns(run);
    const nft = withNetns(`/run/netns/${ns}`, () => Nft.open());
    process.env.PATH = dir.replace(/\/[^/]+$/, '/no-such-dir');
    try {
      await detachedFrom(ns, nft, script(5));
    } finally {
      process.env.PATH = `${dir}:${PATH}`;
      nft.close();
    }
    expect(children()).toEqual([]);
    expect(execIn(ns, 'nft', ['list', 'set', 'inet', TABLE, 's'])).toContain('10.9.0.4');
  });
});

describe('the full table with container ports grouped by set', () => {
  const endpoints: FirewallEndpoint[] = [
    { endpointId: 'a', port: 'tsrd-a', mac: '02:42:0a:e7:0a:02', ipv4: ['10.231.10.2'], ipv6: ['fd00:231:10::2'] },
    { endpointId: 'b', port: 'tsrd-b', mac: '02:42:0a:e7:0a:03', ipv4: ['10.231.10.3'], ipv6: [], icc: false },
    { endpointId: 'c', port: 'tsrd-c', mac: '02:42:00:00:00:06', ipv4: [], ipv6: ['fd00:231:10::6'] },
    { endpointId: 'd', port: 'tsrd-d', mac: '', ipv4: [], ipv6: [], antiSpoofing: false, icc: false },
    { endpointId: 'e', port: 'tsrd-e', mac: '', ipv4: [], ipv6: [], antiSpoofing: false },
  ];
  const network = { id: 'n', bridge: 'tsrd-br', subnets: ['10.231.10.0/24', 'fd00:231:10::/64'], masquerade: true, internal: false };

  /** Each set of the bridge-family table with its elements, sorted. */
  function bridgeSets(ns: string, table: string): Record<string, string[]> {
    const listing = JSON.parse(execIn(ns, 'nft', ['-j', 'list', 'table', 'bridge', table])) as { nftables: { set?: { name: string; elem?: unknown[] } }[] };
    return Object.fromEntries(listing.nftables.flatMap((o) => (o.set ? [[o.set.name, (o.set.elem ?? []).map((e) => JSON.stringify(e)).sort()]] : [])));
  }

  it('holds the same elements as a sync without ports and each port added after', async () => {
    const ns = makeNetns(run);
    const nft = withNetns(`/run/netns/${ns}`, () => Nft.open());
    try {
      const fw = new Firewall(nft, { warn() {} }, { table: 'tsrd_grouped', compatTag: 'tsrd' });
      fw.sync([network], [], endpoints);
      const grouped = bridgeSets(ns, 'tsrd_grouped');
      fw.sync([network], [], []);
      expect(bridgeSets(ns, 'tsrd_grouped').guarded_ports).toEqual([]);
      for (const e of endpoints) fw.addEndpoint(e);
      const perPort = bridgeSets(ns, 'tsrd_grouped');
      expect(grouped).toEqual(perPort);
      expect(grouped.guarded_ports).toEqual(['"tsrd-a"', '"tsrd-b"', '"tsrd-c"']);
      expect(grouped.no_icc_ports).toEqual(['"tsrd-b"', '"tsrd-d"']);
    } finally {
      nft.close();
    }
  });
});
