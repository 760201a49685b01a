#!/usr/bin/env bash
# `make plugin`: tsnet as a managed (v2) Docker plugin, built offline. dockerd starts a managed
# plugin itself, before it restores containers, so containers with a restart policy find their
# network at boot; only managed plugins can serve swarm services.
#
# The plugin's root filesystem is assembled from what is on this machine, nothing downloaded: the
# built product (scripts/product-files.sh), Node.js, the `nft`, `ip`, `sh` and `mkdir` programs the
# daemon and its entrypoint run (drift repair watches `nft monitor` and `ip monitor`; overlays use
# `ip netns`), libnftables, and the shared libraries
# all of them load (ldd), with an ld.so.cache made for that tree. packaging/plugin/config.json
# says what the plugin is: a network and IPAM driver on the host's network, with CAP_NET_ADMIN
# and CAP_NET_BIND_SERVICE, its state and log on the host (so upgrades and disable/enable keep
# every network), and the host's /proc/sys writable (the plugin's own is read-only). Overlays keep
# their bridge in a network namespace of their own, mounted in /run/netns as `ip netns add` does:
# for that mount to outlive the plugin it must reach the host's mount namespace, so the plugin
# has CAP_SYS_ADMIN, the host's /run mounted rshared at /run/host (/run/netns is a link to
# host/netns), and a propagatedMount, which is what makes dockerd give the plugin a root with
# shared propagation.
#
# Then `docker plugin create` and `docker plugin enable`. A plugin of this name built from the
# same version is only enabled; another version replaces it: disable (containers keep running:
# their links and rules stay in the kernel), remove, create, enable.
#
# Variables: PLUGIN (the plugin's name, default tsnet: `docker network create -d tsnet`; it also
# names its nftables table and link tags, so it must not be the name of a tsnet daemon already
# serving on this host), STATE_DIR (default /var/lib/PLUGIN), LOG_DIR (default /var/log/PLUGIN),
# VERSION (default as make install), DOCKER (the docker command).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/product-files.sh

name=${PLUGIN:-tsnet}
state_dir=${STATE_DIR:-/var/lib/$name}
log_dir=${LOG_DIR:-/var/log/$name}
docker=${DOCKER:-docker}
fail() { echo "plugin: $*" >&2; exit 1; }

# the plugin name is the socket's name inside the plugin, and so the daemon's instance name
# (daemon/paths.ts instanceOf)
[[ "$name" =~ ^[A-Za-z][A-Za-z0-9-]{0,31}$ ]] || fail "PLUGIN '$name': start with a letter, then letters, digits and '-', at most 32"
[ -f dist/.built ] || fail "no build in dist/: run make build (make up does) first"
"$docker" version --format '{{.Server.Version}}' >/dev/null 2>&1 || fail "no Docker engine answers ($docker version): start dockerd first"
version=${VERSION:-$(default_version)}
description="tsnet $version: bridge, macvlan and overlay networks and IPAM"

# a tsnet daemon already serving this name (make up, the unit) would share its table and links
legacy=/run/docker/plugins/$name.sock
if [ -S "$legacy" ] && ss -xlH | awk -v s="$legacy" '$5 == s { found = 1 } END { exit !found }'; then
  fail "a tsnet daemon serves $legacy already (make up or tsnet.service): stop it first (make down, or systemctl disable --now tsnet), or give another PLUGIN name"
fi

ref=$name:latest
installed=$("$docker" plugin inspect --format '{{.Config.Description}}' "$ref" 2>/dev/null || true)
if [ "$installed" = "$description" ]; then
  [ "$("$docker" plugin inspect --format '{{.Enabled}}' "$ref")" = true ] || "$docker" plugin enable "$ref" >/dev/null
  echo "the managed plugin $ref ($version) is installed and enabled"
  exit 0
fi

