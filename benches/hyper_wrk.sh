#!/usr/bin/env bash
# hyper 1.x hello world on pitcrew (examples/hyper_hello.rs) against the same server on tokio and
# hyper-util (examples/hyper_hello_tokio.rs), each loaded with `wrk -t2 -c50 -d10s` over loopback.
# Prints requests/s side by side.
#
#   bash benches/hyper_wrk.sh            # DURATION=10s CONNECTIONS=50 THREADS=2 by default
#   DURATION=3s bash benches/hyper_wrk.sh
#   ROUNDS=3 bash benches/hyper_wrk.sh   # alternate the servers 3 times, report the medians
#
# On a shared 2-core machine wrk and the server compete for the same cores, and other work on the
# machine moves single runs by +-30%: prefer ROUNDS=3 or more on a quiet machine.
#
# Needs wrk (the Debian package; installed here with apt-get when missing and we are root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-1}
PITCREW_PORT=${PITCREW_PORT:-38081}
TOKIO_PORT=${TOKIO_PORT:-38082}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "hyper_wrk: installing wrk" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "hyper_wrk: wrk is not installed (apt-get install wrk)" >&2
        exit 1
    fi
fi

cargo build --release --features hyper --example hyper_hello --example hyper_hello_tokio

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# Starts example $1 on port $2, waits (at most 10 s) until it accepts, runs wrk, prints req/s.
measure() {
    local example=$1 port=$2
    "$TARGET_DIR/release/examples/$example" "$port" >/dev/null 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "hyper_wrk: $example did not start listening on port $port" >&2
        exit 1
    fi
    local out
    out=$(wrk "-t$THREADS" "-c$CONNECTIONS" "-d$DURATION" "http://127.0.0.1:$port/")
    echo "--- $example" >&2
    echo "$out" >&2
    stop_server
    echo "$out" | awk '/^Requests\/sec:/ { print $2 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

pitcrew_all=()
tokio_all=()
for round in $(seq "$ROUNDS"); do
    pitcrew_all+=("$(measure hyper_hello "$PITCREW_PORT")")
    tokio_all+=("$(measure hyper_hello_tokio "$TOKIO_PORT")")
    echo "round $round: pitcrew ${pitcrew_all[-1]} req/s, tokio ${tokio_all[-1]} req/s" >&2
done
pitcrew_rps=$(printf '%s\n' "${pitcrew_all[@]}" | median)
tokio_rps=$(printf '%s\n' "${tokio_all[@]}" | median)

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, hyper hello world over loopback (median of $ROUNDS)"
printf '%-10s %14s\n' "runtime" "requests/s"
printf '%-10s %14s\n' "pitcrew" "$pitcrew_rps"
printf '%-10s %14s\n' "tokio" "$tokio_rps"
awk -v p="$pitcrew_rps" -v t="$tokio_rps" 'BEGIN { if (t > 0) printf "pitcrew/tokio %.2fx\n", p / t }'
