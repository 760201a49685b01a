// Containers dockerd gave up on. At boot dockerd starts the containers that have a restart policy,
// looks for the plugin of each one's networks, retries a missing socket-file plugin for about
// 15 s (1, 2, 4, 8 s) and then fails the start, records the error in the container's state and
// never tries again (moby daemon/daemon.go restore). Where tsnet comes up later than that (no
// unit ordering it before docker.service, a slow boot, a crash loop), those containers stay down.
//
// So after tsnet starts serving it makes a few passes over Docker's API during the first minute
// (dockerd may still be restoring while tsnet comes up) and starts each container that:
//   - is not running (created or exited),
//   - has restart policy always or unless-stopped,
//   - is attached to a network of this daemon (by network ID: whatever name the plugin has),
//   - and whose last start failed (State.Error set). A container a user stopped, or one that
//     exited by itself, has no error and is left alone.
// Nothing at all happens when the Docker socket is absent (a CNI-only host). Each start is logged.
import { existsSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { errorCause } from '../core/log.js';
import { inspectContainer, startContainer, stoppedContainers, type DockerContainer } from '../runtime/docker-api.js';

/** When the passes run, in ms after the daemon started serving. */
export const PASS_DELAYS_MS: readonly number[] = [1000, 5000, 10_000, 20_000, 30_000, 45_000, 60_000];

const RESTART_POLICIES = new Set(['always', 'unless-stopped']);

/** Whether tsnet should start this container: the rules of the header, as a pure function. */
export function needsStart(c: DockerContainer, ourNetworks: ReadonlySet<string>): boolean {
  if (c.State.Running || !['created', 'exited'].includes(c.State.Status)) return false;
  if (!RESTART_POLICIES.has(c.HostConfig.RestartPolicy.Name)) return false;
  if (!c.State.Error) return false;
  return Object.values(c.NetworkSettings.Networks ?? {}).some((n) => ourNetworks.has(n.NetworkID));
}

/** What a pass needs of Docker; the real one is dockerOps(socket). */
export interface DockerOps {
  /** false when there is no Docker to ask (no socket file) */
  present(): boolean;
  /** IDs of containers that are not running */
  stopped(): Promise<string[]>;
  inspect(id: string): Promise<DockerContainer>;
  start(id: string): Promise<'started' | 'already running'>;
}

export function dockerOps(socketPath: string): DockerOps {
  return {
    present: () => existsSync(socketPath),
    stopped: async () => (await stoppedContainers(socketPath)).map((c) => c.Id),
    inspect: (id) => inspectContainer(socketPath, id),
    start: (id) => startContainer(socketPath, id),
  };
}

/** Errors that mean "no Docker here right now": nothing to log. */
function dockerAbsent(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

export interface PassResult {
  started: string[];
  failed: string[];
}

/** One pass: starts the containers needsStart picks, one at a time. Never throws. */
export async function restorePass(ops: DockerOps, ourNetworks: ReadonlySet<string>, log: Logger): Promise<PassResult> {
  const result: PassResult = { started: [], failed: [] };
  if (!ops.present() || ourNetworks.size === 0) return result;
  let ids: string[];
  try {
    ids = await ops.stopped();
  } catch (err) {
    if (!dockerAbsent(err)) log.warn({ err: errorCause(err) }, 'docker restore: cannot list containers');
    return result;
  }
  for (const id of ids) {
    let name = id.slice(0, 12);
    try {
      const c = await ops.inspect(id);
      if (!needsStart(c, ourNetworks)) continue;
      name = c.Name.replace(/^\//, '');
      log.info({ container: name, id: id.slice(0, 12), lastError: c.State.Error }, 'docker restore: starting a container dockerd gave up on');
      const how = await ops.start(id);
      result.started.push(name);
      log.info({ container: name, result: how }, 'docker restore: container started');
    } catch (err) {
      result.failed.push(name);
      log.warn({ container: name, err: errorCause(err) }, 'docker restore: could not start the container');
    }
  }
  return result;
}

/**
 * Runs restorePass at each of `delays` after the call, one pass at a time; `networks` is read at
 * each pass (the store's network IDs). stop() cancels the passes still to come.
 */
export function scheduleDockerRestore(opts: { ops: DockerOps; networks: () => ReadonlySet<string>; log: Logger; delays?: readonly number[] }): { stop(): void; done: Promise<void> } {
  const delays = opts.delays ?? PASS_DELAYS_MS;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let stopped = false;
  const started = Date.now();
  const done = (async () => {
    for (const at of delays) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, Math.max(0, at - (Date.now() - started)));
      });
      if (stopped) return;
      await restorePass(opts.ops, opts.networks(), opts.log);
    }
  })();
  return {
    done,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
    },
  };
}
