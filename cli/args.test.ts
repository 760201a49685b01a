import { describe, expect, it } from 'vitest';
import { parseArgs } from './args.js';

describe('tsnet argument parsing', () => {
  it('reads a command, its arguments and flags in any order', () => {
    const p = parseArgs(['port', '--state-dir', '/tmp/s', 'site', '80/tcp']);
    expect(p.command).toBe('port');
    expect(p.args).toEqual(['site', '80/tcp']);
    expect(p.flags.stateDir).toBe('/tmp/s');
  });

  it('accepts --flag=value', () => {
    expect(parseArgs(['serve', '--socket=/tmp/x.sock', '--log=/tmp/l']).flags).toMatchObject({ socketPath: '/tmp/x.sock', logFile: '/tmp/l' });
  });

  it('defaults to help', () => {
    expect(parseArgs([]).command).toBe('help');
    expect(parseArgs(['--help']).command).toBe('help');
  });

  it('refuses unknown options and missing values with a message', () => {
    expect(() => parseArgs(['status', '--bogus'])).toThrow('unknown option --bogus');
    expect(() => parseArgs(['serve', '--state-dir'])).toThrow('--state-dir needs a value');
  });
});
