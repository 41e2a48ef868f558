#!/usr/bin/env python3
"""novnc_check.py: drives headless Chromium (Debian's chromium + chromium-driver,
through Selenium) to a noVNC page and checks what its canvas shows; run by
tests/vnc.rs, which has started Xvfb, x11vnc and moonport first.

  novnc_check.py URL --display :N --root RRGGBB --window RRGGBB
                 --changes RRGGBB,RRGGBB,... --screenshot PATH

1. Opens URL and waits for noVNC to connect and draw the desktop.
2. Counts the canvas pixels of the root window's colour and of the window's:
   the root's must cover most of the screen, the window's at least 100x100.
3. Saves a screenshot of the page.
4. For each colour of --changes: sets it as the root window's background
   (xsetroot) and measures the time until the browser's canvas shows it.

Prints one JSON object on the last line of stdout; exits 1 when a check fails.
"""

import json
import os
import subprocess
import time

import chromium
from chromium import CHANGE_TIMEOUT, CONNECT_TIMEOUT, WAIT_JS, fail, rgb, wait_for_desktop

CANVAS = "#noVNC_container canvas"


def main():
    ap = chromium.desktop_arguments()
    args = ap.parse_args()

    result = {}
    started = time.monotonic()
    driver = chromium.start()
    try:
        result["browser_start_s"] = round(time.monotonic() - started, 3)
        driver.set_script_timeout(CHANGE_TIMEOUT + 5)
        driver.get(args.url)

        # Connected and drawn: most of the canvas has the root's colour, and
        # the window (at least 100x100 pixels) is there.
        seen, took = wait_for_desktop(driver, CANVAS, [rgb(args.root), rgb(args.window)], CONNECT_TIMEOUT)
        if took is None:
            status = driver.execute_script(
                "const s = document.getElementById('noVNC_status'); return s && s.textContent")
            fail("the desktop's colours did not appear within %ss (noVNC status: %r, canvas and "
                 "pixels of the root's and the window's colour: %r)" % (CONNECT_TIMEOUT, status, seen), result)
        result["first_picture_s"] = round(took, 3)
        result["canvas"] = [seen["width"], seen["height"]]
        result["root_pixels"], result["window_pixels"] = seen["counts"]
        # Let the window's text settle before the picture is taken.
        time.sleep(0.3)
        driver.save_screenshot(args.screenshot)

        # A change on the X display, timed until the browser shows it (the
        # top left corner is root window, outside the painted window).
        env = dict(os.environ, DISPLAY=args.display)
        latencies = []
        for colour in args.changes.split(","):
            t0 = time.monotonic()
            subprocess.run(["xsetroot", "-solid", "#" + colour], env=env, check=True)
            if not driver.execute_async_script(WAIT_JS, CANVAS, 5, 5, rgb(colour), CHANGE_TIMEOUT * 1000):
                fail("colour %s did not appear within %ss" % (colour, CHANGE_TIMEOUT), result)
            latencies.append(round((time.monotonic() - t0) * 1000, 1))
        result["change_ms"] = latencies
    finally:
        driver.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
