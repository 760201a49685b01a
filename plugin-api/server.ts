// Docker's NetworkDriver and IpamDriver protocols over a unix socket. Each call is
// `POST /<Subsystem>.<Method>`; this layer checks the body against its schema, translates it
// (wire.ts), hands it to the controller or IPAM, and answers in Docker's form. Mind the traps
// Docker sets (shared/docs/protocol.md): no Content-Type header, empty bodies for argument-less
// calls, errors under "Err" for NetworkDriver but "Error" for IpamDriver.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { UserError, type NetworkDriver } from '../drivers/driver.js';
import type { IpamService } from '../ipam/types.js';
import { FORMATS, FORMAT_HINTS, SCHEMAS, type SchemaMethod } from './schemas.js';
import {
  fromCreateEndpoint,
  fromEndpointOperInfo,
  fromJoin,
  toCreateEndpoint,
  toCreateNetwork,
  toEndpointOptions,
  toRequestAddress,
  toRequestPool,
  type WireCreateEndpoint,
  type WireCreateNetwork,
  type WireEndpointRef,
  type WireJoin,
  type WireRequestAddress,
  type WireRequestPool,
} from './wire.js';

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';

export interface ServerOptions {
  network: NetworkDriver;
  ipam: IpamService;
  /** a pino logger (the daemon's); silent when absent */
  logger?: FastifyBaseLogger;
  capabilities?: { scope: 'local' | 'global'; connectivityScope: 'local' | 'global' };
}

/**
 * Runs calls one at a time. Docker may send calls in parallel (two `docker run` at once); drivers
 * read the store, change the kernel, write the store, and must never interleave.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

type Body = Record<string, unknown>;
type Handler = (body: Body) => Promise<unknown> | unknown;

/** The reply key that carries an error for a method: Docker reads a different one per subsystem. */
export function errorKey(method: string): 'Err' | 'Error' {
  return method.startsWith('IpamDriver.') ? 'Error' : 'Err';
}

function routes(o: ServerOptions): Record<string, Handler> {
  const { network: net, ipam } = o;
  const caps = o.capabilities ?? { scope: 'local', connectivityScope: 'local' };
  const ref = (b: Body) => ({ networkId: (b as unknown as WireEndpointRef).NetworkID, endpointId: (b as unknown as WireEndpointRef).EndpointID });
  return {
    'Plugin.Activate': () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),

    'NetworkDriver.GetCapabilities': () => ({ Scope: caps.scope, ConnectivityScope: caps.connectivityScope }),
    'NetworkDriver.CreateNetwork': async (b) => {
      await net.createNetwork(toCreateNetwork(b as unknown as WireCreateNetwork));
      return {};
    },
    'NetworkDriver.DeleteNetwork': async (b) => {
      await net.deleteNetwork(String(b.NetworkID));
      return {};
    },
    'NetworkDriver.AllocateNetwork': () => {
      throw new UserError('tsnet does not take part in swarm network allocation: create tsnet networks on each host with docker network create');
    },
    'NetworkDriver.FreeNetwork': () => ({}),
    'NetworkDriver.CreateEndpoint': async (b) => fromCreateEndpoint(await net.createEndpoint(toCreateEndpoint(b as unknown as WireCreateEndpoint))),
    'NetworkDriver.DeleteEndpoint': async (b) => {
      await net.deleteEndpoint(ref(b));
      return {};
    },
    'NetworkDriver.EndpointOperInfo': async (b) => fromEndpointOperInfo(await net.endpointOperInfo(ref(b))),
    'NetworkDriver.Join': async (b) => {
      const w = b as unknown as WireJoin;
      return fromJoin(await net.join({ ...ref(b), sandboxKey: w.SandboxKey, options: toEndpointOptions(w.Options) }));
    },
    'NetworkDriver.Leave': async (b) => {
      await net.leave(ref(b));
      return {};
    },
    'NetworkDriver.ProgramExternalConnectivity': async (b) => {
      await net.programExternalConnectivity({ ...ref(b), options: toEndpointOptions((b as unknown as WireEndpointRef).Options) });
      return {};
    },
    'NetworkDriver.RevokeExternalConnectivity': async (b) => {
      await net.revokeExternalConnectivity(ref(b));
      return {};
    },
    'NetworkDriver.DiscoverNew': () => ({}),
    'NetworkDriver.DiscoverDelete': () => ({}),

    // tsnet keeps its allocations on disk, so Docker need not replay them at its start (a replay
    // would be refused as "already in use")
    'IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': () => {
      const s = ipam.getDefaultAddressSpaces();
      return { LocalDefaultAddressSpace: s.localDefaultAddressSpace, GlobalDefaultAddressSpace: s.globalDefaultAddressSpace };
    },
    'IpamDriver.RequestPool': (b) => {
      const w = b as unknown as WireRequestPool;
      if (!w.Pool && w.SubPool) throw new UserError(`an IP range (${w.SubPool}) needs a subnet: give --subnet too`);
      const r = ipam.requestPool(toRequestPool(w));
      return { PoolID: r.poolId, Pool: r.pool, Data: r.data };
    },
    'IpamDriver.ReleasePool': (b) => {
      ipam.releasePool(String(b.PoolID ?? ''));
      return {};
    },
    'IpamDriver.RequestAddress': (b) => {
      const r = ipam.requestAddress(toRequestAddress(b as unknown as WireRequestAddress));
      return { Address: r.address, Data: r.data };
    },
    'IpamDriver.ReleaseAddress': (b) => {
      ipam.releaseAddress(String(b.PoolID ?? ''), String(b.Address ?? ''));
      return {};
    },
  };
}

/** "IPv4Data[0].Pool" from ajv's "/IPv4Data/0/Pool". */
function fieldName(instancePath: string, missing?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || 'body';
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
  data?: unknown;
}

