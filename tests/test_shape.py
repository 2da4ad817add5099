import pytest
import torch

from avatarclip_core.guidance.test_encoders import SizeOracle
from avatarclip_core.shape import ShapeParams, search_shape

PARAMS = ShapeParams(num_candidates=10, image_size=64, batch_size=11)


def heights(body, shapes):
    v, _ = body.rest(shapes)
    return v[..., 1].amax(1) - v[..., 1].amin(1)


@pytest.mark.parametrize("word, pick", [("tall", "max"), ("short", "min")])
def test_offset_rule_picks_the_extreme_body_under_the_size_oracle(anny_body, word, pick):
    result = search_shape(SizeOracle(), anny_body, f"a {word} person", PARAMS, seed=3, progress=False)
    h = heights(anny_body, result.candidates)
    expected = int(h.argmax() if pick == "max" else h.argmin())
    assert result.best == expected
    assert result.scores.shape == (10,) and torch.isfinite(result.scores).all()
    assert result.best_image.shape == (64, 64, 3) and result.neutral_image.shape == (64, 64, 3)
    lo, hi = anny_body.shape_bounds()
    assert ((result.candidates >= lo) & (result.candidates <= hi)).all()  # plausible adults only


def test_same_seed_same_candidates(anny_body):
    a = search_shape(SizeOracle(), anny_body, "a tall person", PARAMS, seed=1, progress=False)
    b = search_shape(SizeOracle(), anny_body, "a tall person", PARAMS, seed=1, progress=False)
    assert torch.equal(a.candidates, b.candidates) and a.best == b.best


def test_bad_inputs(anny_body):
    with pytest.raises(ValueError, match="shape"):
        search_shape(SizeOracle(), anny_body, "  ", PARAMS, progress=False)
    with pytest.raises(ValueError, match="num_candidates = 0"):
        search_shape(SizeOracle(), anny_body, "tall", ShapeParams(num_candidates=0), progress=False)
