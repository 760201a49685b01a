// tsnet's typed access to the kernel: rtnetlink, network namespaces, sysctls.
export { Netlink } from './netlink/netlink.js';
export { NetlinkError, isNetlinkError } from './netlink/errors.js';
export type {
  BridgePortInfo,
  BridgePortSettings,
  BridgeSpec,
  LinkChange,
  LinkInfo,
  LinkKind,
  LinkSpec,
  MacvlanMode,
  MacvlanSpec,
  VethSpec,
  VlanSpec,
  VxlanSpec,
} from './netlink/links.js';
export type { AddressInfo, AddressOptions } from './netlink/addresses.js';
export type { RouteInfo, RouteScope, RouteSpec } from './netlink/routes.js';
export type { FdbInfo, FdbSpec, NeighbourInfo, NeighbourSpec } from './netlink/neighbours.js';
export { closeFd, openNetnsFd, withNetns } from './netns.js';
export { readSysctl, writeSysctl, type SysctlKey, type SysctlOptions } from './sysctl.js';
export { SysError } from './libc.js';