/** One sentence per schema violation, in terms a user can act on. */
export function describeValidation(method: string, errors: AjvError[]): string {
  const e = errors[0];
  const field = fieldName(e.instancePath, e.params.missingProperty as string | undefined);
  let what: string;
  switch (e.keyword) {
    case 'required':
      what = `${field} is missing`;
      break;
    case 'format':
      what = `invalid ${field} '${String(e.data)}': expected ${FORMAT_HINTS[e.params.format as string] ?? e.params.format}`;
      break;
    case 'enum':
      what = field.endsWith('Proto')
        ? `unsupported protocol number ${JSON.stringify(e.data)} in ${field}: tsnet handles tcp (6), udp (17) and sctp (132)`
        : `${field} must be one of ${(e.params.allowedValues as unknown[]).join(', ')}`;
      break;
    case 'type':
      what = field === 'body' ? 'the request body must be a JSON object' : `${field} must be ${e.params.type}, got ${JSON.stringify(e.data)}`;
      break;
    default:
      what = `${field} ${e.message ?? 'is invalid'}${e.data !== undefined ? ` (got ${JSON.stringify(e.data)})` : ''}`;
  }
  return `invalid ${method} request: ${what}`;
}

/** An ajv plugin registering tsnet's string formats (CIDR, IP, MAC). */
function addFormats<A extends { addFormat(name: string, f: { type: 'string'; validate: (v: string) => boolean }): unknown }>(ajv: A): A {
  for (const [name, validate] of Object.entries(FORMATS)) ajv.addFormat(name, { type: 'string', validate });
  return ajv;
}

export function buildServer(o: ServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: o.logger,
    // one line per request is written by the onResponse hook below, with the method and duration
    logController: new LogController({ disableRequestLogging: true }),
    // plugin bodies are small; a 1 MiB cap keeps a runaway client from filling memory
    bodyLimit: 1 << 20,
    ajv: {
      customOptions: { verbose: true, allErrors: false, coerceTypes: false, removeAdditional: false, allowUnionTypes: true },
      plugins: [addFormats],
    },
  });
  const queue = new SerialQueue();
  const failures = new WeakMap<FastifyRequest, string>();

  // Docker sends no Content-Type, and nothing at all for argument-less calls
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      const e = new Error(`the request body is not valid JSON: ${(err as Error).message}`) as FastifyError;
      e.statusCode = 400;
      done(e, undefined);
    }
  });

  const reply = (res: FastifyReply, status: number, payload: unknown) =>
    // a Buffer, so fastify sends the type as given (it appends a charset to string payloads)
    res.code(status).header('content-type', PLUGIN_CONTENT_TYPE).send(Buffer.from(JSON.stringify(payload)));

  const fail = (req: FastifyRequest, res: FastifyReply, method: string, message: string, status = 200) => {
    failures.set(req, message);
    // Docker reads the error field of a 200 reply; other statuses are errors to it as well
    return reply(res, status, { [errorKey(method)]: message });
  };

  for (const [method, handle] of Object.entries(routes(o))) {
    const schema = SCHEMAS[method as SchemaMethod];
    app.post(`/${method}`, { schema: schema ? { body: schema } : undefined, attachValidation: true }, async (req, res) => {
      if (req.validationError) {
        const errors = (req.validationError as unknown as { validation: AjvError[] }).validation;
        return fail(req, res, method, errors ? describeValidation(method, errors) : req.validationError.message);
      }
      const body = (req.body ?? {}) as Body;
      try {
        return reply(res, 200, await queue.run(() => handle(body)));
      } catch (err) {
        if (err instanceof UserError) return fail(req, res, method, err.message);
        req.log.error({ err, method }, 'internal error');
        return fail(req, res, method, `tsnet internal error in ${method}: ${(err as Error).message} (see the tsnet log)`);
      }
    });
  }

  // Body parse errors and anything else fastify itself refuses, in Docker's form
  app.setErrorHandler((err: FastifyError, req, res) => {
    const method = req.url.slice(1);
    return fail(req, res, method, `invalid ${method} request: ${err.message}`, 200);
  });
  app.setNotFoundHandler((req, res) => {
    const method = req.url.slice(1);
    return fail(req, res, method, `tsnet does not implement ${req.method} ${req.url}`, 404);
  });

  app.addHook('onResponse', async (req, res) => {
    const b = (req.body ?? {}) as Body;
    const ids: Record<string, string> = {};
    for (const k of ['NetworkID', 'EndpointID', 'PoolID']) if (typeof b[k] === 'string') ids[k] = (b[k] as string).slice(0, 12);
    const err = failures.get(req);
    const entry = { method: req.url.slice(1), ms: Math.round(res.elapsedTime * 100) / 100, status: res.statusCode, ...ids };
    if (err) req.log.warn({ ...entry, err }, 'request failed');
    else req.log.info(entry, 'request');
  });

  return app;
}

/** True when a server answers on the unix socket at path. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on the plugin socket (mode 0600: only root may talk to the plugin, as with Docker's
 * own socket). A stale socket file left by a crash is replaced; a live server there is not.
 */
export async function listenUnix(app: FastifyInstance, socketPath: string): Promise<void> {
  mkdirSync(dirname(socketPath), { recursive: true });
  if (existsSync(socketPath)) {
    if (!lstatSync(socketPath).isSocket()) throw new Error(`${socketPath} exists and is not a socket: remove it or choose another --socket`);
    if (await socketAnswers(socketPath)) throw new Error(`another server already answers on ${socketPath}: is tsnet already running? (make down)`);
    unlinkSync(socketPath);
  }
  await app.listen({ path: socketPath });
  chmodSync(socketPath, 0o600);
}
