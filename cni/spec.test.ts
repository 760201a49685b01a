import { describe, expect, it } from 'vitest';
import { CniError, buildResult, errorOutput, parseConfig, parseEnv, versionOutput } from './spec.js';

const base = { cniVersion: '1.0.0', name: 'demo', type: 'tsnet' };

function codeOf(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err.code;
    throw err;
  }
  throw new Error('no error');
}

describe('CNI environment', () => {
  it('reads the variables and CNI_ARGS pairs', () => {
    expect(parseEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;IP=10.0.0.5', CNI_PATH: '/opt/cni/bin:/usr/lib/cni' })).toEqual({
      command: 'ADD',
      containerId: 'c1',
      netns: '/run/netns/x',
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', IP: '10.0.0.5' },
      path: ['/opt/cni/bin', '/usr/lib/cni'],
    });
  });

  it('asks only for what each command needs (code 4 otherwise)', () => {
    expect(parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }).netns).toBe('');
    expect(parseEnv({ CNI_COMMAND: 'GC' }).command).toBe('GC');
    expect(codeOf(() => parseEnv({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }))).toBe(4);
    expect(codeOf(() => parseEnv({ CNI_COMMAND: 'FROB' }))).toBe(4);
    expect(codeOf(() => parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'a/b' }))).toBe(4);
    expect(codeOf(() => parseEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c', CNI_IFNAME: 'eth0', CNI_ARGS: 'novalue' }))).toBe(4);
  });
});

describe('CNI network configuration', () => {
  it('maps mode and short keys onto driver options, and reads tsnet IPAM and runtimeConfig', () => {
    const c = parseConfig(
      JSON.stringify({
        ...base,
        mode: 'macvlan',
        parent: 'eth1',
        macvlanMode: 'private',
        mtu: 1400,
        options: { host_access: true },
        ipam: { type: 'tsnet', subnet: '10.88.0.0/24', gateway: '10.88.0.1' },
        runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }], ips: ['10.88.0.9/24'], mac: '02:00:00:00:00:09' },
      }),
      'ADD',
    );
    expect(c.options).toEqual({ type: 'macvlan', parent: 'eth1', macvlan_mode: 'private', 'com.docker.network.driver.mtu': '1400', host_access: 'true' });
    expect(c.ipam).toEqual({ type: 'tsnet', subnet: '10.88.0.0/24', gateway: '10.88.0.1', ipRange: '', overlay: '' });
    expect(c.runtime).toEqual({ portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: '' }], ips: ['10.88.0.9/24'], mac: '02:00:00:00:00:09' });
  });

  it('hands any other IPAM type to its plugin as given', () => {
    const ipam = { type: 'host-local', ranges: [[{ subnet: '10.1.0.0/24' }]] };
    expect(parseConfig(JSON.stringify({ ...base, ipam }), 'ADD').ipam).toEqual({ type: 'host-local', raw: ipam });
  });

  it('reads the attachments GC must keep', () => {
    const c = parseConfig(JSON.stringify({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }), 'GC');
    expect(c.validAttachments).toEqual([{ containerId: 'c1', ifName: 'eth0' }]);
    // an empty list is a list: the runtime holds nothing on this network
    expect(parseConfig(JSON.stringify({ ...base, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] }), 'GC').validAttachments).toEqual([]);
  });

  it('refuses a GC without cni.dev/valid-attachments (code 7) instead of reading it as "keep nothing"', () => {
    const gc = JSON.stringify({ ...base, cniVersion: '1.1.0' });
    expect(codeOf(() => parseConfig(gc, 'GC'))).toBe(7);
    expect(() => parseConfig(gc, 'GC')).toThrow(/cni\.dev\/valid-attachments/);
    // the list is GC's alone: other commands go without it
    expect(parseConfig(gc, 'STATUS').validAttachments).toBeUndefined();
  });

  it('refuses with the spec codes: version 1, decode 6, config 7', () => {
    expect(codeOf(() => parseConfig('{', 'ADD'))).toBe(6);
    expect(codeOf(() => parseConfig('[]', 'ADD'))).toBe(6);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, cniVersion: '0.3.1' }), 'ADD'))).toBe(1);
    expect(codeOf(() => parseConfig(JSON.stringify(base), 'GC'))).toBe(1);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, mode: 'ipvlan' }), 'ADD'))).toBe(7);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, name: 'a b' }), 'ADD'))).toBe(7);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, surprise: 1 }), 'ADD'))).toBe(7);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, ipam: { type: 'tsnet', pool: 'x' } }), 'ADD'))).toBe(7);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }), 'ADD'))).toBe(7);
    expect(codeOf(() => parseConfig(JSON.stringify({ ...base, runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] } }), 'ADD'))).toBe(7);
  });

  // issue 11: these were taken as given and failed late, inside the driver, as internal error 999
  describe('runtimeConfig values are checked when the config is read (code 7)', () => {
    const withRuntime = (runtimeConfig: unknown) => () => parseConfig(JSON.stringify({ ...base, runtimeConfig }), 'ADD');
    const mapping = (hostIP: unknown) => ({ portMappings: [{ hostPort: 8080, containerPort: 80, hostIP }] });

    it('hostIP: an IP address', () => {
      for (const bad of ['not-an-ip', '10.0.0.300', '10.0.0.0/24', 42]) expect(codeOf(withRuntime(mapping(bad)))).toBe(7);
      expect(parseConfig(JSON.stringify({ ...base, runtimeConfig: mapping('127.0.0.1') }), 'ADD').runtime.portMappings[0].hostIP).toBe('127.0.0.1');
      expect(parseConfig(JSON.stringify({ ...base, runtimeConfig: mapping('') }), 'ADD').runtime.portMappings[0].hostIP).toBe('');
    });

    it('ips: IPv4 addresses, bare or with a prefix', () => {
      for (const bad of [['nope'], ['10.88.0.300'], ['10.88.0.9/40'], ['fd00::9/64'], ['']]) expect(codeOf(withRuntime({ ips: bad }))).toBe(7);
      expect(parseConfig(JSON.stringify({ ...base, runtimeConfig: { ips: ['10.88.0.9', '10.88.0.10/24'] } }), 'ADD').runtime.ips).toEqual(['10.88.0.9', '10.88.0.10/24']);
    });

    it('mac: six hexadecimal octets, unicast', () => {
      for (const bad of ['zz:00:00:00:00:01', '02:00:00:00:00', '02-00-00-00-00-01x', '01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff']) expect(codeOf(withRuntime({ mac: bad }))).toBe(7);
      expect(parseConfig(JSON.stringify({ ...base, runtimeConfig: { mac: '02:00:00:00:00:09' } }), 'ADD').runtime.mac).toBe('02:00:00:00:00:09');
    });
  });
});

