"""The dashboard in a real browser: headless Chromium (Debian's packages) driven by selenium.

A live cluster of two ``beamrl node start`` OS processes, and a ``beamrl dashboard``
OS process serving its page; a ``beamrl train --dashboard`` run for the learning
view. Nothing downloads a browser: the system's chromium and chromedriver are used
(``scripts/ensure-chromium`` installs them on Debian-like machines run as root), and
these tests skip, saying why, where they are missing.

Deadlines are the issue's: a change reaches the page within the update budget (2 s
for a kill's restart and its event), a SIGKILLed node shows down within the heartbeat
timeout (plus the update budget).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import beamrl
from beamrl import Node
from beamrl.testing import NodeProcess, eventually

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no Chromium here (chromium and chromedriver): run scripts/ensure-chromium as root on Debian to install them",
        allow_module_level=True,
    )
pytest.importorskip("selenium", reason="selenium is not installed (it is in the dev extra)")
pytest.importorskip("aiohttp", reason="the dashboard extra (aiohttp) is not installed")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.timeout(180)

UPDATE = 2.0  # the budget for a change to reach the page
HEARTBEAT_TIMEOUT = 1.5  # the cluster's nodes, and the dashboard's

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """A ``beamrl`` OS process that prints a dashboard URL (``beamrl dashboard`` or ``train --dashboard``)."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "beamrl.cli", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.url = ""
        found = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = re.search(r"dashboard of .*: (http://\S+)", line)
                if match and not self.url:
                    self.url = match.group(1)
                    found.set()
            found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not found.wait(60) or not self.url:
            self.stop()
            raise AssertionError(f"`beamrl {' '.join(args)}` printed no dashboard URL:\n{''.join(self.output)}")

    def stop(self) -> None:
        if self.proc.poll() is None:  # SIGINT: a training run then closes the actor nodes it started
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager fetch a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Cluster:
    def __init__(self) -> None:
        self.ports = {"alpha": _free_port(), "beta": _free_port()}
        self.alpha = self._start("alpha")
        self.beta = self._start("beta", "--join", self.alpha.address)

    def _start(self, name: str, *args: str) -> NodeProcess:
        listen = f"tcp://127.0.0.1:{self.ports[name]}"
        tree = ROOT / "tests" / "trees" / "dash_peer.toml"
        return NodeProcess(name, *args, listen=listen, tree=tree, heartbeat_timeout=HEARTBEAT_TIMEOUT, cwd=ROOT)

    def restart_beta(self) -> None:
        self.beta = self._start("beta", "--join", self.alpha.address)

    def close(self) -> None:
        for peer in (self.beta, self.alpha):
            if peer.proc.poll() is None:
                peer.terminate()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def page(cluster: Cluster, browser: Any) -> Iterator[Served]:
    served = Served(
        "dashboard", cluster.alpha.address, "--port", str(_free_port()), "--allow-control",
        "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT),
    )  # fmt: skip
    try:
        browser.get(served.url)
        yield served
    finally:
        served.stop()


def wait(browser: Any, condition: Callable[[Any], Any], timeout: float, what: str) -> Any:
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        raise AssertionError(f"the page did not show {what} within {timeout} s") from None


def js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


ROW = "return document.querySelector(`.row[data-node='${arguments[0]}'][data-name='${arguments[1]}']`)"


def restarts(browser: Any, node: str, name: str) -> int | None:
    text = js(
        browser, f"const r = (() => {{ {ROW} }})(); return r && r.querySelector('.restarts').textContent", node, name
    )
    return int(text) if text not in (None, "") else None


def event_texts(browser: Any) -> list[str]:
    return list(js(browser, "return [...document.querySelectorAll('#events li')].map(li => li.textContent)"))


def node_status(browser: Any, node: str) -> str | None:
    status: str | None = js(
        browser,
        "const n = document.querySelector(`.node[data-node='${arguments[0]}']`); return n && n.dataset.status",
        node,
    )
    return status


async def _kill_through_the_api(address: str, target: tuple[str, str]) -> None:
    async with Node("api-killer") as node:
        await node.connect(address)
        await eventually(lambda: target[1] in node.nodes(), timeout=10, what=f"a connection to {target[1]}")
        node.kill(target)


