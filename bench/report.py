"""Turns bench/run's results (one JSON object per line) into the Markdown
report: one table per workload and size, each figure also as a ratio to the
baseline measured in the same run (the compio server; iperf3 for relayed
bytes), and the load generator's own CPU use beside it.

Usage: python3 bench/report.py RESULTS.jsonl QUICK(0|1) DURATION
"""
import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd):
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except Exception:
        return "n/a"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# How each peer is named in the tables; moonport's rows are in bold.
NAMES = {
    "moonport": "**moonport**",
    "moonport-ws": "**moonport** WebSocket (examples/ws_echo.lua)",
    "nginx-lua-ws": "nginx-lua WebSocket (lua-resty-websocket)",
}
WS_NAMES = {"compio": "compio, raw TCP", "moonport": "**moonport**, raw TCP (bench/echo.lua)"}
BRIDGE_NAMES = {
    "compio": "no bridge: raw TCP to the compio echo",
    "websockify": "websockify (Python)",
    "moonport": "**moonport** `moonport.ws.bridge` (bench/ws_bridge.lua)",
}
RELAY_NAMES = {
    "iperf3": "iperf3, no relay (the ceiling)",
    "compio": "compio relay (serve-relay-compio, 64 KiB reads)",
    "moonport": "**moonport** examples/tcp_proxy.lua (as shipped: relay reads up to 64 KiB)",
}


def name(r, names=NAMES):
    n = names.get(r["peer"], NAMES.get(r["peer"], r["peer"]))
    if r.get("server_workers", r.get("workers")) != r.get("workers"):
        n += f" ({r['server_workers']} workers)"
    return n


def rate(v, digits=0):
    return f"{v:,.{digits}f}"


def cpu(r):
    v = r.get("load_cpu_pct")
    return "n/a" if v is None else f"{v:.0f}%"


def errors(r):
    e = r.get("errors", 0)
    if e and "connected" in r and "conns" in r:
        return f"{e} ({r['connected']} of {r['conns']} connected)"
    return str(e)


def ratio(r, base, key):
    if not base or not base.get(key):
        return "n/a"
    return f"{r[key] / base[key]:.2f}"


def table(out, title, rows, base, key, cols, names=NAMES):
    """cols: (header, function of a result row) after name, figure and ratio."""
    out.append(f"**{title}**")
    out.append("")
    heads = [h for h, _ in cols]
    out.append("| " + " | ".join(heads) + " |")
    out.append("|" + "---|" * len(heads))
    for r in rows:
        if key not in r or (not r[key] and r.get("errors")):
            why = r.get("failed") or f"nothing measured; errors: {errors(r)}"
            out.append(f"| {name(r, names)} | failed: {why} |" + " |" * (len(heads) - 2))
            continue
        out.append("| " + " | ".join(f(r) if i else name(r, names) for i, (_, f) in enumerate(cols)) + " |")
    out.append("")


