// Command-line parsing for `tsnet`, apart from main so it can be tested without running anything.
import { SETTINGS, settingDefaults, type SettingKey } from '../daemon/settings.js';
import { CliError } from './status.js';

const settingLines = SETTINGS.filter((s) => s.flag)
  .map((s) => `  ${s.flag} ${s.help} (env ${s.env})`)
  .join('\n');

export const USAGE = `usage: tsnet COMMAND [OPTIONS]

Commands:
  serve     run the tsnet daemon in the foreground (Docker plugin socket)
  status    networks, endpoints and published ports
  port      CONTAINER [PORT[/PROTO]]  published ports of a container, as docker port prints them
  cni       rm NAME  removes a CNI network left without attachments (refused while any remain)
  doctor    check the kernel features and tools tsnet needs, and the daemon's cluster store
  cluster   forget HOST [--force]  removes a dead host's announcements, addresses and memberships
            from the cluster store, and the overlays it was the last member of (--force: also
            while HOST is registered live)
  lab       multi-host overlay on this machine, hosts and containers in namespaces:
              lab up [--hosts N] [--etcd M]  hosts h1..hN, etcd (M members), a daemon per host, one overlay
              lab attach --host H NAME    a container on host H; prints its address
              lab detach NAME             removes the container
              lab kill --host H           kills H's daemon (SIGKILL, as a crash)
              lab start --host H          starts H's daemon again
              lab kill|start --etcd K     kills (SIGKILL) or starts again etcd member K
              lab cut|heal --host H       cuts H off the underlay, or plugs it back
              lab up --docker             ... and a Docker engine per host, tsnet its driver
              lab docker --host H -- ARGS runs the docker CLI against host H's engine
              lab status [--json]         hosts and containers
              lab down                    removes everything the lab made
            every lab command takes --name LAB (default lab)
  help      this text

Options (every command reads the same settings; a flag wins over its variable):
${settingLines}
  --json            status as JSON
  --force           cluster forget: also a host that is registered live
`;

/** The lab's own flags and --json; every daemon setting under its key in daemon/settings.ts. */
export type Flags = Record<SettingKey, string> & {
  name: string;
  hosts: string;
  host: string;
  /** lab: etcd members (up) or which member (kill, start) */
  etcd: string;
  json: boolean;
  force: boolean;
  /** lab up: a Docker engine per host */
  docker: boolean;
  /** what follows `--`, untouched (lab docker --host H -- ARGS) */
  rest: string[];
};

export interface Parsed {
  command: string;
  args: string[];
  flags: Flags;
}

export function parseArgs(argv: string[]): Parsed {
  const flags: Flags = {
    ...settingDefaults(),
    /** lab: which lab, how many hosts, which host */
    name: 'lab',
    hosts: '3',
    host: '',
    etcd: '',
    json: false,
    force: false,
    docker: false,
    rest: [],
  };
  const args: string[] = [];
  const valued: Record<string, Exclude<keyof Flags, 'json' | 'force' | 'docker' | 'rest'>> = {
    ...Object.fromEntries(SETTINGS.filter((s) => s.flag).map((s) => [s.flag, s.key])),
    '--name': 'name',
    '--hosts': 'hosts',
    '--host': 'host',
    '--etcd': 'etcd',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [name, inline] = a.startsWith('--') ? a.split(/=(.*)/s, 2) : [a, undefined];
    if (name in valued) {
      const value = inline ?? argv[++i];
      if (value === undefined || value === '') throw new CliError(`${name} needs a value`);
      flags[valued[name]] = value;
    } else if (a === '--json') {
      flags.json = true;
    } else if (a === '--force') {
      flags.force = true;
    } else if (a === '--docker') {
      flags.docker = true;
    } else if (a === '--') {
      flags.rest = argv.slice(i + 1);
      break;
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

