// Rollback for operations that make several things (links, addresses, rules, port reservations,
// allocations, rows): each step that made something pushes how to unmake it; on failure the steps
// run in reverse, so a request that fails part-way leaves nothing behind. Undo steps never throw
// past run(): they are best effort by nature, and what they could not remove is logged and left to
// the start-up reconcile. One mechanism for the drivers, the CNI service and the lab; steps may be
// synchronous or return a promise (runAsync awaits each in turn).
import { silentLogger, type Logger } from './log.js';

type Step = { what: string; fn: () => unknown };

export class Undo {
  private readonly steps: Step[] = [];

  /** `what` names the step in the log when it fails ("remove veth tsv1234"). */
  push(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  /** Runs the (synchronous) steps in reverse order; returns what could not be undone. */
  run(log: Logger = silentLogger): string[] {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        const r = step.fn();
        if (r instanceof Promise) r.catch((err: unknown) => warn(log, err, step.what));
      } catch (err) {
        failed.push(step.what);
        warn(log, err, step.what);
      }
    }
    return failed;
  }

  /** Runs the steps in reverse order, awaiting each; returns what could not be undone. */
  async runAsync(log: Logger = silentLogger): Promise<string[]> {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
      } catch (err) {
        failed.push(step.what);
        warn(log, err, step.what);
      }
    }
    return failed;
  }

  /** The operation succeeded: forget the steps. */
  commit(): void {
    this.steps.length = 0;
  }
}

function warn(log: Logger, err: unknown, what: string): void {
  log.warn({ err, step: what }, 'rollback step failed; start-up reconcile will retry');
}

/** Runs fn with an Undo; on error rolls back and rethrows. */
export function withUndo<T>(log: Logger, fn: (undo: Undo) => T): T {
  const undo = new Undo();
  try {
    const result = fn(undo);
    undo.commit();
    return result;
  } catch (err) {
    undo.run(log);
    throw err;
  }
}

/** withUndo for asynchronous work: on rejection awaits every undo step, newest first, then rethrows. */
export async function withUndoAsync<T>(log: Logger, fn: (undo: Undo) => Promise<T>): Promise<T> {
  const undo = new Undo();
  try {
    const result = await fn(undo);
    undo.commit();
    return result;
  } catch (err) {
    await undo.runAsync(log);
    throw err;
  }
}
