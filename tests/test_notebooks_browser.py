"""The quickstart notebook as a user runs it: JupyterLab on 127.0.0.1, Debian's Chromium through selenium.

Types the three prompts, the tiny preset and the tiny CLIP into the settings cell, runs Run ▸ Run All Cells and
checks what the user sees and gets: the prompts in run.conf and every manifest, the stage-3 live preview
changing while it trains, the final video playing, the 3D viewer drawing the avatar, and the typed settings kept
in the saved notebook. Screenshots go to $AVATARCLIP_SCREENSHOTS (default: the test's tmp folder).
"""
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from browser import JupyterLab, chrome, require_browser

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = {"shape": "a short and fat person", "appearance": "a knight in red armour", "motion": "waving"}
VALUES = {"run_name": "browser", **PROMPTS, "preset": "tiny", "clip_model": "tiny"}


def settings_text() -> str:
    """The quickstart's settings cell as the user leaves it: the same lines (form annotations and comments kept),
    with the values above typed in."""
    cells = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())["cells"]
    source = "".join(next(c for c in cells if "parameters" in c["metadata"].get("tags", []))["source"])
    out = []
    for line in source.splitlines():
        name = line.split("=")[0].strip()
        if name in VALUES:
            rest = line.split("#", 1)[1] if "#" in line else ""
            line = f'{name} = "{VALUES[name]}"' + (f"  #{rest}" if rest else "")
        out.append(line)
    return "\n".join(out)


def _screenshot(driver, name, folder):
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / name))


