"""chromium.py: what the browser checks (novnc_check.py, screencast_check.py)
share: headless Chromium through Selenium and the system's chromedriver,
and scripts that read a canvas's pixels.
"""

import argparse
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# How long a viewer may take to connect and draw, and a change to show up.
CONNECT_TIMEOUT = 20.0
CHANGE_TIMEOUT = 10.0

# Counts the pixels of `canvas` near each colour (each channel within 8: no
# colour is lost on the way, but be lenient), over the whole canvas.
COUNT_JS = """
const [selector, colours] = arguments;
const c = document.querySelector(selector);
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

# Waits (polling every 5 ms) until the canvas's pixel at (x, y) has the
# colour; returns the page's Date.now() when it did, or false.
WAIT_JS = """
const [selector, x, y, rgb, timeoutMs, done] = arguments;
const g = document.querySelector(selector).getContext('2d');
const start = performance.now();
(function poll() {
  const p = g.getImageData(x, y, 1, 1).data;
  if (Math.abs(p[0] - rgb[0]) <= 8 && Math.abs(p[1] - rgb[1]) <= 8 && Math.abs(p[2] - rgb[2]) <= 8) return done(Date.now());
  if (performance.now() - start > timeoutMs) return done(false);
  setTimeout(poll, 5);
})();
"""


def wait_for_desktop(driver, canvas, colours, timeout):
    """Waits until the canvas shows the desktop: most of it in the first
    colour (the root window), at least 100x100 pixels of the second (a
    window). Returns the last pixel counts and the seconds it took (None if
    it never did)."""
    opened = time.monotonic()
    seen = None
    while time.monotonic() - opened < timeout:
        seen = driver.execute_script(COUNT_JS, canvas, colours)
        if seen and seen["counts"][0] > seen["width"] * seen["height"] // 2 and seen["counts"][1] >= 10000:
            return seen, time.monotonic() - opened
        time.sleep(0.05)
    return seen, None


def desktop_arguments():
    """The arguments every desktop check takes: the page, the X display, the
    desktop's colours (RRGGBB), the colours to change the root to, and where
    the screenshot goes. A check adds its own before parsing."""
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--display", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--window", required=True)
    ap.add_argument("--changes", required=True)
    ap.add_argument("--screenshot", required=True)
    return ap


def rgb(hex_colour):
    return [int(hex_colour[i:i + 2], 16) for i in (0, 2, 4)]


def start(width=1100, height=860):
    """A headless Chromium driven through the system's chromedriver (Selenium
    Manager would try to download one)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=%d,%d" % (width, height), "--hide-scrollbars"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def fail(why, result):
    """Prints the result so far with the reason, as the last line, and exits 1."""
    result["error"] = why
    print(json.dumps(result))
    sys.exit(1)
