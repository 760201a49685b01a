import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CHECKS,
  evaluate,
  exitCode,
  formatReport,
  kernelFeature,
  parseKernelConfig,
  parseModuleList,
  parseProcModules,
  type CheckResult,
  type HostFacts,
} from './doctor.js';

const VLAN = { config: 'CONFIG_VLAN_8021Q', module: '8021q' };
const BRIDGE = { config: 'CONFIG_BRIDGE', module: 'bridge' };
const VETH = { config: 'CONFIG_VETH', module: 'veth' };

describe('tsnet doctor: kernel features', () => {
  const config = parseKernelConfig('# comment\nCONFIG_BRIDGE=m\nCONFIG_VETH=y\n# CONFIG_VLAN_8021Q is not set\n');

  it('reads built-in and module features from a kernel config', () => {
    expect(kernelFeature({ config, loaded: new Set() }, BRIDGE)).toEqual({ outcome: 'ok', detail: 'module bridge (CONFIG_BRIDGE=m)' });
    expect(kernelFeature({ config, loaded: new Set() }, VETH).outcome).toBe('ok');
    expect(kernelFeature({ config, loaded: new Set() }, VLAN)).toEqual({ outcome: 'missing', detail: 'CONFIG_VLAN_8021Q is not set in the kernel config' });
  });

  it('falls back to the module lists without a kernel config', () => {
    const builtin = parseModuleList('kernel/net/bridge/bridge.ko\nkernel/drivers/net/veth.ko\n');
    const loadable = parseModuleList('kernel/net/8021q/8021q.ko.xz: kernel/net/802/garp.ko.xz\nkernel/drivers/net/macvlan.ko.zst:\n');
    expect([...builtin]).toEqual(['bridge', 'veth']);
    expect([...loadable]).toEqual(['8021q', 'macvlan']);
    const src = { builtin, loadable, loaded: parseProcModules('vxlan 1234 0 - Live 0x0\n') };
    expect(kernelFeature(src, BRIDGE).outcome).toBe('ok');
    expect(kernelFeature(src, VLAN)).toEqual({ outcome: 'ok', detail: 'module 8021q can be loaded' });
    expect(kernelFeature(src, { config: 'CONFIG_VXLAN', module: 'vxlan' })).toEqual({ outcome: 'ok', detail: 'module vxlan is loaded' });
    expect(kernelFeature(src, { config: 'CONFIG_NFT_NAT', module: 'nft_nat' }).outcome).toBe('missing');
  });

  it('says unknown when nothing can be read and the module is not loaded', () => {
    expect(kernelFeature({ loaded: new Set(['bridge']) }, BRIDGE).outcome).toBe('ok');
    expect(kernelFeature({ loaded: new Set() }, VLAN).outcome).toBe('unknown');
  });
});

describe("tsnet doctor: Docker's firewall", () => {
  // `nft -j list ruleset` of the Docker 28 and 29 fixtures (see firewall/docker-firewall.test.ts)
  const load = (name: string) => (JSON.parse(readFileSync(join(import.meta.dirname, '..', 'firewall', 'testdata', name), 'utf8')) as { nftables: Record<string, unknown>[] }).nftables;
  const check = (dockerFirewall: HostFacts['dockerFirewall']) => evaluate(facts({ dockerFirewall })).find((c) => c.name === 'Docker firewall')!;
  const tsnet = { bridges: ['tsnet-a'], tag: 'tsnet:' };

  it('names the backend and says whether tsnet\'s traffic is admitted', () => {
    expect(check({ objects: [], tsnet })).toMatchObject({ outcome: 'ok', detail: "none: tsnet's traffic is admitted" });
    const d28 = check({ objects: load('docker28-ruleset.json'), tsnet });
    expect(d28.outcome).toBe('missing');
    expect(d28.detail).toMatch(/^iptables with DOCKER-FORWARD \(Docker 28\+\): tsnet's traffic is dropped; ip filter FORWARD drops by policy and tsnet's accepts are missing in DOCKER-USER for tsnet-a/);
    expect(check({ objects: load('docker28-ruleset.json'), tsnet: { bridges: [], tag: 'tsnet:' } }).outcome).toBe('ok');
    const d29 = check({ objects: load('docker29-ruleset.json'), tsnet });
    expect(d29).toMatchObject({ outcome: 'ok' });
    expect(d29.detail).toMatch(/^nftables \(Docker 29, table docker-bridges\): tsnet's traffic is admitted; bridge-accept-fwmark covers tsnet's mark/);
    expect(check({ error: 'cannot run nft: ENOENT' })).toMatchObject({ outcome: 'unknown', detail: 'cannot run nft: ENOENT' });
  });
});

