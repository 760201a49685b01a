// Just enough of Docker's Engine API, over its Unix socket, for what tsnet asks of dockerd: names
// for tsnet's IDs (tsnet status), a container's endpoints (tsnet port), and the containers a
// failed restore left down (daemon/docker-restore.ts). Here, below the daemon, so that both the
// daemon and the CLI can use it; the socket is always given (daemon/settings.ts dockerSocket).
// Unversioned paths: dockerd answers them with its own API version.
import { request } from 'node:http';

export class DockerApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** How long one call may take before it counts as Docker not answering. */
const TIMEOUT_MS = 5000;

/**
 * One call: resolves with the status and the body for 2xx and 304 (Docker's "nothing to do"),
 * rejects with DockerApiError (Docker's message) for any other status, and with the socket's
 * error when nothing answers (ENOENT, ECONNREFUSED) or the call times out.
 */
export function dockerCall(socketPath: string, method: 'GET' | 'POST', path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if ((status >= 200 && status < 300) || status === 304) {
          resolve({ status, body });
          return;
        }
        let message = body;
        try {
          message = (JSON.parse(body) as { message?: string }).message ?? body;
        } catch {
          // not JSON: keep the raw text
        }
        reject(new DockerApiError(message.trim(), status));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`Docker did not answer on ${socketPath}`)));
    req.on('error', reject);
    req.end();
  });
}

export async function dockerGet<T>(socketPath: string, path: string): Promise<T> {
  return JSON.parse((await dockerCall(socketPath, 'GET', path)).body) as T;
}

/** Docker's `filters` query parameter: {"status": ["exited"]} -> filters=%7B...%7D */
export function filtersQuery(filters: Record<string, string[]>): string {
  return `filters=${encodeURIComponent(JSON.stringify(filters))}`;
}

export interface DockerContainer {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; Error: string };
  HostConfig: { RestartPolicy: { Name: string } };
  NetworkSettings: { Networks: Record<string, { NetworkID: string; EndpointID: string }> };
}

/** A row of GET /containers/json: Names start with '/'. */
export interface DockerContainerSummary {
  Id: string;
  Names: string[];
  State: string;
}

export interface DockerNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Containers?: Record<string, { Name: string; EndpointID: string }>;
}

export function inspectContainer(socketPath: string, nameOrId: string): Promise<DockerContainer> {
  return dockerGet<DockerContainer>(socketPath, `/containers/${encodeURIComponent(nameOrId)}/json`);
}

/** Containers that are not running (created or exited), whatever their network. */
export function stoppedContainers(socketPath: string): Promise<DockerContainerSummary[]> {
  return dockerGet<DockerContainerSummary[]>(socketPath, `/containers/json?all=1&${filtersQuery({ status: ['created', 'exited'] })}`);
}

/** POST /containers/ID/start: 204 started, 304 already running. */
export async function startContainer(socketPath: string, id: string): Promise<'started' | 'already running'> {
  const r = await dockerCall(socketPath, 'POST', `/containers/${encodeURIComponent(id)}/start`);
  return r.status === 304 ? 'already running' : 'started';
}
