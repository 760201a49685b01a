// Test-only crash points: the daemon kills itself with SIGKILL (a kill -9, nothing flushed, no
// undo run) when it reaches a named step, so a test can prove that a crash at that step leaves a
// state the next start repairs (netns-tests/cni-crash.test.ts and docker-crash.test.ts run every point).
//
// Off for users: a point is armed only when the daemon (`tsnet serve`) starts with BOTH
//   TSNET_TEST_FAULTS=1  and  TSNET_FAULT=<one name of FAULT_POINTS>
// in its environment, read once at start; an unknown name refuses to start rather than test
// nothing. Without them faultPoint() is a comparison against undefined.

/** Every step a test can stop the daemon at, in the order a request reaches them. */
export const FAULT_POINTS = [
  // a driver's network or endpoint: the row is 'creating', the kernel objects are (partly) made
  'network.row-written',
  'network.built',
  'network.deleting',
  'endpoint.row-written',
  'endpoint.built',
  // Docker's later steps (and CNI's, which use the same driver calls)
  'driver.joined',
  'driver.ports-published',
  // CNI ADD (cni/cni-service.ts)
  'cni.add.pool-allocated',
  'cni.add.network-recorded',
  'cni.add.network-created',
  'cni.add.attachment-recorded',
  'cni.add.address-allocated',
  'cni.add.endpoint-created',
  'cni.add.sandbox-configured',
  'cni.add.ports-published',
  // CNI DEL
  'cni.del.marked',
  'cni.del.endpoint-deleted',
  'cni.del.address-released',
  'cni.del.attachment-deleted',
  'cni.del.network-deleted',
  'cni.del.pool-released',
] as const;

export type FaultPoint = (typeof FAULT_POINTS)[number];

let armed: FaultPoint | undefined;

/** Called once by `tsnet serve`: arms the point the environment names, if the test flag is set. */
export function armFaultPoint(env: Record<string, string | undefined>): FaultPoint | undefined {
  armed = undefined;
  if (env.TSNET_TEST_FAULTS !== '1' || !env.TSNET_FAULT) return undefined;
  const name = env.TSNET_FAULT;
  if (!(FAULT_POINTS as readonly string[]).includes(name)) throw new Error(`TSNET_FAULT=${name} is not a fault point (core/fault-points.ts lists them)`);
  armed = name as FaultPoint;
  return armed;
}

/** Dies here, as kill -9 would, when this is the armed point. */
export function faultPoint(name: FaultPoint): void {
  if (armed === name) process.kill(process.pid, 'SIGKILL');
}
