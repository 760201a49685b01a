// Command-line parsing for `tsnet`, apart from main so it can be tested without running anything.
import { DEFAULT_LOG, DEFAULT_SOCKET, DEFAULT_STATE_DIR } from '../daemon/paths.js';
import { CliError } from './status.js';

export const USAGE = `usage: tsnet COMMAND [OPTIONS]

Commands:
  serve     run the tsnet daemon in the foreground (Docker plugin socket)
  status    networks, endpoints and published ports
  port      CONTAINER [PORT[/PROTO]]  published ports of a container, as docker port prints them
  doctor    check the kernel features and tools tsnet needs
  help      this text

Options:
  --state-dir DIR   state directory (default ${DEFAULT_STATE_DIR}, env TSNET_STATE_DIR)
  --socket PATH     plugin socket for serve (default ${DEFAULT_SOCKET}, env TSNET_SOCKET)
  --log FILE        log file for serve (default ${DEFAULT_LOG}, env TSNET_LOG)
  --json            status as JSON
`;

export interface Parsed {
  command: string;
  args: string[];
  flags: { stateDir: string; socket: string; log: string; json: boolean };
}

export function parseArgs(argv: string[]): Parsed {
  const flags = { stateDir: DEFAULT_STATE_DIR, socket: DEFAULT_SOCKET, log: DEFAULT_LOG, json: false };
  const args: string[] = [];
  const valued: Record<string, 'stateDir' | 'socket' | 'log'> = { '--state-dir': 'stateDir', '--socket': 'socket', '--log': 'log' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [name, inline] = a.startsWith('--') ? a.split(/=(.*)/s, 2) : [a, undefined];
    if (name in valued) {
      const value = inline ?? argv[++i];
      if (value === undefined || value === '') throw new CliError(`${name} needs a value`);
      flags[valued[name]] = value;
    } else if (a === '--json') {
      flags.json = true;
    } else if (a === '-h' || a === '--help') {
      args.unshift('help');
    } else if (a.startsWith('-') && a !== '-') {
      throw new CliError(`unknown option ${a}`);
    } else {
      args.push(a);
    }
  }
  return { command: args.shift() ?? 'help', args, flags };
}

