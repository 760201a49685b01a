// What every driver does with its rows in the store, done one way: a network or endpoint row is
// written as 'creating' before the kernel is touched and marked 'ready' after, so a crash in
// between leaves a row that the start-up reconcile rolls back; removal marks 'deleting' first and
// drops the row last. The lookups say the same thing for every driver when a row is missing.
import { NotFoundError, UserError } from '../core/errors.js';
import { shortId } from '../core/text.js';
import { withUndo, type Undo } from '../core/undo.js';
import type { Logger } from '../core/log.js';
import type { EndpointRecord, NetworkRecord, NetworkRepo } from '../store/network-repo.js';
import { faultPoint } from '../core/fault-points.js';

type NewNetwork<C> = Omit<NetworkRecord<C>, 'state' | 'createdAt'>;
type NewEndpoint<C> = Omit<EndpointRecord<C>, 'state' | 'sandboxKey' | 'createdAt'>;

/** What Docker is told about a network ID tsnet has no (ready) record of. */
export function unknownNetwork(id: string): NotFoundError {
  return new NotFoundError(`network ${shortId(id)} is not known to tsnet (was its state directory removed?): recreate the network`);
}

/** The network, if it is fully made; else a NotFoundError telling the user to re-create it. */
export function readyNetwork<C>(repo: NetworkRepo, id: string): NetworkRecord<C> {
  const net = repo.getNetwork<C>(id);
  if (!net || net.state !== 'ready') throw unknownNetwork(id);
  return net;
}

/** The endpoint, if it is fully made. */
export function readyEndpoint<C>(repo: NetworkRepo, id: string): EndpointRecord<C> {
  const ep = repo.getEndpoint<C>(id);
  if (!ep || ep.state !== 'ready') throw new NotFoundError(`endpoint ${shortId(id)} is not known to tsnet`);
  return ep;
}

/** The endpoint in whatever state. */
export function knownEndpoint<C>(repo: NetworkRepo, id: string): EndpointRecord<C> {
  const ep = repo.getEndpoint<C>(id);
  if (!ep) throw new NotFoundError(`endpoint ${shortId(id)} is not known to tsnet`);
  return ep;
}

export function refuseExistingNetwork(repo: NetworkRepo, id: string): void {
  if (repo.getNetwork(id)) throw new UserError(`network ${shortId(id)} already exists in tsnet`, 'conflict');
}

export function refuseExistingEndpoint(repo: NetworkRepo, id: string): void {
  if (repo.getEndpoint(id)) throw new UserError(`endpoint ${shortId(id)} already exists in tsnet`, 'conflict');
}

/** Row as 'creating', `build` (pushing its undo steps), row 'ready'; any failure undoes it all. */
export function createNetworkRecord<C>(repo: NetworkRepo, log: Logger, row: NewNetwork<C>, build: (undo: Undo) => void): void {
  withUndo(log, (undo) => {
    repo.insertNetwork({ ...row, state: 'creating' });
    undo.push('store row', () => repo.deleteNetwork(row.id));
    faultPoint('network.row-written');
    build(undo);
    faultPoint('network.built');
    repo.setNetworkState(row.id, 'ready');
  });
}

/** The same for an endpoint. */
export function createEndpointRecord<C>(repo: NetworkRepo, log: Logger, row: NewEndpoint<C>, build: (undo: Undo) => void): void {
  withUndo(log, (undo) => {
    repo.insertEndpoint({ ...row, state: 'creating' });
    undo.push('store row', () => repo.deleteEndpoint(row.id));
    faultPoint('endpoint.row-written');
    build(undo);
    faultPoint('endpoint.built');
    repo.setEndpointState(row.id, 'ready');
  });
}

/**
 * Removes a network and its endpoints in the crash-safe order: 'deleting', each endpoint's
 * teardown, the network's teardown, the row. Also what start-up does with a network that an
 * interrupted create or delete left in a state other than 'ready'.
 */
export function removeNetworkRecord<C, E>(
  repo: NetworkRepo,
  net: NetworkRecord<C>,
  teardown: { endpoint: (ep: EndpointRecord<E>) => void; network: (net: NetworkRecord<C>) => void },
): void {
  if (net.state !== 'deleting') repo.setNetworkState(net.id, 'deleting');
  faultPoint('network.deleting');
  for (const ep of repo.listEndpoints<E>(net.id)) teardown.endpoint(ep);
  teardown.network(net);
  repo.deleteNetwork(net.id);
}
