"""Notebook helpers and the generated notebooks: settings that survive, live previews, pose grid, 3D viewer page."""
import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avatarclip_core import stages, widgets
from avatarclip_core.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]


class FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj.data)


@pytest.fixture
def shown(monkeypatch):
    """Capture what the helpers display (as if in IPython): a list of objects; display_id gets a FakeHandle."""
    out = []

    def fake_display(obj, display_id=False):
        out.append(obj)
        if display_id:
            out.append(FakeHandle())
            return out[-1]

    monkeypatch.setattr(widgets, "_display", fake_display)
    return out


def test_settings_carry_over_between_notebooks_and_explicit_values_win(tmp_path, shown):
    conf, run = widgets.configure("r1", ["01"], "tiny", "tiny", {}, str(tmp_path), shape="a tall person",
                                  appearance="a <b>red</b> knight")
    assert run.root == tmp_path / "r1" and (run.root / "run.conf").is_file()
    assert "a &lt;b&gt;red&lt;/b&gt; knight" in shown[0].data  # prompts are user text: escaped in HTML
    # Notebook 04 later, its settings left empty: the run's preset, CLIP and prompts carry over; motion is added.
    conf5, _ = widgets.configure("r1", ["04"], "", "", {}, str(tmp_path), motion="waving")
    assert (conf5.preset, conf5.run.clip_model) == ("tiny", "tiny")
    assert (conf5.prompts.shape, conf5.prompts.appearance, conf5.prompts.motion) == \
        ("a tall person", "a <b>red</b> knight", "waving")
    saved = (run.root / "run.conf").read_text()
    assert "waving" in saved and "a tall person" in saved and 'clip_model = "tiny"' in saved
    # An explicit preset changes the stage sections but keeps the run's prompts and CLIP model.
    conf_s, _ = widgets.configure("r1", ["01"], "small", "", {}, str(tmp_path))
    assert conf_s.preset == "small" and conf_s.run.clip_model == "tiny" and conf_s.prompts.motion == "waving"


def test_empty_prompt_names_the_field_in_one_line(tmp_path, shown):
    with pytest.raises(ConfigError) as err:
        widgets.configure("r2", ["04"], "tiny", "tiny", {}, str(tmp_path), motion="  ")
    assert "motion" in str(err.value) and 'motion = "arguing"' in str(err.value)
    lines = err.value._render_traceback_()  # what Jupyter prints instead of a traceback
    assert len(lines) == 1 and "prompts.motion is empty" in lines[0]
    assert not (tmp_path / "r2").exists()  # nothing written before the check


def test_run_name_is_one_folder_name(tmp_path, shown):
    for bad in ("", "  ", "..", "../x", "a/b", "/abs"):
        with pytest.raises(ConfigError, match="one folder name"):
            widgets.configure(bad, ["01"], "tiny", "tiny", {}, str(tmp_path), shape="a person")
    assert list(tmp_path.iterdir()) == []


def test_missing_upstream_stage_is_said_before_an_empty_prompt(tmp_path, shown):
    from avatarclip_core.rundir import UpstreamMissing

    with pytest.raises(UpstreamMissing, match="04_poses has not finished.*04_pose_retrieval.ipynb"):
        widgets.configure("r3", ["05"], "tiny", "tiny", {}, str(tmp_path))
    assert len(UpstreamMissing("x")._render_traceback_()) == 1


def test_motion_file_setting_needs_no_prompt_or_stage_4(tmp_path, shown):
    from test_retarget import SMPL_NAMES, _motion, _write_rig

    bvh = _write_rig(tmp_path / "clip.bvh", *_motion(T=4), list(SMPL_NAMES), {})
    conf, run = widgets.configure("r4", ["04", "05"], "tiny", "tiny", {}, str(tmp_path / "exp"),
                                  motion_file=str(bvh))  # no motion prompt, no finished stage 4
    assert conf.params("motion").file == str(bvh.resolve()) and conf.prompts.motion == ""
    assert widgets.run_stage(run, conf, "04") is None and not run.path("04_poses").exists()
    assert "not needed" in shown[-1].data
    with pytest.raises(ConfigError, match="no such file"):
        widgets.configure("r4", ["05"], "", "", {}, str(tmp_path / "exp"), motion_file=str(tmp_path / "nope.bvh"))


def test_live_preview_updates_one_area_in_place(shown):
    live = widgets.LivePreview("03_texture")
    handle = shown[-1]
    rng = np.random.default_rng(0)
    for step in (10, 20, 30):
        live(step, {"loss": 1.0 / step, "clip": 0.5, "lr": 1e-3}, rng.random((16, 32, 3)))
    assert len(handle.updates) == 3 and live.updates == 3
    assert sorted(live.history) == ["clip", "loss"] and [s for s, _ in live.history["loss"]] == [10, 20, 30]
    assert all("data-stage='03_texture'" in u and "data:image/png;base64," in u for u in handle.updates)
    assert [u.split("data-step='")[1].split("'")[0] for u in handle.updates] == ["10", "20", "30"]
    assert len(set(handle.updates)) == 3  # the picture changes with the step
    live(40, {"sdf_l1": 0.01})  # losses alone (no image) keep the last image
    assert live.image is not None and len(handle.updates) == 4


