// The layer order of tsnet's production code, and the check that keeps it: a file may import from
// its own layer and the layers below, never from one above. A request walks down this list; the
// shared vocabulary (core/) sits at the bottom and imports nothing of tsnet.
//
//   cli                      the `tsnet` command
//   plugin-api, cni, lab     the ways in: Docker's protocols, CNI runtimes, the lab
//   daemon                   the controller and start-up reconcile
//   drivers                  bridge, macvlan, overlay: what the kernel should look like
//   ipam, firewall, runtime  addresses; the nftables table; the container side of an attachment
//   native, store            rtnetlink, nftables, sockets; SQLite and etcd
//   core                     errors, logger, undo, protocol types
//
// daemon/daemon.ts is the composition root of `tsnet serve`: it builds every layer and hands the
// server its handlers, so it alone may import the layers above the daemon. Tests, benchmarks and
// test support are outside the order (they drive the layers from outside).
import { dirname, join, normalize } from 'node:path';

export const LAYERS: Record<string, number> = {
  core: 0,
  native: 1,
  store: 1,
  ipam: 2,
  firewall: 2,
  runtime: 2,
  drivers: 3,
  daemon: 4,
  'plugin-api': 5,
  cni: 5,
  lab: 5,
  cli: 6,
};

/** Files that wire all layers together and so sit above every layer. */
export const COMPOSITION_ROOTS = new Set(['daemon/daemon.ts']);

export interface Violation {
  file: string;
  imports: string;
  fromLayer: string;
  toLayer: string;
}

/** The top folder of a repository-relative path, or '' for a file at the root. */
function layerOf(path: string): string {
  const i = path.indexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** The relative module specifiers a TypeScript source imports or re-exports (static and dynamic). */
export function importsOf(source: string): string[] {
  const specs: string[] = [];
  for (const m of source.matchAll(/\bfrom\s+'(\.{1,2}\/[^']+)'|\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)) specs.push(m[1] ?? m[2]);
  return specs;
}

/** Every import of `file` (repository-relative) that reaches a layer above the file's own. */
export function violationsOf(file: string, source: string): Violation[] {
  const from = layerOf(file);
  if (!(from in LAYERS) || COMPOSITION_ROOTS.has(file) || file.endsWith('.test.ts')) return [];
  const out: Violation[] = [];
  for (const spec of importsOf(source)) {
    const target = normalize(join(dirname(file), spec));
    const to = layerOf(target);
    if (to in LAYERS && LAYERS[to] > LAYERS[from]) out.push({ file, imports: target, fromLayer: from, toLayer: to });
  }
  return out;
}
