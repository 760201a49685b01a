// Drift repair without the kernel: which monitor lines concern tsnet (lines as nft 1.0.6 and
// iproute2 6.1 print them on this machine), whose transaction a change was, what one repair pass
// does for each kind of drift, and the watcher's debounce and restart with stand-in monitors.
import { describe, expect, it } from 'vitest';
import { DEBOUNCE_MS, DriftWatcher, MONITORS, REPAIR_BUDGET, WINDOW_MS, delayBefore, noDrift, parseIpMonitorLine, parseNftMonitorLine, repairDrift, type Drift, type Monitor, type RepairOps } from './drift.js';

describe('nft monitor lines', () => {
  it.each([
    ['delete table inet tsnet', 'tables'],
    ['delete table bridge tsnet', 'tables'],
    ['delete rule inet tsnet forward handle 12', 'tables'],
    ['delete chain inet tsnet forward', 'tables'],
    ['delete element inet tsnet tsnet_ports4 { tcp . 8080 }', 'tables'],
    ['add rule inet tsnet forward counter packets 0 bytes 0 accept', 'tables'],
    ['flush table bridge tsnet', 'tables'],
    ['delete rule bridge tsnet forward handle 7', 'tables'],
    ['delete rule ip filter DOCKER-USER handle 2', 'dockerChains'],
    ['delete rule ip6 filter FORWARD handle 9', 'dockerChains'],
    ['create chain ip filter DOCKER-USER', 'dockerChains'],
    ['add table ip filter', 'dockerChains'],
    ['delete table ip6 filter', 'dockerChains'],
    ['add table ip docker-bridges', 'dockerChains'],
    ['delete table ip6 docker-bridges', 'dockerChains'],
    ['add chain ip docker-bridges filter-FORWARD { type filter hook forward priority filter; policy accept; }', 'dockerChains'],
  ])('%s concerns %s', (line, what) => {
    expect(parseNftMonitorLine(line, 'tsnet')).toBe(what);
  });

  it.each([
    'delete table inet tsnet_e2e', // another daemon's table
    'delete table inet other',
    'add table ip nat',
    'add rule ip nat DOCKER counter', // Docker's NAT, not its forward chains
    'add rule ip filter DOCKER-ISOLATION-STAGE-1 iifname "br-1" counter',
    'delete table ip mangle',
    'add rule ip docker-bridges filter-forward-in__br-1 counter accept', // a Docker network's own chain
    'add rule ip filter DOCKER-FORWARD iifname "br-1" counter accept', // Docker 28: after DOCKER-USER
    // a container port's own anti-spoofing chain, made and removed by the daemon with each endpoint
    'add chain bridge tsnet port_tsc0123456789a',
    'flush chain bridge tsnet port_tsc0123456789a',
    'add rule bridge tsnet port_tsc0123456789a ether saddr != 02:42:0a:00:00:02 counter drop comment "not its MAC"',
    'delete chain bridge tsnet port_tsc0123456789a',
    '',
    'table inet tsnet {', // a listing, not an event
  ])('%j does not', (line) => {
    expect(parseNftMonitorLine(line, 'tsnet')).toBeNull();
  });

});

