// Just enough of Docker's Engine API to put names on tsnet's IDs (status) and to find a
// container's endpoints (port). Docker cannot show a remote driver's port bindings itself.
import { request } from 'node:http';
import { settingDefaults } from '../daemon/settings.js';

export class DockerApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export function dockerGet<T>(path: string, socketPath = settingDefaults().dockerSocket): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) {
          let message = body;
          try {
            message = (JSON.parse(body) as { message?: string }).message ?? body;
          } catch {
            // not JSON: keep the raw text
          }
          reject(new DockerApiError(message.trim(), res.statusCode ?? 0));
          return;
        }
        resolve(JSON.parse(body) as T);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`Docker did not answer on ${socketPath}`)));
    req.on('error', reject);
    req.end();
  });
}

export interface DockerContainer {
  Id: string;
  Name: string;
  NetworkSettings: { Networks: Record<string, { NetworkID: string; EndpointID: string }> };
}

export interface DockerNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Containers?: Record<string, { Name: string; EndpointID: string }>;
}

export function inspectContainer(nameOrId: string): Promise<DockerContainer> {
  return dockerGet<DockerContainer>(`/containers/${encodeURIComponent(nameOrId)}/json`);
}

/**
 * Names of networks and of the containers behind endpoints, for the networks tsnet knows (by ID,
 * whatever name the plugin is registered under), or empty maps when Docker is not there.
 */
export async function dockerNames(networkIds: string[]): Promise<{ networks: Map<string, string>; endpoints: Map<string, string> }> {
  const networks = new Map<string, string>();
  const endpoints = new Map<string, string>();
  try {
    for (const id of networkIds) {
      const n = await dockerGet<DockerNetwork>(`/networks/${id}`).catch(() => undefined);
      if (!n) continue;
      networks.set(n.Id, n.Name);
      for (const c of Object.values(n.Containers ?? {})) endpoints.set(c.EndpointID, c.Name);
    }
  } catch {
    // Docker is optional for status: show IDs instead of names
  }
  return { networks, endpoints };
}
