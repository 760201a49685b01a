// `tsnet`: the one command. serve runs the daemon; the rest read what it did.
import { CliError, runStatus } from './status.js';
import { parseArgs, USAGE } from './args.js';
import { runPort } from './port.js';
import { resolveSettings } from '../daemon/settings.js';
import { EXIT_CODE_BY_KIND, errorKind, UserError } from '../core/errors.js';

async function main(argv: string[]): Promise<number> {
  const { command, args, flags } = parseArgs(argv);
  switch (command) {
    case 'serve': {
      const { runDaemon } = await import('../daemon/daemon.js');
      const settings = resolveSettings(flags);
      // a daemon that cannot start says why in one line (its log has the details)
      await runDaemon(settings).catch((err: unknown) => {
        // a daemon that cannot start exits as its cause says (unavailable store: 69; bad input: 1)
        const kind = errorKind(err);
        throw new CliError(`the daemon cannot start: ${err instanceof Error ? err.message : String(err)}`, kind === 'internal' ? 'unavailable' : kind);
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
    case 'cluster': {
      const { runCluster } = await import('./cluster.js');
      console.log(await runCluster(args, resolveSettings(flags), { force: flags.force }));
      return 0;
    }
    case 'cni': {
      const { runCni } = await import('./cni.js');
      console.log(await runCni(args, resolveSettings(flags).socketPath));
      return 0;
    }
    case 'doctor': {
      const { runDoctor } = await import('./doctor.js');
      return runDoctor(resolveSettings(flags));
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
    // one mapping of error kinds to exit codes for every command (core/errors.ts); a bug shows its stack
    if (err instanceof UserError) process.stderr.write(`tsnet: ${err.message}\n`);
    else process.stderr.write(`tsnet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT_CODE_BY_KIND[errorKind(err)];
  },
);
