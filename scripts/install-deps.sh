#!/usr/bin/env bash
# Debian packages tsnet needs at run time. Idempotent and quiet: installs only what is missing
# (running apt-get update only then) and says what it installs.
#   scripts/install-deps.sh [EXTRA_PACKAGE...]     (install-test-deps.sh passes the test-only ones)
set -euo pipefail
# etcd-server and etcd-client: the overlay lab (tsnet lab) runs its own etcd; gcc and libc6-dev
# build the CNI plugin executable; python3-minimal runs drift repair's reader of nftables element
# events (daemon/element-events.ts)
runtime=(nftables libnftables1 iproute2 curl ca-certificates etcd-server etcd-client gcc libc6-dev python3-minimal)
missing=()
for p in "${runtime[@]}" "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# Packages must not start their services (docker.io would start dockerd, etcd-server an etcd on
# :2379): the tests start what they need and stop it after. policy-rc.d says so to invoke-rc.d.
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
fi
trap 'rm -f "$log"; [ -z "$own_policy" ] || rm -f "$policy"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1 </dev/null; then
  cat "$log" >&2
  echo "apt-get failed to install: ${missing[*]}" >&2
  exit 1
fi
