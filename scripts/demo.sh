#!/usr/bin/env bash
# The README's first command: on the embedded default (SQLite file, local engine), start
# `slipway serve`, queue a real build of examples/build-push-run through the client,
# push it to the local registry, then run a multi-step task file on the daemon, and add
# a task whose timer starts a run every minute. Open the printed address in a browser to
# watch the runs (the dashboard); in a terminal the daemon stays up until Enter.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/testbed.sh)"
cargo build -q -p slipway-cli
SLIPWAY=target/debug/slipway
work=$(mktemp -d)
port=${SLIPWAY_DEMO_PORT:-8080}
export SLIPWAY_SERVER="http://127.0.0.1:$port"
if curl -sS -o /dev/null "$SLIPWAY_SERVER/healthz" 2>/dev/null; then
  echo "demo: something already answers on port $port; stop it or set SLIPWAY_DEMO_PORT to a free port" >&2
  exit 1
fi
echo "demo: starting slipway serve (data in $work)" >&2
(cd "$work" && exec "$OLDPWD/$SLIPWAY" serve --listen "127.0.0.1:$port" --registry "$SLIPWAY_TEST_REGISTRY") >"$work/serve.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS "$SLIPWAY_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# The daemon answering must be the one just started, not another program on the port.
if ! kill -0 "$daemon" 2>/dev/null || ! curl -fsS "$SLIPWAY_SERVER/healthz" >/dev/null 2>&1; then
  echo "demo: slipway serve did not start; its log:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
echo "demo: the dashboard is at $SLIPWAY_SERVER/ (open it now to watch the runs live)" >&2
$SLIPWAY build -t "$SLIPWAY_TEST_REGISTRY/hello-world:demo" --build-arg GREETING=hello examples/build-push-run
$SLIPWAY run -f acb.yaml --values values.yaml --set who=world examples/values-and-aliases
$SLIPWAY runs list
$SLIPWAY task create -n demo-heartbeat --cmd "$SLIPWAY_TEST_BASE_IMAGE echo heartbeat" --schedule "every:* * * * *" >/dev/null
echo "demo: task demo-heartbeat runs every minute: $SLIPWAY_SERVER/tasks/demo-heartbeat" >&2
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  echo "demo: the daemon keeps running; press Enter to stop it" >&2
  read -r _
fi
