// A lab host's Docker engine, the pure parts: where its files are, what dockerd is told, and what
// runs in its mount namespace before dockerd (the plugin directory it finds tsnet in, its own
// containerd directory, /sys for its network namespace with the cgroups kept). And `lab docker`'s
// arguments: everything after `--` reaches docker untouched.
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../cli/args.js';
import { dockerdArgs, engineConfig, enginePaths, engineScript } from './engine.js';

const p = enginePaths('/run/tsnet-lab/lab1/h2');

describe('a lab host\'s engine', () => {
  it('keeps everything below the host\'s folder, tsnet\'s socket in its private plugin folder as tsnet.sock', () => {
    for (const path of Object.values(p)) expect(path.startsWith('/run/tsnet-lab/lab1/h2/engine')).toBe(true);
    expect(p.pluginSocket).toBe(`${p.pluginDir}/tsnet.sock`);
  });

  it('gives dockerd its own config, data root, exec root, pid file and API socket', () => {
    const args = dockerdArgs(p);
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value('--config-file')).toBe(p.config);
    expect(value('--data-root')).toBe(p.dataRoot);
    expect(value('--exec-root')).toBe(p.execRoot);
    expect(value('--pidfile')).toBe(p.pidfile);
    expect(value('-H')).toBe(`unix://${p.socket}`);
  });

  it('binds the private plugin and containerd folders where dockerd and containerd look, then execs dockerd', () => {
    const lines = engineScript(p).split('\n');
    expect(lines).toContain(`mount --bind '${p.pluginDir}' /run/docker/plugins`);
    expect(lines).toContain(`mount --bind '${p.containerdRun}' /run/containerd`);
    // /sys again for the network namespace, with the cgroup hierarchies carried over
    expect(lines.indexOf('mount -t sysfs sysfs /sys')).toBeGreaterThan(lines.indexOf(`mount --rbind /sys/fs/cgroup '${p.cgroupKeep}'`));
    expect(lines.at(-1)).toMatch(/^exec dockerd /);
    expect(lines[0]).toBe('set -e');
  });

  it('quotes paths for the shell', () => {
    expect(engineScript(enginePaths("/tmp/it's"))).toContain(`'/tmp/it'\\''s/engine/plugins'`);
  });

  it('writes dns into daemon.json only when there is some', () => {
    expect(engineConfig([])).toEqual({});
    expect(engineConfig(['198.51.100.11'])).toEqual({ dns: ['198.51.100.11'] });
  });
});

describe('tsnet lab docker arguments', () => {
  it('passes everything after -- to docker as it is, flags of docker included', () => {
    const parsed = parseArgs(['lab', 'docker', '--host', 'h2', '--', 'run', '-d', '--name', 'x', '--network', 'blue', 'img']);
    expect(parsed.args).toEqual(['docker']);
    expect(parsed.flags.host).toBe('h2');
    expect(parsed.flags.name).toBe('lab');
    expect(parsed.flags.rest).toEqual(['run', '-d', '--name', 'x', '--network', 'blue', 'img']);
  });

  it('reads --docker for lab up', () => {
    expect(parseArgs(['lab', 'up', '--docker']).flags.docker).toBe(true);
    expect(parseArgs(['lab', 'up']).flags.docker).toBe(false);
  });
});
