#!/usr/bin/env bash
# The demo behind `make run`: the web app, a real Celery worker and beat, side by side,
# with no broker server (kombu's filesystem transport under var/broker) and SQLite.
# Ctrl-C stops all three and leaves no process behind.
#
# `make run` creates the venv, migrates and loads the demo first; this script can also be
# run again on its own after that. DEMO_PORT changes the port (default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."

export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-collections_portal.settings.local}"
# Without it Python block-buffers output into the pipe below and the log arrives late.
export PYTHONUNBUFFERED=1
BIN=.venv/bin
HOST=127.0.0.1
PORT="${DEMO_PORT:-8000}"
RUN_DIR=var/run

if [[ ! -x $BIN/python || ! -x $BIN/celery ]]; then
  echo "run_demo: $BIN/python or $BIN/celery is missing; run 'make run', which installs them." >&2
  exit 1
fi

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }
if port_open; then
  echo "run_demo: something already answers on $HOST:$PORT (another 'make run'?); stop it or set DEMO_PORT." >&2
  exit 1
fi

mkdir -p var/broker/queue var/broker/processed var/broker/control "$RUN_DIR"

# Loads the demo if it is missing, otherwise changes nothing; either way it prints the
# logins, which the banner shows once the web app answers.
logins=$("$BIN/python" manage.py seed_demo | sed -n '/^Demo logins/,$s/^/  /p')

# Job control, on while the services start, puts each in a process group of its own: the
# terminal's Ctrl-C then reaches only make and this script, and the trap below stops each
# service's whole group (runserver's autoreloader child, the worker's pool) with the
# signal it expects, and makes sure nothing is left.
service_names=()
service_groups=()
stop_signals=()

# start NAME STOP_SIGNAL COMMAND...: run COMMAND with its output prefixed by [NAME]. The
# prefixing sed ignores the stop signals so that it outlives the service and prints its
# last words.
start() {
  local name=$1
  service_names+=("$name")
  stop_signals+=("$2")
  shift 2
  { "$@" </dev/null 2>&1 | { trap '' INT TERM; exec sed -u "s/^/[$name] /"; }; } &
  service_groups+=("$!")
}

alive() {
  local group
  for group in "${service_groups[@]}"; do
    kill -0 -- "-$group" 2>/dev/null && return 0
  done
  return 1
}

# signal_all [SIGNAL]: each service's whole group, with its own stop signal by default.
signal_all() {
  local i
  for i in "${!service_groups[@]}"; do
    kill "-${1:-${stop_signals[$i]}}" -- "-${service_groups[$i]}" 2>/dev/null || true
  done
}

wait_until_stopped() {
  local deadline=$((SECONDS + $1))
  while alive && ((SECONDS < deadline)); do sleep 0.2; done
  ! alive
}

stopped=0
stop() {
  ((stopped)) && return 0
  stopped=1
  ((${#service_groups[@]})) || return 0
  echo
  echo "run_demo: stopping the web app, the worker and beat..."
  signal_all
  wait_until_stopped 30 && return 0
  echo "run_demo: still running after 30 s; terminating." >&2
  signal_all TERM
  wait_until_stopped 5 && return 0
  signal_all KILL
  wait_until_stopped 5 || echo "run_demo: some processes would not stop: process groups ${service_groups[*]}" >&2
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT

# Stop signals: SIGINT is Ctrl-C for Celery: the worker finishes its current task (warm
# shutdown; its pool processes ignore SIGINT), beat saves its state and exits. runserver
# has nothing to finish, and SIGTERM stops it and its autoreloader child even when this
# script was started with SIGINT ignored (nohup, some CI runners), which they'd inherit.
set -m
start web TERM "$BIN/python" manage.py runserver "$HOST:$PORT"
# --without-gossip/mingle/heartbeat: one worker has no peers to talk to, and on the
# filesystem transport each heartbeat would be a file written every two seconds.
start worker INT "$BIN/celery" -A collections_portal worker -l info --concurrency 2 -n "demo@%h" \
  --without-gossip --without-mingle --without-heartbeat
start beat INT "$BIN/celery" -A collections_portal beat -l info \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler \
  --pidfile "$RUN_DIR/celerybeat.pid" --schedule "$RUN_DIR/celerybeat-schedule"
set +m

# One sweep now rather than at beat's next tick: a demo loaded on an earlier day is
# brought up to today at once, and the worker's log shows it working.
"$BIN/celery" -A collections_portal call cases.tasks.escalation_sweep >/dev/null

deadline=$((SECONDS + 60))
until port_open; do
  if ! kill -0 "${service_groups[0]}" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "run_demo: the web app did not start; see the [web] lines above." >&2
    exit 1
  fi
  sleep 0.3
done

cat <<EOF

================================================================================
  Collections portal demo: http://$HOST:$PORT/
$logins

  Web app, Celery worker and beat are running. SMS and email go to this console.
  Press Ctrl-C to stop all three.
================================================================================

EOF

# Returns when a service exits by itself (or a signal arrives and the trap takes over).
wait -n || true
for i in "${!service_groups[@]}"; do
  kill -0 "${service_groups[$i]}" 2>/dev/null || echo "run_demo: [${service_names[$i]}] stopped unexpectedly." >&2
done
echo "run_demo: stopping the others; see the lines above for why." >&2
exit 1
