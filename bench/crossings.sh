#!/usr/bin/env bash
# Benchmark (not a test): user-space instructions of one call from Lua into native code,
# counted by valgrind's callgrind: a Lua function, a plain C function (luasocket's
# gettime), one of our functions and one of our userdata methods through mlua. Each row is
# (I(LARGE calls) - I(SMALL calls)) / (LARGE - SMALL), so start-up is taken out.
#   bash bench/crossings.sh      LUAS="lua5.1 lua5.4 luajit" SMALL=100000 LARGE=600000
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/setup.sh
source bench/lib/callgrind.sh
LUAS=${LUAS:-"lua5.1 lua5.4 luajit"}
SMALL=${SMALL:-100000}
LARGE=${LARGE:-600000}

prepare_callgrind_bench

echo "| call from Lua | ${LUAS// / | } |"
echo "|---|$(for _ in $LUAS; do printf -- '---|'; done)"
for kind in lua c native-function native-method; do
  row="| $kind |"
  for lua in $LUAS; do
    use_rock "$lua"
    small=$(callgrind_total "$lua" bench/crossings.lua "$SMALL" "$kind")
    large=$(callgrind_total "$lua" bench/crossings.lua "$LARGE" "$kind")
    row="$row $(per_unit "$small" "$large" $((LARGE - SMALL))) |"
  done
  echo "$row"
done
