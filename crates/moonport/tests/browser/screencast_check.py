#!/usr/bin/env python3
"""screencast_check.py: opens the screencast viewer page (examples/screencast)
in several headless Chromium browsers at once (Debian's chromium and
chromium-driver, through Selenium) and checks what their canvases show; run
by tests/screencast.rs, which has started Xvfb, x11vnc and moonport first.

  screencast_check.py URL --display :N --root RRGGBB --window RRGGBB
                      --changes RRGGBB,... [--viewers 2] --screenshot PATH

1. Opens URL in every browser and waits until each canvas shows the desktop:
   the root window's colour over most of it, the window's over 100x100+.
2. Saves a screenshot of the first browser's page.
3. For each colour of --changes: sets it as the root window's background
   (xsetroot) and measures, in every browser at once, the time until its
   canvas shows it.
4. Reads the viewers' counters (frames, keyframes, skips) from the page.

Prints one JSON object on the last line of stdout; exits 1 when a check fails.
"""

import json
import os
import subprocess
import threading
import time

import chromium
from chromium import CHANGE_TIMEOUT, CONNECT_TIMEOUT, WAIT_JS, fail, rgb, wait_for_desktop

CANVAS = "#screen"


def main():
    ap = chromium.desktop_arguments()
    ap.add_argument("--viewers", type=int, default=2)
    args = ap.parse_args()

    result = {"viewers": args.viewers}
    drivers = []
    try:
        for _ in range(args.viewers):
            drivers.append(chromium.start(1000, 800))
            drivers[-1].set_script_timeout(CHANGE_TIMEOUT + 5)
        for d in drivers:
            d.get(args.url)

        colours = [rgb(args.root), rgb(args.window)]
        result["first_picture_s"] = []
        for n, d in enumerate(drivers, 1):
            seen, took = wait_for_desktop(d, CANVAS, colours, CONNECT_TIMEOUT)
            if took is None:
                stats = d.execute_script("return window.screencast")
                fail("viewer %d: the desktop's colours did not appear within %ss (canvas and pixels "
                     "of the root's and the window's colour: %r; viewer counters: %r)"
                     % (n, CONNECT_TIMEOUT, seen, stats), result)
            result["first_picture_s"].append(round(took, 3))
            result["canvas"] = [seen["width"], seen["height"]]
        time.sleep(0.3)
        drivers[0].save_screenshot(args.screenshot)

        # Every change is awaited in all browsers at once; each reports the
        # wall-clock time its canvas showed the colour.
        env = dict(os.environ, DISPLAY=args.display)
        latencies = [[] for _ in drivers]
        for colour in args.changes.split(","):
            seen_at = [None] * len(drivers)

            def watch(i, colour=colour, seen_at=seen_at):
                seen_at[i] = drivers[i].execute_async_script(WAIT_JS, CANVAS, 5, 5, rgb(colour), CHANGE_TIMEOUT * 1000)

            threads = [threading.Thread(target=watch, args=(i,)) for i in range(len(drivers))]
            t0 = time.time()
            subprocess.run(["xsetroot", "-solid", "#" + colour], env=env, check=True)
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for i, at in enumerate(seen_at):
                if not at:
                    fail("viewer %d: colour %s did not appear within %ss" % (i + 1, colour, CHANGE_TIMEOUT), result)
                latencies[i].append(round(max(at / 1000 - t0, 0) * 1000, 1))
        result["change_ms"] = latencies
        result["counters"] = [
            d.execute_script("const s = window.screencast; return {frames: s.frames, keyframes: s.keyframes, "
                             "skipped: s.skipped, gaps: s.gaps, seq: s.seq, painted: s.painted, "
                             "capture_to_paint_ms: s.latencies.slice(-5).map((l) => Math.round(l * 1000))}")
            for d in drivers
        ]
    finally:
        for d in drivers:
            d.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