def _cell_editor(driver, marker, timeout: float = 20.0):
    """The editor of the cell whose text contains `marker` (retried while JupyterLab re-renders cells)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            for editor in driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell .cm-content"):
                if marker in editor.text:
                    return editor
        except StaleElementReferenceException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no cell containing {marker!r}")


def _watch_live_preview(driver, steps, shot_taken, shots) -> bool:
    """Record each new step the stage-3 live preview shows; screenshot it at its third picture."""
    from selenium.webdriver.common.by import By

    for el in driver.find_elements(By.CSS_SELECTOR, ".avatarclip-live[data-stage='03_texture']"):
        step = el.get_attribute("data-step")
        if step and (not steps or steps[-1] != step):
            steps.append(step)
            if len(steps) == 3 and not shot_taken:
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
                _screenshot(driver, "2_stage3_live_preview.png", shots)
                shot_taken = True
    return shot_taken


def _run_all(driver):
    from selenium.webdriver.common.by import By

    next(m for m in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if m.text == "Run").click()
    time.sleep(0.5)
    driver.find_element(By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all']").click()


def _non_background_fraction(png: bytes, background=(242, 242, 242), tol: int = 30) -> float:
    import imageio.v3 as iio

    img = iio.imread(png)[..., :3].astype(int)
    return float((np.abs(img - np.array(background)).max(-1) > tol).mean())


def test_quickstart_in_jupyterlab_run_all(tmp_path):
    require_browser()
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = Path(os.environ.get("AVATARCLIP_SCREENSHOTS") or tmp_path / "screenshots")
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_quickstart.ipynb", nbs)
    exp = tmp_path / "exp"
    env = {"AVATARCLIP_EXP": str(exp), "AVATARCLIP_NODE_PREFIX": str(ROOT), "PYTHONUNBUFFERED": "1"}
    with JupyterLab(nbs, env, tmp_path) as lab:
        driver = chrome()
        try:
            driver.get(lab.url("00_quickstart.ipynb"))
            deadline = time.time() + 120
            while time.time() < deadline and len(driver.find_elements(By.CSS_SELECTOR, ".jp-Cell .cm-content")) < 6:
                time.sleep(0.5)
            while time.time() < deadline and not driver.find_elements(  # the kernel has started
                    By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"):
                time.sleep(0.5)
            time.sleep(2)
            # The user fills the settings cell: select its text, type the new settings.
            for attempt in range(3):  # JupyterLab may re-render the cell while the page settles
                try:
                    editor = _cell_editor(driver, "@title Settings")
                    editor.click()
                    editor.send_keys(Keys.CONTROL, "a")
                    editor.send_keys(settings_text())
                    break
                except StaleElementReferenceException:
                    time.sleep(1)
            time.sleep(0.5)
            assert 'preset = "tiny"  # @param' in _cell_editor(driver, "run_name").text
            _screenshot(driver, "1_settings_filled.png", shots)
            _run_all(driver)

            steps, live_shot, t0 = [], False, time.time()
            while time.time() - t0 < 1200:
                try:
                    live_shot = _watch_live_preview(driver, steps, live_shot, shots)
                    if driver.find_elements(By.CSS_SELECTOR, "iframe.avatarclip-viewer"):
                        break
                    errors = [e.text for e in driver.find_elements(
                        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] pre")]
                except StaleElementReferenceException:  # an output was redrawn while we read it
                    continue
                tracebacks = [t for t in errors if "Error" in t and "Traceback" in t or t.startswith("ConfigError")]
                assert not tracebacks, tracebacks[0][-2000:]
                time.sleep(1.0)
            assert driver.find_elements(By.CSS_SELECTOR, "iframe.avatarclip-viewer"), \
                "the 3D viewer never appeared; lab log: " + lab.log.read_text()[-3000:]
            # The preview image changed at least twice while stage 3 trained.
            assert len(steps) >= 3, steps

            # The final video plays.
            video = driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output video")[-1]
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].play()", video)
            time.sleep(1.0)
            probe = ("const v = arguments[0]; return [v.currentTime, v.paused, v.readyState, v.videoWidth,"
                     " v.error && v.error.code]")
            first = driver.execute_script(probe, video)
            time.sleep(0.4)
            second = driver.execute_script(probe, video)
            # Playing: no error, frames decoded, not paused, and the time moves (it loops, so compare two reads).
            assert first[4] is None and first[2] >= 2 and first[3] > 0 and not second[1], (first, second)
            assert abs(second[0] - first[0]) > 0.1, (first, second)

            # The 3D viewer draws the avatar: wait for model-viewer to load, then look at its pixels.
            frame = driver.find_element(By.CSS_SELECTOR, "iframe.avatarclip-viewer")
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", frame)
            driver.switch_to.frame(frame)
            loaded = False
            for _ in range(120):
                loaded = driver.execute_script("const m = document.querySelector('model-viewer');"
                                               "return !!(m && m.loaded)")
                if loaded:
                    break
                time.sleep(0.5)
            assert loaded, "model-viewer did not load the GLB"
            animations = driver.execute_script("return document.querySelector('model-viewer').availableAnimations")
            driver.switch_to.default_content()
            time.sleep(2)
            assert animations, "the GLB's animation is not visible to the viewer"
            fraction = _non_background_fraction(frame.screenshot_as_png)
            _screenshot(driver, "3_viewer.png", shots)
            (shots / "3_viewer_only.png").write_bytes(frame.screenshot_as_png)
            assert fraction > 0.02, f"viewer canvas is background only ({fraction:.4f} non-background)"

            # The typed settings are kept in the saved notebook.
            driver.find_element(By.CSS_SELECTOR, ".jp-Notebook").click()
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.CONTROL, "s")
            time.sleep(2)
        finally:
            driver.quit()

    saved = json.loads((nbs / "00_quickstart.ipynb").read_text())
    source = "".join(next(c for c in saved["cells"] if "parameters" in c["metadata"].get("tags", []))["source"])
    assert source == settings_text(), source
    run = exp / "browser"
    conf = (run / "run.conf").read_text()
    assert 'preset = "tiny"' in conf and 'clip_model = "tiny"' in conf
    for value in PROMPTS.values():
        assert value in conf
    for folder in ("01_shape", "02_neus_init", "03_texture", "04_poses", "05_motion", "06_video"):
        manifest = json.loads((run / folder / "manifest.json").read_text())
        assert manifest["settings"]["prompts"] == PROMPTS, folder
        assert manifest["settings"]["run"]["clip_model"] == "tiny" and manifest["settings"]["preset"] == "tiny"
    assert (run / "06_video" / "avatar.glb").stat().st_size > 0
