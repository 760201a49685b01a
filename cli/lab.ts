// `tsnet lab ...`: the overlay lab's commands (lab/lab.ts does the work).
import { CliError } from './status.js';
import type { Parsed } from './args.js';
import { parseLeaseTtl } from '../daemon/settings.js';
import { labAttach, labDetach, labDown, labKill, labStart, labStatus, labUp } from '../lab/lab.js';
import { labKillEtcd, labStartEtcd } from '../lab/etcd-cluster.js';
import { labSetCut } from '../lab/partition.js';
import { labDocker } from '../lab/docker-lab.js';
import { PluginError } from '../lab/plugin-client.js';
import { findProgram } from '../lab/processes.js';
import { formatStatus, readState } from '../lab/state.js';

const LAB_USAGE =
  'usage: tsnet lab up [--hosts N] [--etcd M] [--docker] | attach --host H NAME | detach NAME | kill --host H | start --host H | kill --etcd K | start --etcd K | cut --host H | heal --host H | docker --host H -- ARGS | status [--json] | down   (each with --name LAB)';

export async function runLab(args: string[], flags: Parsed['flags']): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case 'up': {
        const hosts = Number(flags.hosts);
        const leaseTtl = parseLeaseTtl(flags.leaseTtl);
        const etcd = flags.etcd ? Number(flags.etcd) : undefined;
        await labUp({ name: flags.name, hosts, leaseTtl, etcd, docker: flags.docker, say: (l) => console.log(l) });
        console.log(`lab ${flags.name} is up: tsnet lab attach --name ${flags.name} --host h1 NAME`);
        return 0;
      }
      case 'attach': {
        if (rest.length !== 1 || !flags.host) throw new CliError('usage: tsnet lab attach --host H NAME');
        const c = await labAttach(flags.name, flags.host, rest[0]);
        console.log(c.address);
        return 0;
      }
      case 'detach':
        if (rest.length !== 1) throw new CliError('usage: tsnet lab detach NAME');
        await labDetach(flags.name, rest[0]);
        return 0;
      case 'kill':
      case 'start':
        if (rest.length !== 0 || !flags.host === !flags.etcd) throw new CliError(`usage: tsnet lab ${sub} --host H | --etcd K`);
        if (flags.etcd) {
          const k = Number(flags.etcd);
          await (sub === 'kill' ? labKillEtcd(flags.name, k) : labStartEtcd(flags.name, k, findProgram('etcd', 'etcd-server')));
        } else {
          await (sub === 'kill' ? labKill : labStart)(flags.name, flags.host);
        }
        return 0;
      case 'docker':
        if (rest.length !== 0 || !flags.host || flags.rest.length === 0) throw new CliError('usage: tsnet lab docker --host H -- ARGS...');
        return labDocker(flags.name, flags.host, flags.rest);
      case 'cut':
      case 'heal':
        if (rest.length !== 0 || !flags.host) throw new CliError(`usage: tsnet lab ${sub} --host H`);
        await labSetCut(flags.name, flags.host, sub === 'cut');
        return 0;
      case 'status': {
        if (flags.json) {
          console.log(JSON.stringify(labStatus(flags.name), null, 2));
        } else {
          const s = readState(flags.name);
          if (!s) throw new CliError(`no lab '${flags.name}' is up: start one with tsnet lab up --name ${flags.name}`);
          console.log(formatStatus(s));
        }
        return 0;
      }
      case 'down':
        await labDown(flags.name);
        return 0;
      default:
        throw new CliError(sub ? `unknown lab command '${sub}'\n${LAB_USAGE}` : LAB_USAGE);
    }
  } catch (err) {
    throw asCliError(err);
  }
}

/**
 * A daemon's refusal as the CLI reports it: its message as it is, with the exit code of its kind
 * (core/errors.ts: 1 for what the user can fix, 69 when something is not there now, 70 for a
 * daemon's internal error). The lab's own errors are UserErrors already.
 */
export function asCliError(err: unknown): unknown {
  if (!(err instanceof PluginError)) return err;
  return err.kind === 'internal' ? new Error(err.message) : new CliError(err.message, err.kind);
}
