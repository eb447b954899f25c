"""Screenshot of a page of a built site, as README shows the demo's (docs/site.png).

    python docs/tools/site_screenshot.py runs/demo/site docs/site.png [--page index.html] [--width 1280] [--height 720]

Headless Chromium from Debian's ``chromium`` and ``chromium-driver`` packages, driven by selenium (the ``dev``
extra); the binary and driver paths are given, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


def screenshot(site: Path, out: Path, width: int, height: int, page: str = "index.html") -> Path:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    if driver_path is None or not Path(CHROMIUM).exists():
        sys.exit("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.set_window_size(width, height)
        driver.get((site / page).resolve().as_uri())
        out.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(out)):
            sys.exit(f"{out}: no screenshot written")
    finally:
        driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--page", default="index.html", help="the page, relative to the site")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()
    if not (args.site / args.page).is_file():
        sys.exit(f"{args.site}: no {args.page} (build the site: harness site build DB --out {args.site})")
    print(screenshot(args.site, args.out, args.width, args.height, args.page))


if __name__ == "__main__":
    main()
