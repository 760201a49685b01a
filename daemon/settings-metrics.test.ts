// The two settings of issue 15: --metrics (off by default; an ADDR:PORT checked before anything
// starts) and --log-max-size (10 MiB by default), from their flags or TSNET_METRICS and
// TSNET_LOG_MAX_SIZE.
import { describe, expect, it } from 'vitest';
import { resolveSettings, settingDefaults } from './settings.js';

describe('--metrics and --log-max-size', () => {
  it('default to no listener and a 10 MiB log', () => {
    const s = resolveSettings(settingDefaults({}));
    expect(s.metrics).toBeNull();
    expect(s.logMaxBytes).toBe(10 * 1024 * 1024);
  });

  it('come from their variables', () => {
    const s = resolveSettings(settingDefaults({ TSNET_METRICS: '[::1]:9469', TSNET_LOG_MAX_SIZE: '64KiB' }));
    expect(s.metrics).toEqual({ host: '::1', port: 9469 });
    expect(s.logMaxBytes).toBe(65536);
  });

  it('refuse a bad value with a message naming the flag', () => {
    const d = settingDefaults({});
    expect(() => resolveSettings({ ...d, metrics: 'metrics.example:9469' })).toThrow(/^--metrics 'metrics.example:9469': give ADDRESS:PORT/);
    expect(() => resolveSettings({ ...d, logMaxBytes: '10 megs' })).toThrow(/^--log-max-size 10 megs: give a size of 4KiB or more/);
    expect(() => resolveSettings({ ...d, logMaxBytes: '1k' })).toThrow(/^--log-max-size 1k/);
  });
});
