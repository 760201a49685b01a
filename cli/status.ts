// `tsnet status`: networks, endpoints and published ports as tables (or JSON), read from the
// store, with Docker's names where Docker is reachable. Works with the daemon down.
import { existsSync } from 'node:fs';
import { openDatabase, type Db } from '../store/db.js';
import { NetworkRepo, type NetworkRecord } from '../store/network-repo.js';
import { databasePath } from '../daemon/paths.js';
import { dockerNames } from './docker-api.js';
import { formatTable } from './table.js';
import { formatHostAddress } from '../drivers/ports.js';
import { CniRepo, type CniAttachment } from '../store/cni-repo.js';
import { shortId } from '../core/text.js';
import { UserError } from '../core/errors.js';
import { describeConnection, readClusterState, writerAlive } from '../daemon/cluster-connection.js';

function cniOf(a: CniAttachment | undefined): { network: string; containerId: string; ifName: string; netns: string } | null {
  return a ? { network: a.network, containerId: a.containerId, ifName: a.ifName, netns: a.netns } : null;
}

/** A command-line mistake or refusal, for the user as it is (exit code by its kind, core/errors.ts). */
export class CliError extends UserError {
  constructor(message: string, kind: ConstructorParameters<typeof UserError>[1] = 'invalid') {
    super(message, kind);
    this.name = 'CliError';
  }
}

export function openStateReadonly(stateDir: string): { db: Db; repo: NetworkRepo } {
  const path = databasePath(stateDir);
  if (!existsSync(path)) {
    throw new CliError(`no tsnet state at ${path}: has the daemon run (make up), or is --state-dir right?`);
  }
  const db = openDatabase(path);
  return { db, repo: new NetworkRepo(db) };
}

/** One line of what makes a network what it is, whatever its driver. */
export function describeNetwork(n: NetworkRecord): { link: string; settings: string } {
  const c = n.config as Record<string, unknown>;
  const link = String(c.bridge ?? c.parent ?? c.vxlan ?? '');
  const flags: string[] = [];
  if (typeof c.mode === 'string') flags.push(`mode=${c.mode}`);
  const overlay = c.overlay as { name?: string; vni?: number; vxlan?: string } | undefined;
  if (overlay && typeof overlay === 'object') {
    flags.push(`vni=${overlay.vni}`, `vxlan=${overlay.vxlan}`);
    if (overlay.name) flags.push(`overlay=${overlay.name}`);
  }
  if (typeof c.mtu === 'number') flags.push(`mtu=${c.mtu}`);
  if (c.internal === true) flags.push('internal');
  if (c.icc === false) flags.push('icc=off');
  if (c.masquerade === false && c.internal !== true) flags.push('masquerade=off');
  if (c.enableIpv6 === true) flags.push('ipv6');
  if (typeof c.hostBindingIpv4 === 'string' && c.hostBindingIpv4) flags.push(`host_binding=${c.hostBindingIpv4}`);
  if (n.state !== 'ready') flags.push(`state=${n.state}`);
  return { link, settings: flags.join(' ') };
}

export async function runStatus(stateDir: string, json: boolean): Promise<string> {
  const { db, repo } = openStateReadonly(stateDir);
  try {
    const networks = repo.listNetworks();
    const names = await dockerNames(networks.map((n) => n.id));
    // networks and containers of CNI runtimes, by the names the runtime gave them
    const cni = new CniRepo(db);
    const cniNetworks = new Map(cni.listNetworks().map((n) => [n.networkId, n.name]));
    const cniEndpoints = new Map(cni.listAttachments().map((a) => [a.endpointId, a]));
    for (const [id, name] of cniNetworks) if (!names.networks.has(id)) names.networks.set(id, `cni:${name}`);
    for (const [id, a] of cniEndpoints) if (!names.endpoints.has(id)) names.endpoints.set(id, `cni:${shortId(a.containerId)}/${a.ifName}`);
    const endpoints = repo.listEndpoints();
    const ports = repo.listPorts();
    // the daemon's own view of its cluster store, when it has one (daemon/cluster-connection.ts)
    const store = readClusterState(stateDir);
    const storeAlive = store ? writerAlive(store) : false;
    const netName = (id: string) => names.networks.get(id) ?? shortId(id);
    const epName = (id: string) => names.endpoints.get(id) ?? shortId(id);
    if (json) {
      return JSON.stringify(
        {
          networks: networks.map((n) => ({ id: n.id, name: names.networks.get(n.id) ?? null, cniName: cniNetworks.get(n.id) ?? null, driver: n.driver, state: n.state, config: n.config, ipv4: n.ipv4, ipv6: n.ipv6 })),
          endpoints: endpoints.map((e) => ({ id: e.id, container: names.endpoints.get(e.id) ?? null, cni: cniOf(cniEndpoints.get(e.id)), network: e.networkId, state: e.state, address: e.address, addressIpv6: e.addressIpv6, mac: e.mac, config: e.config, sandbox: e.sandboxKey })),
          ports: ports.map((p) => ({ endpoint: p.endpointId, container: names.endpoints.get(p.endpointId) ?? null, network: p.networkId, proto: p.proto, port: p.port, containerIp: p.containerIp, hostIp: p.hostIp, hostPort: p.hostPort })),
          clusterStore: store ? { ...store, daemonRunning: storeAlive } : null,
        },
        null,
        2,
      );
    }
    const out: string[] = [];
    if (store) out.push(`CLUSTER STORE  ${describeConnection(store, storeAlive)}`, '');
    out.push(
      'NETWORKS',
      formatTable(
        ['NAME', 'ID', 'TYPE', 'LINK', 'SUBNETS', 'SETTINGS'],
        networks.map((n) => {
          const d = describeNetwork(n);
          return [netName(n.id), shortId(n.id), n.driver, d.link, [...n.ipv4, ...n.ipv6].map((p) => p.pool).join(','), d.settings];
        }),
      ),
      '',
      'ENDPOINTS',
      formatTable(
        ['CONTAINER', 'NETWORK', 'ADDRESS', 'MAC', 'HOST LINK'],
        endpoints.map((e) => {
          const c = e.config as Record<string, unknown>;
          return [epName(e.id), netName(e.networkId), [e.address, e.addressIpv6].filter(Boolean).join(','), e.mac, String(c.hostIf ?? c.link ?? '')];
        }),
      ),
      '',
      'PUBLISHED PORTS',
      formatTable(
        ['CONTAINER', 'NETWORK', 'PORT', 'HOST', 'TARGET'],
        ports.map((p) => [epName(p.endpointId), netName(p.networkId), `${p.port}/${p.proto}`, formatHostAddress(p.hostIp, p.hostPort), formatHostAddress(p.containerIp, p.port)]),
      ),
    );
    return out.join('\n');
  } finally {
    db.close();
  }
}
