"""Helpers for the browser tests: a JupyterLab server on 127.0.0.1 and Debian's Chromium driven by selenium.

Headless WebGL uses SwiftShader (`--use-gl=angle --use-angle=swiftshader`). Skips (with the reason) when
chromium/chromedriver or selenium are missing; `.ci/run` installs them.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def require_browser():
    if not Path(CHROMEDRIVER).exists() or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium + chromium-driver are not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chrome(width: int = 1400, height: int = 1100):
    """A headless Chromium WebDriver with WebGL (SwiftShader) and autoplaying media."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(arg)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        opts.binary_location = binary
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


class JupyterLab:
    """`jupyter lab` serving `root` on 127.0.0.1 with a token, isolated config/settings, notebook windowing off
    (every cell stays in the DOM), no update checks. Use as a context manager."""

    def __init__(self, root: Path, env: dict, workdir: Path):
        self.root, self.port, self.token = Path(root), free_port(), "avatarclip-test"
        settings = workdir / "lab-settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        news = workdir / "lab-settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                          "checkForUpdates": False}))
        self.env = {**os.environ, **env, "JUPYTERLAB_SETTINGS_DIR": str(workdir / "lab-settings"),
                    "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
                    "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces")}
        self.log = workdir / "jupyterlab.log"

    def __enter__(self):
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={self.port}", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root"]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=self.root, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited: {self.log.read_text()[-2000:]}")
                time.sleep(0.5)
        raise RuntimeError(f"jupyter lab did not listen in 90 s: {self.log.read_text()[-2000:]}")

    def url(self, notebook: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}"

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
