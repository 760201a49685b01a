// The logger every layer takes: the subset of pino's interface tsnet uses, so a layer can be given
// the daemon's logger, a child of it, or silentLogger in tests. Also what a failure's log line
// says of its cause, and the daemon's log file, rotated when it passes a size.
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Logger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** Warnings to stderr: for code run outside the daemon (tests, benchmarks) that gets no logger. */
export const stderrLogger: Logger = {
  info() {},
  warn: (obj, msg) => console.warn(msg ?? '', obj),
  error: (obj, msg) => console.error(msg ?? '', obj),
};

/**
 * What an error says about its cause, for the log line of a failed request: its class and
 * message, then each `cause` it wraps ("NetlinkError: ... <- Error: ..."). The user-facing
 * message is logged beside it; for an internal error the two differ.
 */
export function errorCause(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(' <- ');
}

// ---------------------------------------------------------------- the daemon's log file

/** The default cap of the log file before it is rotated to FILE.1. */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/** "10MiB", "512k", "65536" -> bytes; undefined when the text is not such a size or is below 4 KiB. */
export function parseLogSize(text: string): number | undefined {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) && bytes >= 4096 ? bytes : undefined;
}

/**
 * The daemon's log file, capped in size: a write that takes it past `maxBytes` is followed by a
 * rotation, FILE becoming FILE.1 (replacing the one before) and a new FILE begun, so the log never
 * holds more than about twice the cap on disk. Writes are synchronous (pino's `write` contract:
 * a line is on disk when the call returns, so nothing is lost when the daemon dies), and a write
 * that fails (disk full) is dropped rather than stopping the daemon.
 */
export class CappedLogFile {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    readonly maxBytes: number = DEFAULT_LOG_MAX_BYTES,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  write(line: string): boolean {
    if (this.fd < 0) return false;
    try {
      this.size += writeSync(this.fd, line);
    } catch {
      return false;
    }
    if (this.size >= this.maxBytes) this.rotate();
    return true;
  }

  /** pino's flush: every write is already on disk. */
  flush(cb?: (err?: Error) => void): void {
    cb?.();
  }

  /** pino calls it at exit; writes after it are dropped. */
  flushSync(): void {}

  end(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private rotate(): void {
    try {
      renameSync(this.path, `${this.path}.1`);
      const fd = openSync(this.path, 'a', 0o640);
      closeSync(this.fd);
      this.fd = fd;
      this.size = 0;
    } catch {
      // the file stays as it is and grows; the next write tries again
    }
  }
}
