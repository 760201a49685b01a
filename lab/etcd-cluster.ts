// The lab's etcd as a cluster (`tsnet lab up --etcd N`): member K runs in namespace tsl-NAME-etcdK
// on the lab's underlay (member 1 in tsl-NAME-etcd), clients and peers on its underlay address, and
// every host's daemon is given every member's client address. `tsnet lab kill --etcd K` kills
// member K as a crash would, `tsnet lab start --etcd K` starts it again on the same data folder, so
// it rejoins the cluster it was part of. With three members, one down leaves a majority (the
// store works on), two down leave none (the store refuses writes and linearizable reads until one
// is back). The layout is state.ts's (etcdOf); the processes are processes.ts's.
import { ConflictError, UnavailableError } from '../core/errors.js';
import { alive, delNetns, killNow, plugIntoUnderlay, startEtcd, waitForEtcd, withLog } from './processes.js';
import { etcdCount, etcdMember, etcdMembersOf, etcdPid, etcdUnderlay, requireState, saveState, updateState, type LabState } from './state.js';

/** The name of member k's port on the underlay bridge. */
function underlayPort(k: number): string {
  return k === 1 ? 'etcd' : `etcd${k}`;
}

/** Plugs every member into the underlay and starts it; the pids are saved as they come. */
export function startEtcdMembers(s: LabState, program: string): void {
  s.etcdPids = [];
  for (const [i, e] of etcdMembersOf(s).entries()) {
    plugIntoUnderlay(s.underlayNs, e.netns, underlayPort(i + 1), etcdUnderlay(i + 1));
    s.etcdPids.push(startEtcd(e, program));
    saveState(s);
  }
}

/** Until every member answers its health check (a member is healthy once the cluster has a leader). */
export async function waitForEtcdMembers(s: LabState): Promise<void> {
  await Promise.all(etcdMembersOf(s).map((e, i) => waitForEtcd(e, etcdPid(s, i + 1))));
}

/** Every process and namespace of the lab's etcd members. */
export function etcdPidsOf(s: LabState): number[] {
  return (s.etcdPids ?? []).filter((p) => p > 0);
}

export function removeEtcdNamespaces(s: LabState): void {
  for (const e of etcdMembersOf(s)) delNetns(e.netns);
}

/** `tsnet lab kill --etcd K`: SIGKILL to member K, as a crash would; its data folder stays. */
export async function labKillEtcd(labName: string, k: number): Promise<void> {
  const s = requireState(labName);
  etcdMember(s, k); // refuses a member the lab does not have
  const pid = etcdPid(s, k);
  if (!alive(pid)) throw new ConflictError(`etcd member ${k} of lab '${labName}' is not running`);
  await killNow(pid!);
  await updateState(labName, (st) => {
    st.etcdPids![k - 1] = 0;
  });
}

/**
 * `tsnet lab start --etcd K`: member K again, on its data folder, so it rejoins as the member it
 * was. Resolves once it is healthy, which needs a majority of the members running.
 */
export async function labStartEtcd(labName: string, k: number, program: string): Promise<void> {
  const s = requireState(labName);
  const e = etcdMember(s, k);
  const running = etcdPid(s, k);
  if (alive(running)) throw new ConflictError(`etcd member ${k} of lab '${labName}' is running (pid ${running})`);
  const pid = startEtcd(e, program);
  await updateState(labName, (st) => {
    st.etcdPids ??= [];
    st.etcdPids[k - 1] = pid;
  });
  try {
    await waitForEtcd(e, pid);
  } catch (err) {
    const n = etcdCount(s);
    const majority = Math.floor(n / 2) + 1;
    if (!alive(pid)) throw err;
    throw withLog(new UnavailableError(`etcd member ${k} runs but is not healthy: a member answers once ${majority} of the ${n} members run (start another with tsnet lab start --etcd K)`), e.log);
  }
}
