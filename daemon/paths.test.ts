import { describe, expect, it } from 'vitest';
import { instanceOf } from './paths.js';
import { LinkOwner } from '../drivers/owner.js';
import { rulesFor } from '../firewall/ruleset.js';

describe('daemon instances', () => {
  it('names what a daemon owns after its plugin socket', () => {
    expect(instanceOf('/run/docker/plugins/tsnet.sock')).toEqual({ name: 'tsnet', table: 'tsnet', tag: 'tsnet:' });
    expect(instanceOf('/run/docker/plugins/tsnet-e2e.sock')).toEqual({ name: 'tsnet-e2e', table: 'tsnet_e2e', tag: 'tsnet-e2e:' });
  });

  it("never takes another instance's links or rules for its own", () => {
    const user = new LinkOwner('tsnet');
    const tests = new LinkOwner('tsnet-e2e');
    expect(user.owns(tests.alias('0123456789abcdef'))).toBe(false);
    expect(tests.owns(user.alias('0123456789abcdef'))).toBe(false);
    expect(user.owns(user.alias('0123456789abcdef'))).toBe(true);
    expect(user.owns(undefined)).toBe(false);
  });

  it('writes the rules of each instance into its own table', () => {
    expect(rulesFor('tsnet_e2e').createTable()).toMatch(/^add table inet tsnet_e2e /);
    expect(rulesFor('tsnet_e2e').createTable()).not.toMatch(/inet tsnet /);
    expect(() => rulesFor('bad name')).toThrow(/invalid nftables table name/);
  });

  it('refuses socket names that would share or break a table name, before anything starts', () => {
    // ts-net, ts_net and ts.net all became table ts_net, so two such daemons removed each other's rules
    for (const bad of ['ts_net', 'ts.net', '1net', '-net', 'a'.repeat(33)]) {
      expect(() => instanceOf(`/run/docker/plugins/${bad}.sock`)).toThrow(
        `plugin socket /run/docker/plugins/${bad}.sock: a tsnet plugin name (the socket's file name without .sock) must start with a letter and hold only letters, digits and '-', at most 32`,
      );
    }
    expect(instanceOf('/run/docker/plugins/ts-net.sock').table).toBe('ts_net');
  });
});