def test_pose_grid_is_one_labelled_image(tmp_path, shown):
    import imageio.v3 as iio

    paths = []
    for i in range(5):
        paths.append(tmp_path / f"candidate_{i:02d}.png")
        iio.imwrite(paths[-1], np.full((32, 32, 3), 40 * i, np.uint8))
    widgets.show_pose_grid(paths, [0.31, 0.29, 0.2, 0.1, 0.05])
    html = shown[-1].data
    assert html.startswith("<img class='avatarclip-poses'")
    png = base64.b64decode(html.split("base64,")[1].split("'")[0])
    img = iio.imread(png)
    assert img.shape[1] > img.shape[0] > 100  # 2 rows × 4 columns with titles


def test_viewer_page_embeds_glb_and_local_model_viewer(tmp_path, monkeypatch):
    from avatarclip_core import viewer

    glb = tmp_path / "a.glb"
    glb.write_bytes(b"glTF-test-bytes")
    js = tmp_path / "mv.js"
    js.write_text("customElements.define('model-viewer', class extends HTMLElement {}); // </script> inside")
    monkeypatch.setenv("AVATARCLIP_MODEL_VIEWER_JS", str(js))
    page = viewer.viewer_page(glb, label="<script>alert(1)</script>")
    assert base64.b64encode(b"glTF-test-bytes").decode() in page
    assert "customElements.define('model-viewer'" in page and "<\\/script> inside" in page
    assert "&lt;script&gt;alert(1)" in page and "<script>alert(1)" not in page
    assert viewer.model_viewer_script()[1] == f"local: {js}"
    monkeypatch.setenv("AVATARCLIP_MODEL_VIEWER_JS", str(tmp_path / "missing.js"))
    monkeypatch.setenv("AVATARCLIP_NODE_PREFIX", str(tmp_path))
    monkeypatch.setattr(viewer, "find_node_file", lambda rel: None)
    assert viewer.model_viewer_script()[1] == "cdn" and viewer.MODEL_VIEWER_CDN in viewer.viewer_page(glb)
    frame = viewer.viewer_iframe(glb)
    assert frame.startswith('<div><iframe class="avatarclip-viewer" srcdoc="&lt;!doctype html&gt;')
    with pytest.raises(FileNotFoundError, match="stage 06"):
        viewer.viewer_page(tmp_path / "none.glb")


def _params(nb_path):
    cells = json.loads(nb_path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, nb_path.name
    return cells, "".join(tagged[0]["source"])


def test_every_notebook_installs_itself_and_offers_its_stage_prompts():
    import papermill as pm

    for stage in stages.STAGES:
        path = ROOT / "notebooks" / f"{stage.notebook}.ipynb"
        cells, params = _params(path)
        names = set(pm.inspect_notebook(str(path)))
        files = [stage.input_file.replace(".", "_")] if stage.input_file else []  # stage 5: motion_file
        assert names == {"run_name", "preset", "clip_model", "overrides", "exp_root", *stage.prompts, *files}, \
            path.name
        for prompt in (*stage.prompts, *files):
            assert f'{prompt} = ""  # @param {{type:"string"}}' in params  # a Colab form field
        first_code = next(c for c in cells if c["cell_type"] == "code")
        assert "find_spec(\"avatarclip_core\") is None" in "".join(first_code["source"])
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert f'nb.run_stage(run, conf, "{stage.id}")' in code and len(code.splitlines()) < 40
        assert "colab.research.google.com/github/" in "".join(cells[0]["source"])
    _, quick = _params(ROOT / "notebooks" / "00_quickstart.ipynb")
    assert 'preset = "small"  # @param ["tiny", "small", "full", "fast"]' in quick


def test_committed_notebooks_match_the_generator(tmp_path):
    """The notebooks are generated from the stage table: regenerating gives the same cells."""
    import shutil

    work = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", work / "scripts")
    shutil.copytree(ROOT / "avatarclip_core", work / "avatarclip_core", ignore=shutil.ignore_patterns("assets"))
    shutil.copy(ROOT / "pyproject.toml", work)
    shutil.copy(ROOT / "README.md", work)
    subprocess.run([sys.executable, str(work / "scripts" / "make_notebooks.py")], check=True, capture_output=True)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        ours = [(c["cell_type"], "".join(c["source"])) for c in json.loads(nb.read_text())["cells"]]
        fresh = [(c["cell_type"], "".join(c["source"]))
                 for c in json.loads((work / "notebooks" / nb.name).read_text())["cells"]]
        assert ours == fresh, f"{nb.name} is stale: run python scripts/make_notebooks.py"
    assert (work / "README.md").read_text() == (ROOT / "README.md").read_text()  # badges from pyproject's URL
