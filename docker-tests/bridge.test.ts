// The bridge driver through the real Docker engine, as a user (and an attacker) would drive it.
// The daemon under test registers as plugin "tsnet-e2e" (harness.ts startE2e), so a tsnet started
// with `make up` on the same machine is left alone. The file's fixtures (a network "web" with a
// plain container and a web server publishing 8080 and 9000-9010, and an "outside" namespace
// with a server that records who reached it) are made in beforeAll; every test builds anything
// else it needs itself, so each one runs alone with `-t`. afterAll (finishE2e) requires that the
// daemon let go of everything, exits cleanly on SIGTERM and logged no internal error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { run as runCommand, sh } from '../test-support/commands.js';
import { linksTaggedBy, tableElements, tryBind, type HostPort } from '../test-support/daemon-leftovers.js';
import {
  BUSYBOX_IMAGE as IMAGE,
  E2E_PLUGIN as PLUGIN,
  E2E_TABLE as TABLE,
  TEST_PLUGIN_SOCKET as SOCKET,
  describeExit,
  docker,
  dockerOk as ok,
  finishE2e,
  onCleanup,
  startE2e,
  uniqueName,
  type E2eDaemon,
} from './harness.js';
import {
  HTTP_GET,
  OUTSIDE_HOST_IP,
  OUTSIDE_PEER_IP,
  OUTSIDE_PORT,
  connect,
  createNetwork,
  exec,
  expectConnectDropped,
  expectPingDropped,
  httpGetFrom,
  ipOf,
  linkExists,
  makeOutside,
  oneShot,
  ping,
  sleeper,
  webServer,
  type Outside,
} from './containers.js';

// Test subnets: private ranges only on bridges this file makes; the "outside" world is a
// namespace on 203.0.113.0/24 behind a veth of the host, with a route back to 10.231.0.0/16 so
// that a packet leaking out of an internal network WOULD get its answer.
const WEB_SUBNET = '10.231.0.0/24';
const INT_SUBNET = '10.231.3.0/24';
const OUT_HOST_IP = OUTSIDE_HOST_IP;
const OUT_PEER_IP = OUTSIDE_PEER_IP;
const OUT_PORT = OUTSIDE_PORT;

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** host ports the web server of the fixture publishes */
const SITE_PORTS = [8080, ...range(9000, 9010)];
/** host ports the "leaves nothing behind" test publishes */
const GONE_PORTS: HostPort[] = [
  ...[18081, 19000, 19001, 19002].map((port) => ({ proto: 'tcp' as const, port })),
  { proto: 'udp', port: 19003 },
];

let e2e: E2eDaemon;
const run = uniqueName('e2e');
const outsideNs = `${run}-out`;
let outside: Outside;
let webId: string;

function tsnet(args: string[]): { stdout: string; stderr: string; code: number } {
  const r = e2e.tsnet(args);
  return { stdout: r.stdout.trim(), stderr: r.stderr.trim(), code: r.code };
}

const network = (name: string, args: string[]): string => createNetwork(PLUGIN, name, args);

function bridgeOf(networkId: string): string {
  const n = e2e.status().networks.find((x) => x.id === networkId);
  if (!n) throw new Error(`network ${networkId} not in tsnet status`);
  return String(n.config.bridge);
}

function sendRaw(path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: SOCKET, path, method: 'POST' }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  e2e = await startE2e('tsnet-e2e');
  outside = await makeOutside(outsideNs, { routeBack: '10.231.0.0/16', tally: INT_SUBNET });
  webId = network(`${run}-web`, ['--subnet', WEB_SUBNET]);
  sleeper(`${run}-a`, `${run}-web`);
  webServer(`${run}-site`, `${run}-web`, ['8080:80', '9000-9010:9000-9010'], [80, 9000, 9005, 9010]);
}, 600_000);

afterAll(() => finishE2e(e2e, [...SITE_PORTS.map((port) => ({ proto: 'tcp' as const, port })), ...GONE_PORTS]));

