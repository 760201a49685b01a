// Drift repair's watch on nftables set and map elements (daemon/drift.ts): another process
// deleting one of tsnet's elements (an anti-spoofing element such as a port in guarded_ports, a
// published port's map element) leaves a port unguarded or unpublished, and the shape compare of
// the tables (firewall/shape.ts) cannot see it.
//
// Why not `nft monitor elements` (or `nft monitor destroy elements`, or `nft -j monitor ...`): nft
// 1.0.6 decodes every element event it receives before it filters, and reads past the end of a
// deleted element of a concatenated interval set (tsnet's subnets4/subnets6, deleted with every
// network) while it does: tried here, each of those forms died of SIGSEGV on such a delete, some
// runs and not others. So a small reader of the kernel's nftables multicast group stands in for
// it: it decodes only the message headers, the table and the set name, never an element. It is
// Python's standard library (the raw netlink socket Node lacks), run with `python3 -c`.
//
// Who made a change: the kernel ends every committed transaction with a "new generation" message
// naming the process that committed it. The reader holds the element deletions of a transaction
// until then and prints one line per set with that process ID, so the daemon tells its own changes
// (every attach and detach adds and deletes elements; libnftables runs in the daemon's process)
// from another process's without reading any element: its own cost nothing, another's start one
// repair pass that rewrites the tables. A reader that falls behind (the socket's buffer overran)
// says so, and the pass treats it as a deletion by another process.
//
// Pure parsing below, unit-tested; the reader is exercised by netns-tests/drift-elements.test.ts.
import { existsSync } from 'node:fs';

/**
 * Prints `deleted PID FAMILY TABLE SET` for each set that lost elements in a transaction, when the
 * transaction's "new generation" message names PID (0 when it names none), and `overrun` when the
 * kernel dropped messages. Families by number: 1 inet, 2 ip, 3 arp, 5 netdev, 7 bridge, 10 ip6.
 * The socket's buffer: 32 MB (64 MB as the kernel counts it) with SO_RCVBUFFORCE (33; the daemon
 * runs as root), past net.core.rmem_max (4 MB here), which SO_RCVBUF alone is held to: a full
 * rewrite of the tables at 4,000 endpoints sends ~1,700 messages (6.4 MB) at its commit, faster
 * than the reader takes them, and overran the 8 MB it had (each message's buffer counts more than
 * its bytes). The memory is taken only while messages wait.
 */
export const READER_PY = String.raw`
import errno, socket, struct, sys
NFNL_SUBSYS_NFTABLES, DELSETELEM, NEWGEN = 10, 14, 15
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
try:
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
except OSError:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
s.bind((0, 0))
s.setsockopt(270, 1, 7)
def attrs(b, o, end):
    out = {}
    while o + 4 <= end:
        ln, ty = struct.unpack_from('=HH', b, o)
        if ln < 4: break
        out[ty & 0x3fff] = b[o + 4:o + ln]
        o += (ln + 3) & ~3
    return out
def name(v):
    return v.split(b'\0')[0].decode('ascii', 'replace')
held = []
print('ready', flush=True)
while True:
    try:
        b = s.recv(1 << 20)
    except OSError as e:
        if e.errno == errno.ENOBUFS:
            held = []
            print('overrun', flush=True)
            continue
        raise
    o = 0
    while o + 16 <= len(b):
        ln, ty = struct.unpack_from('=IH', b, o)
        if ln < 16: break
        if ty >> 8 == NFNL_SUBSYS_NFTABLES and ln >= 20:
            a = attrs(b, o + 20, o + ln)
            if ty & 0xff == DELSETELEM and 1 in a and 2 in a:
                k = (b[o + 16], name(a[1]), name(a[2]))
                if k not in held: held.append(k)
            elif ty & 0xff == NEWGEN:
                pid = struct.unpack('>I', a[2][:4])[0] if 2 in a and len(a[2]) >= 4 else 0
                for f, t, n in held: print('deleted', pid, f, t, n)
                held = []
                sys.stdout.flush()
        o += (ln + 3) & ~3
`;

const FAMILIES: Record<string, string> = { '1': 'inet', '7': 'bridge' };

/** What a line of the reader means for the daemon whose tables are named `table`. */
export type ElementEvent = { set: string; family: 'inet' | 'bridge' } | 'overrun' | null;

/**
 * Classifies a line of the reader: a deletion by another process in one of tsnet's tables (inet
 * or bridge family, named `table`), an overrun, or nothing to look at (another table, the
 * daemon's own transaction: `own(pid)` says whether a PID is one of the daemon's threads).
 */
export function parseElementEventLine(line: string, table: string, own: (pid: number) => boolean): ElementEvent {
  const parts = line.trim().split(/\s+/);
  if (parts[0] === 'overrun') return 'overrun';
  if (parts[0] !== 'deleted' || parts.length !== 5) return null;
  const [, pid, familyNumber, tableName, set] = parts;
  const family = FAMILIES[familyNumber];
  if (!family || tableName !== table) return null;
  if (own(Number(pid))) return null;
  return { set, family: family as 'inet' | 'bridge' };
}

/** Whether a PID (the kernel names the committing thread) is a thread of this process. */
export function isOwnThread(pid: number): boolean {
  return pid === process.pid || (pid > 0 && existsSync(`/proc/${process.pid}/task/${pid}`));
}
