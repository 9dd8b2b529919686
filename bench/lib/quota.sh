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

# Starts `count` room servers (fanout-server.lua as a cluster, one port each) under the
# quota; their pids in `servers`, their URLs in `urls`.
start_room_servers() {
  local count=$1 port
  servers=""
  urls=()
  for _ in $(seq "$count"); do
    port=$(free_port)
    "$LUA" bench/fanout-server.lua "$port" "redis://127.0.0.1:$redis_port" >/dev/null 2>&1 &
    pids+=($!)
    limit $!
    servers="$servers $!"
    urls+=("ws://127.0.0.1:$port/")
    wait_port "$port"
  done
  sleep 0.5
}

stop_servers() {
  # shellcheck disable=SC2086
  kill $servers 2>/dev/null || true
  # shellcheck disable=SC2086
  wait $servers 2>/dev/null || true
}

# ROUNDS runs of `loadgen rooms` against `urls`; prints the median deliveries/s, and the
# total lost and duplicated over the runs.
rooms_rounds() {
  local output rates=() lost=0 duplicated=0
  for _ in $(seq "$ROUNDS"); do
    output=$(LOADGEN_SERVER_PIDS=$servers target/release/loadgen rooms "$ROOMS_CONNECTIONS" "$ROOMS_MESSAGES" 64 "${urls[@]}")
    echo "    $output" >&2
    rates+=("$(awk '{ print $2 }' <<<"$output")")
    lost=$((lost + $(awk '{ print $4 }' <<<"$output")))
    duplicated=$((duplicated + $(awk '{ print $6 }' <<<"$output")))
  done
  printf '%s\n' "${rates[@]}" | sort -n | awk -v lost="$lost" -v dup="$duplicated" \
    '{ v[NR] = $1 } END { printf "%s %s %s %s %s\n", v[int((NR + 1) / 2)], v[1], v[NR], lost, dup }'
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

# Chat rooms over Redis, 1 process against N.
quota_rooms() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >build/run/scale-redis.log 2>&1 &
  pids+=($!)
  wait_port "$redis_port"
  echo
  echo "| chat rooms of 10, $ROOMS_CONNECTIONS connections, $ROOMS_MESSAGES messages each, over Redis | deliveries/s (median) | spread | lost / duplicated (all runs) | ratio to one process | goal |"
  echo "|---|---|---|---|---|---|"
  local median low high lost dup
  start_room_servers 1
  read -r one low high lost dup <<<"$(rooms_rounds)"
  stop_servers
  echo "| 1 process | $(printf "%'.0f" "$one") | $(printf "%'.0f" "$low")–$(printf "%'.0f" "$high") | $lost / $dup | 1.00 | |"
  for count in $N; do
    start_room_servers "$count"
    read -r median low high lost dup <<<"$(rooms_rounds)"
    stop_servers
    echo "| $count processes | $(printf "%'.0f" "$median") | $(printf "%'.0f" "$low")–$(printf "%'.0f" "$high") | $lost / $dup | $(awk -v a="$median" -v b="$one" 'BEGIN { printf "%.2f", a / b }') | $(awk -v n="$count" 'BEGIN { printf "%.1f", 0.8 * n }') |"
  done
}
