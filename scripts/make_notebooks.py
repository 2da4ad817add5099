"""Generate notebooks/00_quickstart.ipynb … 06_video_render.ipynb from the stage table (avatarclip_core/stages.py),
and notebooks/batch.ipynb (many avatars on Ray, docs/batch.md).

Each notebook: a title with Colab/Gradient badges, an install cell (a no-op where avatarclip is importable), the
tagged settings cell (Colab form fields; papermill parameters), a `configure` cell and one `run_stage` cell per
stage. Run `python scripts/make_notebooks.py` after changing this file or the stage table; the notebooks are
committed and shipped inside the package.
"""
import sys
import tomllib
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from avatarclip_core import stages  # noqa: E402

REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
GITHUB_PATH = REPO_URL.removeprefix("https://github.com/")
EXAMPLES = {"shape": "a tall and skinny person", "appearance": "a female soldier", "motion": "arguing"}

INSTALL = f'''# Setup — on Colab, Gradient or a fresh Jupyter this installs avatarclip (a few minutes, once per runtime);
# where avatarclip is already importable (a checkout after `make install`, a second run) it does nothing.
import importlib, importlib.util, os, pathlib, subprocess, sys
if importlib.util.find_spec("avatarclip_core") is None:
    _checkout = pathlib.Path.cwd().parent
    _source = os.environ.get("AVATARCLIP_PIP_SOURCE") or (
        str(_checkout) if (_checkout / "avatarclip_core" / "stages.py").is_file() else "git+{REPO_URL}")
    print("installing avatarclip from", _source, "…", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", _source], check=True)
    importlib.invalidate_caches()
import avatarclip_core.widgets as nb
nb.setup()  # says whether a GPU is used; quiets library warnings'''


def badges(notebook: str) -> str:
    path = f"{GITHUB_PATH}/blob/main/notebooks/{notebook}.ipynb"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}) "
            f"[![Run on Gradient](https://assets.paperspace.io/img/gradient-badge.svg)]"
            f"(https://console.paperspace.com/github/{path})")


def file_settings(ids):
    """Notebook names of the stages' input-file settings (`Stage.input_file` "motion.file" → "motion_file")."""
    return [stages.get(i).input_file.replace(".", "_") for i in ids if stages.get(i).input_file]


def settings_cell(prompts, quickstart: bool, files=()):
    keep = "" if quickstart else " Empty = as this run already has it (from an earlier notebook or the CLI)."
    lines = ["# @title Settings { display-mode: \"form\" }",
             "# Fill these in (a form on Colab), then Run All (Colab: Runtime ▸ Run all; Jupyter: Run ▸ Run All "
             "Cells).",
             f"#{keep} papermill and `avatarclip run` pass these as parameters.",
             'run_name = "demo"  # @param {type:"string"}']
    for p in prompts:
        lines.append(f'{p} = "{EXAMPLES[p] if quickstart else ""}"  # @param {{type:"string"}}')
    for f in files:
        lines.append(f'{f} = ""  # @param {{type:"string"}}')
        lines.append("# ↑ optional: a BVH clip (any humanoid skeleton) that drives the avatar instead of the prompt; "
                     "stage 4 is then skipped")
    if quickstart:
        lines += ['preset = "small"  # @param ["tiny", "small", "full", "fast"]',
                  'clip_model = "ViT-B-32"  # @param ["ViT-B-32", "ViT-L-14", "tiny"] {allow-input: true}']
    else:
        lines += ['preset = ""  # @param ["", "tiny", "small", "full", "fast", "cpu"]',
                  'clip_model = ""  # @param ["", "ViT-B-32", "ViT-L-14", "tiny"] {allow-input: true}']
    lines += ['overrides = {}  # {"section.key": value}, e.g. {"texture.schedule.iterations": 5000}',
              'exp_root = ""  # empty: $AVATARCLIP_EXP, else ./exp of the project folder']
    cell = nbf.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = ["parameters"]
    cell.metadata["cellView"] = "form"  # Colab shows the form, the code hidden
    return cell


def configure_cell(ids, prompts):
    args = "".join(f", {p}={p}" for p in (*prompts, *file_settings(ids)))
    return nbf.v4.new_code_cell(f"conf, run = nb.configure(run_name, {list(ids)!r}, preset, clip_model, overrides, "
                                f"exp_root{args})")


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["accelerator"] = "GPU"  # Colab: open with a GPU runtime
    nb.metadata["colab"] = {"provenance": [], "gpuType": "T4"}
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating leaves unchanged notebooks byte-identical
    nb.cells = cells
    return nb


