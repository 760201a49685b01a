// Docker's NetworkDriver and IpamDriver protocols over a unix socket. Each call is
// `POST /<Subsystem>.<Method>`: fastify checks the body against its schema (schemas.ts), the route
// translates it (translate.ts), hands it to the network driver or IPAM through one queue
// (queue.ts), and answers in Docker's form. The traps Docker sets (shared/docs/protocol.md):
//  - no Content-Type header, and an empty body (not "{}") for argument-less calls;
//  - errors under "Err" for NetworkDriver and Plugin calls but "Error" for IpamDriver calls;
//  - a non-200 reply makes Docker parse the body for "Err" only, and show the raw body otherwise,
//    so every error here is a 200 carrying the subsystem's key (an IPAM error sent as 500 would
//    reach the user as `{"Error":"..."}`). The one exception is an unknown method: 404, which
//    Docker reads as "not implemented".
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { type NetworkDriver } from '../drivers/driver.js';
import type { IpamService } from '../ipam/types.js';
import { SerialQueue } from './queue.js';
import { ERROR_KIND_HEADER } from './methods.js';
import { AJV_OPTIONS, SCHEMAS, describeValidation, type AjvError, type SchemaMethod } from './schemas.js';
import {
  fromCreateEndpoint,
  fromDefaultAddressSpaces,
  fromEndpointOperInfo,
  fromJoin,
  fromRequestAddress,
  fromRequestPool,
  toCreateEndpoint,
  toCreateNetwork,
  toEndpointRef,
  toJoin,
  toProgramExternalConnectivity,
  toRequestAddress,
  toRequestPool,
  type WireCreateEndpoint,
  type WireCreateNetwork,
  type WireEndpointRef,
  type WireJoin,
  type WireProgramExternalConnectivity,
  type WireReleaseAddress,
  type WireRequestAddress,
  type WireRequestPool,
} from './translate.js';
import { UserError, errorKind, userMessage, type ErrorKind } from '../core/errors.js';
import { errorCause } from '../core/log.js';
import { requestDuration, requestsTotal } from '../core/metrics.js';
import { CniError, ERR, LATEST_VERSION, errorOutput, toCniError, versionOf, type CniCommand } from '../cni/spec.js';
import type { CniReply } from '../cni/cni-service.js';

export { SerialQueue } from './queue.js';

/** The reply type Docker's plugin protocol names (Docker itself does not check it). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';
/** Where Docker looks for a plugin named tsnet. */
export const DEFAULT_SOCKET_PATH = '/run/docker/plugins/tsnet.sock';
/** A call running this long gets a warning in the log: Docker (and the user) is waiting on it. */
export const SLOW_CALL_MS = 10_000;

export interface Capabilities {
  scope: 'local' | 'global';
  connectivityScope: 'local' | 'global';
}

export interface ServerOptions {
  network: NetworkDriver;
  ipam: IpamService;
  /** a pino logger (the daemon's, writing to its file), or fastify logger options; silent when absent */
  logger?: FastifyBaseLogger | FastifyServerOptions['logger'];
  /** default: local / local (global scopes need Swarm or a cluster store: protocol.md) */
  capabilities?: Capabilities;
  /** the lock every driver and IPAM call runs under; pass one to share it with other callers */
  queue?: SerialQueue;
  /**
   * CNI commands from the `tsnet` plugin executable (cni/client/tsnet-cni.c), route Cni.Exec. Not
   * run under the queue: the service (cni/cni-service.ts) runs its state changes through the same
   * queue itself, so pass that queue to both.
   */
  cni?: { exec(env: Record<string, string | undefined>, stdin: string): Promise<CniReply>; removeNetworkByName?(name: string): Promise<void> };
}

/** The CNI client's request: the network configuration as the body, the CNI_* variables as headers. */
export const CNI_CONTENT_TYPE = 'application/x-cni-config';
const CNI_HEADERS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH'] as const;

/** The reply key that carries an error: Docker reads "Error" from IPAM replies, "Err" from all others. */
export function errorKey(method: string): 'Err' | 'Error' {
  return method.startsWith('IpamDriver.') ? 'Error' : 'Err';
}

type Body = Record<string, unknown>;

interface Route {
  /** true: reaches driver or IPAM state, so runs under the queue; false: answered here alone */
  serial: boolean;
  handle: (body: Body) => unknown;
}

