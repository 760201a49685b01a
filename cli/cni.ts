// `tsnet cni rm NAME`: removes a CNI network by name. A CNI network goes by itself with its last
// attachment (its runtime's DEL); this is for one left behind another way (a conflist renamed or
// removed while containers were still attached, then the containers removed), whose subnet no
// other network can take while it exists. The daemon does the work, under the lock every other
// change runs under (route Tsnet.CniRemove); it refuses while containers are attached.
import { request } from 'node:http';
import type { ErrorKind } from '../core/errors.js';
import { CliError } from './status.js';

export const CNI_USAGE = 'usage: tsnet cni rm NAME';

/** Runs `tsnet cni ARGS` against the daemon on socketPath; returns the line to print. */
export async function runCni(args: string[], socketPath: string): Promise<string> {
  if (args.length !== 2 || args[0] !== 'rm' || !args[1]) throw new CliError(CNI_USAGE);
  const name = args[1];
  const reply = await post(socketPath, '/Tsnet.CniRemove', { Name: name });
  if (reply.Err) throw new CliError(reply.Err, reply.Kind && reply.Kind !== 'internal' ? reply.Kind : 'invalid');
  return `removed CNI network '${name}'`;
}

interface RemoveReply {
  Err?: string;
  Kind?: ErrorKind;
}

function post(socketPath: string, path: string, body: object): Promise<RemoveReply> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { 'Content-Length': Buffer.byteLength(payload) }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve(JSON.parse(text) as RemoveReply);
        } catch {
          reject(new CliError(`the tsnet daemon on ${socketPath} answered ${res.statusCode}: ${text.slice(0, 200)}`, 'unavailable'));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('no reply within 30 s')));
    req.on('error', (err) => reject(new CliError(`the tsnet daemon does not answer on ${socketPath} (${err.message}): is it running?`, 'unavailable')));
    req.end(payload);
  });
}
