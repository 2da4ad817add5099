"""`avatarclip eval` pieces that need no finished run: the R-precision / CLIP-score arithmetic, the same-model
rule and the errors (the scores of a real tiny run are tested in test_e2e.py)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from avatarclip_core.evaluate import DISTRACTORS, rank_metrics, same_model

ROOT = Path(__file__).resolve().parents[1]


def test_rank_metrics_counts_strict_wins_and_ranks():
    e = torch.eye(3)
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0.0], [0.2, 1.0, 0.0], [0.5, 0.5, 0.0]]), dim=-1)
    m = rank_metrics(img, e, true_index=0)
    assert m["r_precision"] == pytest.approx(1 / 3, abs=1e-4)   # view 1 loses, view 2 ties (a tie is a miss)
    assert m["rank_mean"] == pytest.approx((1 + 2 + 2) / 3, abs=1e-3)
    assert m["clip_score"] == pytest.approx(float(img[:, 0].mean()), abs=1e-5)
    assert rank_metrics(img, e, true_index=1)["r_precision"] == pytest.approx(1 / 3, abs=1e-4)
    with pytest.raises(ValueError, match="distractor"):
        rank_metrics(img, e[:1])


def test_same_model_spellings():
    assert same_model("ViT-B/32", "openai", "ViT-B-32", "OpenAI")
    assert not same_model("ViT-B-32", "openai", "ViT-L-14", "openai")
    assert not same_model("ViT-B-32", "openai", "ViT-B-32", "laion2b_s34b_b79k")
    assert same_model("oracle:color", "", "oracle:color", "openai") and not same_model("tiny", "", "oracle:color", "")
    assert len(DISTRACTORS) == len(set(DISTRACTORS)) == 24


def _eval(*args, tmp_path):
    env = {**os.environ, "AVATARCLIP_TEST_ENCODERS": "1"}
    return subprocess.run([sys.executable, "-m", "avatarclip_core", "eval", *args, "--exp-root", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_eval_without_stage_3_names_the_stage_to_run(tmp_path):
    (tmp_path / "fresh").mkdir()
    start = time.time()
    proc = _eval("fresh", tmp_path=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stage 03_texture has not finished" in proc.stderr and "--stages 03" in proc.stderr
    missing = _eval("nope", tmp_path=tmp_path)
    assert missing.returncode == 2 and "run 'nope' not found" in missing.stderr
    assert time.time() - start < 20 and not (tmp_path / "fresh" / "eval.json").exists()


def test_figures_go_to_eval_json_and_the_stage3_manifest(tmp_path):
    """`record_evaluation` merges per model into eval.json and the scored stage's manifest, keeping its inputs hash;
    an unreadable manifest is left untouched."""
    import json

    from avatarclip_core.evaluate import record_evaluation

    stage = tmp_path / "run" / "03_texture"
    stage.mkdir(parents=True)
    (stage / "manifest.json").write_text(json.dumps({"inputs_hash": "abc123", "files": {}}))
    record_evaluation(tmp_path / "run", "ViT-L-14", {"clip_score": 0.3})
    record_evaluation(tmp_path / "run", "ViT-B-16", {"clip_score": 0.2})
    manifest = json.loads((stage / "manifest.json").read_text())
    assert manifest["inputs_hash"] == "abc123" and manifest["files"] == {}
    assert manifest["evaluations"] == {"ViT-L-14": {"clip_score": 0.3}, "ViT-B-16": {"clip_score": 0.2}}
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["evaluations"] == manifest["evaluations"]
    (stage / "manifest.json").write_text("{damaged")
    record_evaluation(tmp_path / "run", "ViT-L-14", {"clip_score": 0.4})
    assert (stage / "manifest.json").read_text() == "{damaged"
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["evaluations"]["ViT-L-14"] == {"clip_score": 0.4}
