// The plugin socket is 0600 from the moment it exists: whoever can connect to it can create
// networks and publish ports, so there must be no window in which it has the umask's mode.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildServer, listenUnix } from './server.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('plugin socket permissions', () => {
  it('is 0600 already when the server starts listening, not only after listen returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsnet-sock-'));
    dirs.push(dir);
    const socketPath = join(dir, 'tsnet.sock');
    const app = buildServer({
      network: {} as never,
      ipam: {} as never,
    });
    let modeAtListening = -1;
    // the first moment a client could connect: the server's 'listening' event
    app.server.once('listening', () => {
      modeAtListening = statSync(socketPath).mode & 0o777;
    });
    try {
      await listenUnix(app, socketPath);
      expect(modeAtListening).toBe(0o600);
      expect(statSync(socketPath).mode & 0o777).toBe(0o600);
    } finally {
      await app.close();
    }
  });
});
