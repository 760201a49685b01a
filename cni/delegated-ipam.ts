// Delegated IPAM: a CNI configuration whose "ipam" names another plugin (host-local, dhcp, ...) has
// tsnet run that plugin from CNI_PATH as a runtime would, with the runtime's CNI_* environment and
// the network configuration on stdin, for ADD and DEL. It is someone else's program, so it is
// handled as untrusted: it may exit without reading its stdin (EPIPE on our end of the pipe, which
// must fail this request, never the daemon), print garbage or an endless stream, or never finish.
// Each run has a time limit (DELEGATED_IPAM_TIMEOUT_MS) after which the plugin and everything it
// started are killed, and cni-service.ts runs it outside the daemon's serial queue, so Docker's
// calls never wait behind it.
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { CniError, ERR, type CniEnv, type NetConf, type Result } from './spec.js';

/**
 * How long one run of a delegated IPAM plugin may take. host-local answers in milliseconds; a DHCP
 * lease or a network-backed allocator takes a few seconds. 30 s leaves room for those and stays
 * well under the tsnet plugin executable's own 120 s wait for the daemon, so the runtime gets this
 * error rather than a timeout of its own.
 */
export const DELEGATED_IPAM_TIMEOUT_MS = 30_000;

/** A plugin printing more than this is broken or hostile: a CNI result is a few hundred bytes. */
export const MAX_PLUGIN_OUTPUT = 1 << 20;

/** Where plugins are looked up when the runtime gives no CNI_PATH. */
export const DEFAULT_CNI_PATH = ['/opt/cni/bin', '/usr/lib/cni'];

export interface DelegateOptions {
  /** default DELEGATED_IPAM_TIMEOUT_MS; tests pass a short one */
  timeoutMs?: number;
}

/** The IPv4 address a delegated plugin handed out, and the gateway it named. */
export interface Lease {
  /** CIDR */
  address: string;
  /** bare, '' when the plugin named none */
  gateway: string;
}

/** ADD through the configured IPAM plugin: the first IPv4 address of its result. */
export async function delegatedAdd(env: CniEnv, conf: NetConf, opts: DelegateOptions = {}): Promise<Lease> {
  const type = conf.ipam.type;
  const stdout = await runIpamPlugin('ADD', env, conf, opts);
  if (!stdout.trim()) throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' ADD exited without printing a result`);
  let result: Result;
  try {
    result = JSON.parse(stdout) as Result;
  } catch {
    throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' printed no JSON result`);
  }
  const ip = (Array.isArray(result?.ips) ? result.ips : []).find((i) => typeof i?.address === 'string' && !i.address.includes(':'));
  if (!ip) throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' returned no IPv4 address`);
  return { address: ip.address, gateway: typeof ip.gateway === 'string' ? ip.gateway : '' };
}

/** DEL through the configured IPAM plugin: it frees what it handed out (and succeeds when it holds nothing). */
export async function delegatedDel(env: CniEnv, conf: NetConf, opts: DelegateOptions = {}): Promise<void> {
  await runIpamPlugin('DEL', env, conf, opts);
}

/** Runs the plugin named by conf.ipam.type; its stdout on success, a CniError (103) naming it otherwise. */
async function runIpamPlugin(command: 'ADD' | 'DEL', env: CniEnv, conf: NetConf, opts: DelegateOptions): Promise<string> {
  const type = conf.ipam.type;
  if (!/^[A-Za-z0-9_.-]+$/.test(type) || type === '.' || type === '..') throw new CniError(ERR.INVALID_CONFIG, `IPAM type '${type}' is not a plugin name`);
  const dirs = env.path.length > 0 ? env.path : DEFAULT_CNI_PATH;
  const binary = dirs.map((d) => join(d, type)).find((p) => existsSync(p));
  if (!binary) throw new CniError(ERR.IPAM_PLUGIN, `IPAM plugin '${type}' not found in CNI_PATH (${dirs.join(':')})`);
  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: env.containerId,
    CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifName,
    CNI_ARGS: Object.entries(env.args)
      .map(([k, v]) => `${k}=${v}`)
      .join(';'),
    CNI_PATH: dirs.join(':'),
  };
  const timeoutMs = opts.timeoutMs ?? DELEGATED_IPAM_TIMEOUT_MS;
  const exit = await runBounded(binary, childEnv, JSON.stringify(conf.raw), timeoutMs);
  const what = `IPAM plugin '${type}' ${command}`;
  switch (exit.kind) {
    case 'spawn-error':
      throw new CniError(ERR.IPAM_PLUGIN, `${what}: could not run ${binary}: ${exit.message}`);
    case 'timeout':
      throw new CniError(ERR.IPAM_PLUGIN, `${what} did not finish within ${timeoutMs / 1000} s (tsnet's limit for a delegated IPAM plugin): tsnet killed it`);
    case 'flood':
      throw new CniError(ERR.IPAM_PLUGIN, `${what} printed more than ${MAX_PLUGIN_OUTPUT} bytes: tsnet killed it`);
    case 'exited':
      if (exit.code === 0) return exit.stdout;
      throw new CniError(ERR.IPAM_PLUGIN, `${what} failed: ${failureText(exit.stdout) || (exit.signal ? `killed by ${exit.signal}` : `exit ${exit.code}`)}`);
  }
}

/** A CNI error object's msg and details, or the text as printed. */
function failureText(stdout: string): string {
  try {
    const e = JSON.parse(stdout) as { msg?: unknown; details?: unknown };
    return [e.msg, e.details].filter((x) => typeof x === 'string' && x).join(': ');
  } catch {
    return stdout.trim();
  }
}

type Exit =
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null; stdout: string }
  | { kind: 'timeout' }
  | { kind: 'flood' }
  | { kind: 'spawn-error'; message: string };

/**
 * Runs a program with input on its stdin and collects its stdout, never longer than timeoutMs and
 * never more than MAX_PLUGIN_OUTPUT. Always resolves: a failure to run is an outcome too. The
 * program leads a process group of its own, so a timeout kills what it started as well (a shell
 * script's `sleep` would otherwise hold the pipe open).
 */
function runBounded(binary: string, env: Record<string, string>, input: string, timeoutMs: number): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'inherit'], detached: true });
    let settled = false;
    const settle = (exit: Exit) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(exit);
    };
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      settle({ kind: 'timeout' });
    }, timeoutMs);
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      stdout += d;
      if (stdout.length > MAX_PLUGIN_OUTPUT) {
        killGroup();
        settle({ kind: 'flood' });
      }
    });
    // a plugin may exit without reading its input: EPIPE here is its business, and its exit
    // status says how it went (an unhandled 'error' event would end the daemon)
    child.stdin.on('error', () => undefined);
    child.stdout.on('error', () => undefined);
    child.on('error', (err) => settle({ kind: 'spawn-error', message: err.message }));
    child.on('close', (code, signal) => settle({ kind: 'exited', code, signal, stdout }));
    child.stdin.end(input);
  });
}