describe('CNI results', () => {
  const attached = { ifName: 'eth0', mac: '02:42:0a:58:00:02', mtu: 1500, netns: '/run/netns/x', address: '10.88.0.2/24', gateway: '10.88.0.1' };

  it('1.x: interfaces with MTU, IPs without version, default route', () => {
    expect(buildResult('1.0.0', attached)).toEqual({
      cniVersion: '1.0.0',
      interfaces: [{ name: 'eth0', mac: '02:42:0a:58:00:02', mtu: 1500, sandbox: '/run/netns/x' }],
      ips: [{ address: '10.88.0.2/24', gateway: '10.88.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.88.0.1' }],
      dns: {},
    });
  });

  it('0.4.0: IPs carry their version, interfaces no MTU', () => {
    const r = buildResult('0.4.0', attached);
    expect(r.ips).toEqual([{ address: '10.88.0.2/24', gateway: '10.88.0.1', interface: 0, version: '4' }]);
    expect(r.interfaces![0]).not.toHaveProperty('mtu');
  });

  it('in a chain, adds to what earlier plugins reported', () => {
    const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'dummy0' }], ips: [{ address: '192.168.5.2/24', interface: 0 }], routes: [], dns: { nameservers: ['10.0.0.53'] } };
    const r = buildResult('1.0.0', attached, prev);
    expect(r.interfaces!.map((i) => i.name)).toEqual(['dummy0', 'eth0']);
    expect(r.ips![1]).toMatchObject({ address: '10.88.0.2/24', interface: 1 });
    expect(r.dns).toEqual({ nameservers: ['10.0.0.53'] });
  });

  it('formats errors and VERSION as the spec does', () => {
    expect(JSON.parse(errorOutput('1.0.0', new CniError(7, 'bad', 'why')))).toEqual({ cniVersion: '1.0.0', code: 7, msg: 'bad', details: 'why' });
    expect(JSON.parse(versionOutput())).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });
});
