// What the crash tests (cni-crash, docker-crash) share with the CNI plugin test: a daemon of the
// file's own started with a test fault point armed (core/fault-points.ts), every row of its
// store, what it leaves, and the clean-up of a daemon's table and tagged links after a file.
import { afterAll, beforeAll, expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTsnetDaemon, type TsnetDaemon } from '../docker-tests/harness.js';
import type { FaultPoint } from '../core/fault-points.js';
import { assertNoLeaks, runCleanups, sh } from './harness.js';
import { daemonLogErrors, leftoversBesideNetworks, linkNames } from './leftovers.js';
import { removeDaemonKernelState } from '../test-support/commands.js';

/** How a daemon killed at its fault point ended. */
export const KILLED = { code: null, signal: 'SIGKILL', hung: false };

/** Every table of tsnet's store (network-repo, ipam-repo, cni-repo). */
export const STATE_TABLES = ['cni_attachments', 'cni_networks', 'networks', 'endpoints', 'published_ports', 'ipam_pools', 'ipam_allocations'];

/** Starts the daemon again with `point` armed: it kills itself when a request reaches it. */
export async function restartWithFault(daemon: TsnetDaemon, point: FaultPoint): Promise<void> {
  process.env.TSNET_TEST_FAULTS = '1';
  process.env.TSNET_FAULT = point;
  try {
    await daemon.restart();
  } finally {
    delete process.env.TSNET_TEST_FAULTS;
    delete process.env.TSNET_FAULT;
  }
}

/** Rows of a daemon's store, as "table: row" lines (read-only: the daemon may run). */
export function stateRows(stateDir: string, tables: string[] = STATE_TABLES): string[] {
  return tables.flatMap((t) => {
    const out = sh('sqlite3', ['-readonly', '-json', join(stateDir, 'tsnet.db'), `SELECT * FROM ${t}`]);
    return out ? (JSON.parse(out) as unknown[]).map((row) => `${t}: ${JSON.stringify(row)}`) : [];
  });
}

/** Every row of the store plus what leftoversBesideNetworks sees (links, table elements, ...): [] when nothing. */
export function everythingLeft(run: string, stateDir: string, linksBefore: Set<string>): string[] {
  // 'forward' is a fixed base chain of the anti-spoofing table (being added to firewall/rules/spoofing.ts), no container's
  const beside = leftoversBesideNetworks({ instance: run, table: run, stateDir }, linksBefore).filter((l) => l !== 'anti-spoofing chain forward');
  return [...stateRows(stateDir), ...beside];
}

/** After a file: its clean-ups, the daemon's tables and tagged links, its state folder. */
export async function cleanAfterDaemon(run: string, stateDir: string): Promise<void> {
  await runCleanups();
  removeDaemonKernelState(run);
  rmSync(stateDir, { recursive: true, force: true });
}

export interface FileDaemon {
  daemon: TsnetDaemon;
  stateDir: string;
  /** the host's links before the daemon started */
  linksBefore: Set<string>;
}

/**
 * A daemon of the test file's own, started before its tests; after them it must stop cleanly
 * (code 0 on SIGTERM) with no error in its log, and everything it made is removed.
 */
export function daemonForFile(run: string, socketPath: string): FileDaemon {
  const f = {} as FileDaemon;
  beforeAll(async () => {
    f.stateDir = mkdtempSync(join(tmpdir(), `tsnet-${run}-`));
    f.linksBefore = linkNames();
    f.daemon = await startTsnetDaemon({ stateDir: f.stateDir, socketPath });
  }, 60_000);
  afterAll(async () => {
    const exit = await f.daemon?.stop();
    const errors = f.daemon ? daemonLogErrors(f.daemon.logPath) : [];
    await cleanAfterDaemon(run, f.stateDir);
    assertNoLeaks(run);
    expect({ errors, exit }).toEqual({ errors: [], exit: { code: 0, signal: null, hung: false } });
  });
  return f;
}