/** Made-up host facts, not read from this machine: a kernel config without 8021q and dummy. */
function facts(over: Partial<HostFacts> = {}): HostFacts {
  return {
    uid: 0,
    kernel: { config: parseKernelConfig('CONFIG_BRIDGE=y\nCONFIG_VETH=y\nCONFIG_VXLAN=y\nCONFIG_MACVLAN=y\nCONFIG_NF_TABLES=y\nCONFIG_NFT_NAT=y\nCONFIG_NFT_MASQ=y\nCONFIG_NFT_FIB_INET=y\n'), loaded: new Set() },
    ipForward: '1',
    bridgeNfCallIptables: '1',
    dockerFirewall: { objects: [], tsnet: { bridges: [], tag: 'tsnet:' } },
    docker: { socket: '/var/run/docker.sock', answers: true },
    pluginSocket: { path: '/run/docker/plugins/tsnet.sock', present: true, answers: true },
    ...over,
  };
}

describe('tsnet doctor: checks and report', () => {
  it('checks everything the host needs, each once', () => {
    const names = CHECKS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const want of ['running as root', 'bridge links', 'veth links', 'vxlan links', 'macvlan links', '802.1Q VLAN links (8021q)', 'dummy links', 'nf_tables', 'nf_tables nat', 'nf_tables masquerade', 'nf_tables fib', 'br_netfilter', 'IPv4 forwarding', 'libnftables.so.1', 'Docker firewall', 'Docker engine', 'tsnet plugin socket', 'etcd']) {
      expect(names).toContain(want);
    }
  });

  it("with made-up facts like a project machine's (no 8021q, no dummy): only those two are missing, and tsnet can run", () => {
    const results = evaluate(facts());
    const byName = new Map(results.map((r) => [r.name, r]));
    expect(results.filter((r) => r.outcome === 'missing').map((r) => r.name)).toEqual(['802.1Q VLAN links (8021q)', 'dummy links']);
    expect(byName.get('etcd')?.outcome).toBe('skipped');
    expect(byName.get('Docker firewall')?.detail).toBe("none: tsnet's traffic is admitted");
    expect(exitCode(results)).toBe(0);
  });

  it('fails when something essential is missing, and says what it disables', () => {
    const results = evaluate(facts({ uid: 1000, libnftablesError: 'cannot open', etcd: { endpoints: ['http://127.0.0.1:2379'], healthy: [] } }));
    expect(exitCode(results)).toBe(1);
    const report = formatReport(results).split('\n');
    expect(report.find((l) => l.includes('libnftables'))).toMatch(/^missing +libnftables\.so\.1 +does not load .*-- without it: NAT, published ports/);
    expect(report.find((l) => l.includes(' etcd '))).toMatch(/^missing +etcd +not healthy: http:\/\/127\.0\.0\.1:2379 -- without it: overlay/);
    expect(report.at(-1)).toBe('tsnet cannot run here: missing running as root, libnftables.so.1');
  });

  const r = (name: string, outcome: CheckResult['outcome'], essential = false): CheckResult => ({ name, outcome, detail: 'd', disables: `no ${name}`, essential });

  it('prints one line per check, what a missing one disables on that line', () => {
    expect(formatReport([r('veth', 'ok'), r('8021q', 'missing'), r('etcd', 'skipped')]).split('\n')).toEqual([
      'ok       veth   d',
      'missing  8021q  d -- without it: no 8021q',
      'skipped  etcd   d',
      'tsnet can run; 1 missing item(s) disable what is listed above',
    ]);
  });

  it('fails only when something essential is missing', () => {
    expect(exitCode([r('8021q', 'missing'), r('veth', 'ok', true)])).toBe(0);
    expect(exitCode([r('nftables', 'missing', true)])).toBe(1);
  });

  it('turns a check that throws into unknown instead of crashing', () => {
    const [res] = evaluate(facts(), [{ name: 'x', disables: 'y', essential: false, evaluate: () => { throw new Error('boom'); } }]);
    expect(res).toMatchObject({ outcome: 'unknown', detail: 'check failed: boom' });
  });
});
