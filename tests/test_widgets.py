import json
from pathlib import Path

from avatarclip_core.widgets import configure, prompt_form

ROOT = Path(__file__).resolve().parents[1]


def test_interactive_form_edits_become_the_configuration(tmp_path):
    form = prompt_form("r1", "tiny", shape="a person", uses=("shape", "appearance"))
    assert form.widget is not None
    form._boxes["appearance"].value = "a red knight"
    form._boxes["shape"].value = "a tall person"
    conf, run = configure(form, {"run.clip_model": "tiny"}, exp_root=str(tmp_path))
    assert conf.prompts.appearance == "a red knight" and conf.prompts.shape == "a tall person"
    assert run.root == tmp_path / "r1" and (run.root / "run.conf").is_file()
    # A later notebook with empty prompts reuses the run's prompts.
    conf2, _ = configure(prompt_form("r1", "tiny", interactive=False), {"run.clip_model": "tiny"}, str(tmp_path))
    assert conf2.prompts.appearance == "a red knight" and conf2.run.clip_model == "tiny"


def test_headless_form_has_no_widgets_and_uses_parameters():
    form = prompt_form("r", "small", motion="arguing", interactive=False)
    assert form.widget is None and form.values()["motion"] == "arguing"


def test_notebooks_are_thin_and_parameterised():
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, nb.name
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "pipeline.run_" in code and len(code.splitlines()) < 40, nb.name
