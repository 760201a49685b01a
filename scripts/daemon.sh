#!/usr/bin/env bash
# Starts (idempotently) or stops the tsnet daemon in the background for `make up` / `make down`.
# A running daemon is restarted when the build is newer than it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
pidfile=/run/tsnet/tsnet.pid
socket=/run/docker/plugins/tsnet.sock
logdir=/var/log/tsnet

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stop() {
  running || { rm -f "$pidfile"; echo "tsnet is not running"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "tsnet (pid $pid) did not stop within 10 s" >&2; return 1; fi
  rm -f "$pidfile"
  echo "tsnet stopped; networks and containers keep working"
}

start() {
  ln -sfn "$root/bin/tsnet" /usr/local/bin/tsnet
  if running; then
    if [ "$root/dist/.built" -nt "$pidfile" ]; then echo "the build changed: restarting tsnet"; stop; else echo "tsnet is running (pid $(cat "$pidfile"))"; return 0; fi
  fi
  mkdir -p /run/tsnet "$logdir"
  setsid node "$root/dist/cli/main.js" serve --socket "$socket" --log "$logdir/tsnet.log" \
    >>"$logdir/daemon.out" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 150); do
    if curl -sf --unix-socket "$socket" -X POST http://plugin/Plugin.Activate >/dev/null 2>&1; then
      echo "tsnet is serving on $socket (log: $logdir/tsnet.log)"
      return 0
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  echo "tsnet did not start; last lines of its output:" >&2
  tail -n 20 "$logdir/daemon.out" "$logdir/tsnet.log" >&2 2>/dev/null || true
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