def test_the_tree_shows_every_process(cluster: Cluster, browser: Any, page: Served) -> None:
    session = beamrl.connect(cluster.alpha.address)
    try:
        expected = {
            node: {
                f"{p['pid'].node}/{p['pid'].id}/{p['pid'].creation}"
                for p in session.call(("$node", node), ["processes"])
            }
            for node in ("alpha", "beta")
        }
    finally:
        session.close()
    assert all(len(keys) >= 5 for keys in expected.values())  # work, c1, c2, dyn and $node on each

    def shown() -> bool:
        keys = set(js(browser, "return [...document.querySelectorAll('.row[data-key]')].map(r => r.dataset.key)"))
        return all(k in keys for node_keys in expected.values() for k in node_keys)

    wait(browser, lambda _: shown(), 10, "every process of alpha and beta")
    assert js(browser, "return document.getElementById('conn').dataset.connected") == "true"
    assert node_status(browser, "alpha") == "up" and node_status(browser, "beta") == "up"


def test_a_kill_through_the_api_shows_the_restart_and_an_event(cluster: Cluster, browser: Any, page: Served) -> None:
    wait(browser, lambda _: restarts(browser, "beta", "c1") is not None, 10, "beta's c1")
    before, events_before = restarts(browser, "beta", "c1"), len(event_texts(browser))
    beamrl.run(_kill_through_the_api(cluster.beta.address, ("c1", "beta")))
    wait(browser, lambda _: restarts(browser, "beta", "c1") == before + 1, UPDATE, "beta's c1 restarted")  # type: ignore[operator]
    new = lambda: event_texts(browser)[: len(event_texts(browser)) - events_before]  # noqa: E731
    wait(browser, lambda _: any("beta" in t and "c1" in t and "killed" in t for t in new()), UPDATE, "the kill")
    wait(browser, lambda _: any("beta" in t and "restarted 'c1'" in t for t in new()), UPDATE, "the restart")


def test_the_control_button_kills_a_process(cluster: Cluster, browser: Any, page: Served) -> None:
    wait(browser, lambda _: restarts(browser, "alpha", "c2") is not None, 10, "alpha's c2")
    before = restarts(browser, "alpha", "c2")
    selector = ".row[data-node='alpha'][data-name='c2'] button[data-action='kill']"
    for _ in range(20):  # the tree is redrawn on every update: retry a click on a replaced button
        try:
            browser.find_element(By.CSS_SELECTOR, selector).click()
            break
        except StaleElementReferenceException:
            continue
    wait(browser, lambda _: restarts(browser, "alpha", "c2") == before + 1, UPDATE, "alpha's c2 restarted")  # type: ignore[operator]
    wait(browser, lambda _: any("c2" in t for t in event_texts(browser)[:3]), UPDATE, "the kill's events")
    assert "done" in js(browser, "return document.getElementById('control-result').textContent")
    highlighted = js(browser, "return [...document.querySelectorAll('.row.highlight')].map(r => r.dataset.name)")
    assert "c2" in highlighted


def test_a_node_killed_shows_down_then_up_again(cluster: Cluster, browser: Any, page: Served) -> None:
    wait(browser, lambda _: node_status(browser, "beta") == "up", 10, "beta up")
    cluster.beta.kill()  # SIGKILL: no goodbye
    wait(browser, lambda _: node_status(browser, "beta") == "down", HEARTBEAT_TIMEOUT + UPDATE, "beta down")
    assert any("beta" in t and "down" in t for t in event_texts(browser))
    cluster.restart_beta()
    wait(browser, lambda _: node_status(browser, "beta") == "up", 20, "beta up again")
    wait(browser, lambda _: restarts(browser, "beta", "c1") == 0, 5, "the new beta's tree")
    events_before = len(event_texts(browser))
    beamrl.run(_kill_through_the_api(cluster.beta.address, ("c2", "beta")))  # the new beta's events show too
    new = lambda: event_texts(browser)[: len(event_texts(browser)) - events_before]  # noqa: E731
    wait(browser, lambda _: any("beta" in t and "restarted 'c2'" in t for t in new()), UPDATE, "the new beta's restart")


