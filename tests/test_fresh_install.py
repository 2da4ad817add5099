"""As a Colab/Gradient user meets it: a fresh venv with only Jupyter runs 00_quickstart.ipynb, whose install cell
installs avatarclip (a regular, non-editable install) from this checkout; then the installed `avatarclip` CLI
runs the tiny pipeline from an empty folder. pip's cache keeps the install short after `make install`.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ["run.conf", "01_shape/shape.json", "01_shape/preview.png", "02_neus_init/ckpt.pt",
             "03_texture/avatar.ply", "03_texture/progress.mp4", "04_poses/candidates.npz", "05_motion/motion.npz",
             "05_motion/preview.mp4", "06_video/avatar.glb", "06_video/avatar.mp4"]


def _settings(nb, **values):
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = []
    for line in cell.source.splitlines():
        name = line.split("=")[0].strip()
        lines.append(f"{name} = {values[name]!r}" if name in values else line)
    cell.source = "\n".join(lines)


def test_quickstart_installs_itself_in_a_fresh_jupyter_then_the_cli_runs_anywhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py, bindir = venv / "bin" / "python", venv / "bin"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "nbconvert", "ipykernel"], check=True, timeout=600)
    probe = subprocess.run([str(py), "-c", "import avatarclip_core"], cwd=tmp_path, capture_output=True)
    assert probe.returncode != 0  # only Jupyter: the package is not there yet

    work = tmp_path / "colab"
    work.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "00_quickstart.ipynb", as_version=4)
    _settings(nb, run_name="fresh", preset="tiny", clip_model="tiny")
    nbformat.write(nb, work / "00_quickstart.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(PATH=f"{bindir}:{env.get('PATH', '')}", AVATARCLIP_PIP_SOURCE=str(ROOT),
               AVATARCLIP_EXP=str(tmp_path / "exp"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    res = subprocess.run([str(bindir / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                          "--ExecutePreprocessor.timeout=1800", "--output", "executed.ipynb",
                          "00_quickstart.ipynb"], cwd=work, env=env, capture_output=True, text=True, timeout=2400)
    assert res.returncode == 0, res.stderr[-4000:]
    executed = json.loads((work / "executed.ipynb").read_text())
    install_out = "".join("".join(o.get("text", "")) for o in executed["cells"][1]["outputs"])
    assert f"installing avatarclip from {ROOT}" in install_out
    show = subprocess.run([str(py), "-m", "pip", "show", "-f", "avatarclip"], capture_output=True, text=True)
    assert "Editable project location" not in show.stdout and "avatarclip_core/confs/tiny.conf" in show.stdout
    run = tmp_path / "exp" / "fresh"
    for rel in ARTIFACTS:
        assert (run / rel).is_file() and (run / rel).stat().st_size > 0, rel
    assert json.loads((run / "06_video" / "manifest.json").read_text())["settings"]["preset"] == "tiny"

    # The installed CLI from an empty folder: presets and notebooks come from the package, runs land in ./exp.
    empty = tmp_path / "empty"
    empty.mkdir()
    env.pop("AVATARCLIP_EXP")
    cli = subprocess.run([str(bindir / "avatarclip"), "run", "--preset", "tiny", "--clip", "tiny", "--shape",
                          "a tall person", "--appearance", "a blue robot", "--motion", "jumping", "--run", "t1"],
                         cwd=empty, env=env, capture_output=True, text=True, timeout=1800)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    for rel in ARTIFACTS:
        assert (empty / "exp" / "t1" / rel).is_file(), rel
    assert (empty / "exp" / "t1" / "notebooks" / "06_video_render.ipynb").is_file()
