// The protocol vocabulary that more than one layer speaks: driver types, transport protocols,
// Docker's IPAM data and port bindings. The request and reply types of the driver seam itself stay
// in drivers/driver.ts; what the firewall, the store, the sockets and the IPAM share is here.

export type DriverType = 'bridge' | 'macvlan' | 'overlay';

export const DRIVER_TYPES: readonly DriverType[] = ['bridge', 'macvlan', 'overlay'];

/** The network option that picks the driver (`docker network create -d tsnet -o type=macvlan`). */
export const TYPE_OPTION = 'type';

export type Proto = 'tcp' | 'udp' | 'sctp';

export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

/** One pool of a network as Docker's IPAMData gives it. CIDR strings throughout. */
export interface IpamData {
  addressSpace: string;
  /** e.g. "10.220.0.0/24" */
  pool: string;
  /** gateway in CIDR form, e.g. "10.220.0.1/24"; undefined when Docker gave none */
  gateway?: string;
  /** name -> CIDR; addresses reserved for other hosts, never handed to containers */
  auxAddresses: Record<string, string>;
}

/** A port binding as actually made (host port chosen). */
export interface PortBinding {
  proto: Proto;
  port: number;
  containerIp: string;
  hostIp: string;
  hostPort: number;
}
