// The numbers of rtnetlink, from the kernel's uapi headers (linux/netlink.h, linux/rtnetlink.h,
// linux/if_link.h, linux/if_addr.h, linux/neighbour.h). Only what tsnet uses.

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_NETLINK = 16;
export const AF_INET6 = 10;

export const NETLINK_ROUTE = 0;
export const SOL_NETLINK = 270;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;

/** nlmsghdr.nlmsg_type values below 16 are netlink's own control messages. */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
} as const;

export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  DUMP_INTR: 0x10,
  DUMP: 0x300,
  // modifiers of NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // flags of an NLMSG_ERROR ack
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2 } as const;

export const IFF_UP = 0x1;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  PROTINFO: 12,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  IFALIAS: 20,
  NET_NS_FD: 28,
} as const;

export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
export const VETH_INFO_PEER = 1;
export const IFLA_VLAN = { ID: 1 } as const;
export const IFLA_MACVLAN = { MODE: 1 } as const;
export const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PROXY: 11, PORT: 15, LOCAL6: 17 } as const;
export const IFLA_BRPORT = { MODE: 4, LEARNING: 8, ISOLATED: 33 } as const;

export const MACVLAN_MODE = { private: 1, vepa: 2, bridge: 4, passthru: 8 } as const;

/** IFLA_OPERSTATE values (RFC 2863), indexed by number. */
export const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'] as const;

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 } as const;
export const IFA_F = { NODAD: 0x2, PERMANENT: 0x80, NOPREFIXROUTE: 0x200 } as const;

export const RTA = { DST: 1, SRC: 2, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;
export const RT_TABLE = { UNSPEC: 0, MAIN: 254 } as const;
export const RT_SCOPE = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
export const RTN = { UNSPEC: 0, UNICAST: 1 } as const;
export const RTN_NAMES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat', 'xresolve'] as const;
export const RTPROT_STATIC = 4;
export const RTNH_F_ONLINK = 0x4;
export const RTM_F_CLONED = 0x200;

export const NDA = { DST: 1, LLADDR: 2, VLAN: 5, VNI: 7, MASTER: 9 } as const;
export const NUD = {
  incomplete: 0x1,
  reachable: 0x2,
  stale: 0x4,
  delay: 0x8,
  probe: 0x10,
  failed: 0x20,
  noarp: 0x40,
  permanent: 0x80,
} as const;
export const NTF = { SELF: 0x2, MASTER: 0x4 } as const;
