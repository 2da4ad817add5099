"""The `Encoder` protocol, the `load_encoder` factory and the AVATARCLIP_TEST_ENCODERS switch (guidance/encoder.py,
docs/design.md §4): test encoder names work only with the switch, a real run naming one fails at configuration time,
production modules do not import the test encoders."""
import subprocess
import sys

import pytest
import torch

from avatarclip_core.config import ConfigError, load_config
from avatarclip_core.guidance import Encoder, load_clip, load_encoder
from avatarclip_core.guidance.encoder import TEST_ENCODERS_ENV, is_test_encoder_name
from avatarclip_core.guidance.test_encoders import (ColorOracle, GeometryOracle, PartColorOracle, PoseOracle, SizeOracle,
                                                    make_tiny_clip)

TEST_NAMES = ["tiny", "tiny:/some/tiny_clip.pt", "oracle:color", "oracle:size", "oracle:pose", "oracle:parts",
              "oracle:geometry"]


@pytest.fixture
def switch_off(monkeypatch):
    monkeypatch.delenv(TEST_ENCODERS_ENV, raising=False)


def test_conftest_sets_the_switch():
    import os

    assert os.environ.get(TEST_ENCODERS_ENV) == "1"  # inherited by the CLI / papermill / Jupyter subprocesses


def test_every_encoder_implements_the_protocol(tmp_path):
    tiny = load_clip(make_tiny_clip(tmp_path / "t.pt"))
    for enc in (tiny, ColorOracle(), SizeOracle(), PoseOracle(), PartColorOracle(), GeometryOracle()):
        assert isinstance(enc, Encoder), enc
        e = enc.encode_image(torch.rand(2, 32, 32, 3), torch.rand(2, 32, 32))
        t = enc.encode_text(["a rendered 3d man is walking"])
        assert e.shape == (2, enc.embed_dim) and t.shape == (1, enc.embed_dim)
        torch.testing.assert_close(e.norm(dim=-1), torch.ones(2))
        assert enc.to("cpu") is enc and enc.device.type == "cpu"


@pytest.mark.parametrize("name", TEST_NAMES)
def test_test_encoder_names_refused_without_switch(name, switch_off):
    assert is_test_encoder_name(name)
    with pytest.raises(ConfigError) as info:
        load_config("tiny", overrides={"run.clip_model": name})
    msg = str(info.value)
    assert f"run.clip_model = {name!r}" in msg and f"{TEST_ENCODERS_ENV}=1" in msg and "ViT-B-32" in msg
    with pytest.raises(ValueError, match=TEST_ENCODERS_ENV):
        load_encoder(name)


def test_test_encoder_names_accepted_with_switch():
    for name in ("tiny", "oracle:color", "oracle:size", "oracle:pose", "oracle:parts", "oracle:geometry"):
        assert load_config("tiny", overrides={"run.clip_model": name}).run.clip_model == name


def test_unknown_oracle_fails_at_configuration():
    with pytest.raises(ConfigError, match="unknown oracle.*oracle:color"):
        load_config("tiny", overrides={"run.clip_model": "oracle:colour"})
    with pytest.raises(ValueError, match="unknown oracle"):
        load_encoder("oracle:colour")


def test_production_names_and_tiny_file_path_need_no_switch(tmp_path, switch_off):
    path = make_tiny_clip(tmp_path / "tiny_clip.pt")
    assert not is_test_encoder_name("ViT-B-32") and not is_test_encoder_name(path)
    assert load_config("tiny", overrides={"run.clip_model": "ViT-B-32"}).run.clip_model == "ViT-B-32"
    assert load_config("tiny", overrides={"run.clip_model": path}).run.clip_model == path
    enc = load_encoder(path)
    assert enc.name == f"tiny:{path}" and enc.embed_dim == 16


def test_factory_dispatch(tmp_path):
    assert isinstance(load_encoder("oracle:color"), ColorOracle)
    assert isinstance(load_encoder("oracle:size"), SizeOracle)
    assert isinstance(load_encoder("oracle:pose", device="auto"), PoseOracle)
    assert isinstance(load_encoder("oracle:parts"), PartColorOracle)
    assert isinstance(load_encoder("oracle:geometry"), GeometryOracle)
    path = make_tiny_clip(tmp_path / "t.pt")
    assert load_encoder("tiny:" + path).name == f"tiny:{path}"
    not_tiny = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, not_tiny)
    with pytest.raises(ValueError, match="not a tiny-CLIP checkpoint"):
        load_encoder(f"tiny:{not_tiny}")
    with pytest.raises(ValueError, match="does not exist"):
        load_encoder(f"tiny:{tmp_path / 'missing'}")
    for name in ("tiny", "tiny:" + path, "oracle:color"):  # the production loader knows no test names
        with pytest.raises(ValueError, match="load_encoder"):
            load_clip(name)


def test_one_device_resolution():
    from avatarclip_core import device, pipeline
    from avatarclip_core.guidance import clip_model

    assert pipeline.resolve_device is device.resolve_device is clip_model.resolve_device
    assert device.resolve_device("cpu") == torch.device("cpu")
    assert device.resolve_device(None).type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            device.resolve_device("cuda")


def _python(code: str, env_switch: bool = True, **kw):
    import os

    env = {k: v for k, v in os.environ.items() if k != TEST_ENCODERS_ENV}
    if env_switch:
        env[TEST_ENCODERS_ENV] = "1"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, **kw)


def test_guidance_import_graph_has_no_cycle():
    """Every import between guidance modules, function-level ones included, goes one way."""
    import ast
    from pathlib import Path

    import avatarclip_core.guidance as g

    folder = Path(g.__file__).parent
    graph = {}
    for f in folder.glob("*.py"):
        if f.stem == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                deps.update([node.module] if node.module else [a.name for a in node.names])
        graph[f.stem] = {d.split(".")[0] for d in deps} & {p.stem for p in folder.glob("*.py")}
    assert "test_encoders" not in graph["clip_model"] and not graph["encoder"]
    done, visiting = set(), []

    def visit(m):
        assert m not in visiting, f"import cycle: {' -> '.join(visiting + [m])}"
        if m not in done:
            visiting.append(m)
            for d in graph.get(m, ()):
                visit(d)
            visiting.pop()
            done.add(m)

    for m in graph:
        visit(m)


def test_production_modules_do_not_import_test_encoders():
    code = ("import sys\n"
            "import avatarclip_core.pipeline, avatarclip_core.guidance.clip_model, avatarclip_core.guidance.losses\n"
            "import avatarclip_core.guidance.encoder, avatarclip_core.guidance.factory, avatarclip_core.__main__\n"
            "bad = [m for m in sys.modules if m.startswith('avatarclip_core.guidance.test')]\n"
            "assert not bad, bad\n"
            "import avatarclip_core.guidance.test_encoders\n")  # importing it afterwards (one direction) works
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr


def test_cli_refuses_test_encoder_without_switch_before_importing_torch(tmp_path):
    code = ("import sys\n"
            "from avatarclip_core.__main__ import main\n"
            f"rc = main(['run', '--clip', 'oracle:color', '--shape', 'a person', '--stages', '01', "
            f"'--exp-root', {str(tmp_path)!r}])\n"
            "assert 'torch' not in sys.modules, 'torch imported before the configuration error'\n"
            "sys.exit(rc)\n")
    proc = _python(code, env_switch=False)
    assert proc.returncode == 2, proc.stderr
    assert "run.clip_model = 'oracle:color' is a test encoder" in proc.stderr and TEST_ENCODERS_ENV in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "demo").exists()
