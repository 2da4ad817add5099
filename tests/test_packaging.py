"""A regular install runs from any folder: presets and notebooks ship in the wheel, one rule for the run root."""
import dataclasses
import subprocess
import sys
import zipfile
from pathlib import Path

from avatarclip_core import config, paths, stages

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_presets_notebooks_and_assets(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("avatarclip-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for conf in ("tiny", "small", "full", "fast", "cpu"):
        assert f"avatarclip_core/confs/{conf}.conf" in names
    for nb in ["00_quickstart", *(s.notebook for s in stages.STAGES)]:
        assert f"avatarclip_core/notebooks/{nb}.ipynb" in names
    assert "avatarclip_core/assets/pose_library.npz" in names and "avatarclip_core/stages.py" in names


def test_run_root_rule(tmp_path, monkeypatch):
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    monkeypatch.delenv("AVATARCLIP_EXP", raising=False)
    monkeypatch.delenv("AVATARCLIP_SMPL_DIR", raising=False)
    # A notebook's kernel runs in notebooks/, the CLI in the project folder: the same run root.
    monkeypatch.chdir(project / "notebooks")
    from_notebook = paths.exp_root()
    monkeypatch.chdir(project)
    assert paths.exp_root() == from_notebook == project.resolve() / "exp"
    assert paths.smpl_dir() == project.resolve() / "smpl_models"
    # No project marker (Colab's /content): the working directory.
    bare = tmp_path / "content"
    bare.mkdir()
    monkeypatch.chdir(bare)
    assert paths.exp_root() == bare.resolve() / "exp"
    monkeypatch.setenv("AVATARCLIP_EXP", str(tmp_path / "runs"))
    monkeypatch.setenv("AVATARCLIP_SMPL_DIR", str(tmp_path / "smpl"))
    assert paths.exp_root() == (tmp_path / "runs").resolve() and paths.smpl_dir() == (tmp_path / "smpl").resolve()
    assert paths.exp_root(tmp_path / "x") == (tmp_path / "x").resolve()  # an explicit value wins


def test_notebooks_command_copies_the_suite(tmp_path):
    out = subprocess.run([sys.executable, "-m", "avatarclip_core", "notebooks", str(tmp_path / "nbs")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    copied = sorted(p.name for p in (tmp_path / "nbs").glob("*.ipynb"))
    assert copied == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) and len(copied) == 8
    (tmp_path / "nbs" / "05_motion.ipynb").write_text("mine")
    again = subprocess.run([sys.executable, "-m", "avatarclip_core", "notebooks", str(tmp_path / "nbs")],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and (tmp_path / "nbs" / "05_motion.ipynb").read_text() == "mine"


def test_stage_table_is_consistent():
    from avatarclip_core import rundir

    assert rundir.STAGES == tuple(s.folder for s in stages.STAGES)
    for s in stages.STAGES:
        assert s.run_function().__name__ == s.function.split(":")[1] and callable(s.run_function())
        assert dataclasses.is_dataclass(s.params_class()) and s.section in config.SECTIONS
        assert all(up in stages.BY_FOLDER and stages.FOLDERS.index(up) < stages.FOLDERS.index(s.folder)
                   for up in s.upstream)
        assert stages.get(s.id) is stages.get(s.folder) is stages.get(str(int(s.id))) is s
