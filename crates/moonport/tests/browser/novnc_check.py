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

import argparse
import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# How long noVNC may take to connect and draw, and a change to show up.
CONNECT_TIMEOUT = 20.0
CHANGE_TIMEOUT = 10.0

# Counts the canvas pixels near each colour (each channel within 8: no
# colour is lost to 24-bit VNC, but be lenient), over the whole canvas.
COUNT_JS = """
const [colours] = arguments;
const c = document.querySelector('#noVNC_container canvas');
if (!c || c.width < 2) return null;
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
const counts = colours.map(() => 0);
for (let i = 0; i < d.length; i += 4) {
  for (let k = 0; k < colours.length; k++) {
    const [r, g, b] = colours[k];
    if (Math.abs(d[i] - r) <= 8 && Math.abs(d[i + 1] - g) <= 8 && Math.abs(d[i + 2] - b) <= 8) counts[k]++;
  }
}
return { width: c.width, height: c.height, counts: counts };
"""

# Waits (polling every 5 ms) until the pixel at (x, y) has the colour.
WAIT_JS = """
const [x, y, rgb, timeoutMs, done] = arguments;
const c = document.querySelector('#noVNC_container canvas');
const g = c.getContext('2d');
const start = performance.now();
(function poll() {
  const p = g.getImageData(x, y, 1, 1).data;
  if (Math.abs(p[0] - rgb[0]) <= 8 && Math.abs(p[1] - rgb[1]) <= 8 && Math.abs(p[2] - rgb[2]) <= 8) return done(true);
  if (performance.now() - start > timeoutMs) return done(false);
  setTimeout(poll, 5);
})();
"""


def rgb(hex_colour):
    return [int(hex_colour[i:i + 2], 16) for i in (0, 2, 4)]


def fail(why, result):
    result["error"] = why
    print(json.dumps(result))
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--display", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--window", required=True)
    ap.add_argument("--changes", required=True)
    ap.add_argument("--screenshot", required=True)
    args = ap.parse_args()

    result = {}
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1100,860", "--hide-scrollbars"):
        opts.add_argument(a)
    started = time.monotonic()
    # The system driver: Selenium Manager would try to download one.
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        result["browser_start_s"] = round(time.monotonic() - started, 3)
        driver.set_script_timeout(CHANGE_TIMEOUT + 5)
        opened = time.monotonic()
        driver.get(args.url)

        # Connected and drawn: most of the canvas has the root's colour, and
        # the window (at least 100x100 pixels) is there.
        colours = [rgb(args.root), rgb(args.window)]
        seen = None
        while time.monotonic() - opened < CONNECT_TIMEOUT:
            seen = driver.execute_script(COUNT_JS, colours)
            if seen and seen["counts"][0] > seen["width"] * seen["height"] // 2 and seen["counts"][1] >= 10000:
                break
            time.sleep(0.05)
        else:
            status = driver.execute_script(
                "const s = document.getElementById('noVNC_status'); return s && s.textContent")
            fail("the desktop's colours did not appear within %ss (noVNC status: %r, canvas and "
                 "pixels of the root's and the window's colour: %r)" % (CONNECT_TIMEOUT, status, seen), result)
        result["first_picture_s"] = round(time.monotonic() - opened, 3)
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
            if not driver.execute_async_script(WAIT_JS, 5, 5, rgb(colour), CHANGE_TIMEOUT * 1000):
                fail("colour %s did not appear within %ss" % (colour, CHANGE_TIMEOUT), result)
            latencies.append(round((time.monotonic() - t0) * 1000, 1))
        result["change_ms"] = latencies
    finally:
        driver.quit()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
