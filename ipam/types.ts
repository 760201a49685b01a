// IPAM's seam with plugin-api (Docker's IpamDriver protocol) and, later, CNI. Types are the
// protocol's, parsed and validated. Errors for the user are UserError (drivers/driver.ts).

export interface RequestPoolRequest {
  addressSpace: string;
  /** CIDR, '' = choose a free one */
  pool: string;
  /** CIDR inside pool ('--ip-range'), '' = whole pool */
  subPool: string;
  options: Record<string, string>;
  v6: boolean;
}

export interface RequestPoolResult {
  poolId: string;
  /** CIDR */
  pool: string;
  data: Record<string, string>;
}

export interface RequestAddressRequest {
  poolId: string;
  /** bare IP, '' = next free one */
  address: string;
  options: Record<string, string>;
}

export interface RequestAddressResult {
  /** CIDR form with the pool's prefix length, e.g. "10.220.0.3/24" */
  address: string;
  data: Record<string, string>;
}

export interface AddressSpaces {
  localDefaultAddressSpace: string;
  globalDefaultAddressSpace: string;
}

/** The local allocator answers at once; the cluster-wide one (overlay pools in etcd) needs a round trip. */
export type MaybePromise<T> = T | Promise<T>;

export interface IpamService {
  getDefaultAddressSpaces(): AddressSpaces;
  requestPool(req: RequestPoolRequest): MaybePromise<RequestPoolResult>;
  /** Idempotent: unknown IDs succeed. */
  releasePool(poolId: string): MaybePromise<void>;
  requestAddress(req: RequestAddressRequest): MaybePromise<RequestAddressResult>;
  /** Idempotent: unknown pools and addresses succeed. `address` is bare or CIDR. */
  releaseAddress(poolId: string, address: string): MaybePromise<void>;
}

/** Docker's option value for a gateway request. */
export const GATEWAY_REQUEST = 'com.docker.network.gateway';
export const REQUEST_ADDRESS_TYPE = 'RequestAddressType';
