import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkProcSys } from './proc-sys.js';

const dir = mkdtempSync(join(tmpdir(), 'tsnet-procsys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('TSNET_PROC_SYS checked at start', () => {
  it('a folder holding net/ipv4/ip_forward passes (the real one, and a stand-in)', () => {
    mkdirSync(join(dir, 'good/net/ipv4'), { recursive: true });
    writeFileSync(join(dir, 'good/net/ipv4/ip_forward'), '0');
    expect(() => checkProcSys(join(dir, 'good'))).not.toThrow();
    expect(() => checkProcSys('/proc/sys')).not.toThrow();
  });

  it('a missing path, a file, a folder that is no /proc/sys: refused naming the path and why', () => {
    writeFileSync(join(dir, 'file'), '');
    mkdirSync(join(dir, 'empty'));
    expect(() => checkProcSys(join(dir, 'missing'))).toThrow(`TSNET_PROC_SYS '${join(dir, 'missing')}': cannot be read (ENOENT); give the folder where the host's /proc/sys is mounted writable`);
    expect(() => checkProcSys(join(dir, 'file'))).toThrow(`TSNET_PROC_SYS '${join(dir, 'file')}': not a folder`);
    expect(() => checkProcSys(join(dir, 'empty'))).toThrow(`has no ${join(dir, 'empty')}/net/ipv4/ip_forward (ENOENT): not a /proc/sys`);
  });
});
