#!/usr/bin/env bash
# Debian packages the tests need, besides the run-time ones. Idempotent and quiet, like
# install-deps.sh (which does the work).
set -euo pipefail
test_only=(
  docker.io busybox-static iptables            # the docker layer: engine, test image
  etcd-server etcd-client                      # the overlay's shared store
  containernetworking-plugins                  # reference CNI plugins to chain with
  podman                                       # a CNI runtime driving the tsnet plugin
  iputils-ping curl conntrack tcpdump iperf3   # probing packets
  hyperfine sqlite3                            # benchmarks, reading the state
  systemd                                      # systemd-analyze verify checks tsnet.service
  prometheus                                   # promtool check metrics, on the daemon's scrape
)
exec "$(dirname "$0")/install-deps.sh" "${test_only[@]}"
