// The few libc calls tsnet makes, through koffi. All synchronous: a netlink round trip takes
// microseconds, and a call that cannot yield cannot interleave with a setns of the thread.
import koffi from 'koffi';
import { constants } from 'node:os';

const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t addrlen)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
  send: libc.func('long send(int fd, const void *buf, size_t len, int flags)'),
  recv: libc.func('long recv(int fd, void *buf, size_t len, int flags)'),
  // open(2) is variadic only for O_CREAT's mode, which tsnet never passes
  open: libc.func('int open(const char *path, int flags)'),
  close: libc.func('int close(int fd)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  flock: libc.func('int flock(int fd, int operation)'),
  mallocTrim: libc.func('int malloc_trim(size_t pad)'),
};

/** flock(2) on an open file; -1 and koffi.errno() on failure, as the call itself (flock.ts). */
export function flockFd(fd: number, operation: number): number {
  return c.flock(fd, operation) as number;
}

/** glibc's malloc_trim(0): the heap's free memory given back to the kernel. */
export function mallocTrim(): void {
  c.mallocTrim(0);
}

export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
export const MSG_PEEK = 0x2;
export const MSG_TRUNC = 0x20;
export const SOL_SOCKET = 1;
export const SO_RCVTIMEO = 20;
export const EINTR = 4;
export const ENODEV = 19;

// errno -> name; where two names share a number, the one the kernel's sources use wins
const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(n) && !['ENOTSUP', 'EWOULDBLOCK', 'EDEADLOCK'].includes(name)) ERRNO_NAMES.set(n, name);
}

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

export function strerror(errno: number): string {
  return c.strerror(errno) as string;
}

/** A failed system call: errno with its name ('EEXIST') and the libc text. */
export class SysError extends Error {
  readonly code: string;

  constructor(
    readonly syscall: string,
    readonly errno: number,
    detail?: string,
  ) {
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${strerror(errno)} (${errnoName(errno)})`);
    this.name = 'SysError';
    this.code = errnoName(errno);
  }
}

/** Runs a call that returns -1 on failure and throws SysError with the errno it left. */
function check(syscall: string, result: number, detail?: string): number {
  if (result < 0) throw new SysError(syscall, koffi.errno(), detail);
  return result;
}

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', c.socket(domain, type, protocol));
}

export function bind(fd: number, addr: Buffer): void {
  check('bind', c.bind(fd, addr, addr.length));
}

export function setsockopt(fd: number, level: number, name: number, value: Buffer): void {
  check('setsockopt', c.setsockopt(fd, level, name, value, value.length), `(level ${level}, option ${name})`);
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  setsockopt(fd, level, name, b);
}

export function send(fd: number, data: Buffer): number {
  return check('send', Number(c.send(fd, data, data.length, 0)));
}

/**
 * send(2) on one of koffi's worker threads: for requests the kernel serves slowly inside the
 * call itself (deleting a link waits for RCU, ~20 ms), so the event loop goes on meanwhile.
 */
export function sendAsync(fd: number, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    c.send.async(fd, data, data.length, 0, (err: unknown, n: number | bigint) => {
      if (err) return reject(err);
      const sent = Number(n);
      if (sent < 0) return reject(new SysError('send', koffi.errno()));
      resolve(sent);
    });
  });
}

/** Receives into buf; returns the datagram's full length, which exceeds buf with MSG_TRUNC. */
export function recv(fd: number, buf: Buffer, flags = 0): number {
  for (;;) {
    const n = Number(c.recv(fd, buf, buf.length, flags));
    // a signal (Node's SIGCHLD handler, say) interrupts a recv with a timeout even under SA_RESTART
    if (n < 0 && koffi.errno() === EINTR) continue;
    return check('recv', n);
  }
}

export function open(path: string, flags: number): number {
  return check('open', c.open(path, flags), path);
}

export function close(fd: number): void {
  check('close', c.close(fd));
}

export function setns(fd: number, nstype: number): void {
  check('setns', c.setns(fd, nstype));
}