const local = (handle: Route['handle']): Route => ({ serial: false, handle });
const serial = (handle: Route['handle']): Route => ({ serial: true, handle });

/** Every method tsnet answers. Bodies have passed their schema (schemas.ts) when a handler runs. */
function routes(o: ServerOptions): Record<string, Route> {
  const { network: net, ipam } = o;
  const caps = o.capabilities ?? { scope: 'local', connectivityScope: 'local' };
  const as = <T>(b: Body) => b as unknown as T;
  const done = {};
  return {
    'Plugin.Activate': local(() => ({ Implements: ['NetworkDriver', 'IpamDriver'] })),

    'NetworkDriver.GetCapabilities': local(() => ({ Scope: caps.scope, ConnectivityScope: caps.connectivityScope })),
    'NetworkDriver.CreateNetwork': serial(async (b) => {
      await net.createNetwork(toCreateNetwork(as<WireCreateNetwork>(b)));
      return done;
    }),
    'NetworkDriver.DeleteNetwork': serial(async (b) => {
      await net.deleteNetwork(String(b.NetworkID));
      return done;
    }),
    // swarm managers only; tsnet keeps its own multi-host state
    'NetworkDriver.AllocateNetwork': local(() => {
      throw new UserError('tsnet networks are not allocated by swarm: create the network on each host with docker network create -d tsnet');
    }),
    'NetworkDriver.FreeNetwork': local(() => done),
    'NetworkDriver.CreateEndpoint': serial(async (b) => {
      const req = toCreateEndpoint(as<WireCreateEndpoint>(b));
      return fromCreateEndpoint(req, await net.createEndpoint(req));
    }),
    'NetworkDriver.DeleteEndpoint': serial(async (b) => {
      await net.deleteEndpoint(toEndpointRef(as<WireEndpointRef>(b)));
      return done;
    }),
    'NetworkDriver.EndpointOperInfo': serial(async (b) => fromEndpointOperInfo(await net.endpointOperInfo(toEndpointRef(as<WireEndpointRef>(b))))),
    'NetworkDriver.Join': serial(async (b) => fromJoin(await net.join(toJoin(as<WireJoin>(b))))),
    'NetworkDriver.Leave': serial(async (b) => {
      await net.leave(toEndpointRef(as<WireEndpointRef>(b)));
      return done;
    }),
    'NetworkDriver.ProgramExternalConnectivity': serial(async (b) => {
      await net.programExternalConnectivity(toProgramExternalConnectivity(as<WireProgramExternalConnectivity>(b)));
      return done;
    }),
    'NetworkDriver.RevokeExternalConnectivity': serial(async (b) => {
      await net.revokeExternalConnectivity(toEndpointRef(as<WireEndpointRef>(b)));
      return done;
    }),
    // swarm node events: nothing to do outside swarm
    'NetworkDriver.DiscoverNew': local(() => done),
    'NetworkDriver.DiscoverDelete': local(() => done),

    // tsnet persists its allocations, so Docker need not replay them at its start (a replay would
    // be refused as "already in use")
    'IpamDriver.GetCapabilities': local(() => ({ RequiresMACAddress: false, RequiresRequestReplay: false })),
    'IpamDriver.GetDefaultAddressSpaces': serial(() => fromDefaultAddressSpaces(ipam.getDefaultAddressSpaces())),
    'IpamDriver.RequestPool': serial(async (b) => fromRequestPool(await ipam.requestPool(toRequestPool(as<WireRequestPool>(b))))),
    'IpamDriver.ReleasePool': serial(async (b) => {
      await ipam.releasePool(String(b.PoolID));
      return done;
    }),
    'IpamDriver.RequestAddress': serial(async (b) => fromRequestAddress(await ipam.requestAddress(toRequestAddress(as<WireRequestAddress>(b))))),
    'IpamDriver.ReleaseAddress': serial(async (b) => {
      const w = as<WireReleaseAddress>(b);
      await ipam.releaseAddress(w.PoolID ?? '', w.Address ?? '');
      return done;
    }),
  };
}

