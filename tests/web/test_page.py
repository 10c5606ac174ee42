"""The store's page in a real browser (Debian's chromium and chromium-driver, through
Selenium), over a results database the recorder filled from simulated shoppers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("selenium")

from peopleflow.coverage import Coverage  # noqa: E402
from peopleflow.database import ResultsDB  # noqa: E402
from peopleflow.live import LiveView  # noqa: E402
from peopleflow.recorder import Recorder, RecorderSettings  # noqa: E402
from peopleflow.simulate import default_plan, simulate  # noqa: E402
from peopleflow.track import LOOK_SIZE  # noqa: E402
from peopleflow.web import WebError, WebOptions, WebServer, create_app  # noqa: E402
from peopleflow.webapi import StoreData  # noqa: E402
from tests.services.postgres import missing  # noqa: E402

ORIGIN = 1_796_115_600.0  # 2026-12-01 09:00 UTC
DAY = "date:2026-12-01"
PLAN = default_plan()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResultsDB]:
    """Five minutes of 16 simulated shoppers, through the recorder, in SQLite."""
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'r.sqlite'}"
    results = ResultsDB.open(url)
    plan_json = json.dumps({"plan": PLAN.to_json(), "min_visit": 5.0})
    results.resume("test store", ORIGIN, plan_json)
    settings = RecorderSettings(PLAN, Coverage.everywhere(PLAN, 2), 0.5, relinked=False)
    recorder = Recorder(settings)
    shoppers = simulate(PLAN, 16, 300, 2.0, 3)
    for t in np.unique(np.concatenate([s.track.t for s in shoppers])):
        here = [s for s in shoppers if (s.track.t == t).any()]
        ids = np.array([s.id for s in here], np.int64)
        xy = np.array([s.track.xy[s.track.t == t][0] for s in here]).reshape(-1, 2)
        looks = np.zeros((len(ids), LOOK_SIZE), np.float32)
        batch = recorder.add(ORIGIN + t, ids, xy, looks, ["cam1", "cam2"], {"cam1": (0, 0)})
        if batch is not None:
            results.write("test store", batch)
    results.write("test store", recorder.finish())
    yield results
    results.close()


def _live() -> LiveView:
    live = LiveView()
    live.saw(ORIGIN + 299.5, np.array([4, 9]), np.array([[3.0, 2.0], [12.5, 7.0]]), ["cam1"])
    return live


@pytest.fixture
def page(db: ResultsDB) -> Iterator[str]:
    server = WebServer(create_app(StoreData(db, "test store", _live())), WebOptions(port=0))
    yield server.start()
    server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium for one test (the leak guard wants no process left after it).
    Its temporary files (the profile, the singleton socket's folder, which Chromium leaves in
    $TMPDIR when it quits) go into a folder of its own, removed after it: a short path, as a
    Unix socket's may not pass 107 bytes (a test's ``tmp_path`` comes near)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        missing("chromium and chromium-driver are not installed (Debian's: make installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
    ):
        options.add_argument(flag)  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with tempfile.TemporaryDirectory(
        prefix="conveyor-chromium-", ignore_cleanup_errors=True
    ) as tmp:
        options.add_argument(f"--user-data-dir={tmp}/profile")
        env = {**os.environ, "TMPDIR": tmp}
        chrome = webdriver.Chrome(options=options, service=Service(str(driver), env=env))
        try:
            yield chrome
        finally:
            chrome.quit()


def _open(browser: Any, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 20).until(
        lambda b: b.execute_script("return document.body.dataset.loaded") == "yes"
    )


def _errors(browser: Any) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_every_view_loads_with_no_console_error(page: str, browser: Any) -> None:
    _open(browser, f"{page}?period={DAY}")
    assert _errors(browser) == []
    text = browser.find_element("tag name", "body").text
    assert "test store" in text and "2 people" in text  # the people on the floor now
    for table in ("camera-table", "dwell-table", "pipeline-table"):
        assert browser.find_element("id", table).is_displayed()
    dots = browser.find_elements("css selector", "#floor-now circle.person")
    assert len(dots) == 2  # dots with identities, no image of anyone
    assert browser.find_elements("css selector", "#flow-map path.flow")
    assert "cam1" in browser.find_element("id", "camera-table").text


def test_the_heat_map_shows_the_totals_the_database_holds(
    page: str, browser: Any, db: ResultsDB
) -> None:
    _open(browser, f"{page}?period={DAY}")
    shown = float(browser.find_element("id", "heat-total").get_attribute("data-total"))
    held = sum(db.tally("test store").heat.values())
    assert held > 1000 and shown == pytest.approx(held, abs=0.01)
    visitors = browser.find_element("id", "visitors-total").text
    assert visitors == f"{sum(db.tally('test store').visitors.values())} in all"
    # Another period holds nothing: the page says so, with no error.
    _open(browser, f"{page}?period=date:2026-11-30")
    assert browser.find_element("id", "heat-total").get_attribute("data-total") == "0"
    assert _errors(browser) == []


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_off_this_machine_the_page_needs_its_token(db: ResultsDB, browser: Any) -> None:
    data = StoreData(db, "test store", _live())
    with pytest.raises(WebError, match="needs a token"):
        WebServer(create_app(data), WebOptions(host="0.0.0.0", port=0))
    server = WebServer(create_app(data, "s3cret"), WebOptions("0.0.0.0", 0, "s3cret"))
    url = server.start().replace("0.0.0.0", "127.0.0.1")
    try:
        for path in ("", "api", "api/heatmap", "static/app.js"):
            assert _status(url + path) == 401, path
        assert _status(url + "api/store", {"Authorization": "Bearer wrong"}) == 401
        assert _status(url + "api/store", {"Authorization": "Bearer s3cret"}) == 200
        _open(browser, f"{url}?token=s3cret&period={DAY}")  # the page passes it on
        assert _errors(browser) == []
    finally:
        server.stop()


def test_the_json_endpoints_are_listed_and_bad_periods_refused(page: str) -> None:
    with urllib.request.urlopen(page + "api") as r:
        listed = json.loads(r.read())["endpoints"]
    for endpoint in listed:
        assert _status(page + endpoint.lstrip("/") + f"?period={DAY}") == 200, endpoint
    assert _status(page + "api/heatmap?period=yesterday") == 400


def test_screenshots_for_the_docs(page: str, browser: Any, tmp_path: Path) -> None:
    """Writes the page's picture (docs/results/web-page.png is one, taken this way)."""
    _open(browser, f"{page}?period={DAY}")
    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
