"""Fixtures for the browser tests: a hermetic JupyterLab server and a headless Debian Chromium.

The server listens on 127.0.0.1 only (so an empty token is acceptable), uses fresh temporary
config / data / runtime / settings / workspaces directories, never fetches news or update
information, and serves a *temporary copy* of each lesson, so nothing a test does (running
cells, autosave) can touch the committed notebooks. It is stopped at the end of the session
whatever happens (fixture finaliser plus ``atexit``): SIGTERM to its process group, then
SIGKILL to anything left, kernels included (kernels run in their own sessions).

Playwright's own browser download is not used: Chromium comes from Debian
(``apt-get install chromium``), found at ``$DIFFCOURSE_CHROMIUM`` or ``/usr/bin/chromium``.
Without Playwright or Chromium every e2e test is skipped with a message saying how to enable it.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ENV = "DIFFCOURSE_CHROMIUM"
HOW_TO_ENABLE = (
    "to run the browser tests: `apt-get update && apt-get install -y chromium` (or point "
    f"${CHROMIUM_ENV} at a Chromium/Chrome binary) and `pip install -r requirements-dev.txt` (playwright)"
)
# Without the background-networking flags Chromium keeps dialling Google services, and those
# connections are refused on a closed network (slow start, noisy logs).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--mute-audio",
]
# JupyterLab user settings that keep the page quiet and deterministic: no news / update
# toasts, no autosave (the tests never write notebooks back).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # every cell stays in the DOM (off-screen ones skip painting only), as the tests assume
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "contentVisibility"},
}


def _chromium_path() -> str | None:
    candidate = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
    found = shutil.which(candidate)
    return found


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip(f"playwright is not installed; {HOW_TO_ENABLE}")
    path = _chromium_path()
    if path is None:
        where = os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium"
        pytest.skip(f"no Chromium at {where}; {HOW_TO_ENABLE}")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    url: str
    root_dir: Path
    process: subprocess.Popen
    log_path: Path

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def stage(self, notebook: str, tag: str) -> str:
        """Copy a repo notebook into the server's root (under ``tag/``); return its Lab path."""
        dest = self.root_dir / tag / notebook
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / notebook, dest)
        return f"{tag}/{notebook}"

    def shutdown_kernels(self) -> None:
        try:
            for session in self.api("/api/sessions"):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
            for kernel in self.api("/api/kernels"):
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except (OSError, urllib.error.URLError):
            pass

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of every descendant of ``root``, from /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            started = _start_time(pid)
            if started is not None:
                found.append((pid, started))
                todo.append(pid)
    return found


def _stop(process: subprocess.Popen) -> None:
    """Stop the server's process group and every descendant (kernels have their own sessions)."""
    if process.poll() is not None:
        return
    descendants = _descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid, started in descendants:
        if _start_time(pid) == started:  # still the same process, not a recycled pid
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="session")
def lab_server(chromium_executable, tmp_path_factory) -> LabServer:
    base = tmp_path_factory.mktemp("jupyterlab")
    dirs = {name: base / name for name in ("root", "config", "data", "runtime", "settings", "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir()
    for rel, values in LAB_SETTINGS.items():
        f = dirs["settings"] / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    port = _free_port()
    (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"ip": "127.0.0.1", "port": port, "port_retries": 0, "open_browser": False,
                      "root_dir": str(dirs["root"]), "allow_remote_access": False,
                      "allow_root": os.geteuid() == 0},  # CI runs as root
        # empty token: acceptable only because the server listens on the loopback interface
        "IdentityProvider": {"token": ""},
        # no news feed, no update check, no PyPI queries from the extension manager
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   "extension_manager": "readonly",
                   "user_settings_dir": str(dirs["settings"]), "workspaces_dir": str(dirs["workspaces"])},
        "LabServerApp": {"user_settings_dir": str(dirs["settings"]), "workspaces_dir": str(dirs["workspaces"])},
    }))
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
               JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]), JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
               PYDEVD_DISABLE_FILE_VALIDATION="1", JUPYTER_PLATFORM_DIRS="1")
    env.pop("MPLBACKEND", None)  # let the kernel use the inline backend, as a learner's would
    env.pop("JUPYTER_PATH", None)
    log_path = base / "jupyterlab.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser"],
        cwd=dirs["root"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so it can be killed as a whole
    )
    atexit.register(_stop, process)
    server = LabServer(url=f"http://127.0.0.1:{port}", root_dir=dirs["root"], process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {server.url} within 120 s:\n{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        _stop(process)
        log.close()


@pytest.fixture(scope="session")
def browser(chromium_executable):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def page(browser, lab_server, request, tmp_path_factory):
    """A fresh browser context per test (no shared storage); kernels are shut down afterwards.

    When the test fails, a full-page screenshot, the page text, the browser console errors and
    the server log are saved and their folder is printed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(f"pageerror: {e}"))
    try:
        yield pg
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            debug = tmp_path_factory.mktemp("e2e-failure")
            try:
                pg.screenshot(path=debug / "page.png", full_page=False)
                (debug / "page.txt").write_text(pg.locator("body").inner_text())
            except Exception as e:  # the page may be gone
                (debug / "page.txt").write_text(f"could not capture the page: {e}")
            (debug / "console.txt").write_text("\n".join(pg.console_errors))
            (debug / "server.log").write_text(lab_server.log_tail(200))
            print(f"\ne2e failure details in {debug}")
    finally:
        context.close()
        lab_server.shutdown_kernels()
