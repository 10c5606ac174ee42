"""Calibration by clicking, in a real browser: pairs clicked on a generated camera's frame and
on the floor plan give the homography the saved TOML file holds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("selenium")
pytest.importorskip("cv2")

from peopleflow.config import load_config  # noqa: E402
from peopleflow.database import ResultsDB  # noqa: E402
from peopleflow.generate import StoreParams, generate  # noqa: E402
from peopleflow.web import WebOptions, WebServer, create_app  # noqa: E402
from peopleflow.webapi import StoreData  # noqa: E402
from tests.web.test_page import _errors  # noqa: E402
from tests.web.test_page import browser as browser  # noqa: E402, F401 (the fixture)

TOKEN = "calibrate-me"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    config = generate(tmp_path / "store", StoreParams(cameras=1, shoppers=2, minutes=0.05, seed=6),
                      progress=None)  # fmt: skip
    cfg = load_config(config)
    db = ResultsDB.open(f"sqlite:///{tmp_path / 'r.sqlite'}")
    db.resume(cfg.name, 0.0, json.dumps({"plan": cfg.plan.to_json(), "min_visit": 5.0}))
    server = WebServer(
        create_app(StoreData(db, cfg.name), TOKEN, calibration=config),
        WebOptions(port=0, token=TOKEN),
    )
    try:
        yield server.start(), config
    finally:
        server.stop()
        db.close()


def _click(driver: Any, element: Any, client: tuple[float, float]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    box = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();return [r.left, r.top, r.width, r.height];",
        element,
    )
    dx = client[0] - (box[0] + box[2] / 2)
    dy = client[1] - (box[1] + box[3] / 2)
    ActionChains(driver).move_to_element_with_offset(
        element, round(dx), round(dy)
    ).click().perform()


def test_clicked_pairs_give_the_homography_the_saved_file_holds(
    store: tuple[str, Path],
    browser: Any,  # noqa: F811
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    url, config = store
    truth = load_config(config).cameras[0]
    browser.get(f"{url}calibrate?token={TOKEN}")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda b: b.execute_script("return document.body.dataset.frame") == "yes")
    image = browser.find_element("id", "frame")
    plan = browser.find_element("id", "plan")
    for u, v, x, y in truth.calibration.tolist():
        at = browser.execute_script(
            "const i = arguments[0], r = i.getBoundingClientRect();"
            "return [r.left + arguments[1] * r.width / i.naturalWidth,"
            "        r.top + arguments[2] * r.height / i.naturalHeight];",
            image, u, v,
        )  # fmt: skip
        _click(browser, browser.find_element("id", "frame-marks"), tuple(at))
        at = browser.execute_script(
            "const s = arguments[0], m = s.getScreenCTM(), p = s.createSVGPoint();"
            "p.x = arguments[1]; p.y = arguments[2]; const q = p.matrixTransform(m);"
            "return [q.x, q.y];",
            plan, x, load_config(config).plan.height - y,
        )  # fmt: skip
        _click(browser, plan, tuple(at))
    wanted = str(len(truth.calibration))
    wait.until(lambda b: b.execute_script("return document.body.dataset.pairs") == wanted)
    wait.until(lambda b: b.execute_script("return document.body.dataset.fitted") == "yes")
    clicked = np.array(browser.execute_script("return pairs"))
    assert clicked.shape == truth.calibration.shape
    # Clicks land within a pixel or two, and a few centimetres, of the points aimed at.
    assert np.abs(clicked - truth.calibration).max() < 3
    assert len(browser.execute_script("return fitted.grid")) > 5  # the floor's grid, drawn back
    browser.find_element("id", "save").click()
    wait.until(lambda b: b.execute_script("return document.body.dataset.saved") == "yes")
    shown = np.array(browser.execute_script("return fitted.matrix"))
    saved = load_config(config).cameras[0]
    assert np.allclose(saved.calibration, clicked, atol=1e-3)
    assert np.allclose(saved.homography.matrix, shown / shown[2, 2], rtol=1e-6, atol=1e-9)
    assert saved.homography.error(truth.calibration[:, :2], truth.calibration[:, 2:]) < 0.1
    assert _errors(browser) == []


def test_a_zone_drawn_on_the_plan_is_saved_with_the_others(
    store: tuple[str, Path],
    browser: Any,  # noqa: F811
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    url, config = store
    before = load_config(config).plan
    browser.get(f"{url}calibrate?token={TOKEN}")
    wait = WebDriverWait(browser, 20)
    wait.until(lambda b: b.execute_script("return document.body.dataset.frame") == "yes")
    plan = browser.find_element("id", "plan")
    browser.find_element("id", "zone-name").send_keys("queue")
    browser.find_element("id", "zone-door").click()
    browser.find_element("id", "zone-new").click()
    corners = [(12.0, 1.0), (15.0, 1.0), (15.0, 2.5), (12.0, 2.5)]
    for x, y in corners:
        at = browser.execute_script(
            "const s = arguments[0], m = s.getScreenCTM(), p = s.createSVGPoint();"
            "p.x = arguments[1]; p.y = arguments[2]; const q = p.matrixTransform(m);"
            "return [q.x, q.y];",
            plan, x, before.height - y,
        )  # fmt: skip
        _click(browser, plan, tuple(at))
    browser.find_element("id", "zone-close").click()
    browser.find_element("id", "zones-save").click()
    wait.until(lambda b: b.execute_script("return document.body.dataset.zonesSaved") == "yes")
    after = load_config(config).plan
    assert after.zone_names == [*before.zone_names, "queue"]  # the others kept, in order
    queue = after.zones[-1]
    assert queue.door and np.abs(queue.polygon - np.array(corners)).max() < 0.05
    assert _errors(browser) == []
