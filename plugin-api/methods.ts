// Docker's remote driver protocol seen from the caller's side: each method a client of a tsnet
// daemon calls, with its request and its reply as they travel (the shapes are translate.ts's),
// and the header dockerd sends. A client typed by this table (lab/plugin-client.ts) cannot
// misspell a method or send a body of the wrong shape without failing the type check; schemas.ts
// and server.ts are the other end of the same names.
import type {
  WireCreateEndpoint,
  WireCreateNetwork,
  WireEndpointRef,
  WireJoin,
  WireJoinReply,
  WireReleaseAddress,
  WireRequestAddress,
  WireRequestPool,
  fromCreateEndpoint,
  fromRequestAddress,
  fromRequestPool,
} from './translate.js';

/** What dockerd sends as Accept with every call; it sends no Content-Type (shared/docs/protocol.md). */
export const PLUGIN_ACCEPT = 'application/vnd.docker.plugins.v1.2+json';

/**
 * The kind of a failed call's error (core/errors.ts ErrorKind), in a header of the reply: dockerd
 * reads only the body's Err, tsnet's own clients (the lab's CLI) map the kind to an exit code.
 */
export const ERROR_KIND_HEADER = 'x-tsnet-error-kind';

/** A reply that carries nothing but, perhaps, an error. */
type Done = Record<string, never>;

interface Method<Request, Reply> {
  request: Request;
  reply: Reply;
}

/** The methods clients here call (the server answers more: server.ts). */
export interface PluginMethods {
  /** no body, as dockerd sends it */
  'Plugin.Activate': Method<undefined, { Implements: string[] }>;
  'IpamDriver.RequestPool': Method<WireRequestPool, ReturnType<typeof fromRequestPool>>;
  'IpamDriver.RequestAddress': Method<WireRequestAddress, ReturnType<typeof fromRequestAddress>>;
  'IpamDriver.ReleaseAddress': Method<WireReleaseAddress, Done>;
  'NetworkDriver.CreateNetwork': Method<WireCreateNetwork, Done>;
  'NetworkDriver.CreateEndpoint': Method<WireCreateEndpoint, ReturnType<typeof fromCreateEndpoint>>;
  'NetworkDriver.Join': Method<WireJoin, WireJoinReply>;
  'NetworkDriver.Leave': Method<WireEndpointRef, Done>;
  'NetworkDriver.DeleteEndpoint': Method<WireEndpointRef, Done>;
}

export type PluginMethod = keyof PluginMethods;
export type RequestOf<M extends PluginMethod> = PluginMethods[M]['request'];
export type ReplyOf<M extends PluginMethod> = PluginMethods[M]['reply'];
