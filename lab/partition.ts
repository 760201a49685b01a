// Partitions in the lab: `tsnet lab cut --host H` takes H's port on the underlay bridge down, so H
// (its daemon, its containers' tunnel and its etcd connections) is cut off from every other host
// and every etcd member, while its processes and links stay as they are: what a pulled cable or a
// dead switch port does. Nothing reaches the other side and nothing is refused, so TCP sees only
// silence, as in a real partition. `tsnet lab heal --host H` puts the port back up.
import { ConflictError } from '../core/errors.js';
import { inNetns } from './processes.js';
import { hostOf, requireState, updateState } from './state.js';

/** `tsnet lab cut --host H` (cut=true) and `tsnet lab heal --host H` (cut=false). */
export async function labSetCut(labName: string, hostName: string, cut: boolean): Promise<void> {
  const s = requireState(labName);
  const h = hostOf(s, hostName);
  if (Boolean(h.cut) === cut) throw new ConflictError(`the underlay of ${h.name} is ${cut ? 'cut already' : 'not cut'}`);
  // the host's port on the underlay bridge is named after the host (processes.ts plugIntoUnderlay)
  inNetns(s.underlayNs, (nl) => nl.setLink(h.name, { up: !cut }));
  await updateState(labName, (st) => {
    hostOf(st, hostName).cut = cut || undefined;
  });
}
