"""The sampler and the report of bench/soak (run with the bench venv's
Python, which has matplotlib).

  soak.py sample PID ADMIN_ADDR EVERY CSV
      every EVERY seconds until PID ends or this is stopped: the process's
      RSS (VmRSS), open descriptors, threads, and from /metrics the open TCP
      connections, coroutines, Lua errors and accepted connections (summed
      over workers), one CSV row each.
  soak.py report CSV RELOADS BENCH_JSON WARMUP_CUT PNG
      the summary (RSS after the warm-up cut: min/max/last and the
      least-squares slope; descriptors; the load generator's counts) on
      stdout, and the graph of RSS, descriptors and connections over time
      with the reloads marked, as PNG.
"""
import csv
import json
import os
import sys
import time
import urllib.request

FIELDS = ["t_s", "rss_kib", "fds", "threads", "conns_open", "coroutines", "lua_errors", "accepted"]
METRICS = {
    "moonport_tcp_connections_open": "conns_open",
    "moonport_coroutines": "coroutines",
    "moonport_lua_errors_total": "lua_errors",
    "moonport_tcp_connections_accepted_total": "accepted",
}


def proc_status(pid):
    """VmRSS in KiB and the thread count, from /proc/PID/status."""
    rss = threads = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def scrape(admin):
    """The engine's metrics of interest, each summed over its workers."""
    out = {v: 0 for v in METRICS.values()}
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#"):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in METRICS:
                out[METRICS[name]] += float(line.rsplit(" ", 1)[1])
    return out


def sample(pid, admin, every, path):
    start = time.monotonic()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        n = 0
        while True:
            try:
                rss, threads = proc_status(pid)
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                m = scrape(admin)
            except (OSError, ValueError) as e:
                if not os.path.exists(f"/proc/{pid}"):
                    return
                print(f"soak.py sample: {e}", file=sys.stderr)
            else:
                t = time.monotonic() - start
                w.writerow([f"{t:.1f}", rss, fds, threads] + [int(m[k]) for k in FIELDS[4:]])
                f.flush()
            n += 1
            time.sleep(max(0.0, start + n * every - time.monotonic()))


def slope(xs, ys):
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def report(csv_path, reloads_path, bench_path, warmup_cut, png):
    rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(csv_path))]
    reloads = [r for r in csv.DictReader(open(reloads_path))] if os.path.exists(reloads_path) else []
    bench = {}
    if os.path.exists(bench_path):
        text = open(bench_path).read().strip()
        bench = json.loads(text) if text.startswith("{") else {}
    if not rows:
        sys.exit("soak.py report: no samples")
    after = [r for r in rows if r["t_s"] >= warmup_cut] or rows
    rss = [r["rss_kib"] for r in after]
    mins = [r["t_s"] / 60 for r in after]
    fds = [r["fds"] for r in after]
    ok = sum(1 for r in reloads if r["ok"] == "1")
    last = rows[-1]

    def mib(k):
        return f"{k / 1024:.1f} MiB"

    print(f"samples:            {len(rows)} over {rows[-1]['t_s']:.0f} s; warm-up cut {warmup_cut:.0f} s ({len(after)} samples after it)")
    print(f"RSS after warm-up:  min {mib(min(rss))}, max {mib(max(rss))}, last {mib(rss[-1])} (first sample {mib(rows[0]['rss_kib'])}, peak overall {mib(max(r['rss_kib'] for r in rows))})")
    print(f"RSS slope:          {slope(mins, rss):+.1f} KiB/min after the warm-up cut (least squares)")
    print(f"open fds:           {fds[0]:.0f} at the cut, {fds[-1]:.0f} at the end (min {min(fds):.0f}, max {max(fds):.0f}); fd slope {slope(mins, fds):+.3f}/min")
    print(f"threads:            {min(r['threads'] for r in after):.0f}..{max(r['threads'] for r in after):.0f}")
    print(f"coroutines:         max {max(r['coroutines'] for r in rows):.0f}, last {last['coroutines']:.0f}; open TCP connections last {last['conns_open']:.0f}")
    print(f"accepted (server):  {last['accepted']:.0f} connections; Lua errors counted: {last['lua_errors']:.0f}")
    print(f"reloads:            {ok} done, {len(reloads) - ok} rejected")
    if bench:
        print(f"load generator:     {bench.get('cycles')} cycles ({bench.get('cycles_per_sec')}/s), {bench.get('connections')} connections, "
              f"{bench.get('exchanges')} exchanges, {bench.get('room_messages')} room messages, "
              f"{bench.get('error_closes')} deliberate-error closes, {bench.get('resets')} resets, "
              f"{bench.get('held')} held until a drain; load CPU {bench.get('load_cpu_pct')}%")
        kinds = ["connect_errors", "timeouts", "io_errors", "mismatches", "unclean_error_closes"]
        print(f"errors:             {bench.get('errors')} (" + ", ".join(f"{k} {bench.get(k)}" for k in kinds) + ")")
    else:
        print("load generator:     no result (see its stderr)")
    plot(rows, reloads, warmup_cut, png)
    print(f"graph:              {png}")


def plot(rows, reloads, warmup_cut, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] / 60 for r in rows]
    fig, (ax_rss, ax_fd, ax_conn) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax_rss.plot(t, [r["rss_kib"] / 1024 for r in rows], color="tab:blue")
    ax_rss.set_ylabel("RSS (MiB)")
    ax_rss.set_ylim(bottom=0)
    ax_fd.plot(t, [r["fds"] for r in rows], color="tab:orange", label="open fds")
    ax_fd.plot(t, [r["threads"] for r in rows], color="tab:gray", label="threads")
    ax_fd.set_ylabel("count")
    ax_fd.set_ylim(bottom=0)
    ax_fd.legend(loc="upper left")
    rate = [0.0] + [
        (b["accepted"] - a["accepted"]) / (b["t_s"] - a["t_s"]) if b["t_s"] > a["t_s"] else 0.0
        for a, b in zip(rows, rows[1:])
    ]
    ax_conn.plot(t, [r["conns_open"] for r in rows], color="tab:red", label="open connections")
    ax_conn.plot(t, [r["coroutines"] for r in rows], color="tab:purple", label="coroutines")
    ax_conn.set_ylabel("count")
    ax_conn.set_ylim(bottom=0)
    ax_conn.set_xlabel("minutes")
    ax_conn.legend(loc="upper left")
    # The churn on its own scale: hundreds a second beside a handful open.
    ax_rate = ax_conn.twinx()
    ax_rate.plot(t, rate, color="tab:green", lw=0.8, label="accepted/s")
    ax_rate.set_ylabel("accepted/s")
    ax_rate.set_ylim(bottom=0)
    ax_rate.legend(loc="upper right")
    for ax in (ax_rss, ax_fd, ax_conn):
        ax.axvspan(0, warmup_cut / 60, color="0.92", zorder=0)
        for r in reloads:
            ax.axvline(float(r["t_s"]) / 60, color="0.6" if r["ok"] == "1" else "red", lw=0.6, ls=":")
        ax.grid(alpha=0.3)
    ax_rss.set_title("moonport soak (bench/soak): shaded = warm-up, dotted = reloads")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "sample":
        sample(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5])
    elif len(sys.argv) == 7 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(__doc__)
