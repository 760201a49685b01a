// Small string helpers that every layer needs the same way.

/** Docker's short form of a 64-hex ID (what `docker ps` shows), also used in link names and logs. */
export function shortId(id: string): string {
  return id.slice(0, 12);
}

/** The address part of "10.0.0.2/24" (an address without a prefix comes back as it is). */
export function bareIp(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}
