// The logger every layer takes: the subset of pino's interface tsnet uses, so a layer can be given
// the daemon's logger, a child of it, or silentLogger in tests.

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