describe('ip monitor lines', () => {
  it('a deleted link, a bridge or a veth (name@peer)', () => {
    expect(parseIpMonitorLine('Deleted 1215: drbr0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether a6:22:27:19:9d:f8 brd ff:ff:ff:ff:ff:ff')).toEqual({ type: 'link', link: 'drbr0' });
    expect(parseIpMonitorLine('Deleted 44: tsv0a1b2c3d4e5@if43: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master tsbr1 state UP')).toEqual({ type: 'link', link: 'tsv0a1b2c3d4e5', peer: true });
  });

  it('a link moved into another namespace (a container\'s end of a veth, by dockerd or CNI) is not a deletion', () => {
    // `ip -o monitor link` as a veth end is moved with `ip link set mvB netns x` (kernel 6.x, iproute2 6.1)
    const moved = 'Deleted 11878: mvB@mvA: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN group default \\    link/ether c6:f7:94:c8:6c:4d brd ff:ff:ff:ff:ff:ff new-netnsid 0 new-ifindex 11878';
    expect(parseIpMonitorLine(moved)).toBeNull();
    expect(parseIpMonitorLine(moved.replace(' new-netnsid 0 new-ifindex 11878', ''))).toEqual({ type: 'link', link: 'mvB', peer: true });
  });

  it('a deleted address, v4 and v6', () => {
    expect(parseIpMonitorLine('Deleted 1215: drbr0    inet 198.51.100.1/24 scope global drbr0\\       valid_lft forever preferred_lft forever')).toEqual({ type: 'address', link: 'drbr0', cidr: '198.51.100.1/24' });
    expect(parseIpMonitorLine('Deleted 9: tsbr1    inet6 fd00:1::1/64 scope global \\       valid_lft forever preferred_lft forever')).toEqual({ type: 'address', link: 'tsbr1', cidr: 'fd00:1::1/64' });
  });

  it.each([
    '1215: drbr0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN', // a new or changed link
    '1215: drbr0    inet 198.51.100.1/24 scope global drbr0', // a new address
    'Deleted 3: eth0    link/ether 02:00:00:00:00:01', // not an address
    '',
  ])('%j is not a deletion', (line) => {
    expect(parseIpMonitorLine(line)).toBeNull();
  });
});

/** A kernel and store of a few links, and a log of what each operation was asked. */
function fakeOps(o: { owned: string[]; links: Record<string, string[]>; restoreBrings?: Record<string, string[]>; compatChanged?: boolean; tablesDiff?: string[] }) {
  const calls: string[] = [];
  const warned: string[] = [];
  const links = { ...o.links };
  const ops: RepairOps = {
    ownedLinks: () => o.owned,
    linkExists: (n) => n in links,
    addresses: (n) => links[n] ?? [],
    restore: () => {
      calls.push('restore');
      Object.assign(links, o.restoreBrings ?? {});
    },
    tablesDiff: () => {
      calls.push('tablesDiff');
      return o.tablesDiff ?? [];
    },
    syncFirewall: () => void calls.push('syncFirewall'),
    refreshDockerCompat: () => {
      calls.push('refreshDockerCompat');
      return o.compatChanged ?? false;
    },
    log: { warn: (_obj: object, msg?: string) => void warned.push(msg ?? '') },
  };
  return { ops, calls, warned };
}

const drift = (d: Partial<Drift>): Drift => ({ ...noDrift(), ...d });