def main():
    path, quick, duration = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    rows = [json.loads(line) for line in open(path) if line.strip()]
    today = datetime.date.today().isoformat()
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    out = []
    out.append(f"### bench/run{' --quick' if quick else ''}: {today}")
    out.append("")
    out.append(
        f"Machine: {sh('nproc')} cores ({cpu_model()}), Linux {platform.release()}, load average "
        f"{loadavg} at the end; moonport {sh(f'git -C {ROOT} rev-parse --short HEAD')}; "
        f"{sh('nginx -v')}; {sh('luajit -v').split(' -- ')[0]}; {sh('iperf3 --version')}. "
        f"Command: `bench/run{' --quick' if quick else ''}`. Every run: {duration} s measured after a warm-up, "
        "one load-generator thread (`moonport-bench ... --threads 1`; fan-out has one more for the publisher) "
        "sharing the 2 cores with the server; "
        "**load gen CPU** is the generator's own user + system time over the measured window, in % of one "
        "core. Ratios are to the baseline of the same table, from the same run."
    )
    out.append("")

    def of(workload):
        return [r for r in rows if r.get("workload") == workload]

    def groups(rs):
        keys = []
        for r in rs:
            k = (r["workers"], r["group"])
            if k not in keys:
                keys.append(k)
        return sorted(keys, key=lambda k: (k[0], int(k[1])))

    def base_of(rs, peer, key):
        return next((r for r in rs if r["peer"] == peer and key in r), None)

    latency = [("p50 µs", lambda r: f"{r['p50_us']:,.0f}"), ("p99 µs", lambda r: f"{r['p99_us']:,.0f}")]
    tail = [("load gen CPU", cpu), ("errors", errors)]

    echo = of("echo")
    for workers, conns in groups(echo):
        rs = [r for r in echo if r["workers"] == workers and r["group"] == conns]
        base = base_of(rs, "compio", "msgs_per_sec")
        cols = [("server", None), ("msgs/s", lambda r: rate(r["msgs_per_sec"])),
                ("vs compio", lambda r, b=base: ratio(r, b, "msgs_per_sec"))] + latency + tail
        title = f"Echo, 64 B ping-pong, {int(conns):,} connections, {workers} worker{'s' if workers > 1 else ''} each"
        table(out, title, rs, base, "msgs_per_sec", cols)

    pipe = of("pipeline")
    if pipe:
        base = base_of(pipe, "compio", "msgs_per_sec")
        r0 = next((r for r in pipe if "pipeline" in r), {"pipeline": "?", "conns": pipe[0]["group"]})
        cols = [("server", None), ("msgs/s", lambda r: rate(r["msgs_per_sec"])),
                ("vs compio", lambda r: ratio(r, base, "msgs_per_sec")),
                ("p50 µs per batch", lambda r: f"{r['p50_us']:,.0f}"),
                ("p99 µs per batch", lambda r: f"{r['p99_us']:,.0f}")] + tail
        title = (f"Pipelined echo, 64 B messages, {r0['pipeline']} in flight per connection (written together, "
                 f"all awaited), {r0['conns']} connections, 1 worker each")
        table(out, title, pipe, base, "msgs_per_sec", cols)

    stream = of("stream")
    for workers, conns in groups(stream):
        rs = [r for r in stream if r["group"] == conns]
        base = base_of(rs, "compio", "mb_per_sec")
        cols = [("server", None), ("MB/s echoed", lambda r: rate(r["mb_per_sec"])),
                ("vs compio", lambda r, b=base: ratio(r, b, "mb_per_sec")),
                ("MB/s per connection", lambda r: rate(r["mb_per_sec_per_conn"]))] + tail
        title = (f"Streaming, 64 KiB writes through the echo, {conns} connection{'s' if conns != '1' else ''}, "
                 "1 worker each (MB/s that came back; as much went out)")
        table(out, title, rs, base, "mb_per_sec", cols)

    storm = of("connect")
    for mode in ("close", "request"):
        rs = [r for r in storm if r["group"] == mode]
        if not rs:
            continue
        base = base_of(rs, "compio", "connects_per_sec")
        cols = [("server", None), ("connections/s", lambda r: rate(r["connects_per_sec"])),
                ("vs compio", lambda r, b=base: ratio(r, b, "connects_per_sec"))] + latency + tail
        conc = next((r["concurrency"] for r in rs if "concurrency" in r), "?")
        what = ("connect, close, wait for the server's close" if mode == "close"
                else "connect, one 64 B request and its echo, close, wait for the server's close "
                "(nginx-lua: after its HTTP preface)")
        table(out, f"Connection storm, {conc} at a time, 1 worker each: {what}", rs, base, "connects_per_sec", cols)

    ws = of("ws")
    for workers, conns in groups(ws):
        rs = [r for r in ws if r["group"] == conns]
        base = base_of(rs, "compio", "msgs_per_sec")
        cols = [("server", None), ("msgs/s", lambda r: rate(r["msgs_per_sec"])),
                ("vs compio (raw TCP)", lambda r, b=base: ratio(r, b, "msgs_per_sec"))] + latency + tail
        title = (f"WebSocket echo, 64 B binary messages (one frame each, masked), {int(conns):,} connections, "
                 "1 worker each, beside the raw TCP echoes")
        table(out, title, rs, base, "msgs_per_sec", cols, names={**NAMES, **WS_NAMES})

    bridge = of("wsbridge")
    if bridge:
        base = base_of(bridge, "compio", "msgs_per_sec")
        cols = [("bridge", None), ("msgs/s", lambda r: rate(r["msgs_per_sec"])),
                ("vs no bridge", lambda r: ratio(r, base, "msgs_per_sec"))] + latency + tail
        title = (f"WebSocket-to-TCP bridge in front of the compio echo (1 thread), 64 B binary messages over "
                 f"WebSocket, {int(bridge[0]['group']):,} connections, the bridge on 1 worker/process")
        table(out, title, bridge, base, "msgs_per_sec", cols, names={**NAMES, **BRIDGE_NAMES})

    relay = of("relay")
    for workers, conns in groups(relay):
        rs = [r for r in relay if r["group"] == conns]
        base = base_of(rs, "iperf3", "mb_per_sec")
        cols = [("relay", None), ("MB/s", lambda r: rate(r["mb_per_sec"])),
                ("vs iperf3", lambda r, b=base: ratio(r, b, "mb_per_sec"))] + tail
        title = (f"Relay, one-way stream client → relay → sink, 64 KiB writes, {conns} connection"
                 f"{'s' if conns != '1' else ''}, 1 worker/thread each (iperf3: `-P {conns} -l 64K`, no relay)")
        table(out, title, rs, base, "mb_per_sec", cols, names={**NAMES, **RELAY_NAMES})

    fan = of("fanout")
    if fan:
        ceiling = base_of([r for r in relay if r["group"] == "1"], "iperf3", "mb_per_sec")
        out.append(f"**Fan-out, one publisher → N viewers, examples/broadcast.lua on {fan[0]['workers']} workers**")
        out.append("")
        out.append("| viewers | size | delivered msgs/s | MB/s | vs iperf3 (1 stream) | published/s | p50 lag | "
                   "p99 lag | gaps | delivered / (published × viewers) | load gen CPU | errors |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in fan:
            if "msgs_per_sec" not in r:
                out.append(f"| {r['group']} | | failed: {r.get('failed', '?')} |" + " |" * 9)
                continue
            out.append(
                f"| {r['viewers']:,} | {r['size']:,} B | {rate(r['msgs_per_sec'])} | {rate(r['mb_per_sec'], 1)} | "
                f"{ratio(r, ceiling, 'mb_per_sec')} | {rate(r['published_per_sec'])} | {r['p50_us'] / 1000:,.0f} ms | "
                f"{r['p99_us'] / 1000:,.0f} ms | {r['gaps']:,} | {r['delivery_ratio']:.3f} | {cpu(r)} | {errors(r)} |"
            )
        out.append("")

    hold = of("hold")
    if hold:
        out.append("**Hold: idle connections in one server process**")
        out.append("")
        out.append("| server | workers | open | answered after | RSS per idle conn | after one echo each | "
                   "load gen CPU while connecting |")
        out.append("|---|---|---|---|---|---|---|")
        for r in hold:
            if "answered" not in r:
                out.append(f"| {r['peer']} | {r['workers']} | failed: {r.get('failed', '?')} | | | | |")
                continue
            idle = r.get("idle_bytes_per_conn")
            active = r.get("active_bytes_per_conn")
            out.append(
                f"| {r['peer']} | {r['workers']} | {r['opened']} of {r['conns']} | {r['answered']} | "
                f"{'n/a' if idle is None else f'{idle:,.0f} B'} | {'n/a' if active is None else f'{active:,.0f} B'} | "
                f"{cpu(r)} |"
            )
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
