// Checks every driver makes before creating a network: its subnets must not overlap those of any
// other tsnet network, whatever the driver or IPAM (Docker's own IPAM does not see tsnet's pools).
import { cidrStringsOverlap } from '../ipam/address.js';
import type { NetworkRepo } from '../store/network-repo.js';
import { UserError } from '../core/errors.js';
import { shortId } from '../core/text.js';

export function refuseSubnetOverlap(repo: NetworkRepo, subnets: string[]): void {
  for (const other of repo.listNetworks()) {
    for (const theirs of [...other.ipv4, ...other.ipv6].map((d) => d.pool)) {
      const mine = subnets.find((s) => cidrStringsOverlap(s, theirs));
      if (mine) throw new UserError(`subnet ${mine} overlaps ${theirs} of tsnet network ${shortId(other.id)}: choose a different --subnet`);
    }
  }
}
