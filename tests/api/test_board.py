"""The lab board in a real headless browser (Debian's chromium through /usr/bin/chromedriver) on the
whole real chain: labsim hosts over SSH → exporter → Prometheus (1 s scrapes, remote write) → bridge →
PostgreSQL → optilab-api → /board.

It checks that the page loads behind a key asked for once (kept in sessionStorage, never in the URL),
that every department's free count equals the API's, and that a login forced on a labsim machine
(labsim's control API) shows on the board within 10 s without a reload. The screenshot is saved in
the test's tmp dir (and, with OPTILAB_BOARD_SCREENSHOT=PATH, there too: docs/img/board.png).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.fixtures.procs import free_port, http_ok, port_open

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
KEY = "board-test-key-0123456789"
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (scripts/install-system-deps.sh)",
    ),
]


def wait_for(check: Callable[[], object], timeout: float, what: str, every: float = 0.25) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def api_get(url: str) -> dict:
    request = urllib.request.Request(url, headers={"X-API-Key": KEY})  # noqa: S310 - loopback test API
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback test API
        return json.load(response)


@pytest.fixture
def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1800",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_board_shows_the_apis_free_counts_and_a_login_within_10_s(
    tmp_path: Path, migrated_dsn: str, prometheus_factory, services, browser
) -> None:
    from selenium.webdriver.common.by import By

    from optilab.labsim.history import replay
    from optilab.labsim.lab import Lab

    lab = Lab.start(tmp_path / "lab", hosts=6, departments=2, port=free_port())
    try:
        for host in lab.hosts:  # start from a known picture: every seat free
            lab.set_seat(host["ip"], "free")
        bridge_port, api_port, exporter = free_port(), free_port(), f"127.0.0.1:{free_port()}"
        services(
            "bridge",
            [str(BIN / "optilab-bridge"), "--listen", f"127.0.0.1:{bridge_port}", "--dsn", migrated_dsn],
            {"OPTILAB_ALERTS_DELIVERY": "direct"},
            lambda: port_open("127.0.0.1", bridge_port),
        )
        services(
            "exporter",
            [str(BIN / "optilab-exporter"), "--config", str(lab.inventory), "--listen", exporter],
            {},
            lambda: http_ok(f"http://{exporter}/sd"),
        )
        prometheus_factory(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "node",
                        "metrics_path": "/probe",
                        "honor_labels": True,
                        "http_sd_configs": [{"url": f"http://{exporter}/sd", "refresh_interval": "1s"}],
                        "relabel_configs": [
                            {"source_labels": ["__address__"], "target_label": "__param_target"},
                            {"source_labels": ["__param_target"], "target_label": "instance"},
                            {"target_label": "__address__", "replacement": exporter},
                        ],
                    }
                ],
                "remote_write": [
                    {
                        "url": f"http://127.0.0.1:{bridge_port}/api/v1/write",
                        "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms"},
                    }
                ],
            }
        )
        # a day of history for the heatmaps and charts, through the same bridge (same hosts as the lab)
        replay(
            f"http://127.0.0.1:{bridge_port}",
            time.time() - 86400,
            time.time() - 900,
            hosts=6,
            departments=2,
            step=300,
            port=lab.port,
        )
        with psycopg.connect(migrated_dsn, autocommit=True) as conn:
            conn.execute("SELECT optilab_refresh_rollups()")
        api = f"http://127.0.0.1:{api_port}"
        services(
            "api",
            [
                str(BIN / "optilab-api"),
                "--listen",
                f"127.0.0.1:{api_port}",
                "--dsn",
                migrated_dsn,
                "--rate-limit",
                "",
                "--inventory",
                str(lab.inventory),
            ],
            {"OPTILAB_API_KEYS": KEY},
            lambda: http_ok(f"{api}/health"),
        )

        def all_free() -> dict[str, int] | None:
            items = api_get(f"{api}/departments")["items"]
            free = {row["name"]: row["now"]["seats"]["free"] for row in items}
            complete = sum(row["machines"] for row in items) == 6
            return free if complete and all(row["now"]["seats"]["free"] == row["machines"] for row in items) else None

        api_free = wait_for(all_free, 60, "every seat reported free through the chain")
        assert sum(api_free.values()) == 6  # type: ignore[union-attr]

        browser.get(f"{api}/board")
        key_input = wait_for(
            lambda: browser.find_element(By.ID, "key").is_displayed() and browser.find_element(By.ID, "key"),
            15,
            "the key dialog",
        )
        key_input.send_keys(KEY)  # type: ignore[union-attr]
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()

        def board_free() -> dict[str, int] | None:
            counts = {
                node.get_attribute("data-department"): int(node.find_element(By.CLASS_NAME, "free-count").text)
                for node in browser.find_elements(By.CSS_SELECTOR, "p.free")
            }
            return counts if len(counts) == len(api_free) else None  # type: ignore[arg-type]

        assert wait_for(board_free, 15, "free counts on the board") == api_free
        assert KEY not in browser.current_url
        assert browser.execute_script("return sessionStorage.getItem('optilab-board-key')") == KEY
        # landmarks and the live region a screen reader relies on
        assert browser.find_elements(By.TAG_NAME, "main") and browser.find_elements(By.TAG_NAME, "header")
        assert browser.find_element(By.ID, "announcer").get_attribute("aria-live") == "polite"
        wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "table.heatmap")) == 2, 15, "the heatmaps")
        assert browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline")  # the day of history is drawn

        target = lab.hosts[0]
        marker = browser.execute_script("window.__noReload = 'still here'; return window.__noReload")
        lab.set_seat(target["ip"], "in_use")
        started = time.monotonic()

        def tile_in_use() -> bool:
            for tile in browser.find_elements(By.CSS_SELECTOR, "li.seat"):
                if tile.find_element(By.CLASS_NAME, "host").text == target["hostname"]:
                    return tile.get_attribute("data-state") == "in_use"
            return False

        wait_for(tile_in_use, 10, f"{target['hostname']} shown in use")
        took = time.monotonic() - started
        assert browser.execute_script("return window.__noReload") == marker  # the same page: no reload
        department = target["department"]
        assert wait_for(
            lambda: (board_free() or {}).get(department) == api_free[department] - 1,
            5,  # type: ignore[index]
            "the free count one lower",
        )
        after = {row["name"]: row["now"]["seats"]["free"] for row in api_get(f"{api}/departments")["items"]}
        assert board_free() == after
        # the change is spoken by screen readers (the live region is visually hidden: textContent)
        assert target["hostname"] in browser.find_element(By.ID, "announcer").get_attribute("textContent")
        print(f"login shown on the board {took:.1f} s after it happened")

        screenshot = tmp_path / "board.png"
        assert browser.save_screenshot(str(screenshot))
        if os.environ.get("OPTILAB_BOARD_SCREENSHOT"):
            shutil.copy(screenshot, os.environ["OPTILAB_BOARD_SCREENSHOT"])
        assert screenshot.stat().st_size > 10_000
    finally:
        lab.stop()
    assert yaml.safe_load(lab.inventory.read_text())["departments"]  # the lab wrote its opening hours