/** "NetworkDriver.Join" from "/NetworkDriver.Join?x". */
function methodOf(req: FastifyRequest): string {
  return req.url.replace(/^\//, '').replace(/\?.*$/, '');
}

/** A pino instance goes in as fastify's loggerInstance, options as its logger; none: silent. */
function loggerOptions(logger: ServerOptions['logger']): Pick<FastifyServerOptions, 'logger'> & { loggerInstance?: FastifyBaseLogger } {
  if (logger && typeof logger === 'object' && typeof (logger as FastifyBaseLogger).child === 'function') return { loggerInstance: logger as FastifyBaseLogger };
  return { logger: (logger as FastifyServerOptions['logger']) ?? false };
}

/** What the onResponse log line (and the request metrics) say about a call. */
interface CallRecord {
  /** the message the caller got */
  error?: string;
  /** its class: the outcome label of tsnet_requests_total */
  kind?: ErrorKind;
  /** what the thrown error said, when that is not the message the caller got */
  cause?: string;
  waitMs?: number;
  /** CNI: the command and the container, from the CNI client's headers */
  cni?: { command: string; containerId?: string };
}

const CNI_COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

/** The class of a CNI error code (cni/spec.ts ERR): the outcome of a failed CNI call. */
export function cniErrorKind(code: number): ErrorKind {
  if (code === ERR.TRY_AGAIN_LATER) return 'unavailable';
  if (code === ERR.CONTAINER_UNKNOWN || code === ERR.NOT_ATTACHED) return 'not-found';
  if (code === ERR.INTERNAL) return 'internal';
  return 'invalid';
}

/** The method label of a call's metrics, from a fixed set: "Cni.ADD" for CNI, "unknown" for what tsnet does not answer. */
export function metricMethod(method: string, known: ReadonlySet<string>, cniCommand?: string): string {
  if (method === 'Cni.Exec') return CNI_COMMANDS.includes(cniCommand as CniCommand) ? `Cni.${cniCommand}` : 'Cni.unknown';
  return known.has(method) ? method : 'unknown';
}

/** The message, code and details of a CNI error reply, as the runtime reads them. */
function cniFailure(output: string): { msg: string; code: number; details?: string } {
  try {
    const e = JSON.parse(output) as { msg?: unknown; code?: unknown; details?: unknown };
    return { msg: String(e.msg ?? output.trim()), code: Number(e.code), details: typeof e.details === 'string' && e.details ? e.details : undefined };
  } catch {
    return { msg: output.trim(), code: ERR.INTERNAL };
  }
}

export function buildServer(o: ServerOptions): FastifyInstance {
  const app = Fastify({
    ...loggerOptions(o.logger),
    // one line per call is written by the onResponse hook below, with the method and duration
    logController: new LogController({ disableRequestLogging: true }),
    // plugin bodies are small; a 1 MiB cap keeps a runaway client from filling memory
    bodyLimit: 1 << 20,
    ajv: AJV_OPTIONS,
  } as FastifyServerOptions) as unknown as FastifyInstance;
  const queue = o.queue ?? new SerialQueue();
  const records = new WeakMap<FastifyRequest, CallRecord>();
  const record = (req: FastifyRequest): CallRecord => {
    let r = records.get(req);
    if (!r) records.set(req, (r = {}));
    return r;
  };

  // Docker sends no Content-Type, and nothing at all for argument-less calls
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      const e = new Error(`the request body is not valid JSON (${(err as Error).message})`) as FastifyError;
      e.statusCode = 400;
      done(e, undefined);
    }
  });
  // the CNI client's body is the runtime's stdin, read as it is (cni-service.ts parses it)
  app.addContentTypeParser(CNI_CONTENT_TYPE, { parseAs: 'string' }, (_req, body, done) => done(null, String(body)));
  // an empty body without Content-Length or Content-Type never reaches the parser: same as {}
  // (a JSON `null` is not an empty body: the schemas refuse it as "not a JSON object")
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined) req.body = {};
  });

  // a Buffer, so fastify sends the type as given (it appends a charset to string payloads)
  const send = (res: FastifyReply, status: number, payload: unknown) =>
    res.code(status).header('content-type', PLUGIN_CONTENT_TYPE).send(Buffer.from(JSON.stringify(payload)));

  /** What the log line and the metrics say of a failed call: the message sent, the error's kind and cause. */
  const failed = (req: FastifyRequest, message: string, err?: unknown) => {
    const r = record(req);
    r.error = message;
    r.kind = err === undefined ? 'invalid' : errorKind(err);
    const cause = err === undefined ? undefined : errorCause(err);
    if (cause !== undefined && cause !== `${(err as Error).name}: ${message}`) r.cause = cause;
  };

  const fail = (req: FastifyRequest, res: FastifyReply, method: string, message: string, status = 200, err?: unknown) => {
    failed(req, message, err);
    res.header(ERROR_KIND_HEADER, record(req).kind ?? 'internal');
    return send(res, status, { [errorKey(method)]: message });
  };

  const sendCni = (req: FastifyRequest, res: FastifyReply, reply: CniReply) => {
    if (reply.exitCode !== 0) {
      const f = cniFailure(reply.output);
      Object.assign(record(req), { error: f.msg, kind: cniErrorKind(f.code), ...(f.details ? { cause: f.details } : {}) });
    }
    return res.code(200).header('content-type', 'application/json').header('x-cni-exit', String(reply.exitCode)).send(Buffer.from(reply.output));
  };

  const internal = (req: FastifyRequest, res: FastifyReply, method: string, err: unknown) => {
    req.log.error({ err, method }, `internal error in ${method}`);
    return fail(req, res, method, userMessage(err, `in ${method}`), 200, err);
  };

  const table = routes(o);
  for (const [method, route] of Object.entries(table)) {
    const schema = SCHEMAS[method as SchemaMethod];
    app.post(`/${method}`, { schema: schema ? { body: schema } : undefined, attachValidation: true }, async (req, res) => {
      if (req.validationError) {
        const errors = (req.validationError as { validation?: AjvError[] }).validation;
        return fail(req, res, method, errors?.[0] ? describeValidation(method, errors[0]) : `invalid ${method} request: ${req.validationError.message}`);
      }
      const body = req.body as Body;
      req.log.debug({ method, body }, 'call body');
      const queued = performance.now();
      const slow = setTimeout(() => req.log.warn({ method, ms: SLOW_CALL_MS }, `${method} is still running: Docker is waiting for it`), SLOW_CALL_MS);
      slow.unref();
      try {
        const run = () => {
          record(req).waitMs = Math.round((performance.now() - queued) * 100) / 100;
          return route.handle(body);
        };
        const result = await (route.serial ? queue.run(run) : run());
        req.log.debug({ method, result }, 'call result');
        return send(res, 200, result);
      } catch (err) {
        if (err instanceof UserError) return fail(req, res, method, userMessage(err), 200, err);
        return internal(req, res, method, err);
      } finally {
        clearTimeout(slow);
      }
    });
  }

  // CNI: the reply body is what the plugin prints, its exit code rides in a header
  const cni = o.cni;
  if (cni) {
    app.post('/Cni.Exec', async (req, res) => {
      const env: Record<string, string | undefined> = {};
      for (const name of CNI_HEADERS) {
        const v = req.headers[`x-${name.toLowerCase().replace('_', '-')}`];
        if (typeof v === 'string') env[name] = v;
      }
      record(req).cni = { command: env.CNI_COMMAND ?? '', ...(env.CNI_CONTAINERID ? { containerId: env.CNI_CONTAINERID } : {}) };
      const stdin = typeof req.body === 'string' ? req.body : JSON.stringify(req.body ?? {});
      let reply: CniReply;
      try {
        // not under the queue: the service puts its own state changes there, and runs a delegated
        // IPAM plugin (someone else's program) outside it, so Docker's calls never wait behind one
        reply = await cni.exec(env, stdin);
      } catch (err) {
        // the service answers every failure itself; this is a bug in it, and fails only this call
        req.log.error({ err, method: 'Cni.Exec' }, 'internal error in Cni.Exec');
        reply = { exitCode: 1, output: errorOutput(versionOf(stdin), toCniError(err, 'in Cni.Exec')) };
      }
      return sendCni(req, res, reply);
    });
    // `tsnet cni rm NAME` (cli/cni.ts): {} when removed, else {"Err": message, "Kind": error kind}
    const removeNetwork = cni.removeNetworkByName?.bind(cni);
    if (removeNetwork) app.post('/Tsnet.CniRemove', async (req, res) => {
      const name = (req.body as { Name?: unknown } | null)?.Name;
      if (typeof name !== 'string' || name === '') {
        failed(req, 'Name: the CNI network to remove');
        return send(res, 200, { Err: 'Name: the CNI network to remove', Kind: 'invalid' });
      }
      try {
        await removeNetwork(name);
        return send(res, 200, {});
      } catch (err) {
        if (!(err instanceof UserError)) req.log.error({ err, method: 'Tsnet.CniRemove' }, 'internal error in Tsnet.CniRemove');
        failed(req, userMessage(err), err);
        return send(res, 200, { Err: userMessage(err), Kind: errorKind(err) });
      }
    });
  }

  // what fastify itself refuses (a body that is not JSON, too large...), in Docker's form, or in
  // CNI's for the CNI client (which reads its exit code from the header)
  app.setErrorHandler((err: FastifyError, req, res) => {
    const method = methodOf(req);
    if (method === 'Cni.Exec') {
      const invalid = err.statusCode !== undefined && err.statusCode < 500;
      if (!invalid) req.log.error({ err, method }, `internal error in ${method}`);
      const e = invalid ? new CniError(ERR.INVALID_CONFIG, `invalid Cni.Exec request: ${err.message}`) : toCniError(err, 'in Cni.Exec');
      return sendCni(req, res, { exitCode: 1, output: errorOutput(LATEST_VERSION, e) });
    }
    if (err.statusCode !== undefined && err.statusCode < 500) return fail(req, res, method, `invalid ${method} request: ${err.message}`);
    return internal(req, res, method, err);
  });
  app.setNotFoundHandler((req, res) => {
    const method = methodOf(req);
    const message = req.method === 'POST' ? `tsnet does not implement ${method}` : `tsnet plugin calls are POST requests, not ${req.method} ${req.url}`;
    return fail(req, res, method, message, 404);
  });

  // one line per call: method, duration, outcome, and the IDs it named (never the body: debug has
  // it); a failure adds the message the caller got, its kind and its cause. The same call counted
  // and timed for Prometheus (core/metrics.ts), its method from a fixed set
  const known = new Set([...Object.keys(table), 'Tsnet.CniRemove']);
  app.addHook('onResponse', async (req, res) => {
    const method = methodOf(req);
    const b = (req.body ?? {}) as Body;
    const ids: Record<string, string> = {};
    for (const [wire, key] of [
      ['NetworkID', 'networkId'],
      ['EndpointID', 'endpointId'],
      ['PoolID', 'poolId'],
    ] as const) {
      if (typeof b[wire] === 'string') ids[key] = b[wire] as string;
    }
    const r = records.get(req) ?? {};
    const label = metricMethod(method, known, r.cni?.command);
    requestsTotal.inc({ method: label, outcome: r.error === undefined ? 'ok' : (r.kind ?? 'internal') });
    requestDuration.observe({ method: label }, res.elapsedTime / 1000);
    const entry = {
      method,
      ...(r.cni ?? {}),
      ms: Math.round(res.elapsedTime * 100) / 100,
      ...(r.waitMs ? { waitMs: r.waitMs } : {}),
      status: res.statusCode,
      outcome: r.error === undefined ? 'ok' : 'error',
      ...ids,
    };
    const name = r.cni ? `${method} ${r.cni.command}` : method;
    if (r.error !== undefined) req.log.warn({ ...entry, error: r.error, kind: r.kind ?? 'internal', ...(r.cause ? { cause: r.cause } : {}) }, `${name} failed`);
    else req.log.info(entry, name);
  });

  return app;
}

/** True when a server accepts connections on the unix socket at path (a stale file refuses them). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    // a socket that neither accepts nor refuses: someone holds it, do not take it
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true);
    }, 2_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Listens on the plugin socket, mode 0600 (only root may talk to the plugin, as with Docker's own
 * socket). Creates the directory; replaces a stale socket file left by a crash; refuses to start
 * when another server answers there, or when the path is something other than a socket.
 */
export async function listenUnix(app: FastifyInstance, socketPath: string = DEFAULT_SOCKET_PATH): Promise<void> {
  mkdirSync(dirname(socketPath), { recursive: true });
  let stat;
  try {
    stat = lstatSync(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (stat) {
    if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket: remove it or choose another socket path`);
    if (await socketAnswers(socketPath)) throw new Error(`another server already answers on ${socketPath}: is tsnet already running?`);
    unlinkSync(socketPath);
  }
  // the socket is made 0600 by bind() itself (umask 0177 around it): whoever can connect may create
  // networks and publish ports, so there is no window with the umask's usual 0755
  const umask = process.umask(0o177);
  try {
    await app.listen({ path: socketPath });
  } finally {
    process.umask(umask);
  }
  chmodSync(socketPath, 0o600);
}
