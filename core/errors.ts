// What went wrong, classified by what it means for the caller, and how each class is shown on
// every way into tsnet. A lower layer throws one of these; the edges (plugin-api/ for Docker,
// cni/ for CNI runtimes, cli/ for the command line) map it in one place each, with the functions
// below, so no layer imports a higher one to get an error class.
//
//   invalid      the request or its options are wrong; the message says how to fix them
//   not-found    the thing named does not exist
//   conflict     it clashes with something that exists (an address, a port, a name in use)
//   unavailable  something tsnet depends on is not there now (the daemon, the cluster store); try later
//   internal     anything else: a tsnet bug or an unexpected kernel answer; the log has the stack

export type ErrorKind = 'invalid' | 'not-found' | 'conflict' | 'unavailable' | 'internal';

/**
 * An error whose message is meant for the user (shown by `docker network create`, `docker run`, a
 * CNI runtime or the CLI). Say what was wrong and how to fix it. Anything that is not a UserError
 * is reported as an internal error.
 */
export class UserError extends Error {
  readonly kind: Exclude<ErrorKind, 'internal'>;

  constructor(message: string, kind: Exclude<ErrorKind, 'internal'> = 'invalid') {
    super(message);
    this.name = 'UserError';
    this.kind = kind;
  }
}

export class NotFoundError extends UserError {
  constructor(message: string) {
    super(message, 'not-found');
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends UserError {
  constructor(message: string) {
    super(message, 'conflict');
    this.name = 'ConflictError';
  }
}

export class UnavailableError extends UserError {
  constructor(message: string) {
    super(message, 'unavailable');
    this.name = 'UnavailableError';
  }
}

/** The class of any thrown value. */
export function errorKind(err: unknown): ErrorKind {
  return err instanceof UserError ? err.kind : 'internal';
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The message a caller sees: a UserError's own message, or a pointer to the log for anything else
 * (`where` names the request, e.g. "in CreateNetwork").
 */
export function userMessage(err: unknown, where = ''): string {
  if (err instanceof UserError) return err.message;
  return `tsnet internal error${where ? ` ${where}` : ''}: ${errorText(err)} (see the tsnet log)`;
}

/** CNI error codes by class (the spec's 11 for "try again later"; tsnet's 100 and 999, see the README). */
export const CNI_CODE_BY_KIND: Record<ErrorKind, number> = {
  invalid: 100,
  'not-found': 100,
  conflict: 100,
  unavailable: 11,
  internal: 999,
};

/** CLI exit codes by class: 1 for what the user can fix, 69 (EX_UNAVAILABLE) and 70 (EX_SOFTWARE) after sysexits.h. */
export const EXIT_CODE_BY_KIND: Record<ErrorKind, number> = {
  invalid: 1,
  'not-found': 1,
  conflict: 1,
  unavailable: 69,
  internal: 70,
};
