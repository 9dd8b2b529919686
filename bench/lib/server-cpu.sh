# Shared by bench/fanout.sh, bench/scale-out.sh and bench/compare.sh. Sourced after scripts/lib/setup.sh.

# CPU time (ns) the processes in SERVERS (pids) have used so far, all threads together.
servers_cpu_ns() {
  local pid
  for pid in $SERVERS; do cat /proc/"$pid"/task/*/schedstat 2>/dev/null; done |
    awk '{ total += $1 } END { printf "%.0f", total }'
}
