// The lab's Docker engines (`tsnet lab up --docker`): each host gets its own dockerd (lab/engine.ts),
// which finds the host's tsnet daemon as its `tsnet` plugin, so `docker network create -d tsnet`
// and `docker run` on a lab host go through the real engine to the real daemon. lab.ts calls these
// at up and down; `tsnet lab docker --host H -- ARGS` runs the docker CLI against host H's engine.
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { ConflictError } from '../core/errors.js';
import { bareIp } from '../core/text.js';
import { dockerBinary, engineEnv, enginePaths, engineRunning, importImage, removeEngineFiles, startEngine, stopEngine, waitEngine, type EngineProcess } from './engine.js';
import { hostOf, requireState, type LabHost, type LabState } from './state.js';

/**
 * Gives host h an engine, before its daemon starts: the engine's plugin directory gets tsnet.sock,
 * a link to the daemon's socket (dockerd finds plugins only there, by that name), and the state
 * names the engine's API socket. The daemon keeps its own socket name (lab-NAME-hI.sock, state.ts
 * hostInstance), so its instance (nftables table, link tags, overlay namespaces lab-NAME-hI-ov-*,
 * the instance lock) is its host's alone: daemons that shared the name 'tsnet' on one machine
 * would take each other's overlay namespaces for leftovers.
 */
export function planEngine(h: LabHost): void {
  const p = enginePaths(h.stateDir);
  mkdirSync(p.pluginDir, { recursive: true });
  symlinkSync(h.socket, p.pluginSocket);
  h.docker = { socket: p.socket };
}

/** The engine process recorded for h, if it was started. */
export function engineOf(h: LabHost): EngineProcess | undefined {
  const d = h.docker;
  return d?.pid && d.mntNs && d.netNs ? { pid: d.pid, mntNs: d.mntNs, netNs: d.netNs } : undefined;
}

/**
 * Starts every host's engine (their daemons answer already), each recorded as soon as it runs so
 * that lab down finds it, then waits for them and imports the test image into each.
 */
export async function startEngines(s: LabState, save: () => void): Promise<void> {
  const hosts = s.hosts.filter((h) => h.docker);
  for (const h of hosts) {
    await startHostEngine(h);
    save();
  }
  await Promise.all(hosts.map((h) => waitEngine(enginePaths(h.stateDir), engineOf(h)!)));
  for (const h of hosts) importImage(enginePaths(h.stateDir));
}

/**
 * Starts host h's engine (again, after a stop or a kill: its data root is kept) and records its
 * process in h; the caller saves the state. Answers once dockerd runs, not yet its API (waitEngine).
 */
export async function startHostEngine(h: LabHost): Promise<void> {
  // the containers' questions for names their engine does not know go to the host's tsnet daemon
  const e = await startEngine(enginePaths(h.stateDir), h.netns, [bareIp(h.underlay)]);
  h.docker = { socket: enginePaths(h.stateDir).socket, ...e };
}

/** Stops every engine of the lab (their containers with them) and removes their files. */
export async function stopEngines(s: LabState): Promise<void> {
  await Promise.all(
    s.hosts.map(async (h) => {
      const e = engineOf(h);
      if (e) await stopEngine(e);
      if (h.docker) removeEngineFiles(enginePaths(h.stateDir));
    }),
  );
}

/** `tsnet lab docker --host H -- ARGS`: the docker CLI against H's engine, its output passed through; its exit code. */
export function labDocker(labName: string, hostName: string, args: string[]): number {
  const h = dockerHost(requireState(labName), hostName);
  const r = spawnSync(dockerBinary(), args, { stdio: 'inherit', env: engineEnv(enginePaths(h.stateDir)) });
  return r.status ?? 1;
}

function dockerHost(s: LabState, hostName: string): LabHost {
  const h = hostOf(s, hostName);
  if (!h.docker) throw new ConflictError(`host ${h.name} of lab '${s.name}' has no Docker engine: lab up --docker gives each host one`);
  const e = engineOf(h);
  if (!e || !engineRunning(e)) throw new ConflictError(`the Docker engine of ${h.name} is not running (its log: ${enginePaths(h.stateDir).log})`);
  return h;
}