# ---------------------------------------------------------------- the root filesystem
build=$(mktemp -d /var/tmp/tsnet-plugin.XXXXXX)
trap 'rm -rf "$build"' EXIT
rootfs=$build/rootfs
mkdir -p "$rootfs"/{etc,tmp,proc,sys,dev,run/docker/plugins,run/host,run/tsnet/proc-sys,run/tsnet/propagated,var/lib/tsnet,var/log/tsnet,usr/bin,usr/sbin,usr/lib}
chmod 1777 "$rootfs/tmp"
# the overlays' namespaces (ip netns add, native/named-netns.ts) go to the host's /run/netns
ln -s host/netns "$rootfs/run/netns"
# /bin, /lib... as on this host (merged /usr on Debian 12: links into usr/)
for d in bin sbin lib lib64; do
  if [ -L "/$d" ]; then
    mkdir -p "$rootfs/$(readlink "/$d")" && ln -s "$(readlink "/$d")" "$rootfs/$d"
  else
    mkdir -p "$rootfs/$d"
  fi
done
copy_product "$rootfs/opt/tsnet"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
touch "$rootfs/etc/machine-id"   # the host's is mounted over it
[ ! -d /etc/iproute2 ] || cp -a /etc/iproute2 "$rootfs/etc/"

# a file and every shared library it loads, at the same paths as on the host
add_file() {
  local f=$1
  [ -e "$rootfs$f" ] || { mkdir -p "$rootfs$(dirname "$f")" && cp -L "$f" "$rootfs$f"; }
}
add_with_libraries() {
  local f=$1 lib
  add_file "$f"
  for lib in $(ldd "$f" 2>/dev/null | grep -oE '(^|\s)/[^ ]+' | tr -d ' \t'); do add_file "$lib"; done
}
# (awk reads to the end: with pipefail, a reader that quits early fails the pipe with SIGPIPE)
first_library() { ldconfig -p | awk -v name="$1" '$1 == name && !found { print $NF; found = 1 }'; }
nftables_lib=$(first_library libnftables.so.1)
[ -n "$nftables_lib" ] || fail "libnftables.so.1 is not installed (Debian package libnftables1: make up installs it)"
# (mkdir: the entrypoint makes the host's /run/netns when it is missing, as at boot)
for f in "$(command -v node)" "$(command -v nft)" "$(command -v ip)" "$(readlink -f /bin/sh)" "$(command -v mkdir)" "$nftables_lib" \
  "$(first_library libc.so.6)"; do
  add_with_libraries "$f"
done
ln -sf "$(basename "$(readlink -f /bin/sh)")" "$rootfs/usr/bin/sh" 2>/dev/null || true
# native addons of the node packages (better-sqlite3, koffi) and what they load
while IFS= read -r addon; do
  for lib in $(ldd "$addon" 2>/dev/null | grep -oE '(^|\s)/[^ ]+' | tr -d ' \t'); do add_file "$lib"; done
done < <(find "$rootfs/opt/tsnet/node_modules" -name '*.node' -path '*linux*x64*' -o -name '*.node' -path '*/build/Release/*')
# dlopen by name (libnftables.so.1, libc.so.6) finds libraries through this tree's own cache
cp -a /etc/ld.so.conf "$rootfs/etc/" 2>/dev/null || true
[ ! -d /etc/ld.so.conf.d ] || cp -a /etc/ld.so.conf.d "$rootfs/etc/"
ldconfig -r "$rootfs"

sed -e "s|@NAME@|$name|g" -e "s|@VERSION@|$version|g" -e "s|@STATE_DIR@|$state_dir|g" -e "s|@LOG_DIR@|$log_dir|g" \
  packaging/plugin/config.json >"$build/config.json"
mkdir -p "$state_dir" "$log_dir"

# ---------------------------------------------------------------- create and enable
if [ -n "$installed" ]; then
  # another version: containers keep their links and rules while the plugin is away
  "$docker" plugin disable --force "$ref" >/dev/null 2>&1 || true
  "$docker" plugin rm --force "$ref" >/dev/null
  echo "removed the managed plugin $ref (${installed#tsnet })"
fi
"$docker" plugin create "$ref" "$build" >/dev/null
"$docker" plugin enable "$ref" >/dev/null
echo "the managed plugin $ref ($version) is installed and enabled: docker network create -d $name ..."
