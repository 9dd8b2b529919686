# bench/scale-out.sh's QUOTA mode (sourced by it, after its helpers): server processes
# under a CPU quota each, with the cgroup v1 cpu controller.
#
# What the quota simulates: a machine where each server process has QUOTA of a core and
# the load generators have cores of their own. What it cannot: the kernel's loopback work
# (TCP on 127.0.0.1) is charged to whichever process sends, so part of a delivery's cost
# falls on the load generator or on Redis rather than on the server, and the quota limits
# the servers' share of it less than real network cards would.

CGROUP_CPU=/sys/fs/cgroup/cpu
N=${N:-"2 4"}
ROOMS_CONNECTIONS=${ROOMS_CONNECTIONS:-1000}
ROOMS_MESSAGES=${ROOMS_MESSAGES:-100}
# Which workloads to measure: "echo rooms" (both, the default), or one of them.
WORKLOADS=${WORKLOADS:-"echo rooms"}
quota_groups=()

# Puts process $1 in a cgroup of its own limited to QUOTA cores.
limit() {
  local group="$CGROUP_CPU/lws-bench-$1"
  mkdir -p "$group"
  echo 100000 >"$group/cpu.cfs_period_us"
  awk -v quota="$QUOTA" 'BEGIN { printf "%d\n", quota * 100000 }' >"$group/cpu.cfs_quota_us"
  echo "$1" >"$group/cgroup.procs"
  quota_groups+=("$group")
}

remove_groups() {
  local group
  for group in "${quota_groups[@]}"; do rmdir "$group" 2>/dev/null || true; done
}

# Starts `count` echo servers on one port, each under the quota; their pids in `servers`.
start_echo_servers() {
  local count=$1 port=$2
  servers=""
  for _ in $(seq "$count"); do
    "$LUA" bench/reuse-port-echo.lua "$port" >/dev/null 2>&1 &
    pids+=($!)
    limit $!
    servers="$servers $!"
  done
  wait_port "$port"
  sleep 0.5
}

# Starts `count` room servers (fanout-server.lua as a cluster on channel `rooms-<count>`, one
# port each) under the quota; their pids in room_servers[count], their URLs in
# room_urls[count].
declare -A room_servers room_urls
start_room_servers() {
  local count=$1 port
  room_servers[$count]=""
  room_urls[$count]=""
  for _ in $(seq "$count"); do
    port=$(free_port)
    "$LUA" bench/fanout-server.lua "$port" "redis://127.0.0.1:$redis_port" "rooms-$count" >/dev/null 2>&1 &
    pids+=($!)
    limit $!
    room_servers[$count]="${room_servers[$count]} $!"
    room_urls[$count]="${room_urls[$count]} ws://127.0.0.1:$port/"
    wait_port "$port"
  done
}

stop_servers() {
  # shellcheck disable=SC2086
  kill $servers 2>/dev/null || true
  # shellcheck disable=SC2086
  wait $servers 2>/dev/null || true
}

# One run of `loadgen rooms` against the room servers of `count` processes, appended to
# build/run/rooms-<count>.results ("deliveries/s lost duplicated").
rooms_once() {
  local count=$1 output
  # shellcheck disable=SC2086
  output=$(LOADGEN_SERVER_PIDS=${room_servers[$count]} target/release/loadgen rooms "$ROOMS_CONNECTIONS" "$ROOMS_MESSAGES" 64 ${room_urls[$count]})
  echo "    $count: $output" >&2
  awk '{ print $2, $4, $6 }' <<<"$output" >>"build/run/rooms-$count.results"
}

run_quota_mode() {
  [ -w "$CGROUP_CPU" ] || { echo "QUOTA needs root and the cgroup v1 cpu controller at $CGROUP_CPU" >&2; exit 1; }
  trap 'kill "${pids[@]}" 2>/dev/null || true; sleep 0.5; remove_groups' EXIT
  echo "Each server process limited to $QUOTA of a core (cgroup v1 cpu.cfs_quota_us)."
  [[ " $WORKLOADS " == *" echo "* ]] && quota_echo
  [[ " $WORKLOADS " == *" rooms "* ]] && quota_rooms
  return 0
}

# The reuse_port echo, 1 process against N.
quota_echo() {
  echo
  echo "| 1,000 connections x 64 B echo, reuse_port | messages/s (median) | ratio to one process | goal |"
  echo "|---|---|---|---|"
  local port one count result
  port=$(free_port)
  start_echo_servers 1 "$port"
  one=$(SERVERS=$servers measure "one process under quota" "ws://127.0.0.1:$port/" | awk '{ print $1 }')
  stop_servers
  echo "| 1 process | $(printf "%'.0f" "$one") | 1.00 | |"
  for count in $N; do
    port=$(free_port)
    start_echo_servers "$count" "$port"
    result=$(SERVERS=$servers measure "$count processes under quota" "ws://127.0.0.1:$port/" | awk '{ print $1 }')
    stop_servers
    echo "| $count processes | $(printf "%'.0f" "$result") | $(awk -v a="$result" -v b="$one" 'BEGIN { printf "%.2f", a / b }') | $(awk -v n="$count" 'BEGIN { printf "%.1f", 0.8 * n }') |"
  done
}

# Chat rooms over Redis, 1 process against N: every configuration runs from the start
# (idle while another is measured), and they take their runs in turn, so that a drift of
# the machine falls on all of them alike.
quota_rooms() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >build/run/scale-redis.log 2>&1 &
  pids+=($!)
  wait_port "$redis_port"
  local count counts="1 $N"
  for count in $counts; do
    start_room_servers "$count"
    rm -f "build/run/rooms-$count.results"
  done
  sleep 0.5
  for _ in $(seq "$ROUNDS"); do
    for count in $counts; do rooms_once "$count"; done
  done
  echo
  echo "| chat rooms of 10, $ROOMS_CONNECTIONS connections, $ROOMS_MESSAGES messages each, over Redis | deliveries/s (median) | spread | lost / duplicated (all runs) | ratio to one process (of the medians; of each round) | goal |"
  echo "|---|---|---|---|---|---|"
  python3 - $counts <<'PY'
import statistics, sys
counts = sys.argv[1:]
runs = {c: [[float(v) for v in line.split()] for line in open(f"build/run/rooms-{c}.results")] for c in counts}
one = [r[0] for r in runs["1"]]
for c in counts:
    rates = [r[0] for r in runs[c]]
    lost, dup = sum(int(r[1]) for r in runs[c]), sum(int(r[2]) for r in runs[c])
    ratio = statistics.median(rates) / statistics.median(one)
    rounds = ", ".join(f"{a / b:.2f}" for a, b in zip(rates, one))
    goal = "" if c == "1" else f"{0.8 * int(c):.1f}"
    label = "1 process" if c == "1" else f"{c} processes"
    print(f"| {label} | {statistics.median(rates):,.0f} | {min(rates):,.0f}–{max(rates):,.0f} | {lost} / {dup} "
          f"| {ratio:.2f} ({rounds}) | {goal} |")
PY
}