describe('bridge networks through Docker', () => {
  it('creates a network with a given subnet: a bridge with the gateway on it', () => {
    const bridge = bridgeOf(webId);
    const addrs = JSON.parse(sh('ip', ['-j', 'addr', 'show', 'dev', bridge])) as { addr_info: { local: string; prefixlen: number }[] }[];
    expect(addrs[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain('10.231.0.1/24');
  });

  it('lets containers ping each other by name', () => {
    const r = ping(`${run}-a`, `${run}-site`);
    expect(r.code, r.out).toBe(0);
  });

  it('masquerades outbound traffic: the outside sees the host address', () => {
    expect(connect(`${run}-a`, OUT_PEER_IP, OUT_PORT).out).toBe(OUT_HOST_IP);
  });

  it('publishes ports: from outside, from 127.0.0.1, from a host address, and by hairpin', () => {
    const hello = `hello-from-${run}-site`;
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 8080)).toBe(hello);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 9005)).toBe(hello);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, 9010)).toBe(hello);
    expect(httpGetFrom(null, '127.0.0.1', 8080)).toBe(hello);
    expect(httpGetFrom(null, OUT_HOST_IP, 9000)).toBe(hello);
    expect(connect(`${run}-a`, OUT_HOST_IP, 8080, HTTP_GET).out).toContain(hello);
  });

  it('shows bindings with tsnet port, as docker port prints them', () => {
    const all = tsnet(['port', `${run}-site`]);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split('\n')).toContain('80/tcp -> 0.0.0.0:8080');
    expect(all.stdout.split('\n')).toContain('9005/tcp -> 0.0.0.0:9005');
    expect(tsnet(['port', `${run}-site`, '80']).stdout).toBe('0.0.0.0:8080');
    const missing = tsnet(['port', `${run}-site`, '81']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("No public port '81/tcp'");
  });

  it('chooses an ephemeral host port from the local port range for -p 80', () => {
    webServer(`${run}-eph`, `${run}-web`, ['80']);
    const line = tsnet(['port', `${run}-eph`, '80/tcp']).stdout;
    const port = Number(line.split(':').pop());
    const [lo, hi] = sh('cat', ['/proc/sys/net/ipv4/ip_local_port_range']).split(/\s+/).map(Number);
    expect(port).toBeGreaterThanOrEqual(lo);
    expect(port).toBeLessThanOrEqual(hi);
    expect(httpGetFrom(outsideNs, OUT_HOST_IP, port)).toBe(`hello-from-${run}-eph`);
  });

  it('refuses a host port that is already published', () => {
    const r = docker(['run', '-d', '--name', `${run}-dup`, '--network', `${run}-web`, '-p', '8080:80', IMAGE, 'sleep', '60']);
    onCleanup(() => docker(['rm', '-f', `${run}-dup`]));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/8080/);
    expect(httpGetFrom(null, '127.0.0.1', 8080)).toBe(`hello-from-${run}-site`);
  });

  it('picks a free subnet with --ipam-driver tsnet and never hands out an address twice', () => {
    network(`${run}-app`, ['--ipam-driver', PLUGIN]);
    const subnet = ok(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', `${run}-app`]);
    expect(subnet).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    const names = [1, 2, 3, 4].map((i) => sleeper(`${run}-app${i}`, `${run}-app`));
    const ips = names.map((n) => ipOf(n, `${run}-app`));
    expect(new Set(ips).size).toBe(ips.length);
  });

  it('serves exact addresses, IP ranges and aux addresses through tsnet IPAM', () => {
    network(`${run}-ipam`, ['--ipam-driver', PLUGIN, '--subnet', '10.231.4.0/24', '--ip-range', '10.231.4.128/25', '--aux-address', 'router=10.231.4.130']);
    sleeper(`${run}-fixed`, `${run}-ipam`, ['--ip', '10.231.4.7']);
    expect(ipOf(`${run}-fixed`, `${run}-ipam`)).toBe('10.231.4.7');
    sleeper(`${run}-ranged`, `${run}-ipam`);
    const ranged = ipOf(`${run}-ranged`, `${run}-ipam`);
    expect(Number(ranged.split('.')[3])).toBeGreaterThanOrEqual(128);
    expect(ranged).not.toBe('10.231.4.130');
    const taken = docker(['run', '--rm', '--network', `${run}-ipam`, '--ip', '10.231.4.7', IMAGE, 'true']);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toMatch(/10\.231\.4\.7/);
  });

  it('carries IPv6 with --ipv6: containers reach each other by name', () => {
    network(`${run}-v6`, ['--ipv6', '--subnet', '10.231.5.0/24', '--subnet', 'fd00:231:5::/64']);
    sleeper(`${run}-six`, `${run}-v6`);
    const six = ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${run}-v6").GlobalIPv6Address}}`, `${run}-six`]);
    expect(six).toMatch(/^fd00:231:5::/);
    const r = oneShot(`${run}-v6`, ['ping', '-6', '-c', '1', '-W', '3', six]);
    expect(r.code, r.out).toBe(0);
  });

  describe('isolation between networks', () => {
    // a second network with a web server and a client, beside the fixture's "web"
    beforeAll(() => {
      network(`${run}-iso`, ['--subnet', '10.231.6.0/24']);
      webServer(`${run}-iso1`, `${run}-iso`, []);
      sleeper(`${run}-iso2`, `${run}-iso`);
    });

    it('drops ICMP and TCP between two networks in both directions, while peers on each network talk', () => {
      const site = ipOf(`${run}-site`, `${run}-web`);
      const iso1 = ipOf(`${run}-iso1`, `${run}-iso`);
      // the positives, in the same run: each network's own peers reach each other
      expect(ping(`${run}-a`, site).out).toContain('1 packets received');
      expect(connect(`${run}-a`, site, 80, HTTP_GET).out).toContain(`hello-from-${run}-site`);
      expect(ping(`${run}-iso2`, iso1).out).toContain('1 packets received');
      expect(connect(`${run}-iso2`, iso1, 80, HTTP_GET).out).toContain(`hello-from-${run}-iso1`);
      // iso -> web and web -> iso: dropped (a timeout), not refused
      expectPingDropped(ping(`${run}-iso2`, site));
      expectConnectDropped(connect(`${run}-iso2`, site, 80, HTTP_GET));
      expectPingDropped(ping(`${run}-a`, iso1));
      expectConnectDropped(connect(`${run}-a`, iso1, 80, HTTP_GET));
    });
  });

  it('blocks container-to-container traffic with enable_icc=false, but not the way out', () => {
    network(`${run}-noicc`, ['--subnet', '10.231.2.0/24', '-o', 'com.docker.network.bridge.enable_icc=false']);
    sleeper(`${run}-n1`, `${run}-noicc`);
    sleeper(`${run}-n2`, `${run}-noicc`);
    const peer = ipOf(`${run}-n1`, `${run}-noicc`);
    expectPingDropped(ping(`${run}-n2`, peer));
    expect(ping(`${run}-n2`, '10.231.2.1').out).toContain('1 packets received');
    expect(connect(`${run}-n2`, OUT_PEER_IP, OUT_PORT).out).toBe(OUT_HOST_IP);
  });

  describe('internal networks', () => {
    // an internal network with a plain container and an "attacker" allowed to change its
    // routes, and an attacker of the same kind on the ordinary network "web" for the positive
    beforeAll(() => {
      network(`${run}-int`, ['--internal', '--subnet', INT_SUBNET]);
      sleeper(`${run}-i1`, `${run}-int`);
      sleeper(`${run}-i2`, `${run}-int`, ['--cap-add', 'NET_ADMIN']);
      sleeper(`${run}-w2`, `${run}-web`, ['--cap-add', 'NET_ADMIN']);
    });

    it('lets containers reach each other but gives them no default route', () => {
      const peer = ipOf(`${run}-i1`, `${run}-int`);
      expect(ping(`${run}-i2`, peer).out).toContain('1 packets received');
      expect(exec(`${run}-i1`, ['ip', 'route']).out).not.toContain('default');
    });

    it('lets nothing out even when a container adds a default route via the bridge, while the same attempt from a normal network gets out', () => {
      // the positive: an ordinary network's container, with its route set the same way, gets out
      expect(exec(`${run}-w2`, ['ip', 'route', 'replace', 'default', 'via', '10.231.0.1']).code).toBe(0);
      const before = outside.connections().length;
      expect(connect(`${run}-w2`, OUT_PEER_IP, OUT_PORT).out).toBe(OUT_HOST_IP);
      expect(outside.connections().slice(before)).toEqual([OUT_HOST_IP]);

      // the attacker: a default route via the bridge's address, which answers
      const added = exec(`${run}-i2`, ['ip', 'route', 'replace', 'default', 'via', '10.231.3.1']);
      expect(added.code, added.out).toBe(0);
      expect(exec(`${run}-i2`, ['ip', 'route']).out).toContain('default via 10.231.3.1');
      expect(ping(`${run}-i2`, '10.231.3.1').out).toContain('1 packets received');
      const seen = outside.connections().length;
      expectPingDropped(ping(`${run}-i2`, OUT_PEER_IP));
      expectConnectDropped(connect(`${run}-i2`, OUT_PEER_IP, OUT_PORT));
      // the outside saw nothing: no connection, not one packet from the internal subnet
      expect(outside.connections().slice(seen)).toEqual([]);
      expect(outside.packetsFromTallied()).toBe(0);
    });
  });

  it('refuses bad input with a clear message and keeps serving', async () => {
    const unknown = docker(['network', 'create', '-d', PLUGIN, '-o', 'colour=blue', `${run}-bad`]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("unknown option 'colour'");
    const overlap = docker(['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', '10.231.0.0/16', `${run}-bad2`]);
    if (overlap.code === 0) docker(['network', 'rm', `${run}-bad2`]);
    expect(overlap.code).not.toBe(0);
    expect(overlap.stderr).toMatch(/overlap/);
    const malformed = await sendRaw('/NetworkDriver.CreateNetwork', '{"NetworkID": ');
    expect(JSON.parse(malformed.body)).toHaveProperty('Err');
    const badIpam = await sendRaw('/IpamDriver.RequestPool', '{"AddressSpace": "local", "Pool": "10.0.0.0/33", "V6": false}');
    expect(JSON.parse(badIpam.body).Error).toMatch(/10\.0\.0\.0\/33/);
    expect(ping(`${run}-a`, `${run}-site`).code).toBe(0);
  });

  it('keeps networks and containers working across a daemon restart and a kill -9, and holds the published ports again', async () => {
    const siteIp = ipOf(`${run}-site`, `${run}-web`);
    const aIp = ipOf(`${run}-a`, `${run}-web`);
    let late = 0;
    /** What must hold after every restart: the daemon serves, containers talk, ports are held. */
    const worksAfterRestart = async () => {
      expect(ping(`${run}-a`, `${run}-site`).out).toContain('1 packets received');
      expect(ping(`${run}-a`, OUT_PEER_IP).out).toContain('1 packets received');
      expect(httpGetFrom(outsideNs, OUT_HOST_IP, 8080)).toBe(`hello-from-${run}-site`);
      // each published host port is held by the restarted daemon; the port after the range is not
      for (const port of SITE_PORTS) expect(`${port}: ${await tryBind({ proto: 'tcp', port })}`).toBe(`${port}: EADDRINUSE`);
      expect(await tryBind({ proto: 'tcp', port: 9011 })).toBe('free');
      // a container made now gets a fresh address and reaches the others: the daemon serves
      const name = sleeper(`${run}-late${++late}`, `${run}-web`);
      expect([siteIp, aIp]).not.toContain(ipOf(name, `${run}-web`));
      expect(ping(name, `${run}-site`).out).toContain('1 packets received');
    };
    expect(describeExit(await e2e.daemon.restart())).toBe('exited with 0');
    await worksAfterRestart();
    await e2e.daemon.kill9();
    await e2e.daemon.restart();
    await worksAfterRestart();
  });

  it('leaves nothing behind after containers and networks are removed: map elements (IPv4 and IPv6), links, held ports, status rows', async () => {
    const net = `${run}-gone`;
    const id = network(net, ['--ipv6', '--subnet', '10.231.7.0/24', '--subnet', 'fd00:231:7::/64']);
    const name = webServer(`${run}-g1`, net, ['18081:80', '19000-19002:19000-19002', '19003:19003/udp']);
    const bridge = bridgeOf(id);
    const status = e2e.status();
    const endpoints = status.endpoints.filter((e) => e.network === id).map((e) => e.id.slice(0, 12));
    const ports: HostPort[] = status.ports.filter((p) => p.network === id).map((p) => ({ proto: p.proto === 'udp' ? 'udp' : 'tcp', port: p.hostPort, host: p.hostIp }));
    const ofNetwork = (line: string) => line.includes(`"${bridge}"`) || line.includes('10.231.7.') || line.includes('fd00:231:7:');
    const mapsOf = () => [...new Set(tableElements(TABLE).filter(ofNetwork).map((l) => l.split(':')[0]))].sort();
    const linksOf = () => linksTaggedBy(PLUGIN).filter((l) => [id.slice(0, 12), ...endpoints].some((x) => l.includes(`:${x})`)));
    const held = async () => Promise.all(ports.map(async (p) => `${p.proto} ${p.host}:${p.port} ${await tryBind(p)}`));

    // while it runs: elements in every set and map, IPv4 and IPv6; the bridge and the veth; held ports
    expect(endpoints).toHaveLength(1);
    expect(mapsOf()).toEqual(['anyports4', 'anyports6', 'bridge_pairs', 'bridges', 'masq4', 'masq6', 'subnets4', 'subnets6']);
    expect(linksOf()).toHaveLength(2);
    expect(ports.map((p) => `${p.proto}/${p.port}`)).toEqual(expect.arrayContaining(GONE_PORTS.map((p) => `${p.proto}/${p.port}`)));
    expect(await held()).toEqual(ports.map((p) => `${p.proto} ${p.host}:${p.port} EADDRINUSE`));

    ok(['rm', '-f', name]);
    ok(['network', 'rm', net]);
    expect(mapsOf()).toEqual([]);
    expect(linksOf()).toEqual([]);
    expect(linkExists(bridge)).toBe(false);
    expect(await held()).toEqual(ports.map((p) => `${p.proto} ${p.host}:${p.port} free`));
    const after = e2e.status();
    expect(after.networks.map((n) => n.id)).not.toContain(id);
    expect(after.endpoints.filter((e) => e.network === id)).toEqual([]);
    expect(after.ports.filter((p) => p.network === id)).toEqual([]);
    const dockerUser = runCommand('nft', ['list', 'chain', 'ip', 'filter', 'DOCKER-USER']);
    expect(dockerUser.code).toBe(0);
    expect(dockerUser.stdout).not.toContain(bridge);
  });
});
