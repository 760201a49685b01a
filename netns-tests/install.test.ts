// tsnet as a host service (issue 12, items 1 and 8): the systemd unit passes `systemd-analyze
// verify` (systemd is not PID 1 here, so a unit cannot be started: verifying is what can be done),
// `make install` lays out immutable versions under a `current` link that an upgrade switches, and
// `make uninstall` refuses while the instance has a network, then with FORCE=1 removes everything
// of that instance and nothing of another one running beside it.
// Everything goes into a temporary DESTDIR and a throwaway plugin name: the host's /usr/local,
// /etc/systemd/system, /var/lib/tsnet and the tsnet-e2e daemon of other tests are never touched.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, run, type CommandResult } from '../test-support/commands.js';
import { linksTaggedBy } from '../test-support/daemon-leftovers.js';
import { onCleanup, runCleanups, sh, uniqueName, until } from './harness.js';

const REPO = repoRoot();
const UNIT = join(REPO, 'packaging/systemd/tsnet.service');
const tag = uniqueName('');
const work = mkdtempSync(join(tmpdir(), `tsnet-install-${tag}-`));
const destdir = join(work, 'root');
const lib = join(destdir, 'usr/local/lib/tsnet');
const command = join(destdir, 'usr/local/bin/tsnet');

afterAll(async () => {
  await runCleanups();
  rmSync(work, { recursive: true, force: true });
});

function make(args: string[]): CommandResult {
  return run('make', ['-s', '--no-print-directory', '-C', REPO, ...args], { timeoutMs: 170_000 });
}

/** What `make install` runs after its build step (the build is make test's, done before the tests). */
function install(version: string): CommandResult {
  return run('env', [`DESTDIR=${destdir}`, `VERSION=${version}`, join(REPO, 'scripts/install.sh')], { timeoutMs: 170_000 });
}

/** `systemd-analyze verify` must exit 0 AND print nothing: it reports unknown keys and bad values only as warnings. */
function verify(args: string[]): CommandResult & { said: string } {
  const r = run('systemd-analyze', ['verify', ...args]);
  return { ...r, said: (r.stdout + r.stderr).trim() };
}

describe('tsnet.service', () => {
  it('passes systemd-analyze verify without a warning, and the same check rejects a unit whose ExecStart does not exist', () => {
    const dir = join(work, 'verify');
    mkdirSync(dir, { recursive: true });
    const text = readFileSync(UNIT, 'utf8');
    // the installed paths do not exist outside an install: point them at this clone
    const inRepo = text
      .replaceAll('/usr/local/bin/tsnet', join(REPO, 'bin/tsnet'))
      .replaceAll('/usr/local/lib/tsnet/current/libexec/tsnet-wait-ready', join(REPO, 'packaging/systemd/tsnet-wait-ready'));
    writeFileSync(join(dir, 'tsnet.service'), inRepo);
    expect(verify([join(dir, 'tsnet.service')])).toMatchObject({ code: 0, said: '' });

    mkdirSync(join(dir, 'broken'));
    writeFileSync(join(dir, 'broken/tsnet.service'), inRepo.replaceAll(join(REPO, 'bin/tsnet'), join(dir, 'missing/tsnet')));
    const broken = verify([join(dir, 'broken/tsnet.service')]);
    expect(broken.code).not.toBe(0);
    expect(broken.said).toContain(`Command ${join(dir, 'missing/tsnet')} is not executable`);
  });

  it('is up before dockerd: ordered before docker.service and wanted by it, restarted on failure, settings from /etc/default/tsnet', () => {
    const text = readFileSync(UNIT, 'utf8');
    const values = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].flatMap((m) => m[1].split(/\s+/));
    expect(values('Before')).toContain('docker.service');
    expect(values('WantedBy')).toEqual(expect.arrayContaining(['docker.service', 'multi-user.target']));
    expect(values('Restart')).toEqual(['on-failure']);
    expect(values('ExecStart')).toEqual(['/usr/local/bin/tsnet', 'serve']);
    expect(values('EnvironmentFile')).toEqual(['-/etc/default/tsnet']);
  });
});

