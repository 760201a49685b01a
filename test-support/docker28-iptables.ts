// Docker 28's iptables rules for its bridge networks, for iptables-nft-restore in a test namespace
// (only Docker 20.10 installs on the test machines). Written from moby v28.5.2:
//   libnetwork/drivers/bridge/internal/iptabler/iptabler.go and network.go (the chains, the
//     FORWARD policy), and their golden files testdata/TestIptabler_hairpin=false,internal=false,
//     icc=true,masq=true,snat=false,gwm=nat,bindlh=false__iptables.golden (a network with a
//     published port) and ..._hairpin=false,internal=true,icc=true__iptables.golden (--internal);
//   libnetwork/firewall_linux.go setupUserChain: DOCKER-USER is created and FORWARD's jump to it
//     inserted at the top (iptables.EnsureJumpRule), with no RETURN rule in it any more;
//   libnetwork/drivers/bridge/setup_ip_forwarding.go: FORWARD policy DROP only when Docker turned
//     ip_forward on itself (and "ip-forward-no-drop" is off), else it stays ACCEPT (moby PR 48594;
//     docs packet-filtering-firewalls.md).
// What changed from 20.10 (docker-iptables.ts): Docker's rules moved out of FORWARD into
// DOCKER-FORWARD (DOCKER-CT for conntrack, the isolation stages, DOCKER-BRIDGE for the per-bridge
// jump to DOCKER, then the accepts out of each bridge); DOCKER ends each bridge with a drop of
// what is not published; raw PREROUTING drops packets for a published container's address that do
// not come from its bridge ("direct routing" protection, gateway mode nat). The nat table is as in
// 20.10.
import { dockerNat, type DockerBridge } from './docker-iptables.js';

export interface Docker28Options {
  /**
   * FORWARD's policy: 'drop' when dockerd enabled ip_forward itself, 'accept' when forwarding was
   * already on or with "ip-forward-no-drop": true.
   */
  forwardPolicy: 'drop' | 'accept';
}

/** The raw, nat and filter tables of dockerd 28 for these networks, for iptables-restore. */
export function docker28Iptables(bridges: DockerBridge[], opts: Docker28Options): string {
  const raw = ['*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  const filter = [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    `:FORWARD ${opts.forwardPolicy.toUpperCase()} [0:0]`,
    ':OUTPUT ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    ':DOCKER-BRIDGE - [0:0]',
    ':DOCKER-CT - [0:0]',
    ':DOCKER-FORWARD - [0:0]',
    ':DOCKER-ISOLATION-STAGE-1 - [0:0]',
    ':DOCKER-ISOLATION-STAGE-2 - [0:0]',
    ':DOCKER-USER - [0:0]',
    // setupUserChain inserts its jump at the top after the bridge driver added DOCKER-FORWARD's
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j DOCKER-FORWARD',
    '-A DOCKER-FORWARD -j DOCKER-CT',
    '-A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1',
    '-A DOCKER-FORWARD -j DOCKER-BRIDGE',
  ];
  for (const b of bridges) {
    const br = b.name;
    const published = b.published ?? [];
    if (b.internal) {
      filter.push(
        `-A DOCKER-FORWARD -i ${br} -o ${br} -j ACCEPT`,
        `-A DOCKER-ISOLATION-STAGE-1 ! -s ${b.subnet} -o ${br} -j DROP`,
        `-A DOCKER-ISOLATION-STAGE-1 ! -d ${b.subnet} -i ${br} -j DROP`,
      );
      continue;
    }
    raw.push(...published.map((m) => `-A PREROUTING -d ${m.containerIp}/32 ! -i ${br} -j DROP`));
    filter.push(
      ...published.map((m) => `-A DOCKER -d ${m.containerIp}/32 ! -i ${br} -o ${br} -p tcp -m tcp --dport ${m.containerPort} -j ACCEPT`),
      `-A DOCKER ! -i ${br} -o ${br} -j DROP`,
      `-A DOCKER-BRIDGE -o ${br} -j DOCKER`,
      `-A DOCKER-CT -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A DOCKER-FORWARD -i ${br} -j ACCEPT`,
      `-A DOCKER-ISOLATION-STAGE-1 -i ${br} ! -o ${br} -j DOCKER-ISOLATION-STAGE-2`,
      `-A DOCKER-ISOLATION-STAGE-2 -o ${br} -j DROP`,
    );
  }
  raw.push('COMMIT');
  filter.push('COMMIT');
  return [...raw, ...filter, ...dockerNat(bridges), ''].join('\n');
}
