// (c) New-connection latency through DNAT to the 1st and the 10,000th published port: tsnet's
// nftables maps beside Docker's layout (one DNAT rule per port in a linear iptables chain), on
// the same namespaces in one run. All traffic stays inside namespaces this benchmark makes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { withNetns } from '../native/netns.js';
import { Nft } from '../native/nftables.js';
import { Firewall } from '../firewall/firewall.js';
import type { PortMapping } from '../firewall/model.js';
import { Cleanup, inNs, makeNs, median, percentile, table } from './lib.js';

const MAPPINGS = Number(process.env.MAPPINGS ?? 10_000);
const SAMPLES = Number(process.env.SAMPLES ?? 2_000);
const FIRST_PORT = 30_000;
const SERVER_IP = '10.231.210.2';
const HOST_UPLINK_IP = '203.0.113.1';

/** Connect latencies in µs to ip:port, measured by a Node client inside the client namespace. */
function measure(ns: string, ip: string, port: number, n: number): number[] {
  const script = `
    const net = require('net'); const out = [];
    (function next(i) {
      if (i === ${n}) { console.log(JSON.stringify(out)); return; }
      const t = process.hrtime.bigint();
      const s = net.connect(${port}, '${ip}', () => { out.push(Number(process.hrtime.bigint() - t) / 1000); s.destroy(); next(i + 1); });
      s.on('error', (e) => { console.error(e.message); process.exit(1); });
    })(0);`;
  return JSON.parse(inNs(ns, 'node', ['-e', script]));
}

function sample(client: string, label: string): (string | number)[][] {
  const last = FIRST_PORT + MAPPINGS - 1;
  const first: number[] = [];
  const tenThousandth: number[] = [];
  // alternating batches, so drift affects both ports alike
  for (let b = 0; b < 5; b++) {
    first.push(...measure(client, HOST_UPLINK_IP, FIRST_PORT, SAMPLES / 5));
    tenThousandth.push(...measure(client, HOST_UPLINK_IP, last, SAMPLES / 5));
  }
  return [
    [label, '1st', median(first), percentile(first, 99), ''],
    [label, `${MAPPINGS}th`, median(tenThousandth), percentile(tenThousandth, 99), (median(tenThousandth) / median(first)).toFixed(2)],
  ];
}

export async function main(): Promise<void> {
  const cleanup = new Cleanup();
  const tag = randomBytes(2).toString('hex');
  const children: ChildProcess[] = [];
  cleanup.add(() => children.forEach((c) => c.kill()));
  try {
    const host = makeNs(`tsb-${tag}-host`, cleanup);
    const server = makeNs(`tsb-${tag}-srv`, cleanup);
    const client = makeNs(`tsb-${tag}-cli`, cleanup);
    inNs(host, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    inNs(host, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    inNs(host, 'ip', ['addr', 'add', '10.231.210.1/24', 'dev', 'br0']);
    inNs(host, 'ip', ['link', 'set', 'br0', 'up']);
    inNs(host, 'ip', ['link', 'add', 'vs', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', server]);
    inNs(host, 'ip', ['link', 'set', 'vs', 'master', 'br0', 'up']);
    inNs(server, 'ip', ['addr', 'add', `${SERVER_IP}/24`, 'dev', 'eth0']);
    inNs(server, 'ip', ['link', 'set', 'eth0', 'up']);
    inNs(server, 'ip', ['route', 'add', 'default', 'via', '10.231.210.1']);
    inNs(host, 'ip', ['link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client]);
    inNs(host, 'ip', ['addr', 'add', `${HOST_UPLINK_IP}/24`, 'dev', 'uplink']);
    inNs(host, 'ip', ['link', 'set', 'uplink', 'up']);
    inNs(client, 'ip', ['addr', 'add', '203.0.113.2/24', 'dev', 'eth0']);
    inNs(client, 'ip', ['link', 'set', 'eth0', 'up']);
    children.push(spawn('ip', ['netns', 'exec', server, 'node', '-e', "require('net').createServer(s=>s.destroy()).listen(80)"], { stdio: 'ignore' }));
    await new Promise((r) => setTimeout(r, 1500));

    const mappings: PortMapping[] = Array.from({ length: MAPPINGS }, (_, i) => ({
      endpointId: 'bench',
      proto: 'tcp',
      hostIp: '',
      hostPort: FIRST_PORT + i,
      containerIp: SERVER_IP,
      containerPort: 80,
    }));

    // tsnet: the daemon's own firewall code, in the host namespace
    const nsPath = `/run/netns/${host}`;
    const loadStart = process.hrtime.bigint();
    withNetns(nsPath, () => {
      const nft = Nft.open();
      new Firewall(nft, { warn() {} }).sync([{ id: 'bench', bridge: 'br0', subnets: ['10.231.210.0/24'], masquerade: true, internal: false }], mappings);
      nft.close();
    });
    const tsnetLoadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
    const rows = sample(client, 'tsnet (nftables maps)');
    inNs(host, 'nft', ['delete', 'table', 'inet', 'tsnet']);

    // Docker's layout: one DNAT rule per port in the DOCKER chain of iptables' nat table
    const rules = ['*nat', ':PREROUTING ACCEPT [0:0]', ':DOCKER - [0:0]', '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER'];
    for (const m of mappings) rules.push(`-A DOCKER ! -i br0 -p tcp -m tcp --dport ${m.hostPort} -j DNAT --to-destination ${SERVER_IP}:80`);
    rules.push('COMMIT', '');
    const ipStart = process.hrtime.bigint();
    inNs(host, 'iptables-restore', [], rules.join('\n'));
    const iptablesLoadMs = Number(process.hrtime.bigint() - ipStart) / 1e6;
    rows.push(...sample(client, 'Docker-style (iptables chain)'));

    console.log(`TCP connect latency through DNAT, ${SAMPLES} connections per port, ${MAPPINGS} mappings`);
    console.log(table(['rules', 'mapping', 'median µs', 'p99 µs', `${MAPPINGS}th / 1st`], rows));
    console.log(`loading ${MAPPINGS} mappings: tsnet ${tsnetLoadMs.toFixed(0)} ms (one transaction), iptables-restore ${iptablesLoadMs.toFixed(0)} ms`);
  } finally {
    await cleanup.run();
  }
}

await main();
