# Shared by the benchmarks that count instructions with valgrind's callgrind
# (bench/instructions.sh, bench/crossings.sh). Sourced after scripts/lib/setup.sh.

# valgrind from Debian, when it is missing and we may install it.
ensure_valgrind() {
  command -v valgrind >/dev/null || {
    [ "$(id -u)" -eq 0 ] && apt-get install -y -qq valgrind >/dev/null
  }
}

# Everything a callgrind benchmark needs: the system packages, Rust, valgrind, and the rock
# built and installed for each Lua of $LUAS.
prepare_callgrind_bench() {
  ensure_system_packages
  ensure_rust
  ensure_valgrind
  mkdir -p build/run
  for lua in $LUAS; do install_rock "$lua"; done
}

# Runs the command in $@ to its end under callgrind; prints the instructions it executed.
callgrind_total() {
  valgrind --tool=callgrind --callgrind-out-file=build/run/callgrind-whole.out "$@" \
    >/dev/null 2>&1
  awk '/^(summary|totals):/ { print $2; exit }' build/run/callgrind-whole.out
}

# The cost of one unit of work from two runs: (large total - small total) / units between.
per_unit() {
  awk -v s="$1" -v g="$2" -v n="$3" 'BEGIN { printf "%.0f", (g - s) / n }'
}
