// What the CLI asks of Docker's Engine API: names for tsnet's IDs (status) and a container's
// endpoints (port; Docker cannot show a remote driver's port bindings itself), at the settings'
// Docker socket. The client itself is runtime/docker-api.ts, shared with the daemon.
import { settingDefaults } from '../daemon/settings.js';
import { dockerGet, inspectContainer as inspectOn, type DockerContainer, type DockerNetwork } from '../runtime/docker-api.js';

export { DockerApiError } from '../runtime/docker-api.js';

/** The Docker socket of the settings (DOCKER_SOCKET, else /var/run/docker.sock). */
function dockerSocket(): string {
  return settingDefaults().dockerSocket;
}

export function inspectContainer(nameOrId: string): Promise<DockerContainer> {
  return inspectOn(dockerSocket(), nameOrId);
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
      const n = await dockerGet<DockerNetwork>(dockerSocket(), `/networks/${id}`).catch(() => undefined);
      if (!n) continue;
      networks.set(n.Id, n.Name);
      for (const c of Object.values(n.Containers ?? {})) endpoints.set(c.EndpointID, c.Name);
    }
  } catch {
    // Docker is optional for status: show IDs instead of names
  }
  return { networks, endpoints };
}
