// The test image of every engine the lab and the Docker tests use, built offline: no registry is
// reachable, so it is a tar of a folder holding the static busybox and its applet links, for
// `docker import` (or `podman import`). docker-tests/harness.ts imports it into the host's engine,
// lab/engine.ts into each lab host's.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnavailableError } from '../core/errors.js';

const BUSYBOX = '/bin/busybox';

/** busybox applet names, from the static busybox itself. */
function busyboxApplets(busybox: string): string[] {
  const r = spawnSync(busybox, ['--list'], { encoding: 'utf8' });
  if (r.status !== 0) throw new UnavailableError(`${busybox} --list failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((a) => a && a !== 'busybox');
}

/** A tar of a busybox root file system in a temporary folder; remove() deletes both. */
export function buildBusyboxRootfs(): { tar: string; remove: () => void } {
  if (!existsSync(BUSYBOX)) throw new UnavailableError(`${BUSYBOX} is missing: apt-get install busybox-static`);
  const top = mkdtempSync(join(tmpdir(), 'tsnet-busybox-'));
  const remove = () => rmSync(top, { recursive: true, force: true });
  try {
    const dir = join(top, 'rootfs');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
    for (const applet of busyboxApplets(BUSYBOX)) symlinkSync('busybox', join(dir, 'bin', applet));
    for (const d of ['etc', 'tmp', 'root']) mkdirSync(join(dir, d));
    writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\n');
    const tar = join(top, 'rootfs.tar');
    const r = spawnSync('tar', ['-C', dir, '-cf', tar, '.'], { encoding: 'utf8' });
    if (r.status !== 0) throw new UnavailableError(`tar failed: ${r.stderr}`);
    return { tar, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
