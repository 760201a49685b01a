// The daemon's last line of defence: an exception nobody caught (an 'error' event without a
// listener, a throw in a timer callback) or a promise rejection nobody handled. Node's default is
// to print it to stderr and exit, which takes Docker's and every CNI runtime's networking calls
// down with the daemon, and nothing restarts it (on these machines systemd is not PID 1; `make up`
// starts the daemon by hand). Requests already turn their own failures into error replies (plugin-
// api/server.ts, cni/cni-service.ts); what reaches these handlers escaped every request.
//
// The choice: log it with its stack and keep serving. tsnet's state is the SQLite store, where each
// change is one transaction (a throw cannot leave it half-written), and the kernel, which every
// start reconciles with the store; so one stray error does not corrupt the process, and dying
// would only turn a bug in one request into an outage for all. But a process that keeps throwing
// is broken rather than unlucky (a wedged library, a handle in a bad state): past MAX_STRAY_ERRORS
// within STRAY_ERROR_WINDOW_MS it exits with 70 (EX_SOFTWARE), so it is restarted from a clean
// slate; networks and containers keep working while it is down.
import type { Logger } from '../core/log.js';

export const MAX_STRAY_ERRORS = 10;
export const STRAY_ERROR_WINDOW_MS = 60_000;
/** sysexits.h EX_SOFTWARE, as core/errors.ts uses for internal errors */
export const STRAY_ERROR_EXIT_CODE = 70;

type StrayEvent = 'uncaughtException' | 'unhandledRejection';

export interface ProcessEvents {
  on(event: StrayEvent, listener: (err: unknown) => void): unknown;
}

export interface LastResortOptions {
  log: Logger;
  /** ends the process (after the log is flushed) */
  exit: (code: number) => void;
  now?: () => number;
}

/** Installs the handlers on proc (the daemon passes `process`). */
export function keepServingOnStrayErrors(proc: ProcessEvents, o: LastResortOptions): void {
  const now = o.now ?? Date.now;
  let recent: number[] = [];
  let exiting = false;
  const handle = (event: StrayEvent) => (err: unknown) => {
    const t = now();
    recent = [...recent.filter((x) => t - x < STRAY_ERROR_WINDOW_MS), t];
    // an Error goes under `err` (pino logs its stack); a rejection may carry any value
    const detail = err instanceof Error ? { err } : { reason: String(err) };
    o.log.error({ ...detail, event }, `${event}: an error escaped every request; tsnet keeps serving (bug: please report it with this stack)`);
    if (recent.length >= MAX_STRAY_ERRORS && !exiting) {
      exiting = true;
      o.log.error({ event, errors: recent.length, windowMs: STRAY_ERROR_WINDOW_MS }, `${recent.length} stray errors within ${STRAY_ERROR_WINDOW_MS / 1000} s: tsnet exits to be restarted clean (networks and containers keep working)`);
      o.exit(STRAY_ERROR_EXIT_CODE);
    }
  };
  proc.on('uncaughtException', handle('uncaughtException'));
  proc.on('unhandledRejection', handle('unhandledRejection'));
}
