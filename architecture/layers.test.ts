// The layer check over the real tree (every production .ts file git knows or would add), and the
// check itself on made-up sources, so that a check that finds nothing can be told from one that
// cannot find anything.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LAYERS, importsOf, violationsOf } from './layers.js';

const ROOT = join(import.meta.dirname, '..');

function productionFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: ROOT, encoding: 'utf8' });
  return out.split('\n').filter((f) => f && !f.endsWith('.test.ts') && f.split('/')[0] in LAYERS);
}

describe('layer order', () => {
  it('no production file imports from a layer above its own', () => {
    const files = productionFiles();
    expect(files.length).toBeGreaterThan(50);
    const found = files.flatMap((f) => {
      let text: string;
      try {
        text = readFileSync(join(ROOT, f), 'utf8');
      } catch {
        return []; // deleted in the work tree, not yet in git
      }
      return violationsOf(f, text);
    });
    expect(found.map((v) => `${v.file} imports ${v.imports} (${v.fromLayer} -> ${v.toLayer})`)).toEqual([]);
  });

  it('core imports nothing of tsnet', () => {
    const core = productionFiles().filter((f) => f.startsWith('core/'));
    expect(core.length).toBeGreaterThan(0);
    for (const f of core) {
      const outside = importsOf(readFileSync(join(ROOT, f), 'utf8')).filter((s) => s.startsWith('../'));
      expect(outside, f).toEqual([]);
    }
  });

  it('finds an upward import, static or dynamic, and allows same-layer and downward ones', () => {
    const src = [
      "import { Netlink } from '../native/netlink/netlink.js';",
      "import { UserError } from '../../core/errors.js';",
      "import { plan } from './plan.js';",
      "const d = await import('../../daemon/controller.js');",
      "export { buildServer } from '../../plugin-api/server.js';",
    ].join('\n');
    const v = violationsOf('drivers/bridge/x.ts', src);
    expect(v.map((x) => `${x.imports} ${x.toLayer}`)).toEqual(['daemon/controller.js daemon', 'plugin-api/server.js plugin-api']);
    expect(violationsOf('store/x.ts', "import { Ipam } from '../ipam/ipam.js';")).toHaveLength(1);
    expect(violationsOf('store/x.test.ts', "import { Ipam } from '../ipam/ipam.js';")).toEqual([]);
    expect(violationsOf('daemon/daemon.ts', "import { buildServer } from '../plugin-api/server.js';")).toEqual([]);
  });
});
