import { describe, expect, it } from 'vitest';
import { forwardDropScript, keepingForwardPosture } from './forward-posture.js';

/** A kernel of sysctls and an nft that records scripts, in the order things happen. */
function world(sysctls: Record<string, string>) {
  const events: string[] = [];
  const write = keepingForwardPosture({
    read: (k) => {
      if (!(k in sysctls)) throw new Error(`ENOENT ${k}`);
      return `${sysctls[k]}\n`;
    },
    write: (k, v) => {
      const key = typeof k === 'string' ? k : k.join('.');
      sysctls[key] = v;
      events.push(`write ${key}=${v}`);
    },
    nft: { run: (script) => void events.push(`nft ${script.trim().split('\n').at(-1)}`) },
    refreshAccepts: () => void events.push('accepts'),
    log: { info: () => undefined, warn: () => undefined },
  });
  return { write, events };
}

describe("Docker's FORWARD posture when tsnet turns forwarding on", () => {
  it('forwarding found off: FORWARD policy drop before forwarding goes on, then the accepts', () => {
    const w = world({ 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' });
    w.write('net.ipv4.ip_forward', '1');
    w.write('net.ipv6.conf.all.forwarding', '1');
    expect(w.events).toEqual([
      'nft add chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }',
      'write net.ipv4.ip_forward=1',
      'accepts',
      'nft add chain ip6 filter FORWARD { type filter hook forward priority filter; policy drop; }',
      'write net.ipv6.conf.all.forwarding=1',
      'accepts',
    ]);
  });

  it('forwarding found on (an admin, a dockerd that started first) and other settings: written, the policy left alone', () => {
    const w = world({ 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.br0.route_localnet': '0' });
    w.write('net.ipv4.ip_forward', '1');
    w.write(['net', 'ipv4', 'conf', 'br0', 'route_localnet'], '1');
    w.write('net.ipv4.conf.br0.route_localnet', '1');
    expect(w.events).toEqual(['write net.ipv4.ip_forward=1', 'write net.ipv4.conf.br0.route_localnet=1', 'write net.ipv4.conf.br0.route_localnet=1']);
  });

  it("a key named like an Object property ('constructor') is just written, no policy touched", () => {
    const w = world({ constructor: '0' });
    w.write('constructor', '1');
    expect(w.events).toEqual(['write constructor=1']);
  });

  it('the script makes the table and base chain as iptables-nft does, or sets the policy of the one there', () => {
    expect(forwardDropScript('ip')).toBe('add table ip filter\nadd chain ip filter FORWARD { type filter hook forward priority filter; policy drop; }\n');
  });
});
