// The overlay name responder's pure parts: DNS messages read and written (dns-wire.ts), which
// overlay a question's source belongs to, the form of one host's question to another, and the
// default upstream from resolv.conf. The responder against real engines: netns-tests/lab-docker.test.ts.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answerAddresses, buildAnswer, buildQuery, parseQuery, RCODE_NXDOMAIN, TYPE_AAAA } from './dns-wire.js';
import { inSubnet, OverlayDns, peerQuestion, resolvConfServers } from './overlay-dns.js';
import { resolveSettings, settingDefaults } from './settings.js';
import { silentLogger } from '../core/log.js';

describe('DNS messages', () => {
  it('reads a query it wrote: id, name in lower case, type A, recursion off', () => {
    const q = parseQuery(buildQuery(0x1234, 'Web.Blue.tsnet-overlay'))!;
    expect(q).toMatchObject({ id: 0x1234, name: 'web.blue.tsnet-overlay', type: 1, rd: false });
  });

  it('answers with one A record per address, readable back, and the question echoed', () => {
    const q = parseQuery(buildQuery(7, 'web'))!;
    const a = buildAnswer(q, ['10.239.0.2', '10.239.0.9'], 5);
    expect(a.readUInt16BE(0)).toBe(7);
    expect(a.readUInt16BE(2) & 0x8000).toBe(0x8000);
    expect(a.readUInt16BE(6)).toBe(2);
    expect(answerAddresses(a)).toEqual(['10.239.0.2', '10.239.0.9']);
  });

  it('answers an AAAA question with AAAA records, readable back in the kernel\'s text form', () => {
    const q = parseQuery(buildQuery(8, 'web', TYPE_AAAA))!;
    expect(q.type).toBe(TYPE_AAAA);
    const a = buildAnswer(q, ['fd00:239:0:0::2', 'fd00:239::9'], 5);
    expect(a.readUInt16BE(6)).toBe(2);
    // type AAAA, 16 bytes of data per record
    expect(a.readUInt16BE(12 + q.question.length + 2)).toBe(TYPE_AAAA);
    expect(a.readUInt16BE(12 + q.question.length + 10)).toBe(16);
    expect(answerAddresses(a)).toEqual(['fd00:239::2', 'fd00:239::9']);
  });

  it('says a name does not exist with no record', () => {
    const a = buildAnswer(parseQuery(buildQuery(9, 'nobody'))!, [], 5, RCODE_NXDOMAIN);
    expect(a.readUInt16BE(2) & 0xf).toBe(RCODE_NXDOMAIN);
    expect(answerAddresses(a)).toEqual([]);
  });

  it('refuses what it does not read: short messages, answers, truncated names', () => {
    expect(parseQuery(Buffer.alloc(5))).toBeUndefined();
    expect(parseQuery(buildAnswer(parseQuery(buildQuery(1, 'x'))!, [], 5))).toBeUndefined();
    expect(parseQuery(buildQuery(1, 'web').subarray(0, 15))).toBeUndefined();
  });
});

describe('overlay names', () => {
  it('tells whether a source address is in an overlay subnet', () => {
    expect(inSubnet('10.239.0.7', '10.239.0.0/24')).toBe(true);
    expect(inSubnet('10.239.1.7', '10.239.0.0/24')).toBe(false);
    expect(inSubnet('198.51.100.12', '10.239.0.0/24')).toBe(false);
    expect(inSubnet('10.239.1.7', '10.239.0.0/16')).toBe(true);
  });

  it('splits another host\'s question NAME.OVERLAY.tsnet-overlay and leaves other names alone', () => {
    expect(peerQuestion('web.blue.tsnet-overlay')).toEqual({ name: 'web', overlay: 'blue' });
    expect(peerQuestion('my.web.blue.tsnet-overlay')).toEqual({ name: 'my.web', overlay: 'blue' });
    expect(peerQuestion('web.example')).toBeUndefined();
    expect(peerQuestion('blue.tsnet-overlay')).toBeUndefined();
  });

  it('takes resolv.conf\'s IPv4 nameservers as upstream, never itself', () => {
    expect(resolvConfServers('# x\nnameserver 10.0.0.53\nnameserver 198.51.100.11\nnameserver ::1\nsearch lan\n', '198.51.100.11')).toEqual(['10.0.0.53']);
  });
});

describe('the responder\'s settings', () => {
  it('takes --dns and --dns-upstream as IPv4 addresses and refuses anything else', () => {
    const base = settingDefaults();
    expect(resolveSettings({ ...base, dns: '198.51.100.11', dnsUpstream: '203.0.113.53, 203.0.113.54' })).toMatchObject({ dns: '198.51.100.11', dnsUpstream: ['203.0.113.53', '203.0.113.54'] });
    expect(resolveSettings({ ...base, dns: '' })).toMatchObject({ dns: '', dnsUpstream: [] });
    expect(() => resolveSettings({ ...base, dns: 'myhost' })).toThrow("--dns 'myhost': give an IPv4 address");
    expect(() => resolveSettings({ ...base, dnsUpstream: '203.0.113.53,::1' })).toThrow('--dns-upstream');
  });
});

