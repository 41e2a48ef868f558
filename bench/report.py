"""Turns bench/run's results (one JSON object per line) into the Markdown
report: one table per workload and size, each figure also as a ratio to the
compio baseline measured in the same run.

Usage: python3 bench/report.py RESULTS.jsonl QUICK(0|1) DURATION
"""
import datetime
import json
import platform
import subprocess
import sys


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


def fmt_rate(v):
    return f"{v:,.0f}"


def main():
    path, quick, duration = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    rows = [json.loads(line) for line in open(path) if line.strip()]
    today = datetime.date.today().isoformat()
    cores = sh("nproc")
    out = []
    out.append(f"### bench/run{' --quick' if quick else ''}: {today}")
    out.append("")
    out.append(
        f"Machine: {cores} cores ({cpu_model()}), Linux {platform.release()}; moonport {sh('git rev-parse --short HEAD')}; "
        f"{sh('nginx -v')}; {sh('luajit -v')}. Command: `bench/run{' --quick' if quick else ''}`. "
        f"Each echo run: 64-byte ping-pong, {duration} s measured after a warm-up, one load-generator thread "
        "(it shares the cores with the server). Ratios are to the compio baseline of the same table."
    )
    out.append("")

    echo = [r for r in rows if r.get("workload") == "echo"]
    groups = sorted({(r["workers"], r["conns"]) for r in echo})
    for workers, conns in groups:
        group = [r for r in echo if r["workers"] == workers and r["conns"] == conns]
        base = next((r for r in group if r["peer"] == "compio" and "msgs_per_sec" in r), None)
        out.append(f"**Echo, {conns} connections, {workers} worker{'s' if workers > 1 else ''} each**")
        out.append("")
        out.append("| server | msgs/s | vs compio | p50 µs | p99 µs | errors |")
        out.append("|---|---|---|---|---|---|")
        for r in group:
            name = f"**{r['peer']}**" if r["peer"] == "moonport" else r["peer"]
            if "msgs_per_sec" not in r:
                out.append(f"| {name} | failed: {r.get('failed', '?')} | | | | |")
                continue
            ratio = f"{r['msgs_per_sec'] / base['msgs_per_sec']:.2f}" if base else "n/a"
            errors = r.get("errors", 0)
            note = f"{errors} ({r['connected']} of {r['conns']} connected)" if errors else "0"
            out.append(
                f"| {name} | {fmt_rate(r['msgs_per_sec'])} | {ratio} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {note} |"
            )
        out.append("")

    hold = [r for r in rows if r.get("workload") == "hold"]
    if hold:
        out.append("**Hold: idle connections in one server process**")
        out.append("")
        out.append("| server | workers | open | answered after | RSS per idle conn | after one echo each |")
        out.append("|---|---|---|---|---|---|")
        for r in hold:
            if "answered" not in r:
                out.append(f"| {r['peer']} | {r['workers']} | failed: {r.get('failed', '?')} | | | |")
                continue
            idle = r.get("idle_bytes_per_conn")
            active = r.get("active_bytes_per_conn")
            out.append(
                f"| {r['peer']} | {r['workers']} | {r['opened']} of {r['conns']} | {r['answered']} | "
                f"{'n/a' if idle is None else f'{idle:,.0f} B'} | {'n/a' if active is None else f'{active:,.0f} B'} |"
            )
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
