// Rollback for operations that create several kernel objects: each step that made something
// pushes how to unmake it; on failure the steps run in reverse, so a request that fails part-way
// leaves nothing behind. Undo steps never throw past run(): they are best effort by nature, and
// what they could not remove is reported and left to the start-up reconcile.

export interface Logger {
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export class Undo {
  private readonly steps: { what: string; fn: () => void }[] = [];

  push(what: string, fn: () => void): void {
    this.steps.push({ what, fn });
  }

  /** Runs the steps in reverse order; returns what could not be undone. */
  run(log: Logger = silentLogger): string[] {
    const failed: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        step.fn();
      } catch (err) {
        failed.push(step.what);
        log.warn({ err, step: step.what }, 'rollback step failed; start-up reconcile will retry');
      }
    }
    return failed;
  }

  /** The operation succeeded: forget the steps. */
  commit(): void {
    this.steps.length = 0;
  }
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
