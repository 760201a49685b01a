import { describe, expect, it } from 'vitest';
import { sysctlPath } from './sysctl.js';

describe('sysctl keys', () => {
  it('maps dotted keys and segment lists to /proc/sys paths', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(sysctlPath(['net', 'ipv4', 'conf', 'eth0.20', 'forwarding'])).toBe('/proc/sys/net/ipv4/conf/eth0.20/forwarding');
  });

  it('refuses keys that would leave /proc/sys', () => {
    expect(() => sysctlPath(['net', '..', 'x'])).toThrow(/invalid sysctl key/);
    expect(() => sysctlPath(['net', 'a/b'])).toThrow(/invalid sysctl key/);
    expect(() => sysctlPath('net..x')).toThrow(/invalid sysctl key/);
  });
});
