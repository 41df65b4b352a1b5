"""Open a report in real headless Chromium (Debian's chromium + chromedriver, driven by
Selenium) at a given width, measure what a reader would see, and save a screenshot.

Chromedriver is given explicitly so Selenium Manager never downloads anything; the flags
keep Chromium off the network and out of any profile but a fresh one.
"""

from __future__ import annotations

import base64
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
# What the page looks like to its reader, measured in the page itself.
MEASURE = """
const root = document.documentElement, body = document.body;
const first = body.querySelector('p');
return {
  innerWidth: window.innerWidth, scrollWidth: root.scrollWidth,
  firstParagraph: first ? first.innerText : '', firstClass: first ? first.className : '',
  details: [...document.querySelectorAll('details')].map(d => d.open),
  presOutsideDetails: [...document.querySelectorAll('pre')].filter(p => !p.closest('details'))
                        .length,
  visiblePres: [...document.querySelectorAll("pre")].filter(p => p.checkVisibility())
                 .length,
  images: [...document.images].map(i => [i.getBoundingClientRect().width,
                                          i.parentElement.clientWidth, i.naturalWidth]),
  tablesUnwrapped: [...document.querySelectorAll('table')]
                     .filter(t => !t.parentElement.classList.contains('scroll')).length,
  wrappers: [...document.querySelectorAll('.scroll')].map(w => w.getBoundingClientRect().right),
  text: body.innerText,
};
"""


def render(page: Path, width: int, screenshot: Path, phone: bool = False) -> dict[str, Any]:
    """Load ``page`` at ``width`` CSS pixels (as a phone: mobile viewport, 2x pixels),
    write a PNG of the first screen to ``screenshot`` and return :data:`MEASURE`."""
    with chrome(width) as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 860 if phone else 900,
            "deviceScaleFactor": 2 if phone else 1, "mobile": phone})
        driver.get(page.resolve().as_uri())
        measured = driver.execute_script(MEASURE)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return measured


@contextlib.contextmanager
def chrome(width: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by Selenium (no network but the page's own server)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory() as profile:
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},900"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()
