// `tsnet serve`: opens the store and the kernel handles once, reconciles the kernel with the
// store, then serves Docker on the plugin socket. Stopping the daemon leaves networks and
// containers working; the next start picks them up again.
import pino from 'pino';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { openDatabase } from '../store/db.js';
import { NetworkRepo } from '../store/network-repo.js';
import { databasePath, installationId, instanceOf } from './paths.js';
import { LinkOwner } from '../drivers/owner.js';
import { Controller } from './controller.js';
import { BridgeDriver } from '../drivers/bridge/bridge-driver.js';
import { MacvlanDriver } from '../drivers/macvlan/macvlan-driver.js';
import { Netlink } from '../native/netlink/netlink.js';
import { readSysctl, writeSysctl } from '../native/sysctl.js';
import { Nft } from '../native/nftables.js';
import { PortReserver } from '../native/sockets.js';
import { LinkReaper } from '../native/link-reaper.js';
import { Firewall } from '../firewall/firewall.js';
import { Ipam } from '../ipam/ipam.js';
import { SqliteIpamRepo } from '../store/ipam-repo.js';
import { OverlayDriver } from '../drivers/overlay/overlay-driver.js';
import { discoverUnderlay } from '../drivers/overlay/underlay.js';
import { ClusterIpam, withClusterPools } from '../ipam/cluster-ipam.js';
import { parseStoreUrl, type ClusterStore } from '../store/cluster/cluster-store.js';
import { ClusterConnection, gatedClusterStore, removeClusterState } from './cluster-connection.js';
import { startOverlayDns } from './overlay-dns.js';
import { cutOffTakenEndpoint, CutOffs, keepCutOff, keepingCutOff, localAnnouncements } from './address-taken.js';
import { CniRepo } from '../store/cni-repo.js';
import { CniService } from '../cni/cni-service.js';
import { keepServingOnStrayErrors } from './last-resort.js';
import { watchDrift } from './drift.js';
import { dockerOps, scheduleDockerRestore } from './docker-restore.js';
import { armFaultPoint } from '../core/fault-points.js';
import { CappedLogFile } from '../core/log.js';
import type { ListenAddress } from './settings.js';
import { exportState, startMetricsServer } from './metrics-server.js';
import { checkProcSys } from './proc-sys.js';
import { lockInstance } from './instance-lock.js';
import { keepingForwardPosture } from './forward-posture.js';

export interface DaemonOptions {
  stateDir: string;
  socketPath: string;
  logFile: string;
  /** pino level; 'info' when not given */
  logLevel?: string;
  /** etcd://HOST:PORT[,...] for multi-host overlays; '' for none */
  store?: string;
  /** VTEP address; '' to take the default route's source */
  vtep?: string;
  /** this host's name in the cluster */
  hostName?: string;
  /** seconds */
  leaseTtl?: number;
  /** where dockerd answers; containers it gave up on while tsnet was down are started (docker-restore.ts) */
  dockerSocket?: string;
  /** the log file is rotated to FILE.1 past this size; 10 MiB when not given */
  logMaxBytes?: number;
  /** where Prometheus scrapes GET /metrics; no listener when not given */
  metrics?: ListenAddress | null;
  /** where kernel settings are written; /proc/sys when not given */
  procSys?: string;
  /** IPv4 address of the overlay name responder; none when not given (overlay-dns.ts) */
  dns?: string;
  /** its resolvers for other names; /etc/resolv.conf's when not given */
  dnsUpstream?: string[];
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  // a wrong TSNET_PROC_SYS stops the start, not the first network create (proc-sys.ts)
  checkProcSys(opts.procSys ?? '/proc/sys');
  // one daemon per instance name, the lock held for the process's life (instance-lock.ts): before anything is touched
  lockInstance(instanceOf(opts.socketPath).name);
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = pino({ base: { pid: process.pid }, level: opts.logLevel || 'info' }, new CappedLogFile(opts.logFile, opts.logMaxBytes));
  log.info({ stateDir: opts.stateDir, socket: opts.socketPath }, 'tsnet starting');
  // tests only (fault-points.ts): dies at the named step
  const fault = armFaultPoint(process.env);
  if (fault) log.warn({ fault }, 'test fault point armed: the daemon kills itself when it reaches it');
  // an error that escapes every request is logged with its stack, not the end of the daemon
  // (last-resort.ts says why, and when it does exit)
  keepServingOnStrayErrors(process, { log, exit: (code) => log.flush(() => process.exit(code)) });
  // first of all that listens: a taken or wrong address stops the start before anything is held
  const metrics = opts.metrics ? await startMetricsServer(opts.metrics, log) : undefined;

  const db = openDatabase(databasePath(opts.stateDir));
  const repo = new NetworkRepo(db);
  const netlink = Netlink.open();
  const instance = instanceOf(opts.socketPath);
  const owner = new LinkOwner(instance.name);
  const nft = Nft.open();
  const firewall = new Firewall(nft, log, { table: instance.table, compatTag: instance.tag });
  // turning IP forwarding on also sets FORWARD's drop policy, as dockerd would have (forward-posture.ts)
  const sysctl = { root: opts.procSys };
  const writeSysctlKeepingPosture = keepingForwardPosture({ read: (k) => readSysctl(k, sysctl), write: (k, v) => writeSysctl(k, v, sysctl), nft, refreshAccepts: () => firewall.refreshDockerCompat(), log });
  const ports = new PortReserver({ log });
  const reaper = new LinkReaper(log);

