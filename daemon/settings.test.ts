import { describe, expect, it } from 'vitest';
import { SETTINGS, resolveSettings, settingDefaults, storeEndpoints } from './settings.js';
import { parseArgs, USAGE } from '../cli/args.js';

describe('daemon settings, read in one place', () => {
  it('a flag wins over its variable, which wins over the default', () => {
    const env = { TSNET_STORE: 'etcd://10.0.0.1:2379', TSNET_LEASE_TTL: '7' };
    const d = settingDefaults(env);
    expect(d).toMatchObject({ store: 'etcd://10.0.0.1:2379', leaseTtl: '7', socketPath: '/run/docker/plugins/tsnet.sock', stateDir: '/var/lib/tsnet' });
    expect(resolveSettings({ ...d, leaseTtl: '12' }).leaseTtl).toBe(12);
    expect(settingDefaults({ TSNET_STORE: '' }).store).toBe('');
  });

  it('refuses a bad lease time or store URL with the flag named', () => {
    const d = settingDefaults({});
    expect(() => resolveSettings({ ...d, leaseTtl: '1' })).toThrow('--lease-ttl 1: give whole seconds, 2 or more');
    expect(() => resolveSettings({ ...d, leaseTtl: '3.5' })).toThrow('--lease-ttl');
    expect(() => resolveSettings({ ...d, store: 'redis://x:1' })).toThrow(/^--store: unknown store/);
    // the host name is part of the cluster store's keys
    for (const bad of ['h1/../h2', '', '-h', 'h 1', 'a'.repeat(64)]) expect(() => resolveSettings({ ...d, hostName: bad })).toThrow(/^--host-name '.*': give 1-63 letters/);
    expect(resolveSettings({ ...d, hostName: 'host-1.lab' }).hostName).toBe('host-1.lab');
    expect(() => resolveSettings({ ...d, socketPath: '/run/docker/plugins/ts_net.sock' })).toThrow(/^--socket: plugin socket .*ts_net.sock: a tsnet plugin name/);
  });

  it('doctor and serve find the cluster store in the same setting', () => {
    const s = resolveSettings({ ...settingDefaults({}), store: 'etcd://10.0.0.1:2379,10.0.0.2:2379' });
    expect(storeEndpoints(s)).toEqual(['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
    expect(storeEndpoints(resolveSettings(settingDefaults({})))).toEqual([]);
  });

  it('every setting with a flag is parsed by the CLI and listed in its usage with its variable', () => {
    for (const s of SETTINGS.filter((x) => x.flag)) {
      expect(USAGE).toContain(`${s.flag} `);
      expect(USAGE).toContain(`env ${s.env}`);
      expect(parseArgs(['serve', s.flag, 'v']).flags[s.key]).toBe('v');
    }
  });
});
