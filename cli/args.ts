// Command-line parsing for `tsnet`, apart from main so it can be tested without running anything.
import { DEFAULT_LOG, DEFAULT_SOCKET, DEFAULT_STATE_DIR, DEFAULT_STORE, DEFAULT_VTEP, DEFAULT_HOST_NAME, DEFAULT_LEASE_TTL } from '../daemon/paths.js';
import { CliError } from './status.js';

export const USAGE = `usage: tsnet COMMAND [OPTIONS]

Commands:
  serve     run the tsnet daemon in the foreground (Docker plugin socket)
  status    networks, endpoints and published ports
  port      CONTAINER [PORT[/PROTO]]  published ports of a container, as docker port prints them
  doctor    check the kernel features and tools tsnet needs
  lab       multi-host overlay on this machine, hosts and containers in namespaces:
              lab up [--hosts N]          hosts h1..hN, etcd, a daemon per host, one overlay
              lab attach --host H NAME    a container on host H; prints its address
              lab detach NAME             removes the container
              lab kill --host H           kills H's daemon (SIGKILL, as a crash)
              lab start --host H          starts H's daemon again
              lab status [--json]         hosts and containers
              lab down                    removes everything the lab made
            every lab command takes --name LAB (default lab)
  help      this text

Options:
  --state-dir DIR   state directory (default ${DEFAULT_STATE_DIR}, env TSNET_STATE_DIR)
  --socket PATH     plugin socket for serve (default ${DEFAULT_SOCKET}, env TSNET_SOCKET)
  --log FILE        log file for serve (default ${DEFAULT_LOG}, env TSNET_LOG)
  --store URL       cluster store for multi-host overlays, etcd://HOST:PORT[,HOST:PORT] (env TSNET_STORE;
                    default none: overlays stay on this host)
  --vtep IP         this host's VXLAN tunnel address (env TSNET_VTEP; default the default route's source)
  --host-name NAME  this host's name in the cluster (env TSNET_HOST_NAME; default the hostname)
  --lease-ttl SEC   seconds before a dead host's containers vanish from the others (env TSNET_LEASE_TTL; default 10)
  --json            status as JSON
`;

export interface Parsed {
  command: string;
  args: string[];
  flags: {
    stateDir: string;
    socket: string;
    log: string;
    store: string;
    vtep: string;
    hostName: string;
    leaseTtl: string;
    name: string;
    hosts: string;
    host: string;
    json: boolean;
  };
}

export function parseArgs(argv: string[]): Parsed {
  const flags = {
    stateDir: DEFAULT_STATE_DIR,
    socket: DEFAULT_SOCKET,
    log: DEFAULT_LOG,
    store: DEFAULT_STORE,
    vtep: DEFAULT_VTEP,
    hostName: DEFAULT_HOST_NAME,
    leaseTtl: DEFAULT_LEASE_TTL,
    /** lab: which lab, how many hosts, which host */
    name: 'lab',
    hosts: '3',
    host: '',
    json: false,
  };
  const args: string[] = [];
  const valued: Record<string, Exclude<keyof typeof flags, 'json'>> = {
    '--state-dir': 'stateDir',
    '--socket': 'socket',
    '--log': 'log',
    '--store': 'store',
    '--vtep': 'vtep',
    '--host-name': 'hostName',
    '--lease-ttl': 'leaseTtl',
    '--name': 'name',
    '--hosts': 'hosts',
    '--host': 'host',
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