  const bridge = new BridgeDriver({ repo, netlink, firewall, ports, reaper, owner, writeSysctl: writeSysctlKeepingPosture, log });
  const macvlan = new MacvlanDriver({ repo, netlink, reaper, owner, log });
  // resolved once to fail early on a bad --vtep; each overlay create reads the underlay again
  const underlay = () => discoverUnderlay(netlink, opts.vtep || undefined);
  const vtep = underlay().vtep;
  let cluster: ClusterStore | undefined;
  let connection: ClusterConnection | undefined;
  // endpoints whose address went to another host stay cut off, across restarts (address-taken.ts)
  const cutOff = { repo, netlink, cutOffs: new CutOffs(opts.stateDir), log };
  if (opts.store) {
    const { hosts } = parseStoreUrl(opts.store);
    if (!vtep) throw new Error('a cluster store needs this host\'s VTEP address: give --vtep IP (the host has no default route to take it from)');
    // loaded only with a store: the etcd client (gRPC, protobuf) takes ~0.3 s of every start
    const { EtcdClusterStore } = await import('../store/cluster/etcd-store.js');
    const onAddressTaken = cutOffTakenEndpoint(cutOff);
    const isCutOff = (id: string) => cutOff.cutOffs.has(id);
    const store = new EtcdClusterStore({ hosts, host: opts.hostName || hostname(), vtep, leaseTtl: opts.leaseTtl, instance: installationId(opts.stateDir), onAddressTaken, isCutOff, localEndpoints: () => localAnnouncements(repo), log });
    // reached in the background; until then overlay work that needs it is refused (cluster-connection.ts)
    connection = new ClusterConnection({ store, stateDir: opts.stateDir, log });
    cluster = gatedClusterStore(store, connection, log);
  } else {
    removeClusterState(opts.stateDir);
  }
  const overlay = new OverlayDriver({ repo, netlink, firewall, ports, reaper, owner, writeSysctl: writeSysctlKeepingPosture, log, cluster, underlay });
  const controller = new Controller([bridge, macvlan, overlay], repo, netlink, firewall, owner, log);
  const started = Date.now();
  // the kernel's part now; the firewall's transaction in a child process while the server is made
  // (controller.ts); awaited before anything is served, and a failure stops the start there
  const restored = controller.restoreAtStart();
  restored.catch(() => {});
  // the server's modules (fastify, the route schemas: ~0.3 s) load meanwhile, not before the start
  const { buildServer, listenUnix, SerialQueue } = await import('../plugin-api/server.js');
  keepCutOff(cutOff);

  // the host's routes, so an automatically chosen subnet never shadows one in use
  const hostRoutes = () => [...netlink.listRoutes(4), ...netlink.listRoutes(6)].map((r) => r.dst).filter((d) => d && d !== 'default');
  const ipamRecords = new SqliteIpamRepo(db);
  const ipam = withClusterPools(new Ipam(ipamRecords, { hostRoutes }), new ClusterIpam(cluster, (name) => overlay.hasNetwork(name)));

  // one line for every state change, Docker's calls and CNI's steps alike
  const queue = new SerialQueue();
  const cniRepo = new CniRepo(db);
  const cni = new CniService({ network: controller, ipam, repo, cni: cniRepo, netlink, log, queue, ipamRecords });
  const app = buildServer({ network: controller, ipam, logger: log, cni, queue });
  await app.ready();
  // what others change of tsnet's work (its tables, its accepts in Docker's chains when dockerd
  // starts after tsnet or re-creates them, its bridges and addresses) is put back (drift.ts).
  // The watchers' processes are made now, while the firewall's children write, and watch from
  // when the daemon serves (release below; drift.ts DriftWatcherOptions.held says why)
  const drift = watchDrift({ table: instance.table, queue, controller: keepingCutOff(controller, cutOff), firewall, netlink, log, held: true });
  const phases = await restored;
  log.info({ ms: Date.now() - started, phases, networks: repo.listNetworks().length, endpoints: repo.listEndpoints().length }, 'reconciled kernel with store');
  // CNI's own restore may write to the firewall: after the whole table is in place
  await cni.restore();
  await listenUnix(app, opts.socketPath);
  // names of other hosts' containers on overlays, for the engine's `dns` setting (overlay-dns.ts)
  const dns = opts.dns ? await startOverlayDns({ dns: opts.dns, dnsUpstream: opts.dnsUpstream ?? [], dockerSocket: opts.dockerSocket ?? '' }, () => new Set(repo.listNetworks().map((n) => n.id)), async () => ((await cluster?.listHosts()) ?? []).map((h) => h.vtep).filter((v) => v !== vtep), log) : undefined;
  // the state gauges (networks, endpoints, ports, IPAM, overlay peers, store) read at each scrape
  if (metrics) exportState({ repo, ipam: ipamRecords, netlink, cluster: connection });
  log.info({ socket: opts.socketPath, ...(metrics ? { metrics: `${metrics.address.host}:${metrics.address.port}` } : {}) }, 'tsnet serving');
  // local networks are served already; the cluster store is joined in the background, and the
  // control plane's start (announce, watch, reconcile) runs in line with the requests
  void connection?.run(() => queue.run(() => overlay.startControlPlane()));

  drift.release();
  // containers dockerd gave up on at boot, before tsnet answered, are started (docker-restore.ts)
  const dockerRestore = scheduleDockerRestore({ ops: dockerOps(opts.dockerSocket || '/var/run/docker.sock'), networks: () => new Set(repo.listNetworks().map((n) => n.id)), log });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    drift.stop();
    dockerRestore.stop();
    dns?.close();
    log.info({ signal }, 'tsnet stopping; networks and containers keep working');
    app
      .close()
      .then(() => connection?.stop())
      .then(() => cluster?.close())
      .then(() => reaper.close())
      .then(() => metrics?.close())
      .catch((err: unknown) => log.error({ err }, 'closing the server'))
      .finally(() => {
        db.close();
        netlink.close();
        log.flush();
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
