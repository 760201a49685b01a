// The daemon's answer to an address another endpoint took while this host was away: the local
// endpoint's host-side link goes down where it lives (the host's namespace, or a named one such as
// an overlay network's own), and the log says what happened and what to do.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cutOffTakenEndpoint, CutOffs, keepCutOff, keepingCutOff, readCutOffs, type AddressTakenDeps } from './address-taken.js';
import type { Logger } from '../core/log.js';

const EP = 'ab'.repeat(32);
const TAKEN = { overlay: 'blue', ip: '10.9.0.4', endpointId: EP, holder: { endpointId: 'cd'.repeat(32), host: 'h1' } };

/** Links by namespace ('' the host's), each up until set down; what was logged. */
function world(where: Record<string, string[]>) {
  const down: string[] = [];
  const logged: { level: string; msg: string }[] = [];
  const links = (ns: string) => ({
    getLink: (name: string | number) => ((where[ns] ?? []).includes(String(name)) ? ({ name } as never) : undefined),
    setLink: (name: string, change: { up?: boolean }) => void (change.up === false && down.push(`${ns || 'host'}:${name}`)),
    close: () => undefined,
  });
  const log = {
    error: (_o: unknown, msg: string) => void logged.push({ level: 'error', msg }),
    warn: (_o: unknown, msg: string) => void logged.push({ level: 'warn', msg }),
  } as unknown as Logger;
  const deps: AddressTakenDeps = {
    repo: { getEndpoint: ((id: string) => (id === EP ? { config: { hostIf: 'tsvabababababab' } } : undefined)) as never },
    netlink: links(''),
    namedNetns: () => Object.keys(where).filter((ns) => ns !== '').map((ns) => ({ path: `/run/netns/${ns}`, open: () => links(ns) })),
    log,
  };
  return { deps, down, logged };
}

describe('an address taken while this host was away', () => {
  it("takes the endpoint's link down in the host's namespace and says how to give the container a new address", () => {
    const w = world({ '': ['tsvabababababab'], 'x-ov-1': [] });
    cutOffTakenEndpoint(w.deps)(TAKEN);
    expect(w.down).toEqual(['host:tsvabababababab']);
    expect(w.logged).toEqual([
      {
        level: 'error',
        msg: "endpoint abababababab is cut off: its address 10.9.0.4 on overlay 'blue' went to endpoint cdcdcdcdcdcd on host h1 while this host was away from the cluster store; disconnect and connect the container (or restart it) to give it a new address",
      },
    ]);
  });

  it("finds the link in the overlay network's own namespace when it is not in the host's", () => {
    const w = world({ '': [], 'h3-ov-abababababab': ['tsvabababababab'] });
    cutOffTakenEndpoint(w.deps)(TAKEN);
    expect(w.down).toEqual(['h3-ov-abababababab:tsvabababababab']);
    expect(w.logged[0]?.msg).toMatch(/^endpoint abababababab is cut off/);
  });

  it('says so when the link is nowhere, and only warns when no local endpoint has the address any more', () => {
    const w = world({ '': [] });
    cutOffTakenEndpoint(w.deps)(TAKEN);
    expect(w.down).toEqual([]);
    expect(w.logged).toEqual([{ level: 'error', msg: 'could not take down the link of an endpoint whose address another host holds now' }]);
    const gone = world({ '': ['tsvabababababab'] });
    cutOffTakenEndpoint(gone.deps)({ ...TAKEN, endpointId: 'ef'.repeat(32) });
    expect(gone.down).toEqual([]);
    expect(gone.logged.map((l) => l.level)).toEqual(['warn']);
  });
});

describe('a cut-off endpoint across restarts', () => {
  const dirs: string[] = [];
  const stateDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'tsnet-cutoff-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('is remembered in the state directory, read by a new daemon, and no longer needed once the endpoint is gone', () => {
    const dir = stateDir();
    const w = world({ '': ['tsvabababababab'] });
    cutOffTakenEndpoint({ ...w.deps, cutOffs: new CutOffs(dir) })(TAKEN);
    expect(readCutOffs(dir)).toEqual([{ ...TAKEN, since: expect.any(String) }]);
    const next = new CutOffs(dir);
    expect(next.has(EP)).toBe(true);
    expect(next.has('cd'.repeat(32))).toBe(false);
    next.prune(() => false);
    expect(readCutOffs(dir)).toEqual([]);
  });

  it("keeps the link down after each restore: the start-up's and a drift repair's", () => {
    const dir = stateDir();
    new CutOffs(dir).add(TAKEN);
    const w = world({ 'h3-ov-abababababab': ['tsvabababababab'] });
    const d = { ...w.deps, cutOffs: new CutOffs(dir) };
    keepCutOff(d);
    expect(w.down).toEqual(['h3-ov-abababababab:tsvabababababab']);
    let restored = 0;
    const controller = { restore: () => ++restored, ownedLinks: () => ['x'] };
    const wrapped = keepingCutOff(controller, d);
    expect(wrapped.restore()).toBe(1); // what the restore returns (its phases) goes through
    expect(w.down).toEqual(['h3-ov-abababababab:tsvabababababab', 'h3-ov-abababababab:tsvabababababab']);
    expect(wrapped.ownedLinks()).toEqual(['x']);
  });

  it('names the host alone when only its claim of the address is known', () => {
    const w = world({ '': ['tsvabababababab'] });
    cutOffTakenEndpoint(w.deps)({ ...TAKEN, holder: { endpointId: '', host: 'h2' } });
    expect(w.logged[0]?.msg).toMatch(/went to host h2 while this host was away/);
  });
});
