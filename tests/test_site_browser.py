"""The claim site in a real headless Chromium (Debian's /usr/bin/chromium via selenium and
/usr/bin/chromedriver): the interactive chart renders, nothing is requested from any host but
the loopback server (or file://), no console errors, hostile quotes stay text.

Requests are recorded from Chromium's DevTools performance log (Network.requestWillBeSent),
console messages from its browser log. Screenshots go to tmp_path.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from test_site import CLAIM_SCENE, MALICIOUS_EN, MALICIOUS_FR, SCENES, write_example_outputs

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,2200",
]
COUNTED = sum(1 for s in SCENES if s[2] is not None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from geo_evidence.site import build_site

    root = tmp_path_factory.mktemp("browser-site")
    out_dir = write_example_outputs(root / "geoev-out")
    return build_site("tumangang", out=root / "public", out_dir=out_dir, compute=False)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server(site):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    assert CHROMEDRIVER.exists(), "chromium is installed but /usr/bin/chromedriver is not: apt-get install chromium-driver"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_AVOID_STATS", "true")  # selenium must not phone home either
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _drain(driver) -> tuple[list[str], list[dict]]:
    """Requested URLs and console entries since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls, driver.get_log("browser")


def _wait_for_chart(driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".vis.rendered svg.marks"))
    return driver.find_element(By.CSS_SELECTOR, ".vis.rendered svg.marks")


def _assert_not_blank(png: Path) -> None:
    from matplotlib.image import imread

    img = imread(png)[..., :3]
    assert img.shape[0] > 500 and img.shape[1] > 800
    colours = np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert img.std() > 0.05 and len(colours) > 50, "screenshot looks blank"


def test_claim_page_over_http_renders_chart_without_external_requests(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    _drain(browser)
    browser.get(f"{server}/index.html")
    link = browser.find_element(By.CSS_SELECTOR, 'a[href="tumangang/tumangang-2023-10-05-more-than-70.html"]')
    link.click()
    svg = _wait_for_chart(browser)
    assert svg.size["width"] > 300 and svg.size["height"] > 200
    # one symbol per counted scene (the vega SVG renderer draws each point as a path)
    points = browser.execute_script(
        "return document.querySelectorAll('.vis svg .mark-symbol path').length")
    assert points >= COUNTED
    assert "SIMULATED IMAGERY" in browser.find_element(By.CSS_SELECTOR, ".vis svg").get_attribute("textContent")
    fallback = browser.find_element(By.CSS_SELECTOR, ".vis img.fallback")
    assert not fallback.is_displayed()  # the PNG gives way to the interactive chart
    shot = tmp_path / "claim-http.png"
    browser.save_screenshot(str(shot))
    _assert_not_blank(shot)

    urls, console = _drain(browser)
    assert any(u.endswith("/static/vendor/vega-embed.min.js") for u in urls)
    foreign = [u for u in urls if not u.startswith((server + "/", "data:", "blob:", "about:"))]
    assert foreign == []
    errors = [e for e in console if e["level"] == "SEVERE"]
    assert errors == []


def test_site_from_file_url_renders_and_stays_local(browser, site, tmp_path):
    from selenium.webdriver.common.by import By

    _drain(browser)
    browser.get((site / "index.html").as_uri())
    assert "Tumangang" in browser.find_element(By.TAG_NAME, "body").text
    browser.get((site / "tumangang" / "tumangang-five-years-at-most-20.html").as_uri())
    svg = _wait_for_chart(browser)
    assert svg.size["width"] > 300
    assert CLAIM_SCENE in browser.find_element(By.TAG_NAME, "body").text
    shot = tmp_path / "claim-file.png"
    browser.save_screenshot(str(shot))
    _assert_not_blank(shot)
    urls, console = _drain(browser)
    assert urls and all(u.startswith(("file://", "data:", "blob:", "about:")) for u in urls), urls
    assert [e for e in console if e["level"] == "SEVERE"] == []


def test_hostile_quote_is_text_in_the_browser(browser, server, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    _drain(browser)
    browser.get(f"{server}/tumangang/tumangang-2023-10-05-fewer-than-30.html")
    _wait_for_chart(browser)
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - touching it is the check
    quote = browser.find_element(By.CSS_SELECTOR, "blockquote.quote-fr").text
    assert quote == MALICIOUS_FR
    assert MALICIOUS_EN in browser.find_element(By.CSS_SELECTOR, ".translation").text
    scripts = browser.execute_script(
        "return Array.from(document.scripts).map(s => [s.type, s.getAttribute('src') || '', s.text.includes('alert(')])")
    for kind, src, has_alert in scripts:
        if src:
            assert src.startswith("../static/")
        else:
            assert kind in ("application/ld+json", "application/json")
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
    ld = json.loads(browser.execute_script(
        "return document.querySelector('script[type=\"application/ld+json\"]').textContent"))
    assert ld["claimReviewed"] == MALICIOUS_EN and ld["reviewRating"]["alternateName"] == "contradicted"
    browser.save_screenshot(str(tmp_path / "hostile.png"))
    _assert_not_blank(tmp_path / "hostile.png")
    urls, console = _drain(browser)
    assert all(u.startswith((server + "/", "data:", "blob:", "about:")) for u in urls), urls
    assert [e for e in console if e["level"] == "SEVERE"] == []
