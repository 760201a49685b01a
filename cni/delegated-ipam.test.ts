// Delegated IPAM against real programs: small shell-script plugins in a folder of the test's own,
// and /bin/true and /usr/bin/yes for the plugin that reads nothing and the one that never stops
// talking. Every outcome is a CniError naming the plugin, never an exception that escapes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { delegatedAdd, delegatedDel, MAX_PLUGIN_OUTPUT } from './delegated-ipam.js';
import { CniError, parseConfig, type CniEnv, type NetConf } from './spec.js';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tsnet-delegated-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function plugin(name: string, script: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, name), 0o755);
}

function env(path: string[] = [dir]): CniEnv {
  return { command: 'ADD', containerId: 'c1', netns: '/run/netns/c1', ifName: 'eth0', args: { K: 'V' }, path };
}

function conf(ipam: Record<string, unknown>): NetConf {
  return parseConfig(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'tsnet', ipam }), 'ADD');
}

async function failure(p: Promise<unknown>): Promise<CniError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CniError);
  return err as CniError;
}

/** True when the process is gone (or a zombie nobody has reaped yet: it runs nothing). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z');
  } catch {
    return true;
  }
}

describe('delegated IPAM', () => {
  it('hands the plugin the runtime environment and the configuration, and reads its IPv4 address', async () => {
    plugin('echoes', `cat > ${dir}/echoes.in; env | grep ^CNI_ | sort > ${dir}/echoes.env
echo '{"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"},{"address":"10.239.50.5/24","gateway":"10.239.50.1"}]}'`);
    const c = conf({ type: 'echoes', ranges: [[{ subnet: '10.239.50.0/24' }]] });
    expect(await delegatedAdd(env(), c)).toEqual({ address: '10.239.50.5/24', gateway: '10.239.50.1' });
    expect(JSON.parse(readFileSync(join(dir, 'echoes.in'), 'utf8'))).toEqual(c.raw);
    expect(readFileSync(join(dir, 'echoes.env'), 'utf8').trim().split('\n')).toEqual([
      'CNI_ARGS=K=V',
      'CNI_COMMAND=ADD',
      'CNI_CONTAINERID=c1',
      'CNI_IFNAME=eth0',
      'CNI_NETNS=/run/netns/c1',
      `CNI_PATH=${dir}`,
    ]);
  });

  it('a plugin that exits without reading its stdin: a CNI error naming it, no EPIPE escaping', async () => {
    // larger than a pipe's buffer, so the write is still pending when "true" exits: EPIPE for sure
    const big = conf({ type: 'true', padding: 'x'.repeat(256 * 1024) });
    const e = await failure(delegatedAdd(env(['/bin', '/usr/bin']), big));
    expect(e.code).toBe(103);
    expect(e.message).toBe("IPAM plugin 'true' ADD exited without printing a result");
    // DEL through it is fine: it exits 0 and DEL prints nothing
    await expect(delegatedDel(env(['/bin', '/usr/bin']), big)).resolves.toBeUndefined();
  });

  it('a plugin that does not finish in time is killed, with whatever it started, and named with the limit', async () => {
    plugin('slow', `sleep 1000 & echo $! > ${dir}/slow.pid; wait`);
    const e = await failure(delegatedAdd(env(), conf({ type: 'slow' }), { timeoutMs: 300 }));
    expect(e.code).toBe(103);
    expect(e.message).toBe("IPAM plugin 'slow' ADD did not finish within 0.3 s (tsnet's limit for a delegated IPAM plugin): tsnet killed it");
    const sleeper = Number(readFileSync(join(dir, 'slow.pid'), 'utf8'));
    // SIGKILL is delivered before kill() returns; the kernel tears the process down right after
    for (let i = 0; i < 100 && !gone(sleeper); i++) await new Promise((r) => setTimeout(r, 20));
    expect(gone(sleeper)).toBe(true);
  });

  it('a plugin that never stops printing is killed past the output limit', async () => {
    const e = await failure(delegatedAdd(env(['/usr/bin', '/bin']), conf({ type: 'yes' })));
    expect(e).toMatchObject({ code: 103, message: `IPAM plugin 'yes' ADD printed more than ${MAX_PLUGIN_OUTPUT} bytes: tsnet killed it` });
  });

  it("passes on the plugin's own error, and says what else went wrong", async () => {
    plugin('refuses', `cat >/dev/null; echo '{"cniVersion":"1.0.0","code":11,"msg":"no free address","details":"range 10.239.51.0/24 is full"}'; exit 1`);
    plugin('garbage', 'cat >/dev/null; echo "not json"');
    plugin('v6only', `cat >/dev/null; echo '{"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"}]}'`);
    plugin('dies', 'kill -9 $$');
    expect(await failure(delegatedAdd(env(), conf({ type: 'refuses' })))).toMatchObject({ code: 103, message: "IPAM plugin 'refuses' ADD failed: no free address: range 10.239.51.0/24 is full" });
    expect(await failure(delegatedAdd(env(), conf({ type: 'garbage' })))).toMatchObject({ code: 103, message: "IPAM plugin 'garbage' printed no JSON result" });
    expect(await failure(delegatedAdd(env(), conf({ type: 'v6only' })))).toMatchObject({ code: 103, message: "IPAM plugin 'v6only' returned no IPv4 address" });
    expect(await failure(delegatedAdd(env(), conf({ type: 'dies' })))).toMatchObject({ code: 103, message: "IPAM plugin 'dies' ADD failed: killed by SIGKILL" });
    expect(await failure(delegatedAdd(env(), conf({ type: 'missing' })))).toMatchObject({ code: 103, message: `IPAM plugin 'missing' not found in CNI_PATH (${dir})` });
    expect(await failure(delegatedAdd(env(), conf({ type: '../bin/true' })))).toMatchObject({ code: 7 });
  });
});
