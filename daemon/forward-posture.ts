// Docker's FORWARD posture, kept when tsnet is the one that turns IP forwarding on.
//
// dockerd (20.10-28, iptables) sets the iptables FORWARD policy to drop only when it finds
// net.ipv4.ip_forward off and turns it on itself (moby setup_ip_forwarding.go; Docker 28 also for
// IPv6, and not with "ip-forward-no-drop"). When tsnet starts first (the service starts before
// docker.service; a reboot), tsnet turns forwarding on, dockerd finds it on and keeps policy accept,
// and then nothing but Docker's isolation chains stands between a routed neighbour (or a tsnet
// container) and the unpublished ports of Docker's containers. Starting tsnet must never open them.
//
// So tsnet does what Docker would have done in its place: when it finds forwarding off and turns it
// on, it also sets the FORWARD policy of `table ip filter` (`ip6 filter` for IPv6 forwarding) to
// drop, making the table and chain as iptables-nft makes them when they do not exist. A FORWARD
// drop is the posture tsnet already lives with beside Docker (firewall/docker-compat.ts puts its
// accepts at the top of FORWARD, or in DOCKER-USER once Docker made it), so tsnet's own traffic
// still flows; what forwarding newly allows is only what someone accepted. Forwarding found on
// (an admin's router, a Docker that started first) is left alone, and so is its policy: that
// posture is the admin's or Docker's choice. The policy lives in the kernel only and goes with a
// reboot, when forwarding is off again and the first write sets both again.
import type { Logger } from '../core/log.js';
import type { NftApi } from '../native/nftables.js';

export type ForwardFamily = 'ip' | 'ip6';

/** The sysctl that turns forwarding on for a family, as the drivers write it. */
export const FORWARDING_KEYS: Record<string, ForwardFamily> = {
  'net.ipv4.ip_forward': 'ip',
  'net.ipv6.conf.all.forwarding': 'ip6',
};

/**
 * The nft script that sets FORWARD's policy to drop in `family filter`, making the table and the
 * base chain the way iptables-nft would (priority filter) when they are missing. Pure.
 */
export function forwardDropScript(family: ForwardFamily): string {
  return [`add table ${family} filter`, `add chain ${family} filter FORWARD { type filter hook forward priority filter; policy drop; }`, ''].join('\n');
}

export interface ForwardPostureDeps {
  read(key: string): string;
  write(key: string | string[], value: string): void;
  nft: Pick<NftApi, 'run'>;
  /** puts tsnet's accepts where the drop policy now needs them (Firewall.refreshDockerCompat) */
  refreshAccepts(): void;
  log: Pick<Logger, 'info' | 'warn'>;
}

/**
 * A writeSysctl for the drivers: as `write`, and when it turns a family's forwarding on from off,
 * FORWARD's policy of that family goes to drop first (so no packet is forwarded under accept), then
 * tsnet's accepts are put in place.
 */
export function keepingForwardPosture(d: ForwardPostureDeps): (key: string | string[], value: string) => void {
  return (key, value) => {
    // own keys only: a key such as 'constructor' must not find Object's
    const family = typeof key === 'string' && value === '1' && Object.hasOwn(FORWARDING_KEYS, key) ? FORWARDING_KEYS[key] : undefined;
    if (!family || readOr(d, key as string) !== '0') {
      d.write(key, value);
      return;
    }
    d.nft.run(forwardDropScript(family));
    d.write(key, value);
    try {
      d.refreshAccepts();
    } catch (err) {
      d.log.warn({ err: String(err) }, "could not put tsnet's accepts into FORWARD after setting its policy to drop: tsnet's traffic is dropped until drift repair puts them there");
    }
    d.log.info(
      { sysctl: key, table: `${family} filter` },
      'IP forwarding was off and tsnet turned it on: FORWARD policy set to drop, as dockerd does when it turns forwarding on itself',
    );
  };
}

function readOr(d: ForwardPostureDeps, key: string): string {
  try {
    return d.read(key).trim();
  } catch {
    return '';
  }
}
