#!/usr/bin/env bash
# Benchmark (not a test): how a cluster should carry topic publishes over Redis, measured at
# TOPICS topics (default 10,000) and PROCESSES processes (default "2 4"): a channel per topic, subscribed by a
# process only while it has a subscriber of the topic (what the server does), against one
# channel for every publish with its topic inside (every process hears everything and drops
# what it has no subscriber for). `loadgen channels` plays the two processes' Redis threads
# with the same redis crate as the server; see tools/loadgen/src/channels.rs. Each topic has
# subscribers in one process (spread "one") or in all of them ("all"). Per row, ROUNDS runs of
# PUBLISHES publishes, the layouts taking turns; medians, and the spread of publishes/s.
#   bash bench/topic-channels.sh        TOPICS=10000 PUBLISHES=200000 ROUNDS=3 PROCESSES="2 4"
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
TOPICS=${TOPICS:-10000}
PUBLISHES=${PUBLISHES:-200000}
ROUNDS=${ROUNDS:-3}
PROCESSES=${PROCESSES:-"2 4"}

cargo build --locked --release -q -p loadgen
mkdir -p build/run
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >build/run/channels-redis.log 2>&1 &
redis=$!
trap 'kill "$redis" 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

echo "| processes | layout, topics with subscribers in | time to subscribe, s | publishes/s (median) | spread | Redis CPU µs per publish | the processes' CPU µs per publish | messages received per process |"
echo "|---|---|---|---|---|---|---|---|"
for processes in $PROCESSES; do
for spread in one all; do
  results=build/run/channels-$processes-$spread
  rm -f "$results".{per-topic,one}
  for _ in $(seq "$ROUNDS"); do
    for layout in per-topic one; do
      LOADGEN_REDIS_PID=$redis target/release/loadgen channels "redis://127.0.0.1:$port" "$layout" "$spread" "$TOPICS" "$PUBLISHES" "$processes" |
        tee -a "$results.$layout" >&2
    done
  done
  for layout in per-topic one; do
    python3 - "$layout" "$spread" "$processes" "$results.$layout" <<'PY'
import statistics, sys
layout, spread, processes, path = sys.argv[1:5]
rows = [line.split() for line in open(path)]
value = lambda key: [float(row[row.index(key) + 1]) for row in rows]
rates = value("publishes/s")
where = "one process each" if spread == "one" else "every process"
print(f"| {processes} | {layout}, {where} | {statistics.median(value('subscribe_s')):.3f} "
      f"| {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} "
      f"| {statistics.median(value('redis_cpu_us_per_publish')):.2f} "
      f"| {statistics.median(value('processes_cpu_us_per_publish')):.2f} | {rows[0][-1]} |")
PY
  done
done
done
