// The daemon's answer to an address another endpoint took while this host was away: the local
// endpoint's host-side link goes down where it lives (the host's namespace, or a named one such as
// an overlay network's own), and the log says what happened and what to do.
import { describe, expect, it } from 'vitest';
import { cutOffTakenEndpoint, type AddressTakenDeps } from './address-taken.js';
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
