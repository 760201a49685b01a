// The per-port ingress layout of anti-spoofing (an overlay's namespace) as text: what a port's
// rules add and what their removal takes away. The frames themselves are tested in
// netns-tests/anti-spoofing.test.ts.
import { describe, expect, it } from 'vitest';
import { addIngressGuardRules, iccOffElementRules, ingressChainOf, ingressGuardTableRules, removeIngressGuardRules } from './spoofing.js';

const T = 'netdev tsnet';
const port = { endpointId: 'e1', port: 'tsv0123456789ab', mac: '02:42:0A:ED:18:02', ipv4: ['10.237.24.2'], ipv6: ['fd00::2'] };
const chain = ingressChainOf(port.port);

describe('anti-spoofing at each port\'s ingress', () => {
  it('the table: the sets and the checks, no hook of its own and no guarded_ports', () => {
    const t = ingressGuardTableRules(T);
    expect(t).toContain(`add chain ${T} spoof`);
    expect(t).toContain(`add rule ${T} spoof iifname . ip saddr != @port_ipv4 drop`);
    expect(t).not.toMatch(/hook|guarded_ports/);
  });

  it('a port: its elements, then its own base chain on its ingress hook, jumping to the checks', () => {
    const r = addIngressGuardRules(T, port).split('\n');
    expect(r).toContain(`add element ${T} port_mac { "${port.port}" . 02:42:0a:ed:18:02 }`);
    expect(r).toContain(`add element ${T} port_ipv4 { "${port.port}" . 10.237.24.2 }`);
    expect(r.slice(-3)).toEqual([
      `add chain ${T} ${chain} { type filter hook ingress device "${port.port}" priority -500; policy accept; }`,
      `flush chain ${T} ${chain}`,
      `add rule ${T} ${chain} jump spoof`,
    ]);
    expect(r.join('\n')).not.toContain('guarded_ports');
  });

  it('anti-spoofing off: only the chain goes, whatever the MAC', () => {
    expect(addIngressGuardRules(T, { ...port, mac: '', antiSpoofing: false })).toBe(`add chain ${T} ${chain}\ndelete chain ${T} ${chain}`);
  });

  it('removal given the whole endpoint takes every element; given the port, the chain', () => {
    const whole = removeIngressGuardRules(T, port);
    for (const el of [`port_mac { "${port.port}" . 02:42:0a:ed:18:02 }`, `port_ipv6 { "${port.port}" . fd00::2 }`, `port_ipv6 { "${port.port}" . :: }`]) expect(whole).toContain(`delete element ${T} ${el}`);
    expect(whole).toContain(`delete chain ${T} ${chain}`);
    expect(removeIngressGuardRules(T, { port: port.port })).toBe(`add chain ${T} ${chain}\ndelete chain ${T} ${chain}`);
  });

  it('a chain name nft can parse for any port name the firewall takes', () => {
    expect(ingressChainOf('a+b=')).toBe('in_612b623d');
    expect(ingressChainOf(port.port)).toMatch(/^in_[0-9a-f]+$/);
    expect(() => addIngressGuardRules(T, { ...port, port: 'bad name' })).toThrow(/cannot be used in firewall rules/);
  });

  it('ICC off membership: in, or out again', () => {
    expect(iccOffElementRules('bridge tsnet', 'p1', true)).toBe('add element bridge tsnet no_icc_ports { "p1" }\ndelete element bridge tsnet no_icc_ports { "p1" }\nadd element bridge tsnet no_icc_ports { "p1" }');
    expect(iccOffElementRules('bridge tsnet', 'p1', false)).toBe('add element bridge tsnet no_icc_ports { "p1" }\ndelete element bridge tsnet no_icc_ports { "p1" }');
  });
});
