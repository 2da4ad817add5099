import json

import pytest

from avatarclip_core.config import ConfigError, load_config, parse_override
from avatarclip_core.rundir import RunDir


def test_presets_load_and_validate():
    for preset in ("tiny", "small", "full", "fast"):
        conf = load_config(preset)
        assert conf.preset == preset
        assert conf.run.body == "anny"
    assert load_config("full").params("texture").rays.max_ray_num > load_config("tiny").params("texture").rays.max_ray_num


def test_unknown_preset_names_value_and_choices():
    with pytest.raises(ConfigError, match=r"unknown preset 'huge'.*tiny, small, full, fast"):
        load_config("huge")


def test_unknown_key_wrong_type_and_range():
    with pytest.raises(ConfigError, match=r"unknown key texture.iters .*valid keys"):
        load_config("tiny", overrides={"texture.iters": 3})
    with pytest.raises(ConfigError, match=r"texture.schedule.iterations = 'many' must be an integer"):
        load_config("tiny", overrides={"texture.schedule.iterations": "many"})
    with pytest.raises(ConfigError, match=r"iterations.*-5"):
        load_config("tiny", overrides={"texture.schedule.iterations": -5})
    with pytest.raises(ConfigError, match=r"run.body = 'smplx'"):
        load_config("tiny", overrides={"run.body": "smplx"})


def test_empty_prompt_error_names_prompt_and_fix():
    conf = load_config("tiny", prompts={"shape": "  "})
    with pytest.raises(ConfigError, match=r"prompts.shape is empty.*--shape"):
        conf.prompts.require("shape")
    assert load_config("tiny", prompts={"shape": " tall "}).prompts.require("shape") == "tall"


def test_override_parsing():
    assert parse_override("texture.schedule.iterations=200") == ("texture.schedule.iterations", 200)
    assert parse_override("run.clip_model=tiny") == ("run.clip_model", "tiny")
    assert parse_override("shape.azimuths_deg=[0, 30]") == ("shape.azimuths_deg", [0, 30])
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("texture.schedule.iterations")


def test_resolved_conf_round_trips(tmp_path):
    conf = load_config("tiny", overrides={"texture.schedule.iterations": 7}, prompts={"appearance": "red"})
    path = tmp_path / "run.conf"
    path.write_text(conf.to_hocon())
    again = load_config(conf_path=path)
    assert again.params("texture").schedule.iterations == 7 and again.prompts.appearance == "red"
    assert again.section_hash("texture") == conf.section_hash("texture")


def test_rundir_skip_resume_invalidate(tmp_path):
    run = RunDir(tmp_path / "r")
    calls = []

    def body(folder):
        calls.append(folder.name)
        (folder / "out.txt").write_text("x")
        return {"value": 1}

    m = run.stage("01_shape", {"a": 1}, body, log=lambda s: None)
    assert m["figures"] == {"value": 1} and (run.path("01_shape") / "manifest.json").is_file()
    assert not (run.path("01_shape") / "started.json").exists()
    run.stage("01_shape", {"a": 1}, body, log=lambda s: None)
    assert calls == ["01_shape"]  # finished with the same inputs: skipped

    # Downstream stage: runs, then an upstream change invalidates it.
    run.stage("02_neus_init", {"b": 1}, body, log=lambda s: None)
    assert run.status("02_neus_init", {"b": 1}) == "done"
    run.stage("01_shape", {"a": 2}, body, log=lambda s: None)
    assert len(calls) == 3
    assert run.status("02_neus_init", {"b": 1}) == "stale"

    # Interrupted stage: started.json with the same inputs → resume keeps the folder's checkpoints.
    def crash(folder):
        (folder / "ckpt_000010.pt").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.stage("02_neus_init", {"b": 1}, crash, log=lambda s: None)
    assert run.status("02_neus_init", {"b": 1}) == "resume"
    seen = {}

    def resume(folder):
        seen["ckpt"] = (folder / "ckpt_000010.pt").read_text()
        return {}

    run.stage("02_neus_init", {"b": 1}, resume, log=lambda s: None)
    assert seen["ckpt"] == "partial"
    # Changed inputs wipe stale checkpoints.
    run.stage("02_neus_init", {"b": 2}, lambda f: {"exists": (f / "ckpt_000010.pt").exists()}, log=lambda s: None)
    assert run.manifest("02_neus_init")["figures"] == {"exists": False}


def test_rundir_requires_upstream(tmp_path):
    run = RunDir(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="01_shape has not finished"):
        run.stage("02_neus_init", {}, lambda f: {}, log=lambda s: None)
    with pytest.raises(ValueError, match="unknown stage"):
        run.path("07_x")
