// Helpers shared by the driver tests that run against the real kernel: commands inside
// namespaces, namespaces that are removed even when a test fails, and what Docker does with a
// container's link after Join.
import { execFileSync } from 'node:child_process';

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function inNs(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}

export function pings(ns: string, ip: string): boolean {
  try {
    inNs(ns, 'ping', ['-c', '1', '-W', '2', ip]);
    return true;
  } catch {
    return false;
  }
}

/** Namespaces made by one test file; removeAll() belongs in its afterAll. */
export class Namespaces {
  private readonly made: string[] = [];

  make(name: string): string {
    sh('ip', ['netns', 'add', name]);
    this.made.push(name);
    inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  removeAll(): void {
    for (const ns of this.made.reverse()) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
    this.made.length = 0;
  }
}

/**
 * What Docker does after Join: moves the driver's link from the host namespace into the
 * container's, names it eth0, gives it the address, brings it up, routes through the gateway.
 */
export function dockerAttach(hostNs: string, containerNs: string, join: { srcName: string; gateway: string }, address: string): void {
  inNs(hostNs, 'ip', ['link', 'set', join.srcName, 'netns', containerNs]);
  inNs(containerNs, 'ip', ['link', 'set', join.srcName, 'name', 'eth0']);
  inNs(containerNs, 'ip', ['addr', 'add', address, 'dev', 'eth0']);
  inNs(containerNs, 'ip', ['link', 'set', 'eth0', 'up']);
  if (join.gateway) inNs(containerNs, 'ip', ['route', 'add', 'default', 'via', join.gateway]);
}