describe('scripts/install.sh (make install) into a DESTDIR', () => {
  it('installs a version, then a second one beside it, switching current; the installed unit verifies in that root', () => {
    const a = install(`t-${tag}-a`);
    expect(a.code, a.stderr).toBe(0);
    expect(readlinkSync(join(lib, 'current'))).toBe(`t-${tag}-a`);
    expect(realpathSync(command)).toBe(join(lib, `t-${tag}-a/bin/tsnet`));

    const b = install(`t-${tag}-b`);
    expect(b.code, b.stderr).toBe(0);
    expect(readlinkSync(join(lib, 'current'))).toBe(`t-${tag}-b`);
    expect(realpathSync(command)).toBe(join(lib, `t-${tag}-b/bin/tsnet`));
    // the previous version stays, whole, for a roll-back
    expect(existsSync(join(lib, `t-${tag}-a/dist/cli/main.js`))).toBe(true);
    // nothing half-made is left beside them (copies are made under a temporary name, then renamed)
    expect(sh('ls', ['-A', lib]).split('\n').sort()).toEqual(['current', `t-${tag}-a`, `t-${tag}-b`]);
    // installing the same version again changes nothing
    const again = install(`t-${tag}-b`);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('is installed already');

    // the installed command runs from its copy: its own node_modules and dist
    const help = run(command, ['help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('serve');

    expect(readFileSync(join(destdir, 'opt/cni/bin/tsnet'))).toEqual(readFileSync(join(REPO, 'dist/cni/tsnet')));
    expect(readlinkSync(join(destdir, 'usr/lib/cni/tsnet'))).toBe('/opt/cni/bin/tsnet');
    expect(existsSync(join(destdir, 'etc/default/tsnet'))).toBe(true);
    // enabled: wanted by multi-user.target and by docker.service
    for (const wants of ['multi-user.target.wants', 'docker.service.wants']) {
      expect(readlinkSync(join(destdir, 'etc/systemd/system', wants, 'tsnet.service'))).toBe('/etc/systemd/system/tsnet.service');
    }

    // verified inside the DESTDIR root: the unit's ExecStart and ExecStartPost resolve through
    // the installed links (verify needs the system's own units, such as sysinit.target, there too)
    cpSync('/usr/lib/systemd/system', join(destdir, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    expect(verify([`--root=${destdir}`, '/etc/systemd/system/tsnet.service'])).toMatchObject({ code: 0, said: '' });
  }, 400_000);
});

// ---------------------------------------------------------------- uninstall

/** A throwaway daemon instance: its plugin name names its table, its links' aliases and its rules in Docker's chains. */
interface Instance {
  name: string;
  socket: string;
  stateDir: string;
  log: string;
}

function instance(name: string, logDir: string): Instance {
  return { name, socket: `/run/docker/plugins/${name}.sock`, stateDir: join(work, `state-${name}`), log: join(logDir, 'tsnet.log') };
}

function settingsOf(i: Instance): Record<string, string> {
  return { TSNET_SOCKET: i.socket, TSNET_STATE_DIR: i.stateDir, TSNET_LOG: i.log };
}

function call(i: Instance, path: string, body: unknown): CommandResult {
  return run('curl', ['-sf', '--max-time', '5', '--unix-socket', i.socket, '-X', 'POST', '-d', JSON.stringify(body), `http://tsnet/${path}`]);
}

const answers = (i: Instance) => call(i, 'Plugin.Activate', {}).code === 0;
const tableExists = (family: string, i: Instance) => run('nft', ['list', 'table', family, i.name.replace(/-/g, '_')]).code === 0;
const alive = (pid: number) => run('kill', ['-0', String(pid)]).code === 0;

/** Its accepts in Docker's DOCKER-USER chain; null when dockerd never made that chain here. */
function dockerUserRules(i: Instance): string[] | null {
  const r = run('nft', ['list', 'chain', 'ip', 'filter', 'DOCKER-USER']);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => l.includes(`comment "${i.name}:`)) : null;
}

/**
 * Starts `<cmd> serve` with the instance's settings in the environment. Cleaned up at the end, also
 * when the test failed half-way: the process stopped, then a forced uninstall of that instance
 * into an empty DESTDIR removes its tables, rules in Docker's chains, links, state and socket.
 */
async function serve(i: Instance, cmd: string[]): Promise<number> {
  mkdirSync(i.stateDir, { recursive: true });
  const child = spawn(cmd[0], [...cmd.slice(1), 'serve'], { env: { ...process.env, ...settingsOf(i) }, stdio: 'ignore' });
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    const settings = Object.entries(settingsOf(i)).map(([k, v]) => `${k}=${v}`);
    run('env', [...settings, `DESTDIR=${join(work, `scratch-${i.name}`)}`, 'FORCE=1', join(REPO, 'scripts/uninstall.sh')]);
  });
  await until(`${i.name} answers on ${i.socket}`, () => answers(i) || child.exitCode !== null);
  expect(child.exitCode, `${i.name} exited while starting; see ${i.log}`).toBeNull();
  return child.pid!;
}

/** A bridge network made through the plugin API, as dockerd would. */
function bridgeNetwork(i: Instance, subnet: string, gateway: string): string {
  const id = randomBytes(32).toString('hex');
  const made = call(i, 'NetworkDriver.CreateNetwork', {
    NetworkID: id,
    Options: { 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: subnet, Gateway: gateway }],
    IPv6Data: [],
  });
  expect(made.code, `CreateNetwork on ${i.name}: ${made.stdout}${made.stderr}`).toBe(0);
  return id;
}

