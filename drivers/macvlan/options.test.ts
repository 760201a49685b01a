import { describe, expect, it } from 'vitest';
import { MACVLAN_DEFAULTS, parseMacvlanOptions } from './options.js';

describe('macvlan options', () => {
  it('defaults to bridge mode, no parent, the parent MTU and no host access', () => {
    expect(parseMacvlanOptions({})).toEqual(MACVLAN_DEFAULTS);
    expect(MACVLAN_DEFAULTS).toEqual({ parent: '', mode: 'bridge', hostAccess: false });
    expect(parseMacvlanOptions({ type: 'macvlan', parent: '', macvlan_mode: '', host_access: '' })).toEqual(MACVLAN_DEFAULTS);
  });

  it("reads Docker's keys and tsnet's host_access", () => {
    expect(
      parseMacvlanOptions({ type: 'macvlan', parent: 'eth1.20', macvlan_mode: 'passthru', 'com.docker.network.driver.mtu': '1400', host_access: 'TRUE' }),
    ).toEqual({ parent: 'eth1.20', mode: 'passthru', mtu: 1400, hostAccess: true });
    for (const mode of ['bridge', 'private', 'vepa', 'passthru']) expect(parseMacvlanOptions({ macvlan_mode: mode }).mode).toBe(mode);
    expect(parseMacvlanOptions({ host_access: 'false' }).hostAccess).toBe(false);
  });

  it.each([
    [{ macvlan_mode: 'loud' }, "option macvlan_mode must be one of bridge, private, vepa, passthru, got 'loud'"],
    [{ host_access: 'yes please' }, "option host_access must be true or false, got 'yes please'"],
    [{ 'com.docker.network.driver.mtu': '9k' }, 'option com.docker.network.driver.mtu must be a whole number from 68 to 65535'],
    [{ 'com.docker.network.driver.mtu': '67' }, 'from 68 to 65535'],
    [{ parent: 'no/slash' }, "option parent: 'no/slash' is not a valid interface name"],
    [{ parent: 'a-name-far-too-long' }, 'is not a valid interface name'],
    [{ parent: 'lo' }, 'loopback interface lo cannot carry macvlan links'],
    [{ 'com.docker.network.bridge.name': 'x' }, "unknown option 'com.docker.network.bridge.name' for a tsnet macvlan network; accepted: type, parent, macvlan_mode, com.docker.network.driver.mtu, host_access"],
    [{ a: '1', b: '2' }, "unknown options 'a', 'b'"],
  ])('refuses %o', (options, message) => {
    expect(() => parseMacvlanOptions(options)).toThrow(message);
  });
});