def test_the_learning_curve_grows_while_training_runs(browser: Any, tmp_path: Path) -> None:
    port = _free_port()
    run = Served(
        "train", "q-learning", "FrozenLake-v1", "--episodes", "200000", "--nodes", "2", "--crash-at", "1500",
        "--quiet", "--out", str(tmp_path / "run"), "--dashboard", str(port),
    )  # fmt: skip
    try:
        browser.get(run.url)
        points = "return Number(document.getElementById('chart-return')?.dataset.points || 0)"
        wait(browser, lambda _: js(browser, points) > 0, 20, "the first points of the return curve")
        first = js(browser, points)
        wait(browser, lambda _: js(browser, points) > first, 5, "the return curve growing")
        wait(
            browser,
            lambda _: js(browser, "return Number(document.getElementById('chart-success').dataset.points)") > 2,
            20,
            "evaluations",
        )
        wait(browser, lambda _: any("fault" in t for t in event_texts(browser)), 20, "the injected fault")
        wait(browser, lambda _: js(browser, "return state.marks.length") > 0, UPDATE, "the fault marked on the curves")
        lag = "return Number(document.getElementById('chart-x-param_lag')?.dataset.points || 0)"
        wait(browser, lambda _: js(browser, lag) > 0, 10, "each worker's parameter lag")
        assert "q-learning on FrozenLake-v1" in js(browser, "return document.getElementById('run').textContent")
        wait(
            browser,
            lambda _: "SFFF" in js(browser, "return document.getElementById('watch-text').textContent"),
            5,
            "the agent's env",
        )
        last = "const r = state.points.return || []; return r.length ? r[r.length - 1][0] : 0"
        wait(browser, lambda _: js(browser, last) > 3000, 20, "learning go on after the fault")  # for the picture
        shot = Path(os.environ.get("BEAMRL_DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        run.stop()


def test_a_deep_runs_loss_replay_size_and_parameter_lag_reach_the_page(browser: Any, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    port = _free_port()
    run = Served(
        "train", "dqn", "CartPole-v1", "--steps", "200000", "--split", "--set", "hidden=[16]",
        "--set", "learning_starts=200", "--set", "param_sync_every=4", "--kill-at", "1500:learner",
        "--quiet", "--out", str(tmp_path / "run"), "--dashboard", str(port),
    )  # fmt: skip
    try:
        browser.get(run.url)
        points = "return Number(document.getElementById(arguments[0])?.dataset.points || 0)"
        for chart in ("chart-return", "chart-epsilon", "chart-x-loss", "chart-x-replay_size", "chart-x-param_lag"):
            wait(browser, lambda _, c=chart: js(browser, points, c) > 0, 60, f"points on {chart}")
        loss = js(browser, points, "chart-x-loss")
        wait(browser, lambda _: js(browser, points, "chart-x-loss") > loss, 10, "the loss curve growing")
        assert "dqn on CartPole-v1" in js(browser, "return document.getElementById('run').textContent")
        assert js(browser, "return document.getElementById('chart-success')") is None  # a deep run has none
        wait(browser, lambda _: any("learner" in t for t in event_texts(browser)), 60, "the killed learner's restart")
        marks = "return state.marks.map((m) => m.text)"
        wait(browser, lambda _: "learner killed" in js(browser, marks), UPDATE, "the kill marked on the curves")
        shot = Path(os.environ.get("BEAMRL_DASHBOARD_DEEP_SCREENSHOT") or tmp_path / "dashboard-deep.png")
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        run.stop()


def test_beyond_loopback_a_request_without_the_token_is_refused(cluster: Cluster, browser: Any) -> None:
    port = _free_port()
    served = Served("dashboard", cluster.alpha.address, "--host", "0.0.0.0", "--port", str(port))
    try:
        assert _printed(served, "beyond loopback: every request needs the token")
        bare = f"http://127.0.0.1:{port}/"
        for path in ("", "api/state", "static/dashboard.js"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(bare + path, timeout=5)
            refused.value.close()
            assert refused.value.code == 401
        browser.get(served.url.replace("0.0.0.0", "127.0.0.1"))
        wait(browser, lambda _: node_status(browser, "alpha") == "up", 10, "the cluster, with the token")
        browser.get(bare + "?token=wrong")
        assert "needs its token" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        served.stop()


def _printed(served: Served, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in "".join(served.output):
            return True
        time.sleep(0.05)
    return False
