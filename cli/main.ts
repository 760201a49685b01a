// `tsnet`: the one command. serve runs the daemon; the rest read what it did.
import { CliError, runStatus } from './status.js';
import { parseArgs, USAGE } from './args.js';
import { runPort } from './port.js';
import { resolveSettings, SettingError, type DaemonSettings } from '../daemon/settings.js';

/** The daemon settings of the command line, or a one-line CliError saying which is wrong. */
function checkedSettings(flags: Parameters<typeof resolveSettings>[0]): DaemonSettings {
  try {
    return resolveSettings(flags);
  } catch (err) {
    if (err instanceof SettingError) throw new CliError(err.message);
    throw err;
  }
}

async function main(argv: string[]): Promise<number> {
  const { command, args, flags } = parseArgs(argv);
  switch (command) {
    case 'serve': {
      const { runDaemon } = await import('../daemon/daemon.js');
      const settings = checkedSettings(flags);
      // a daemon that cannot start says why in one line (its log has the details)
      await runDaemon(settings).catch((err: unknown) => {
        throw new CliError(`the daemon cannot start: ${err instanceof Error ? err.message : String(err)}`);
      });
      return 0;
    }
    case 'status':
      console.log(await runStatus(flags.stateDir, flags.json));
      return 0;
    case 'port': {
      if (args.length < 1 || args.length > 2) throw new CliError('usage: tsnet port CONTAINER [PORT[/PROTO]]');
      const out = await runPort(flags.stateDir, args[0], args[1]);
      if (out) console.log(out);
      return 0;
    }
    case 'lab': {
      const { runLab } = await import('./lab.js');
      return runLab(args, flags);
    }
    case 'doctor': {
      const { runDoctor } = await import('./doctor.js');
      return runDoctor(checkedSettings(flags));
    }
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default:
      throw new CliError(`unknown command '${command}'\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // serve keeps the process alive through its server; everything else ends here
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`tsnet: ${err.message}\n`);
    } else {
      process.stderr.write(`tsnet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    }
    process.exitCode = 1;
  },
);