describe('make uninstall', () => {
  it('refuses while the instance has a network; with FORCE=1 removes all of it and nothing of another instance', async () => {
    // installed by the test above (vitest runs a file's tests in order); what the service would run
    expect(existsSync(command)).toBe(true);
    const victim = instance(`tsi${tag}`, join(work, 'log', `tsi${tag}`));
    const bystander = instance(`tsb${tag}`, join(work, `state-tsb${tag}`));
    // uninstall reads the instance's settings where the service does: the DESTDIR's /etc/default/tsnet
    const defaults = join(destdir, 'etc/default/tsnet');
    writeFileSync(defaults, `${readFileSync(defaults, 'utf8')}${Object.entries(settingsOf(victim)).map(([k, v]) => `${k}=${v}\n`).join('')}`);

    // the unit's ExecStartPost (the installed copy's): a socket file left by a killed daemon is not
    // "started", so it still waits when timeout ends it (124); once the daemon serves, it returns 0
    const waitReady = (timeout: string) => run('timeout', [timeout, 'env', `TSNET_SOCKET=${victim.socket}`, join(lib, 'current/libexec/tsnet-wait-ready')]);
    onCleanup(() => rmSync(victim.socket, { force: true }));
    sh('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', victim.socket]);
    expect(waitReady('2').code).toBe(124);
    const victimPid = await serve(victim, [command]);
    expect(waitReady('60')).toMatchObject({ code: 0 });
    const bystanderPid = await serve(bystander, ['node', join(REPO, 'dist/cli/main.js')]);
    const victimNet = bridgeNetwork(victim, '198.51.100.0/28', '198.51.100.1/28');
    bridgeNetwork(bystander, '198.51.100.16/28', '198.51.100.17/28');
    const docker = dockerUserRules(victim) !== null;
    const everything = (i: Instance) => ({
      inet: tableExists('inet', i),
      bridge: tableExists('bridge', i),
      links: linksTaggedBy(i.name).length > 0,
      dockerRules: docker ? dockerUserRules(i)!.length > 0 : false,
      state: existsSync(join(i.stateDir, 'tsnet.db')),
      log: existsSync(i.log),
    });
    const all = { inet: true, bridge: true, links: true, dockerRules: docker, state: true, log: true };
    expect(everything(victim)).toEqual(all);
    expect(everything(bystander)).toEqual(all);

    const refused = make(['uninstall', `DESTDIR=${destdir}`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('still has networks');
    expect(refused.stderr).toContain(victimNet.slice(0, 12));
    // refused before touching anything
    expect(alive(victimPid)).toBe(true);
    expect(answers(victim)).toBe(true);
    expect(everything(victim)).toEqual(all);
    expect(existsSync(join(lib, 'current/bin/tsnet'))).toBe(true);

    const forced = make(['uninstall', `DESTDIR=${destdir}`, 'FORCE=1']);
    expect(forced.code, forced.stderr).toBe(0);
    await until(`${victim.name} (pid ${victimPid}) exits`, () => !alive(victimPid));
    expect(existsSync(victim.socket)).toBe(false);
    expect(everything(victim)).toEqual({ inet: false, bridge: false, links: false, dockerRules: false, state: false, log: false });
    expect(existsSync(join(work, 'log', victim.name))).toBe(false);
    const left = ['usr/local/lib/tsnet', 'usr/local/bin/tsnet', 'etc/systemd/system/tsnet.service', 'etc/systemd/system/multi-user.target.wants/tsnet.service',
      'etc/systemd/system/docker.service.wants/tsnet.service', 'etc/default/tsnet', 'opt/cni/bin/tsnet', 'usr/lib/cni/tsnet']
      .filter((p) => existsSync(join(destdir, p)) || run('test', ['-L', join(destdir, p)]).code === 0);
    expect(left).toEqual([]);

    // the other instance keeps its daemon, its table, its links, its rules and its state
    expect(alive(bystanderPid)).toBe(true);
    expect(answers(bystander)).toBe(true);
    expect(everything(bystander)).toEqual(all);
  }, 400_000);
});