describe('a repair pass', () => {
  it('a deleted bridge of the store: the full reconcile, logged as rebuilt', () => {
    const f = fakeOps({ owned: ['tsbr1', 'tsv1'], links: { tsv1: [] }, restoreBrings: { tsbr1: ['10.1.0.1/24'] } });
    expect(repairDrift(drift({ links: new Set(['tsbr1']) }), f.ops)).toEqual(['repair: link tsbr1 was deleted by another process: rebuilt']);
    expect(f.calls).toEqual(['restore']);
  });

  it('a deleted container veth: reconciled, and logged as not put back', () => {
    const f = fakeOps({ owned: ['tsbr1', 'tsv1'], links: { tsbr1: ['10.1.0.1/24'] } });
    const done = repairDrift(drift({ links: new Set(['tsv1']) }), f.ops);
    expect(done).toHaveLength(1);
    expect(done[0]).toMatch(/link tsv1 was deleted by another process and cannot be put back: .*container is cut off/);
    expect(f.calls).toEqual(['restore']);
  });

  it('an address removed from a bridge: put back', () => {
    const f = fakeOps({ owned: ['tsbr1'], links: { tsbr1: [] }, restoreBrings: { tsbr1: ['10.1.0.1/24'] } });
    expect(repairDrift(drift({ addresses: new Set(['tsbr1 10.1.0.1/24']) }), f.ops)).toEqual(['repair: address 10.1.0.1/24 was removed from tsbr1 by another process: put back']);
  });

  it("the daemon's own deletions (links the store no longer owns, addresses of a gone link) and links that are back: nothing done", () => {
    const f = fakeOps({ owned: ['tsbr1'], links: { tsbr1: ['10.1.0.1/24'] } });
    const d = drift({ links: new Set(['tsbr9', 'tsv7', 'tsbr1']), addresses: new Set(['tsbr9 10.9.0.1/24', 'tsbr1 10.1.0.1/24', 'docker0 172.17.0.1/16']) });
    expect(repairDrift(d, f.ops)).toEqual([]);
    expect(f.calls).toEqual([]);
    expect(f.warned).toEqual([]);
  });

  it('the tables: replaced when they differ from what the store says, once also when links were reconciled in the same pass', () => {
    const f = fakeOps({ owned: [], links: {}, tablesDiff: ['-rules inet tsnet forward 9'] });
    expect(repairDrift(drift({ tables: true }), f.ops)).toEqual(['repair: nftables tables changed by another process (deleted or flushed): put back']);
    expect(f.calls).toEqual(['tablesDiff', 'syncFirewall']);
    const g = fakeOps({ owned: ['tsbr1'], links: {}, restoreBrings: { tsbr1: [] }, tablesDiff: ['-rules inet tsnet forward 9'] });
    repairDrift(drift({ tables: true, links: new Set(['tsbr1']) }), g.ops);
    expect(g.calls).toEqual(['restore']);
  });

  it('elements deleted by another process: the tables written again at once, no compare, once with a tables change', () => {
    const f = fakeOps({ owned: [], links: {}, tablesDiff: [] });
    const d = drift({ tables: true, elements: new Set(['bridge guarded_ports', 'inet tsnet_ports4']) });
    expect(repairDrift(d, f.ops)).toEqual([
      "repair: elements of tsnet's nftables sets deleted by another process (bridge guarded_ports, inet tsnet_ports4): tables written again",
    ]);
    expect(f.calls).toEqual(['syncFirewall']);
  });

  it("the tables as the store says (the daemon's own change, or a repair's own events): only read", () => {
    const f = fakeOps({ owned: [], links: {}, tablesDiff: [] });
    expect(repairDrift(drift({ tables: true }), f.ops)).toEqual([]);
    expect(f.calls).toEqual(['tablesDiff']);
  });

  it("Docker's chains: refreshed; logged only when rules had to be put back", () => {
    const changed = fakeOps({ owned: [], links: {}, compatChanged: true });
    expect(repairDrift(drift({ dockerChains: true }), changed.ops)).toEqual(["repair: tsnet's accept rules put back into Docker's iptables chains"]);
    const same = fakeOps({ owned: [], links: {}, compatChanged: false });
    expect(repairDrift(drift({ dockerChains: true }), same.ops)).toEqual([]);
    expect(same.calls).toEqual(['refreshDockerCompat']);
  });
});

describe('the wait before a pass', () => {
  it('is the debounce until the budget of repairing passes in the window is spent, then until the oldest leaves the window', () => {
    const now = 100_000;
    const every = (n: number, step: number) => Array.from({ length: n }, (_, i) => now - (n - i) * step);
    expect(delayBefore(now, [])).toBe(DEBOUNCE_MS);
    // many repairs, but spread out (one a second): no wait
    expect(delayBefore(now, every(REPAIR_BUDGET - 1, 400))).toBe(DEBOUNCE_MS);
    expect(delayBefore(now, every(REPAIR_BUDGET, 1_000))).toBe(DEBOUNCE_MS);
    // a fight: the whole budget in the last 2 s -> wait until the oldest is WINDOW_MS old
    const fight = every(REPAIR_BUDGET, 100);
    expect(delayBefore(now, fight)).toBe(fight[0] + WINDOW_MS - now);
    expect(delayBefore(now, fight)).toBeGreaterThan(DEBOUNCE_MS);
  });
});

