// nftables through libnftables (the library behind the `nft` command), called in-process with
// koffi: no `nft` subprocess, one netlink batch per script, errors with libnftables' own text.
//
// Namespaces: libnftables opens its netlink socket in nft_ctx_new(), and a netlink socket stays
// in the network namespace it was created in. So an Nft opened while the calling thread is inside
// another namespace keeps programming that namespace, whichever namespace the thread is in later.
//
// A script of tens of thousands of elements (the start-up's whole table) can instead go to a
// child `nft -f -` (runDetached): libnftables needs ~60 MB of C heap for one at 4,000 endpoints,
// which glibc keeps in the process after it is freed, and a process's first large transaction
// spends most of its time faulting that heap in (bench/README.md (f)). In a child, the memory
// goes with the child, and the daemon goes on with its start meanwhile. A large script or listing
// run in process (drift repair's full sync, its listings) is followed by malloc_trim(3), which
// gives that freed heap back to the kernel instead of keeping it in the daemon's RSS.
import koffi, { type IKoffiLib } from 'koffi';
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { nftTransactionDuration, timed } from '../core/metrics.js';
import { mallocTrim } from './libc.js';

/** How often a call whose cache read another process's ruleset change interrupted is made. */
const MAX_INTERRUPTED_ATTEMPTS = 5;

/** Script plus answer size from which libnftables' heap is worth giving back (a few networks' worth stays). */
const TRIM_FROM_BYTES = 256 * 1024;


/** libnftables' error text for a netlink dump the kernel marked interrupted (EINTR). */
function interrupted(err: string): boolean {
  return /Interrupted system call/.test(err);
}

/** A script or listing libnftables refused; `detail` is its error output, verbatim. */
export class NftError extends Error {
  constructor(
    readonly command: string,
    readonly detail: string,
  ) {
    super(`nftables refused the ${describeCommand(command)}: ${detail.trim() || 'no error text from libnftables'}`);
    this.name = 'NftError';
  }

  /** True when the error says an object named in the command does not exist. */
  get isMissing(): boolean {
    return /No such file or directory/.test(this.detail);
  }
}

// from <nftables/libnftables.h> (enum nft_output_flags)
const OUTPUT_HANDLE = 1 << 3;
const OUTPUT_JSON = 1 << 4;
const OUTPUT_TERSE = 1 << 11;

interface LibNftables {
  ctxNew(flags: number): unknown;
  ctxFree(ctx: unknown): void;
  bufferOutput(ctx: unknown): number;
  bufferError(ctx: unknown): number;
  outputBuffer(ctx: unknown): string | null;
  errorBuffer(ctx: unknown): string | null;
  setOutputFlags(ctx: unknown, flags: number): void;
  setDryRun(ctx: unknown, dry: boolean): void;
  runCmd(ctx: unknown, buf: string): number;
}

let lib: LibNftables | undefined;

function load(): LibNftables {
  if (lib) return lib;
  let so: IKoffiLib;
  try {
    so = koffi.load('libnftables.so.1');
  } catch (err) {
    throw new Error(`cannot load libnftables.so.1 (Debian package libnftables1, installed with nftables): ${(err as Error).message}`);
  }
  const ctxPtr = koffi.pointer(koffi.opaque());
  lib = {
    ctxNew: so.func('nft_ctx_new', ctxPtr, ['uint32_t']),
    ctxFree: so.func('nft_ctx_free', 'void', [ctxPtr]),
    bufferOutput: so.func('nft_ctx_buffer_output', 'int', [ctxPtr]),
    bufferError: so.func('nft_ctx_buffer_error', 'int', [ctxPtr]),
    outputBuffer: so.func('nft_ctx_get_output_buffer', 'const char *', [ctxPtr]),
    errorBuffer: so.func('nft_ctx_get_error_buffer', 'const char *', [ctxPtr]),
    setOutputFlags: so.func('nft_ctx_output_set_flags', 'void', [ctxPtr, 'unsigned int']),
    setDryRun: so.func('nft_ctx_set_dry_run', 'void', [ctxPtr, 'bool']),
    runCmd: so.func('nft_run_cmd_from_buffer', 'int', [ctxPtr, 'const char *']),
  };
  return lib;
}

/** What the firewall needs of an nftables context (Nft, or a fake in unit tests). */
export interface NftApi {
  run(script: string): void;
  /** run() in a child process, where one is possible (see the header); the same errors */
  runDetached?(script: string): Promise<void>;
  /**
   * A listing as JSON. terse: without set and map elements, which `list ruleset` then does not
   * even read from the kernel (libnftables 1.0.6 reads them for `list table` all the same).
   */
  listJson(cmd: string, opts?: { terse?: boolean }): unknown;
  listText(cmd: string): string;
}

export class Nft implements NftApi {
  private ctx: unknown;

  private constructor(
    private readonly lib: LibNftables,
    ctx: unknown,
    /** the network namespace the context programs (its /proc link text) */
    private readonly netns: string,
  ) {
    this.ctx = ctx;
  }