def stage_notebook(stage):
    return notebook([
        nbf.v4.new_markdown_cell(f"# {stage.title}\n\n{badges(stage.notebook)}\n\n{stage.about}\n\n"
                                 "Fill the settings, then run all cells. A finished stage is skipped; an "
                                 "interrupted one resumes from its last checkpoint."),
        nbf.v4.new_code_cell(INSTALL), settings_cell(stage.prompts, False, file_settings([stage.id])),
        configure_cell([stage.id], stage.prompts),
        nbf.v4.new_code_cell(f'manifest = nb.run_stage(run, conf, "{stage.id}")'),
    ])


def quickstart():
    prompts = ("shape", "appearance", "motion")
    cells = [nbf.v4.new_markdown_cell(
        f"# avatarclip quickstart — all six stages\n\n{badges('00_quickstart')}\n\nThree prompts in: body shape, "
        "appearance, motion. Out: a sculpted, textured avatar (`exp/<run>/03_texture/avatar.ply`), its motion and "
        "`exp/<run>/06_video/avatar.mp4` / `avatar.glb`, shown below as they finish. Notebooks 01–06 run one stage "
        "each on the same run folder."),
        nbf.v4.new_code_cell(INSTALL), settings_cell(prompts, True, file_settings(stages.BY_ID)),
        configure_cell([s.id for s in stages.STAGES], prompts)]
    cells[-1].source += "\nmanifests = {}"
    for stage in stages.STAGES:
        cells += [nbf.v4.new_markdown_cell(f"## {stage.title}\n\n{stage.about}"),
                  nbf.v4.new_code_cell(f'manifests["{stage.folder}"] = nb.run_stage(run, conf, "{stage.id}")')]
    return notebook(cells)


def batch_notebook():
    settings = nbf.v4.new_code_cell("\n".join([
        "# @title Settings { display-mode: \"form\" }",
        "# One avatar per line: name, shape, appearance, motion (+ optional section.key columns), then Run All.",
        'batch_name = "crowd"  # @param {type:"string"}',
        'prompts_csv = """name,shape,appearance,motion',
        "knight,a tall and muscular person,a knight in shining armour,raising both arms",
        "wizard,a short and fat person,a wizard in a blue robe,waving",
        'dancer,a thin person,a dancer in a red dress,dancing"""',
        'preset = "small"  # @param ["tiny", "small", "full", "fast"]',
        'clip_model = "ViT-B-32"  # @param ["ViT-B-32", "ViT-L-14", "tiny"] {allow-input: true}',
        "workers = 0  # @param {type:\"integer\"}  (CPUs of the local Ray; 0 = all)",
        'overrides = {}  # {"section.key": value} for every row',
        'exp_root = ""  # empty: $AVATARCLIP_EXP, else ./exp of the project folder']))
    settings.metadata["tags"] = ["parameters"]
    settings.metadata["cellView"] = "form"
    install = INSTALL + ('\nif importlib.util.find_spec("ray") is None:  # batch runs on Ray\n'
                         '    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "ray"], check=True)')
    return notebook([
        nbf.v4.new_markdown_cell(
            f"# avatarclip batch — many avatars at once\n\n{badges('batch')}\n\nOne avatar per row of the table "
            "below, the stages as Ray tasks on this machine (docs/batch.md; `avatarclip batch` does the same from the "
            "command line and can use a cluster). Each row is a run folder `exp/<batch>/<name>/`; re-running skips "
            "finished stages. The gallery below (also `exp/<batch>/index.html`) shows every avatar when done."),
        nbf.v4.new_code_cell(install), settings,
        nbf.v4.new_code_cell("rows = nb.run_batch_table(prompts_csv, batch_name, preset, clip_model, workers, exp_root, "
                             "overrides)"),
    ])


def write_readme_badges():
    """Put the quickstart's Colab/Gradient badges between the README's badge markers."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index("<!-- badges:"), text.index("<!-- /badges -->")
    head = text[start:text.index("\n", start) + 1]
    readme.write_text(text[:start] + head + badges("00_quickstart") + "\n" + text[end:])


def main():
    write_readme_badges()
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    nbf.write(quickstart(), out / "00_quickstart.ipynb")
    for stage in stages.STAGES:
        nbf.write(stage_notebook(stage), out / f"{stage.notebook}.ipynb")
    nbf.write(batch_notebook(), out / "batch.ipynb")
    print("wrote", len(stages.STAGES) + 2, "notebooks to", out)


if __name__ == "__main__":
    main()
