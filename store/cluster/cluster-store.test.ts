import { describe, expect, it } from 'vitest';
import { parseStoreUrl } from './cluster-store.js';

describe('store URL', () => {
  it('reads one or several etcd endpoints', () => {
    expect(parseStoreUrl('etcd://10.0.0.1:2379')).toEqual({ kind: 'etcd', hosts: ['http://10.0.0.1:2379'] });
    expect(parseStoreUrl('etcd://a:2379,b.example:2379/')).toEqual({ kind: 'etcd', hosts: ['http://a:2379', 'http://b.example:2379'] });
    expect(parseStoreUrl('etcd://[fd00::1]:2379').hosts).toEqual(['http://[fd00::1]:2379']);
  });

  it('refuses other stores and endpoints without a port', () => {
    expect(() => parseStoreUrl('consul://x:8500')).toThrow("unknown store 'consul://x:8500': tsnet knows etcd://HOST:PORT");
    expect(() => parseStoreUrl('etcd://x')).toThrow("etcd endpoint 'x' in 'etcd://x' is not HOST:PORT");
    expect(() => parseStoreUrl('etcd://')).toThrow('unknown store');
  });
});