describe('the responder', () => {
  it('drops what is not a question, without asking anyone', async () => {
    const dns = new OverlayDns({ listen: '127.0.0.1', dockerSocket: '/nonexistent', networks: () => new Set(['n1']), peers: () => Promise.reject(new Error('not asked')), upstream: [], log: silentLogger });
    expect(await dns.handle(Buffer.from('garbage'), '10.239.0.2')).toBeUndefined();
  });
});

/** A Docker engine API on a unix socket with one tsnet overlay network 'blue' holding two containers. */
async function fakeEngine(): Promise<{ socket: string; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'tsnet-dns-'));
  const socket = join(dir, 'docker.sock');
  const routes: Record<string, unknown> = {
    '/networks': [
      { Id: 'n1', Driver: 'tsnet', Options: { type: 'overlay', overlay: 'blue' }, IPAM: { Config: [{ Subnet: '10.239.0.0/24' }] } },
      { Id: 'n2', Driver: 'bridge', Options: {}, IPAM: { Config: [{ Subnet: '172.17.0.0/16' }] } },
    ],
    // web is dual-stack, db has IPv4 only
    '/networks/n1': { Containers: { c1: { Name: 'web', IPv4Address: '10.239.0.2/24', IPv6Address: 'fd00:239::2/64' }, c2: { Name: 'db', IPv4Address: '10.239.0.3/24', IPv6Address: '' } } },
    '/containers/c1/json': { NetworkSettings: { Networks: { blue: { NetworkID: 'n1', Aliases: ['frontend', 'c1'], IPAddress: '10.239.0.2' } } } },
    '/containers/c2/json': { NetworkSettings: { Networks: { blue: { NetworkID: 'n1', Aliases: null, IPAddress: '10.239.0.3' } } } },
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '').replace(/^\/v[\d.]+/, '').split('?')[0];
    const body = routes[path];
    res.writeHead(body === undefined ? 404 : 200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body ?? { message: 'not found' }));
  });
  await new Promise<void>((r) => server.listen(socket, r));
  return { socket, close: () => (server.close(), rmSync(dir, { recursive: true, force: true })) };
}

describe('the responder and its engine', () => {
  it('finds names and --network-aliases on an overlay in its engine, and nothing else', async () => {
    const engine = await fakeEngine();
    try {
      const dns = new OverlayDns({ listen: '127.0.0.1', dockerSocket: engine.socket, networks: () => new Set(['n1', 'n2']), peers: async () => [], upstream: [], log: silentLogger });
      expect(await dns.localAddresses('blue', 'web')).toEqual(['10.239.0.2']);
      expect(await dns.localAddresses('blue', 'frontend')).toEqual(['10.239.0.2']);
      expect(await dns.localAddresses('blue', 'db')).toEqual(['10.239.0.3']);
      expect(await dns.localAddresses('blue', 'nobody')).toEqual([]);
      expect(await dns.localAddresses('red', 'web')).toEqual([]);
      // a container's question: its source address says its overlay
      const reply = await dns.handle(buildQuery(5, 'frontend').fill(0x01, 2, 3), '10.239.0.9');
      expect(answerAddresses(reply!)).toEqual(['10.239.0.2']);
      // another host's question, recursion off
      expect(answerAddresses((await dns.handle(buildQuery(6, 'db.blue.tsnet-overlay'), '198.51.100.12'))!)).toEqual(['10.239.0.3']);
      expect((await dns.handle(buildQuery(7, 'nobody.blue.tsnet-overlay'), '198.51.100.12'))!.readUInt16BE(2) & 0xf).toBe(RCODE_NXDOMAIN);

      // AAAA: the IPv6 address of a dual-stack container, by name and alias, to containers and hosts
      const aaaa = (id: number, name: string) => buildQuery(id, name, TYPE_AAAA).fill(0x01, 2, 3);
      expect(await dns.localAddresses('blue', 'web', 6)).toEqual(['fd00:239::2']);
      expect(answerAddresses((await dns.handle(aaaa(10, 'frontend'), '10.239.0.9'))!)).toEqual(['fd00:239::2']);
      expect(answerAddresses((await dns.handle(buildQuery(11, 'web.blue.tsnet-overlay', TYPE_AAAA), '198.51.100.12'))!)).toEqual(['fd00:239::2']);
      // a container with IPv4 only: the name exists, no AAAA (not an error, not passed upstream)
      const nodata = (await dns.handle(aaaa(12, 'db'), '10.239.0.9'))!;
      expect(nodata.readUInt16BE(2) & 0xf).toBe(0);
      expect(nodata.readUInt16BE(6)).toBe(0);
      expect((await dns.handle(buildQuery(13, 'db.blue.tsnet-overlay', TYPE_AAAA), '198.51.100.12'))!.readUInt16BE(2) & 0xf).toBe(RCODE_NXDOMAIN);
    } finally {
      engine.close();
    }
  });
});
