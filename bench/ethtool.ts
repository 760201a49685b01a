// Generic receive offload (GRO) of a link, read and set with the ethtool ioctl (SIOCETHTOOL with
// ETHTOOL_GGRO / ETHTOOL_SGRO), as `ethtool -k/-K DEV gro on|off` does, without the ethtool
// program (not installed here). For the overlay benchmark's steps (overlay-costs.ts): a veth with
// GRO on hands frames to its peer through a NAPI ring instead of the per-CPU backlog, and a VXLAN
// device with GRO off hands its decapsulated frames on without its GRO cells. The ioctl acts on
// the link of that name in the calling thread's network namespace: run it inside withNetns.
import koffi from 'koffi';
import { SOCK_CLOEXEC, SysError, close, socket } from '../native/libc.js';

const libc = koffi.load('libc.so.6');
const ioctl = libc.func('int ioctl(int fd, unsigned long request, ...)');

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCETHTOOL = 0x8946;
const ETHTOOL_GGRO = 0x2b;
const ETHTOOL_SGRO = 0x2c;
/** IFNAMSIZ */
const NAME_SIZE = 16;

const EthtoolValue = koffi.struct('tsnet_ethtool_value', { cmd: 'uint32_t', data: 'uint32_t' });
// struct ifreq with its union as ifr_data (a pointer), padded to the kernel's 40 bytes
const IfreqData = koffi.struct('tsnet_ifreq_data', { name: koffi.array('char', NAME_SIZE, 'String'), data: 'void *', pad: koffi.array('uint8_t', 16) });

function ethtool(link: string, cmd: number, data: number): number {
  if (Buffer.byteLength(link) >= NAME_SIZE) throw new Error(`link name ${link} is longer than ${NAME_SIZE - 1} bytes`);
  const fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const value = koffi.alloc(EthtoolValue, 1);
  try {
    koffi.encode(value, EthtoolValue, { cmd, data });
    if ((ioctl(fd, SIOCETHTOOL, koffi.pointer(IfreqData), { name: link, data: value, pad: [] }) as number) < 0) {
      throw new SysError('ioctl SIOCETHTOOL', koffi.errno(), `(${cmd === ETHTOOL_SGRO ? 'set' : 'get'} GRO of ${link})`);
    }
    return (koffi.decode(value, EthtoolValue) as { data: number }).data;
  } finally {
    koffi.free(value);
    close(fd);
  }
}

/** Whether GRO is on for `link` (in the calling thread's namespace). */
export function getGro(link: string): boolean {
  return ethtool(link, ETHTOOL_GGRO, 0) !== 0;
}

/** Turns GRO on or off for `link` (in the calling thread's namespace). */
export function setGro(link: string, on: boolean): void {
  ethtool(link, ETHTOOL_SGRO, on ? 1 : 0);
}
