#!/usr/bin/env bash
# Debian packages tsnet needs at run time (or, with --test, to run its tests). Idempotent:
# installs only what is missing, and runs apt-get update only then.
set -euo pipefail
runtime=(nftables libnftables1 iproute2 curl ca-certificates)
test_only=(docker.io busybox-static etcd-server etcd-client containernetworking-plugins iputils-ping conntrack tcpdump iperf3 hyperfine iptables sqlite3)
wanted=("${runtime[@]}")
[ "${1:-}" = "--test" ] && wanted+=("${test_only[@]}")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
