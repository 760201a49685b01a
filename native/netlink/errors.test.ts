import { describe, expect, it } from 'vitest';
import { NetlinkError, isNetlinkError } from './errors.js';

describe('NetlinkError', () => {
  const ctx = { op: 'addAddress', what: 'add address 10.1.0.1/24 to br0', messages: { EEXIST: 'address 10.1.0.1/24 already on br0' } };

  it('uses the plain message for its errno and appends the kernel text', () => {
    const err = NetlinkError.from(ctx, 17, 'ipv4: Address already assigned');
    expect(err.message).toBe('address 10.1.0.1/24 already on br0: ipv4: Address already assigned');
    expect(err).toMatchObject({ op: 'addAddress', errno: 17, code: 'EEXIST', kernelMessage: 'ipv4: Address already assigned' });
  });

  it('falls back to "cannot ..." with the libc text', () => {
    const err = NetlinkError.from(ctx, 1);
    expect(err.message).toBe('cannot add address 10.1.0.1/24 to br0: Operation not permitted');
    expect(err.code).toBe('EPERM');
  });

  it('names EOPNOTSUPP as the kernel sources do', () => {
    expect(NetlinkError.from(ctx, 95).code).toBe('EOPNOTSUPP');
    expect(isNetlinkError(NetlinkError.from(ctx, 95), 'EOPNOTSUPP')).toBe(true);
    expect(isNetlinkError(new Error('x'))).toBe(false);
  });
});
