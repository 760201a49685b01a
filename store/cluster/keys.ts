// Where the cluster store keeps what, under /tsnet/ in etcd (etcd-store.ts reads and writes them),
// and which of those keys belong to one host: what `tsnet cluster forget HOST` removes. Pure, so
// the choice of keys is unit-tested without an etcd.
//   hosts/<host>                 {vtep, startedAt, instance}       under the host's lease
//   overlays/<name>              {vni, subnet, port, createdBy}    until the last member leaves
//   endpoints/<overlay>/<ip>     {mac, endpointId, host, vtep}     under the announcing host's lease
//   pools/<overlay>              {subnet, subPool, gateway}        until the last member leaves
//   pools6/<overlay>             the same for a dual-stack overlay's IPv6 pool
//   addresses/<overlay>/<ip>     {kind, host}                      until released (or the overlay goes);
//                                                                  IPv4 and IPv6 alike
//   members/<overlay>/<host>     {since}                           while the host has a network of it
//   joins/<overlay>              the last host to join             bumped by every join, so a removal
//                                                                  can tell that someone joined
export const PREFIX = '/tsnet/';

export const key = {
  host: (name: string) => `${PREFIX}hosts/${name}`,
  overlay: (name: string) => `${PREFIX}overlays/${name}`,
  endpoint: (overlay: string, ip: string) => `${PREFIX}endpoints/${overlay}/${ip}`,
  pool: (overlay: string, family: 4 | 6 = 4) => `${PREFIX}${family === 6 ? 'pools6' : 'pools'}/${overlay}`,
  address: (overlay: string, ip: string) => `${PREFIX}addresses/${overlay}/${ip}`,
  member: (overlay: string, host: string) => `${PREFIX}members/${overlay}/${host}`,
  joins: (overlay: string) => `${PREFIX}joins/${overlay}`,
};

/** Prefixes of the keys listed per overlay (each ends with '/'). */
export const prefixOf = {
  endpoints: (overlay = '') => `${PREFIX}endpoints/${overlay ? `${overlay}/` : ''}`,
  addresses: (overlay = '') => `${PREFIX}addresses/${overlay ? `${overlay}/` : ''}`,
  members: (overlay = '') => `${PREFIX}members/${overlay ? `${overlay}/` : ''}`,
};

export interface StoredKey {
  key: string;
  value: string;
}

/** What one host holds in the store, by kind, as full keys. */
export interface HostKeys {
  /** its announcements (under its lease; a dead host's go when the lease expires anyway) */
  endpoints: string[];
  /** the cluster addresses it claimed, gateways excepted (every host shares those) */
  addresses: string[];
  /** its memberships */
  members: string[];
  /** the overlays it is a member of */
  overlays: string[];
}

/** The keys among `all` (any keys of the store) that belong to `host`. */
export function keysOfHost(all: readonly StoredKey[], host: string): HostKeys {
  const out: HostKeys = { endpoints: [], addresses: [], members: [], overlays: [] };
  for (const kv of all) {
    const [kind, overlay, last] = splitKey(kv.key);
    if (kind === 'members' && last === host) {
      out.members.push(kv.key);
      out.overlays.push(overlay);
    } else if (kind === 'endpoints' && ownerOf(kv.value)?.host === host) {
      out.endpoints.push(kv.key);
    } else if (kind === 'addresses') {
      const owner = ownerOf(kv.value);
      if (owner?.host === host && owner.kind !== 'gateway') out.addresses.push(kv.key);
    }
  }
  return out;
}

/** '/tsnet/KIND/OVERLAY/LAST' -> [KIND, OVERLAY, LAST]; '' for parts a key has not. */
function splitKey(k: string): [string, string, string] {
  if (!k.startsWith(PREFIX)) return ['', '', ''];
  const parts = k.slice(PREFIX.length).split('/');
  if (parts.length !== 3) return [parts[0] ?? '', '', ''];
  return [parts[0], parts[1], parts[2]];
}

function ownerOf(value: string): { host?: unknown; kind?: unknown } | undefined {
  try {
    const v = JSON.parse(value) as unknown;
    return v && typeof v === 'object' ? (v as { host?: unknown; kind?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}
