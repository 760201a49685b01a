#!/usr/bin/env bash
# `make install`: tsnet as a host service. Copies the built tsnet (dist/, production node_modules,
# bin/tsnet, package.json) into PREFIX/lib/tsnet/VERSION, never changing a version once there,
# and switches PREFIX/lib/tsnet/current to it with one rename: an upgrade swaps versions in one
# step and the previous version stays on disk (roll back: point `current` at it again). Then
# PREFIX/bin/tsnet -> the current copy, the CNI plugin, the systemd unit (tsnet.service, ordered
# before docker.service) and /etc/default/tsnet (only when missing: it holds the operator's
# settings). Enables the unit (also where systemd is not running: it starts at the next boot);
# where systemd runs, (re)starts it when something changed.
#
#   scripts/install.sh        run by `make install` after `make build`
# Variables: DESTDIR (a staging root; then systemctl is never called), PREFIX (/usr/local),
# VERSION (default: package.json's version and the git commit, plus a hash of the build when the
# clone has uncommitted changes, so a changed build never reuses an installed version's name).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
. scripts/product-files.sh
destdir=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
lib=$destdir$prefix/lib/tsnet
bindir=$destdir$prefix/bin
unitdir=$destdir/etc/systemd/system
unit=$unitdir/tsnet.service
defaults=$destdir/etc/default/tsnet

[ -f dist/.built ] && [ -x dist/cni/tsnet ] || { echo "install: no build in $repo/dist: run make build first" >&2; exit 1; }

version=${VERSION:-$(default_version)}
[[ "$version" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || { echo "install: VERSION '$version' is not a plain name" >&2; exit 1; }

# A complete copy in a temporary directory of the same file system, renamed into place: a
# version directory is either whole or absent.
install_version() {
  local dir=$lib/$version tmp
  if [ -d "$dir" ]; then
    echo "tsnet $version is installed already ($dir)"
    return
  fi
  mkdir -p "$lib"
  rm -rf "$lib"/.installing-*   # what an interrupted install left
  tmp=$(mktemp -d "$lib/.installing-$version.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  copy_product "$tmp" || { echo "install: no complete copy made" >&2; exit 1; }
  mkdir -p "$tmp/libexec"
  install -m 0755 packaging/systemd/tsnet-wait-ready "$tmp/libexec/"
  chmod -R a+rX,go-w "$tmp"
  mv -T "$tmp" "$dir"
  trap - EXIT
  echo "installed tsnet $version in $dir"
}

# A symlink replaced with rename(2): whoever looks sees the old target or the new, never none.
switch_link() {
  local target=$1 link=$2
  [ "$(readlink "$link" 2>/dev/null)" != "$target" ] || return 1
  mkdir -p "$(dirname "$link")"
  ln -sfn "$target" "$link.new.$$"
  mv -T "$link.new.$$" "$link"
}

install_version
changed=
if switch_link "$version" "$lib/current"; then
  echo "switched $lib/current -> $version"
  changed=1
fi
# relative, so the link is right under DESTDIR too; bin/tsnet resolves it to find its copy
if switch_link ../lib/tsnet/current/bin/tsnet "$bindir/tsnet"; then
  echo "linked $bindir/tsnet -> ../lib/tsnet/current/bin/tsnet"
fi

cmp -s dist/cni/tsnet "$destdir/opt/cni/bin/tsnet" || {
  install -D -m 0755 dist/cni/tsnet "$destdir/opt/cni/bin/tsnet" && echo "installed the CNI plugin $destdir/opt/cni/bin/tsnet"
}
switch_link /opt/cni/bin/tsnet "$destdir/usr/lib/cni/tsnet" && echo "linked $destdir/usr/lib/cni/tsnet -> /opt/cni/bin/tsnet"

# the unit, with this PREFIX's paths
new_unit=$(sed "s|/usr/local/|$prefix/|g" packaging/systemd/tsnet.service)
if [ "$(cat "$unit" 2>/dev/null)" != "$new_unit" ]; then
  mkdir -p "$unitdir"
  printf '%s\n' "$new_unit" >"$unit.new.$$" && mv -T "$unit.new.$$" "$unit"
  echo "installed $unit"
  changed=1
fi
if [ ! -e "$defaults" ]; then
  install -D -m 0644 packaging/systemd/tsnet.default "$defaults"
  echo "installed $defaults (settings, commented out: the defaults apply)"
fi

# enabled = linked into multi-user.target and docker.service (starting dockerd starts tsnet);
# --root works without a running systemd, and under DESTDIR
systemctl --root="${destdir:-/}" enable --quiet tsnet.service
if [ -n "$destdir" ]; then
  exit 0
elif [ ! -d /run/systemd/system ]; then
  echo "systemd is not running here: tsnet.service is enabled and starts at the next boot with systemd;"
  echo "until then make up starts the daemon"
  exit 0
fi
systemctl daemon-reload
if [ -n "$changed" ] || ! systemctl is-active --quiet tsnet.service; then
  # a daemon make up started from the clone holds the socket: the unit's daemon takes over
  scripts/daemon.sh stop >/dev/null
  systemctl restart tsnet.service
  echo "tsnet.service (re)started with $version"
else
  echo "tsnet.service is running $version"
fi
