// The command lines the lab starts etcd and the hosts' daemons with (pure): each daemon finds the
// lab's etcd where etcd listens, and takes its own underlay address as its VTEP.
import { describe, expect, it } from 'vitest';
import { daemonArgs, etcdArgs } from './processes.js';
import { etcdOf, newHost, newLabState } from './state.js';

const s = newLabState({ name: 'lab1', leaseTtl: 7 });
const h2 = newHost(s, 2);

describe('command lines', () => {
  it('a daemon: its own socket, state and log, the lab store, its underlay address as VTEP, its lease', () => {
    expect(daemonArgs(s, h2)).toEqual([
      'serve',
      '--socket', h2.socket,
      '--state-dir', h2.stateDir,
      '--log', h2.log,
      '--store', 'etcd://198.51.100.2:2379',
      '--vtep', '198.51.100.12',
      '--host-name', 'h2',
      '--lease-ttl', '7',
    ]);
  });

  it('etcd: serves clients where the daemons look for it', () => {
    const args = etcdArgs(etcdOf(s));
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value('--listen-client-urls')).toBe(s.store.replace('etcd://', 'http://'));
    expect(value('--advertise-client-urls')).toBe(s.store.replace('etcd://', 'http://'));
    expect(value('--data-dir')).toBe(`${s.dir}/etcd`);
    expect(value('--initial-cluster')).toBe(`${value('--name')}=${value('--listen-peer-urls')}`);
    expect(value('--listen-peer-urls')).toBe('http://198.51.100.2:2380');
  });
});