  /** Opens a context in the calling thread's current network namespace. */
  static open(): Nft {
    const l = load();
    const ctx = l.ctxNew(0 /* NFT_CTX_DEFAULT: with a netlink socket */);
    if (!ctx) throw new Error('nft_ctx_new failed: out of memory or no netlink socket');
    if (l.bufferOutput(ctx) !== 0 || l.bufferError(ctx) !== 0) {
      l.ctxFree(ctx);
      throw new Error('libnftables could not buffer its output');
    }
    return new Nft(l, ctx, threadNetns());
  }

  /**
   * Runs an nft script as one transaction: either every command in it takes effect or none does.
   * Throws NftError with libnftables' message (which quotes the offending line) otherwise.
   */
  run(script: string): void {
    timed((s) => nftTransactionDuration.observe(s), () => this.exec(script, 0, false));
  }

  /**
   * run() in a child `nft -f -` (see the header), when the child would program the same
   * namespace as this context: a child starts in the process's namespace, so a context opened
   * inside another one (an overlay's) runs the script in process. Also in process when there is
   * no `nft` command. The error is the same NftError, with nft's own text.
   */
  async runDetached(script: string): Promise<void> {
    if (this.ctx === null) throw new Error('nftables context already closed');
    const start = performance.now();
    for (let attempt = 1; ; attempt++) {
      // checked at each attempt: a retry starts its child from wherever the thread is then
      if (processNetns() !== this.netns) return this.run(script);
      const r = await nftChild(script);
      if (r === 'no nft') return this.run(script);
      if (r.code === 0 || !interrupted(r.stderr) || attempt >= MAX_INTERRUPTED_ATTEMPTS) {
        nftTransactionDuration.observe((performance.now() - start) / 1000);
        if (r.code !== 0) throw new NftError(script, r.stderr);
        return;
      }
    }
  }

  /** Parses and evaluates a script against the current ruleset without committing it. */
  check(script: string): void {
    this.exec(script, 0, true);
  }

  /** A list command (e.g. `list table inet tsnet`) with its answer as JSON, handles included (NftApi.listJson). */
  listJson(cmd: string, opts: { terse?: boolean } = {}): unknown {
    const out = this.exec(cmd, OUTPUT_JSON | OUTPUT_HANDLE | (opts.terse ? OUTPUT_TERSE : 0), false);
    if (out.trim() === '') return { nftables: [] };
    return JSON.parse(out) as unknown;
  }

  /** A list command with its answer as nft text (what `nft list ...` prints). */
  listText(cmd: string): string {
    return this.exec(cmd, 0, false);
  }

  close(): void {
    if (this.ctx === null) return;
    this.lib.ctxFree(this.ctx);
    this.ctx = null;
  }

  private exec(script: string, flags: number, dryRun: boolean): string {
    if (this.ctx === null) throw new Error('nftables context already closed');
    const { lib: l, ctx } = this;
    l.setOutputFlags(ctx, flags);
    l.setDryRun(ctx, dryRun);
    // reading a buffer also rewinds it, so nothing of one call leaks into the next
    for (let attempt = 1; ; attempt++) {
      l.outputBuffer(ctx);
      l.errorBuffer(ctx);
      const rc = l.runCmd(ctx, script);
      const out = l.outputBuffer(ctx) ?? '';
      const err = l.errorBuffer(ctx) ?? '';
      if (rc === 0 || !interrupted(err) || attempt >= MAX_INTERRUPTED_ATTEMPTS) {
        if (dryRun) l.setDryRun(ctx, false);
        if (script.length + out.length >= TRIM_FROM_BYTES) mallocTrim();
        if (rc !== 0) throw new NftError(script, err);
        return out;
      }
      // someone else changed the ruleset while libnftables read it into its cache (the kernel
      // marks such a dump interrupted): nothing was committed, so the same call is made again
    }
  }
}

/** The calling thread's network namespace, e.g. 'net:[4026531840]'. */
function threadNetns(): string {
  return readlinkSync('/proc/thread-self/ns/net');
}

/** The namespace a child process starts in: the main thread's. */
function processNetns(): string {
  return readlinkSync('/proc/self/ns/net');
}

/**
 * `nft -f -` with the script on stdin: its exit code and error text, or 'no nft' when there is no
 * such command. glibc's malloc is told to take transparent huge pages for its heap
 * (glibc.malloc.hugetlb, glibc 2.35 and later; ignored elsewhere): a large script's heap is then
 * faulted in 2 MB at a time, not 4 KB, which is most of such a process's time (bench/README.md (f)).
 */
function nftChild(script: string): Promise<{ code: number | null; stderr: string } | 'no nft'> {
  return new Promise((resolve) => {
    const tunables = [process.env.GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1'].filter(Boolean).join(':');
    const child = spawn('nft', ['-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, GLIBC_TUNABLES: tunables } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => void (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT' ? 'no nft' : { code: null, stderr: err.message }));
    child.on('close', (code) => resolve({ code, stderr }));
    // a child that died early (a refused script) closes its stdin: its exit code tells why
    child.stdin.on('error', () => {});
    child.stdin.end(script);
  });
}

function describeCommand(script: string): string {
  const lines = script.split('\n').filter((l) => l.trim() !== '');
  if (lines.length <= 1) return `command '${(lines[0] ?? '').trim().slice(0, 120)}'`;
  return `transaction of ${lines.length} lines (nothing of it was applied)`;
}
