// Named network namespaces for the overlay driver's unit tests: each one a FakeHost of its own,
// links moved in from the world's host keep their state but leave their bridge (as the kernel
// does), nftables scripts are recorded per namespace. Stands in for kernelNamespaces() of
// drivers/overlay/netns-layout.ts; the real kernel is in netns-tests/ and docker-tests/.
import { FakeHost } from './fake-host.js';
import type { NamespaceKernel, Handles } from '../drivers/overlay/netns-layout.js';

export class FakeNamespaces implements NamespaceKernel {
  readonly namespaces = new Map<string, FakeHost>();
  /** nftables scripts run in each namespace, in order */
  readonly scripts = new Map<string, string[]>();
  /** the first call starting with this text, in a namespace made after it is set, fails once */
  failOn?: string;

  constructor(private readonly host: FakeHost) {}

  /** The namespace's host, which must exist. */
  get(ns: string): FakeHost {
    const h = this.namespaces.get(ns);
    if (!h) throw new Error(`no namespace ${ns}`);
    return h;
  }

  list(): string[] {
    return [...this.namespaces.keys()];
  }

  exists(ns: string): boolean {
    return this.namespaces.has(ns);
  }

  add(ns: string): void {
    if (this.namespaces.has(ns)) throw new Error(`namespace ${ns}: File exists`);
    const h = new FakeHost();
    h.failOn = this.failOn;
    this.namespaces.set(ns, h);
    this.scripts.set(ns, []);
  }

  remove(ns: string): void {
    // its veths go, and with them their other ends on the host
    for (const l of this.namespaces.get(ns)?.links.values() ?? []) if (l.peer) this.host.links.delete(l.peer);
    this.namespaces.delete(ns);
    this.scripts.delete(ns);
  }

  open(ns: string): Handles {
    // the layout closes its sockets before it removes a namespace
    const h = this.get(ns);
    const inner = h.netlink();
    const extra = {
      close: () => undefined,
      // deleting either end of a veth removes both, wherever the other is
      deleteLink: (name: string, opts?: { ignoreMissing?: boolean }) => {
        const peer = h.links.get(name)?.peer;
        inner.deleteLink(name, opts);
        if (peer) this.host.links.delete(peer);
      },
    };
    const nl = new Proxy(inner, { get: (t, prop) => (prop in extra ? extra[prop as keyof typeof extra] : Reflect.get(t, prop)) });
    const scripts = this.scripts.get(ns)!;
    const nft = {
      run: (script: string) => void scripts.push(script),
      listJson: () => ({ nftables: [] }),
      listText: (cmd: string) => {
        const chain = /^list chain (\S+ \S+ \S+)$/.exec(cmd);
        if (chain ? !chainsOf(scripts).has(chain[1]) : !scripts.some((s) => s.includes('add table'))) throw new Error(`${cmd}: No such file or directory`);
        return '';
      },
      close: () => undefined,
    };
    return { nl, nft };
  }

  moveIn(link: string, ns: string): void {
    const l = this.host.links.get(link);
    if (!l) throw new Error(`Cannot find device "${link}"`);
    this.host.links.delete(link);
    this.get(ns).links.set(link, { ...l, master: undefined, port: undefined });
  }

  sysctl(ns: string, key: string, value: string): void {
    this.get(ns).sysctls.set(key, value);
  }
}

/** The chains ("family table chain") the scripts run so far leave, for listings of one chain. */
function chainsOf(scripts: string[]): Set<string> {
  const chains = new Set<string>();
  for (const line of scripts.join('\n').split('\n')) {
    const add = /^add chain (\S+ \S+ \S+)/.exec(line);
    const del = /^delete chain (\S+ \S+ \S+)/.exec(line);
    const delTable = /^delete table (\S+ \S+)$/.exec(line);
    if (add) chains.add(add[1]);
    else if (del) chains.delete(del[1]);
    else if (delTable) for (const c of [...chains]) if (c.startsWith(`${delTable[1]} `)) chains.delete(c);
  }
  return chains;
}
