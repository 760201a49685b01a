import { errnoName, strerror } from '../libc.js';

/**
 * What an operation was doing, for the error a person reads: `what` completes "cannot ...",
 * and `messages` says it better for the errnos that have a plain meaning here.
 */
export interface OpContext {
  op: string;
  what: string;
  messages?: Partial<Record<string, string>>;
}

export class NetlinkError extends Error {
  readonly code: string;

  constructor(
    readonly op: string,
    readonly errno: number,
    message: string,
    /** the kernel's extended-ack text, when it sent one */
    readonly kernelMessage?: string,
  ) {
    super(kernelMessage ? `${message}: ${kernelMessage}` : message);
    this.name = 'NetlinkError';
    this.code = errnoName(errno);
  }

  static from(ctx: OpContext, errno: number, kernelMessage?: string): NetlinkError {
    const message = ctx.messages?.[errnoName(errno)] ?? `cannot ${ctx.what}: ${strerror(errno)}`;
    return new NetlinkError(ctx.op, errno, message, kernelMessage);
  }
}

export function isNetlinkError(err: unknown, ...codes: string[]): err is NetlinkError {
  return err instanceof NetlinkError && (codes.length === 0 || codes.includes(err.code));
}
