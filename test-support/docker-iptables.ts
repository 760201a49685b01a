// Docker 20.10's iptables rules for its bridge networks, as `iptables-save` shows them on a host
// running dockerd (moby libnetwork drivers/bridge setup_ip_tables.go and iptables/iptables.go;
// internal networks in setupInternalNetworkRules): FORWARD policy drop, DOCKER-USER first, the two
// isolation stages, per bridge the conntrack accept, the jump to DOCKER and the accepts out of the
// bridge; per published port a DNAT and an accept; masquerade of what leaves a non-internal network.
// A fixture for the tests and benchmarks that run tsnet beside Docker's rules in a namespace of
// their own (`iptables-nft-restore` of the text), so both use the same layout.
import type { PortMapping } from '../firewall/model.js';

export interface DockerBridge {
  /** the bridge's name, e.g. docker0 or br-<12 hex> */
  name: string;
  /** its subnet, e.g. 172.17.0.0/16 */
  subnet: string;
  /** an --internal network: nothing in or out but within the bridge */
  internal?: boolean;
  /** TCP ports published by containers on it */
  published?: Pick<PortMapping, 'containerIp' | 'containerPort' | 'hostPort'>[];
}

/**
 * The nat table, the same from 20.10 to 28: DNAT of published ports from local addresses, and
 * masquerade of what leaves a non-internal network (with the hairpin masquerade per port).
 */
export function dockerNat(bridges: DockerBridge[]): string[] {
  const nat = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
    '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER',
  ];
  for (const b of bridges.filter((x) => !x.internal)) {
    const br = b.name;
    const published = b.published ?? [];
    nat.push(
      `-A POSTROUTING -s ${b.subnet} ! -o ${br} -j MASQUERADE`,
      // hairpin: one rule per published port
      ...published.map((m) => `-A POSTROUTING -s ${m.containerIp}/32 -d ${m.containerIp}/32 -p tcp -m tcp --dport ${m.containerPort} -j MASQUERADE`),
      `-A DOCKER -i ${br} -j RETURN`,
      ...published.map((m) => `-A DOCKER ! -i ${br} -p tcp -m tcp --dport ${m.hostPort} -j DNAT --to-destination ${m.containerIp}:${m.containerPort}`),
    );
  }
  nat.push('COMMIT');
  return nat;
}

/** The nat and filter tables of dockerd 20.10 for these networks, for iptables-restore. */
export function dockerIptables(bridges: DockerBridge[]): string {
  const filter = [
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD DROP [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':DOCKER - [0:0]',
    ':DOCKER-ISOLATION-STAGE-1 - [0:0]',
    ':DOCKER-ISOLATION-STAGE-2 - [0:0]',
    ':DOCKER-USER - [0:0]',
    '-A FORWARD -j DOCKER-USER',
    '-A FORWARD -j DOCKER-ISOLATION-STAGE-1',
  ];
  const stage1: string[] = [];
  const stage2: string[] = [];
  for (const b of bridges) {
    const br = b.name;
    const published = b.published ?? [];
    if (b.internal) {
      filter.push(`-A FORWARD -i ${br} -o ${br} -j ACCEPT`);
      stage1.push(`-A DOCKER-ISOLATION-STAGE-1 ! -s ${b.subnet} -o ${br} -j DROP`, `-A DOCKER-ISOLATION-STAGE-1 ! -d ${b.subnet} -i ${br} -j DROP`);
      continue;
    }
    filter.push(
      `-A FORWARD -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A FORWARD -o ${br} -j DOCKER`,
      `-A FORWARD -i ${br} ! -o ${br} -j ACCEPT`,
      `-A FORWARD -i ${br} -o ${br} -j ACCEPT`,
      ...published.map((m) => `-A DOCKER -d ${m.containerIp}/32 ! -i ${br} -o ${br} -p tcp -m tcp --dport ${m.containerPort} -j ACCEPT`),
    );
    stage1.push(`-A DOCKER-ISOLATION-STAGE-1 -i ${br} ! -o ${br} -j DOCKER-ISOLATION-STAGE-2`);
    stage2.push(`-A DOCKER-ISOLATION-STAGE-2 -o ${br} -j DROP`);
  }
  filter.push(...stage1, '-A DOCKER-ISOLATION-STAGE-1 -j RETURN', ...stage2, '-A DOCKER-ISOLATION-STAGE-2 -j RETURN', '-A DOCKER-USER -j RETURN', 'COMMIT');
  return [...dockerNat(bridges), ...filter, ''].join('\n');
}
