// The restore pass without Docker: which containers it starts (restart policy, a failed start, a
// network of this daemon) and which it leaves alone (stopped by a user, exited by itself, on
// another driver's network), and that it does nothing when the Docker socket is absent.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.js';
import type { DockerContainer } from '../runtime/docker-api.js';
import { needsStart, restorePass, scheduleDockerRestore, type DockerOps } from './docker-restore.js';

const OURS = 'n'.repeat(64);
const OTHER = 'o'.repeat(64);

function container(over: { name?: string; status?: string; policy?: string; error?: string; network?: string } = {}): DockerContainer {
  return {
    Id: `${over.name ?? 'c'}-id`,
    Name: `/${over.name ?? 'c'}`,
    State: { Status: over.status ?? 'exited', Running: over.status === 'running', Error: over.error ?? 'plugin "tsnet" not found' },
    HostConfig: { RestartPolicy: { Name: over.policy ?? 'always' } },
    NetworkSettings: { Networks: { net: { NetworkID: over.network ?? OURS, EndpointID: '' } } },
  };
}

function fakeDocker(containers: DockerContainer[], present = true): DockerOps & { starts: string[] } {
  const starts: string[] = [];
  return {
    starts,
    present: () => present,
    stopped: async () => containers.filter((c) => !c.State.Running).map((c) => c.Id),
    inspect: async (id) => containers.find((c) => c.Id === id)!,
    start: async (id) => {
      starts.push(id);
      return 'started';
    },
  };
}

describe('which containers tsnet starts', () => {
  const ours = new Set([OURS]);

  it('one dockerd failed to start, with restart policy always or unless-stopped, on a network of this daemon', () => {
    expect(needsStart(container(), ours)).toBe(true);
    expect(needsStart(container({ policy: 'unless-stopped' }), ours)).toBe(true);
    expect(needsStart(container({ status: 'created' }), ours)).toBe(true);
  });

  it('not one a user stopped or that exited by itself (no error), nor one without such a policy', () => {
    expect(needsStart(container({ error: '' }), ours)).toBe(false);
    expect(needsStart(container({ policy: 'no' }), ours)).toBe(false);
    expect(needsStart(container({ policy: 'on-failure' }), ours)).toBe(false);
  });

  it('not one that runs, restarts or is paused, nor one on another driver\'s network only', () => {
    expect(needsStart(container({ status: 'running' }), ours)).toBe(false);
    expect(needsStart(container({ status: 'restarting' }), ours)).toBe(false);
    expect(needsStart(container({ status: 'paused' }), ours)).toBe(false);
    expect(needsStart(container({ network: OTHER }), ours)).toBe(false);
  });
});

describe('a restore pass', () => {
  it('starts exactly the containers needsStart picks', async () => {
    const docker = fakeDocker([container({ name: 'a' }), container({ name: 'stopped', error: '' }), container({ name: 'b', network: OTHER }), container({ name: 'up', status: 'running' })]);
    const r = await restorePass(docker, new Set([OURS]), silentLogger);
    expect(docker.starts).toEqual(['a-id']);
    expect(r).toEqual({ started: ['a'], failed: [] });
  });

  it('does nothing at all without a Docker socket, or when this daemon has no network', async () => {
    const absent = fakeDocker([container({ name: 'a' })], false);
    absent.stopped = async () => {
      throw new Error('must not be asked');
    };
    expect(await restorePass(absent, new Set([OURS]), silentLogger)).toEqual({ started: [], failed: [] });
    const none = fakeDocker([container({ name: 'a' })]);
    expect(await restorePass(none, new Set(), silentLogger)).toEqual({ started: [], failed: [] });
    expect(none.starts).toEqual([]);
  });

  it('reports a start that fails and goes on with the next', async () => {
    const docker = fakeDocker([container({ name: 'a' }), container({ name: 'b' })]);
    docker.start = async (id) => {
      if (id === 'a-id') throw new Error('address in use');
      return 'started';
    };
    expect(await restorePass(docker, new Set([OURS]), silentLogger)).toEqual({ started: ['b'], failed: ['a'] });
  });

  it('is repeated at each delay, and stop() ends the schedule', async () => {
    let passes = 0;
    const docker = fakeDocker([]);
    docker.stopped = async () => {
      passes++;
      return [];
    };
    const done = scheduleDockerRestore({ ops: docker, networks: () => new Set([OURS]), log: silentLogger, delays: [0, 5, 10] });
    await done.done;
    expect(passes).toBe(3);
    const stopped = scheduleDockerRestore({ ops: docker, networks: () => new Set([OURS]), log: silentLogger, delays: [60_000] });
    stopped.stop();
    await stopped.done;
    expect(passes).toBe(3);
  });
});
