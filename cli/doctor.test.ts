import { describe, expect, it } from 'vitest';
import { exitCode, formatReport, kernelHas, parseKernelConfig, type CheckResult } from './doctor.js';

describe('tsnet doctor', () => {
  const config = parseKernelConfig('# comment\nCONFIG_BRIDGE=m\nCONFIG_VETH=y\n# CONFIG_VLAN_8021Q is not set\n');

  it('reads built-in and module features from a kernel config', () => {
    expect(kernelHas(config, 'CONFIG_BRIDGE')).toBe('ok');
    expect(kernelHas(config, 'CONFIG_VETH')).toBe('ok');
    expect(kernelHas(config, 'CONFIG_VLAN_8021Q')).toBe('missing');
    expect(kernelHas(undefined, 'CONFIG_VETH')).toBe('unknown');
  });

  const r = (name: string, outcome: CheckResult['outcome'], essential = false): CheckResult => ({ name, outcome, detail: 'd', disables: `no ${name}`, essential });

  it('says what a missing piece disables, and nothing more for present ones', () => {
    expect(formatReport([r('veth', 'ok'), r('8021q', 'missing')]).split('\n')).toEqual(['ok       veth   d', 'missing  8021q  d', '                without it: no 8021q']);
  });

  it('fails only when something essential is missing', () => {
    expect(exitCode([r('8021q', 'missing'), r('veth', 'ok', true)])).toBe(0);
    expect(exitCode([r('nftables', 'missing', true)])).toBe(1);
  });
});
