#!/usr/bin/env bash
# Starts (idempotently) or stops the tsnet daemon in the background, for `make up` / `make down`.
#   start: links /usr/local/bin/tsnet, starts `tsnet serve` unless it runs (restarting it when the
#          build is newer than it), waits until the plugin socket answers Plugin.Activate
#   stop:  SIGTERM, waits, and says so loudly when it does not stop; networks and containers
#          keep working while the daemon is down
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pidfile=/run/tsnet/tsnet.pid
socket=/run/docker/plugins/tsnet.sock
logdir=/var/log/tsnet
log=$logdir/tsnet.log
out=$logdir/daemon.out   # the daemon's stdout/stderr: crashes before its log is open land here

# the pid in the pid file, when that process is alive and is a tsnet daemon
daemon_pid() {
  local pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'cli/main.js serve' || return 1
  echo "$pid"
}

answers() {
  curl -sf --max-time 2 --unix-socket "$socket" -X POST http://tsnet/Plugin.Activate >/dev/null 2>&1
}

stop() {
  local pid
  if ! pid=$(daemon_pid); then
    rm -f "$pidfile"
    echo "tsnet is not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "ERROR: tsnet (pid $pid) did not stop within 10 s of SIGTERM; it is still running." >&2
    echo "Look at $log; kill -9 $pid ends it (tsnet recovers its state on the next start)." >&2
    return 1
  fi
  rm -f "$pidfile"
  echo "tsnet stopped; networks and containers keep working"
}

start() {
  local pid
  if pid=$(daemon_pid); then
    if [ "$root/dist/.built" -nt "$pidfile" ]; then
      echo "the build changed: restarting tsnet (pid $pid)"
      stop
    else
      echo "tsnet is running (pid $pid) on $socket"
      return 0
    fi
  elif answers; then
    echo "ERROR: something already answers on $socket, but not a tsnet that make up started ($pidfile)." >&2
    echo "Stop it first, then run make up again." >&2
    return 1
  fi
  mkdir -p "$(dirname "$pidfile")" "$logdir" "$(dirname "$socket")"
  echo "=== $(date -Is) make up: starting tsnet" >>"$out"
  # setsid: its own session, so a Ctrl-C in this terminal does not reach it. In a script without
  # job control setsid execs in place, so $! is the daemon's pid.
  setsid node "$root/dist/cli/main.js" serve --socket "$socket" --log "$log" >>"$out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 1 150); do
    if answers; then
      echo "tsnet is serving on $socket (pid $pid, log $log)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "ERROR: tsnet (pid $pid) did not answer on $socket within 15 s; stopping it." >&2
    kill -TERM "$pid" 2>/dev/null || true
  else
    echo "ERROR: tsnet exited while starting." >&2
  fi
  rm -f "$pidfile"
  echo "--- $out (last lines)" >&2
  tail -n 20 "$out" >&2 2>/dev/null || true
  echo "--- $log (last lines)" >&2
  tail -n 20 "$log" >&2 2>/dev/null || true
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
