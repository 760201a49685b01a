// `tsnet cluster forget HOST [--force]`: a host that is gone for good leaves its addresses (and,
// until its lease expires, its announcements) in the cluster store, and keeps every overlay it was
// a member of defined. This removes them (store/cluster/etcd-store.ts forgetHost), refusing while
// the host is registered live unless --force.
import { forgetHost, type ForgetResult } from '../store/cluster/etcd-store.js';
import { checkHostName, storeEndpoints, type DaemonSettings } from '../daemon/settings.js';
import { CliError } from './status.js';

const USAGE = 'usage: tsnet cluster forget HOST [--force] (with --store etcd://HOST:PORT or TSNET_STORE)';

export async function runCluster(args: string[], settings: Pick<DaemonSettings, 'store'>, opts: { force: boolean }): Promise<string> {
  if (args[0] !== 'forget' || args.length !== 2) throw new CliError(USAGE);
  const endpoints = storeEndpoints(settings);
  if (endpoints.length === 0) throw new CliError(`no cluster store configured: ${USAGE}`);
  return describeForget(await forgetHost(endpoints, checkHostName(args[1], 'HOST'), { force: opts.force }));
}

/** One line per kind of key removed. */
export function describeForget(r: ForgetResult): string {
  const lines = [
    `forgot host '${r.host}'${r.wasLive ? ' (it was registered live: --force)' : ''}`,
    `  announcements removed: ${r.endpoints}`,
    `  addresses released: ${r.addresses}`,
    `  overlays left: ${r.overlays.join(', ') || 'none'}`,
    `  overlays removed (no member left): ${r.removedOverlays.join(', ') || 'none'}`,
  ];
  return lines.join('\n');
}
