"""Writes bench/RESULTS.md from bench/run.sh's measurements.

usage: report.py RESULTS_TSV PEAK_RSS_TSV IDLE_OUTPUT

RESULTS_TSV has one line per measurement: workload, peer, unit, the rounds' values (space
separated, or `failed`) and, for servers, the server's CPU microseconds per message in each
round. Every row gets its median, its spread and its ratio to plain tokio-tungstenite on the
same workload, measured in the same run. PEAK_RSS_TSV has each server's peak RSS in MiB.
"""

import os
import platform
import statistics
import subprocess
import sys

PLAIN = "tokio-tungstenite (plain Rust)"
# Plain Rust on the TCP rows, where there is no WebSocket.
PLAIN_PEERS = (PLAIN, "plain Rust (tokio)")


def command_output(*command):
    try:
        # Lua 5.1 prints its version on stderr.
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip()
    except OSError:
        return "not found"


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    memory_kib = next(int(line.split()[1]) for line in open("/proc/meminfo")
                      if line.startswith("MemTotal"))
    luas = "; ".join(command_output(lua, "-v") or lua for lua in ("lua5.1", "lua5.4", "luajit"))
    return [
        f"- CPU: {model}, {os.cpu_count()} cores; memory {memory_kib / 1048576:.0f} GiB",
        f"- kernel: {platform.release()}; {command_output('rustc', '--version')}",
        f"- Lua: {luas}",
    ]


def read_results(path):
    rows = []
    for line in open(path):
        workload, peer, unit, values, cpu = line.rstrip("\n").split("\t")
        numbers = [float(v) for v in values.split() if v != "failed"]
        cpu_per_message = [float(v) for v in cpu.split()]
        rows.append((workload, peer, unit, numbers, values.count("failed"), cpu_per_message))
    return rows


def main(results_path, peaks_path, idle_path):
    rows = read_results(results_path)
    plain = {workload: statistics.median(numbers)
             for workload, peer, _, numbers, _, _ in rows if peer in PLAIN_PEERS and numbers}
    lines = ["# Benchmark results", "",
             "Written by `bash bench/run.sh` (with `LUA_WEBSOCKETS_DIR` set to a checkout of",
             "lua-websockets to include it). Three rounds per row; median, spread (min to max)",
             "and the ratio of the median to plain tokio-tungstenite on the same workload, in",
             "the same run. Single-connection workloads pin the server and the load generator",
             "to core 0; many-connection workloads run the load on core 1. CPU per message is",
             "the server process's CPU time (all threads, user and kernel) over a round divided",
             "by the messages echoed, median of the rounds; for the client rows, the client's.",
             "The TCP line echo rows (no WebSocket; plain Rust is tokio alone there) are the",
             "floor under a client of each kind: what it costs to send a line and wait for it.", "",
             "## Machine", ""] + machine() + ["", "## Results", "",
             "| workload | peer | median | spread | unit | ratio to plain Rust "
             "| CPU µs/message |",
             "|---|---|---|---|---|---|---|"]
    for workload, peer, unit, numbers, failed, cpu_per_message in rows:
        if numbers:
            median = statistics.median(numbers)
            spread = f"{min(numbers):,.0f}–{max(numbers):,.0f}"
            ratio = f"{median / plain[workload]:.2f}" if workload in plain else ""
            median_text = f"{median:,.1f}" if median < 100 else f"{median:,.0f}"
        else:
            median_text, spread, ratio = "failed", "", ""
        if failed and numbers:
            spread += f" ({failed} failed)"
        cpu = ""
        if cpu_per_message:
            cpu_median = statistics.median(cpu_per_message)
            cpu = f"{cpu_median:,.1f}" if cpu_median < 100 else f"{cpu_median:,.0f}"
        lines.append(f"| {workload} | {peer} | {median_text} | {spread} | {unit} | {ratio} "
                     f"| {cpu} |")
    lines += ["", "## Peak RSS of each server over its workloads", "",
              "| server | peak RSS (MiB) |", "|---|---|"]
    lines += [f"| {peer} | {mib} |" for peer, mib in
              (line.rstrip("\n").split("\t") for line in open(peaks_path))]
    idle = [line for line in open(idle_path).read().splitlines() if not line.startswith("==")]
    if idle:
        lines += ["", "## 10,000 idle connections (copas server, Lua 5.4)", "", "```"]
        lines += idle + ["```"]
    lines += ["", "## Commands", "",
              "- servers: `taskset -c 0 loadgen echo URL 20000 16` (and 1024), "
              "`loadgen echo URL 50 1048576 binary`, `loadgen echo URL 5 16777216 binary`, "
              "`taskset -c 1 loadgen many URL 100 200 64`, `loadgen many URL 1000 50 64`",
              "- copas servers: `examples/echo-server-copas.lua`; plain Rust: `tools/testpeer`",
              "- clients, against tools/testpeer with `TESTPEER_READ_BUFFER=4096`: "
              "`taskset -c 0 lua bench/client.lua sync URL 20000 1024` and "
              "`sync URL 50 1048576 binary`, the same with `copas`; plain Rust "
              "client: `loadgen echo` with the same counts; 16 B: 100,000 messages",
              "- TCP line echo: `lua bench/tcp-client.lua sync|copas HOST:PORT 100000 16`, "
              "`loadgen tcp-echo HOST:PORT 100000 16`, against testpeer's tcpecho port",
              "- keepalive rows: `examples/echo-server-copas.lua PORT 1` (a ping a second)",
              "- idle: `bash bench/idle-connections.sh`, then with `PING_INTERVAL=20 "
              "IDLE_SECONDS=45` (two keepalive rounds while idle)", ""]
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
