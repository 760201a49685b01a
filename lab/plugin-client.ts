// A client of a tsnet daemon's plugin socket speaking Docker's remote driver protocol, so the lab
// (and the benchmarks) drive the daemon exactly as dockerd does: POST /Method with a JSON body,
// a JSON reply whose Err (NetworkDriver) or Error (IpamDriver) says what went wrong. Methods,
// bodies and replies are typed by plugin-api/methods.ts.
import { request } from 'node:http';
import { ERROR_KIND_HEADER, PLUGIN_ACCEPT, type PluginMethod, type ReplyOf, type RequestOf } from '../plugin-api/methods.js';
import type { ErrorKind } from '../core/errors.js';

const KINDS: readonly ErrorKind[] = ['invalid', 'not-found', 'conflict', 'unavailable', 'internal'];

/** A call the daemon refused or could not make; kind is the daemon's class of the error (core/errors.ts). */
export class PluginError extends Error {
  constructor(
    readonly method: string,
    message: string,
    readonly kind: ErrorKind = 'internal',
  ) {
    super(`${method}: ${message}`);
    this.name = 'PluginError';
  }
}

/** The kind a reply's header names; a daemon that names none (an older one) counts as 'invalid'. */
export function kindOf(header: string | string[] | undefined): ErrorKind {
  const k = KINDS.find((x) => x === header);
  return k ?? (header === undefined ? 'invalid' : 'internal');
}

export class PluginClient {
  constructor(readonly socketPath: string) {}

  /**
   * Calls one method; throws PluginError with the daemon's message when it reports an error. As
   * dockerd: an Accept header and no Content-Type, and no body at all for a method without one.
   */
  call<M extends PluginMethod>(method: M, body: RequestOf<M>, timeoutMs = 30_000): Promise<ReplyOf<M>> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    return new Promise<ReplyOf<M>>((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          path: `/${method}`,
          method: 'POST',
          headers: { Accept: PLUGIN_ACCEPT, 'Content-Length': Buffer.byteLength(payload) },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Record<string, unknown>;
            try {
              parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
            } catch {
              reject(new PluginError(method, `reply is not JSON (HTTP ${res.statusCode}): ${text.slice(0, 200)}`));
              return;
            }
            const err = parsed.Err ?? parsed.Error;
            if (typeof err === 'string' && err !== '') reject(new PluginError(method, err, kindOf(res.headers[ERROR_KIND_HEADER])));
            else if ((res.statusCode ?? 500) >= 400) reject(new PluginError(method, `HTTP ${res.statusCode}`));
            else resolve(parsed as ReplyOf<M>);
          });
        },
      );
      req.on('timeout', () => req.destroy(new PluginError(method, `no reply within ${timeoutMs} ms`, 'unavailable')));
      // no daemon behind the socket (not started, or gone): try again later
      req.on('error', (err) => reject(err instanceof PluginError ? err : new PluginError(method, `the daemon at ${this.socketPath} does not answer: ${err.message}`, 'unavailable')));
      req.end(payload);
    });
  }

  /** Resolves once the daemon answers Plugin.Activate; rejects after timeoutMs. */
  async waitReady(timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.call('Plugin.Activate', undefined, 2_000);
        return;
      } catch (err) {
        if (!alive()) throw new Error(`the daemon behind ${this.socketPath} exited`);
        if (Date.now() > deadline) throw new Error(`the daemon behind ${this.socketPath} did not answer within ${timeoutMs} ms: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
