"""The built site in a real browser: headless Chromium (Debian's chromium + chromium-driver) at 360 px wide loads
it from file://; the board lists the submissions in rank order, every link and image resolves, the console logs
no error, no page scrolls sideways, and a screenshot is written. Skipped, with the reason, without a browser."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from site_data import contest_store

from harness.site import build_site

CHROMIUM = "/usr/bin/chromium"
WIDTH = 360


def _driver():
    """A headless Chromium driver at WIDTH px (never downloads anything: explicit binary and driver)."""
    missing = [path for path in (CHROMIUM, shutil.which("chromedriver")) if not path or not Path(path).exists()]
    if missing or shutil.which("chromedriver") is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (/usr/bin/chromium, "
                    "chromedriver on PATH)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", f"--window-size={WIDTH},800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    driver.set_window_size(WIDTH, 800)  # headless windows start wider than asked
    return driver


def test_site_in_a_real_browser(tmp_path, report_dir):
    driver = _driver()
    try:
        db = contest_store(tmp_path / "c.sqlite", report_dir=report_dir)
        site = tmp_path / "site"
        build_site(db, site, now=1_790_000_000)
        from selenium.webdriver.common.by import By

        driver.get((site / "index.html").as_uri())
        assert driver.execute_script("return window.innerWidth") == WIDTH
        names = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody td.name a")]
        assert names == ["red.net.v2", "blue.cnn.v1", "organisers.baseline.v1"]  # rank order
        screenshot = tmp_path / "index.png"
        assert driver.save_screenshot(str(screenshot))
        data = screenshot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert struct.unpack(">I", data[16:20])[0] == WIDTH  # IHDR width
        driver.find_element(By.CSS_SELECTOR, "#leaderboard th:nth-child(2) button").click()  # sort by name
        assert [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#leaderboard tbody td.name a")][0] == \
            "blue.cnn.v1"
        pages = [site / "index.html"] + sorted((site / "submissions").glob("*.html"))
        seen_links, images, severe = set(), 0, []
        for page in pages:
            driver.get(page.as_uri())
            severe += [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            assert driver.title, page
            width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"{page.name} scrolls sideways: {width}"
            for image in driver.find_elements(By.TAG_NAME, "img"):
                assert image.get_attribute("alt").strip()
                assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0, \
                    image.get_attribute("src")
                images += 1
            seen_links |= {a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")}
        for link in sorted(seen_links):
            assert link.startswith("file://") and Path(unquote(urlsplit(link).path)).is_file(), link
            driver.get(link)
            assert driver.find_elements(By.TAG_NAME, "main"), link  # a page of the site, not an error page
        assert images == 7  # the charts of each of the 5 entries (one SVG each), the two pictures of one
        severe += [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        driver.quit()
