// The managed Docker plugin under test: built with the project's own `make plugin` script
// (scripts/plugin.sh) under a test name, with its state and log in temporary folders, so a tsnet
// of the user's own ("tsnet") is never touched; and its removal at the end, after the leftover
// checks. Used by managed-plugin.test.ts and managed-plugin-reboot.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeDaemonKernelState, repoRoot, run, type CommandResult } from '../test-support/commands.js';
import { internalErrors, leftoversOf, type HostPort } from '../test-support/daemon-leftovers.js';
import { docker } from './harness.js';

export interface TestPlugin {
  /** the plugin's name: its socket, instance, table ('-' -> '_') and link tags */
  readonly name: string;
  /** what networks are created with: the name and its tag */
  readonly driver: string;
  readonly table: string;
  readonly stateDir: string;
  readonly logDir: string;
  /** runs scripts/plugin.sh for it (as another VERSION when given) */
  make(version?: string): CommandResult;
  /** Docker's ID of the installed plugin */
  id(): string;
  /**
   * For afterAll: when the plugin is installed, what its daemon still holds (leftoversOf, `ports`
   * included) and the internal errors of its log; then the plugin and its kernel state are removed
   * (the folders too when nothing was wrong). Throws listing the problems.
   */
  finish(ports: HostPort[]): Promise<void>;
}

export function testPlugin(name: string): TestPlugin {
  const stateDir = mkdtempSync(join(tmpdir(), `${name}-state-`));
  const logDir = mkdtempSync(join(tmpdir(), `${name}-log-`));
  const driver = `${name}:latest`;
  const table = name.replace(/-/g, '_');
  return {
    name,
    driver,
    table,
    stateDir,
    logDir,
    make: (version) => {
      const vars = [`PLUGIN=${name}`, `STATE_DIR=${stateDir}`, `LOG_DIR=${logDir}`, ...(version ? [`VERSION=${version}`] : [])];
      return run('env', [...vars, join(repoRoot(), 'scripts/plugin.sh')], { timeoutMs: 300_000 });
    },
    id: () => docker(['plugin', 'inspect', '--format', '{{.Id}}', driver]).stdout.trim(),
    finish: async (ports) => {
      const problems: string[] = [];
      try {
        if (docker(['plugin', 'inspect', driver]).code === 0) {
          problems.push(...(await leftoversOf({ instance: name, table, stateDir }, ports)));
          problems.push(...internalErrors(join(logDir, 'tsnet.log')).map((l) => `log: ${l}`));
        }
      } finally {
        docker(['plugin', 'disable', '--force', driver]);
        docker(['plugin', 'rm', '--force', driver]);
        removeDaemonKernelState(name, table);
        if (problems.length === 0) {
          rmSync(stateDir, { recursive: true, force: true });
          rmSync(logDir, { recursive: true, force: true });
        }
      }
      if (problems.length > 0) throw new Error(`the managed plugin ${driver} (state in ${stateDir}, log in ${logDir}):\n  ${problems.join('\n  ')}`);
    },
  };
}