describe('the watcher', () => {
  const log = { info() {}, warn() {}, error() {} };
  /** A stand-in monitor: prints lines, then stays (or exits), as `nft monitor` would. */
  const printer = (lines: string[], stay = true): [string, ...string[]] => ['sh', '-c', `printf '%s\\n' ${lines.map((l) => `'${l}'`).join(' ')}; ${stay ? 'exec sleep 60' : 'exit 0'}`];

  it('gathers what the lines of every monitor concern into passes; lines of others\' tables and new links concern nothing', async () => {
    const passes: Drift[] = [];
    const [tables, rules, ip] = MONITORS;
    const w = new DriftWatcher({
      table: 'tsnet',
      log,
      repair: async (d) => {
        passes.push(d);
        return [];
      },
      monitors: [
        { ...tables, argv: printer(['delete table inet tsnet', 'delete table inet other']) },
        { ...rules, argv: printer(['delete rule ip filter DOCKER-USER handle 3']) },
        { ...ip, argv: printer(['Deleted 3: tsbr1: <BROADCAST> mtu 1500', '3: tsbr2: <BROADCAST> mtu 1500']) },
      ],
    });
    try {
      w.start();
      await expect.poll(() => passes.length).toBeGreaterThan(0);
      const seen = passes.reduce(
        (a, d) => ({ tables: a.tables || d.tables, dockerChains: a.dockerChains || d.dockerChains, links: [...a.links, ...d.links] }),
        { tables: false, dockerChains: false, links: [] as string[] },
      );
      expect(seen).toEqual({ tables: true, dockerChains: true, links: ['tsbr1'] });
      expect(passes.every((d) => d.addresses.size === 0)).toBe(true);
    } finally {
      w.stop();
    }
  });

  it('held (the daemon\'s start): the monitors are made but watch only after release(), then a pass looks at everything', async () => {
    const passes: Drift[] = [];
    const [tables, , ip] = MONITORS;
    let seenLines = 0;
    const counting = (m: Monitor): Monitor => ({ ...m, onLine: (line, pending, table, later) => (seenLines++, m.onLine(line, pending, table, later)) });
    const w = new DriftWatcher({
      table: 'tsnet',
      log,
      held: true,
      repair: async (d) => {
        passes.push(d);
        return [];
      },
      monitors: [counting({ ...tables, argv: printer(['delete table inet other']) }), counting({ ...ip, argv: printer(['Deleted 3: tsbr1: <BROADCAST> mtu 1500']) })],
    });
    try {
      w.start();
      expect(w.pids()).toHaveLength(2);
      // the printers would have printed at once, and a pass come DEBOUNCE_MS later: nothing while held
      await new Promise((r) => setTimeout(r, DEBOUNCE_MS * 5));
      expect({ seenLines, passes }).toEqual({ seenLines: 0, passes: [] });
      w.release();
      await expect.poll(() => seenLines).toBe(2);
      await expect.poll(() => passes.some((d) => d.links.has('tsbr1'))).toBe(true);
      expect({ tables: passes[0].tables, dockerChains: passes[0].dockerChains }).toEqual({ tables: true, dockerChains: true });
    } finally {
      w.stop();
    }
  });

  it('a monitor that dies is started again, followed by a full look at the tables and chains', async () => {
    const passes: Drift[] = [];
    const warned: string[] = [];
    const w = new DriftWatcher({
      table: 'tsnet',
      log: { ...log, warn: (_o: object, m?: string) => void warned.push(m ?? '') },
      repair: async (d) => {
        passes.push(d);
        return [];
      },
      monitors: [{ ...MONITORS[0], argv: printer([], false) }],
    });
    try {
      w.start();
      await expect.poll(() => passes.some((d) => d.tables && d.dockerChains), { timeout: 5_000 }).toBe(true);
      expect(warned[0]).toMatch(/drift watcher stopped: starting it again/);
    } finally {
      w.stop();
    }
  });
});
