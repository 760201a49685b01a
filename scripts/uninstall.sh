#!/usr/bin/env bash
# `make uninstall`: removes what `make install` and the daemon put on the host: the systemd unit,
# the installed copies and their links, the CNI plugin, /etc/default/tsnet, and the instance's
# kernel state (its nftables tables in the inet and bridge families, its rules in Docker's
# DOCKER-USER/FORWARD chains, its links), its state and its logs. It refuses while the instance
# has networks (containers would lose theirs) unless FORCE=1.
#
# The instance is the one the settings name (env, else /etc/default/tsnet, else the defaults of
# daemon/settings.ts): its plugin name is the socket's file name, which also names its table, its
# rule comments ("<name>:") and its link aliases ("<name>:..."), so another instance (tsnet-e2e of
# the tests) and Docker's own chains, rules and bridges are never touched.
# The managed Docker plugin of the same name (make plugin) is disabled and removed too; its state
# and log folders are the same as the service's (/var/lib/NAME, /var/log/NAME).
# Variables: FORCE=1, DESTDIR and PREFIX as for scripts/install.sh, PLUGIN (another instance's name,
# as for make plugin), TSNET_STATE_DIR, TSNET_SOCKET, TSNET_LOG.
set -euo pipefail
cd "$(dirname "$0")/.."
destdir=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
lib=$destdir$prefix/lib/tsnet
defaults=$destdir/etc/default/tsnet
unit=$destdir/etc/systemd/system/tsnet.service

# the service's settings file, for what the environment does not set ("KEY=value", quotes optional)
if [ -f "$defaults" ]; then
  while IFS='=' read -r key value; do
    value=${value%\"} value=${value#\"}
    [ -n "${!key:-}" ] || export "$key=$value"
  done < <(grep -E '^TSNET_[A-Z_]+=' "$defaults")
fi
state_dir=${TSNET_STATE_DIR:-/var/lib/${PLUGIN:-tsnet}}
socket=${TSNET_SOCKET:-/run/docker/plugins/${PLUGIN:-tsnet}.sock}
log=${TSNET_LOG:-/var/log/${PLUGIN:-tsnet}/tsnet.log}
name=$(basename "$socket" .sock)
table=${name//-/_}

# the tsnet CLI: the installed copy, else this clone's build
cli=$lib/current/dist/cli/main.js
[ -f "$cli" ] || cli=dist/cli/main.js

# ---------------------------------------------------------------- refuse while networks exist
if [ -f "$state_dir/tsnet.db" ] && [ "${FORCE:-}" != 1 ]; then
  [ -f "$cli" ] || { echo "uninstall: no tsnet build to read $state_dir with; FORCE=1 removes it unread" >&2; exit 1; }
  networks=$(node "$cli" status --json --state-dir "$state_dir" |
    node -e 'const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
      for (const n of s.networks) console.log(`  ${n.name ?? n.cniName ?? n.id.slice(0, 12)} (${n.driver})`);')
  if [ -n "$networks" ]; then
    echo "uninstall: tsnet ($name, $state_dir) still has networks; their containers would lose their network:" >&2
    echo "$networks" >&2
    echo "Remove them first (docker network rm NAME, or through the CNI runtime), or run FORCE=1 make uninstall." >&2
    exit 1
  fi
fi

# ---------------------------------------------------------------- stop the daemon
if [ -z "$destdir" ] && [ -d /run/systemd/system ] && [ -f "$unit" ]; then
  systemctl disable --now --quiet tsnet.service
fi
# the managed plugin of this name (make plugin): dockerd stops its daemon
if command -v docker >/dev/null && docker plugin inspect "$name:latest" >/dev/null 2>&1; then
  docker plugin disable --force "$name:latest" >/dev/null
  docker plugin rm --force "$name:latest" >/dev/null
  echo "removed the managed Docker plugin $name:latest"
fi
# whatever serves this instance's socket (the unit's daemon without systemd, or make up's)
pid=$(ss -xlpnH | awk -v s="$socket" '$5 == s' | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)
# running: not gone, and not a zombie that exited and waits for its parent to reap it
running() { [ -n "$(awk '$1 == "State:" && $2 != "Z"' "/proc/$1/status" 2>/dev/null)" ]; }
if [ -n "$pid" ]; then
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    echo "uninstall: tsnet (pid $pid) did not stop within 10 s of SIGTERM; kill -9 $pid, then run this again" >&2
    exit 1
  fi
  echo "stopped tsnet (pid $pid)"
fi
rm -f "$socket"

# ---------------------------------------------------------------- the instance's kernel state
for family in inet bridge; do
  if nft list table "$family" "$table" >/dev/null 2>&1; then
    nft delete table "$family" "$table" && echo "deleted nftables table $family $table"
  fi
done
# its accepts in Docker's chains, found by their comment "<name>:<bridge>" (firewall/docker-compat.ts)
rule_handles() {
  nft -a list chain "$1" filter "$2" 2>/dev/null | grep -F "comment \"$name:" | grep -o '[0-9]*$' || true
}
for family in ip ip6; do
  for chain in DOCKER-USER FORWARD; do
    for handle in $(rule_handles "$family" "$chain"); do
      nft delete rule "$family" filter "$chain" handle "$handle" && echo "deleted a $name rule from $family filter $chain"
    done
  done
done
# its links: bridges, host ends of veths, vxlans (alias "<name>:...", drivers/owner.ts)
tagged_links() {
  ip -j link show | node -e 'const tag = process.argv[1] + ":";
    for (const l of JSON.parse(require("fs").readFileSync(0, "utf8"))) if (l.ifalias?.startsWith(tag)) console.log(l.ifname);' "$name"
}
for link in $(tagged_links); do
  # a veth goes with its bridge's removal, or its peer's: gone is fine
  ip link del "$link" 2>/dev/null && echo "deleted link $link" || true
done

# ---------------------------------------------------------------- files
if [ -f "$unit" ]; then
  systemctl --root="${destdir:-/}" disable --quiet tsnet.service
  rm -f "$unit"
  [ -n "$destdir" ] || [ ! -d /run/systemd/system ] || systemctl daemon-reload
  echo "removed $unit"
fi
remove() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  rm -rf "$1" && echo "removed $1"
}
remove "$defaults"
remove "$lib"
# the command, when it is a link make install or make link made (into an installed copy or a clone)
case "$(readlink "$destdir$prefix/bin/tsnet" 2>/dev/null)" in */bin/tsnet) remove "$destdir$prefix/bin/tsnet" ;; esac
[ "$(readlink "$destdir/usr/lib/cni/tsnet" 2>/dev/null)" != /opt/cni/bin/tsnet ] || remove "$destdir/usr/lib/cni/tsnet"
remove "$destdir/opt/cni/bin/tsnet"
# state and logs: never a directory that is not tsnet's own (a state dir holds tsnet.db)
[ "$state_dir" != / ] && { [ -f "$state_dir/tsnet.db" ] || [ "$(basename "$state_dir")" = tsnet ]; } && remove "$state_dir"
log_dir=$(dirname "$log")
case "$(basename "$log_dir")" in
  tsnet | "$name") remove "$log_dir" ;;
  *) remove "$log" ;;
esac
echo "tsnet ($name) is uninstalled"
