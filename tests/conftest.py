"""Shared fixtures: one anny body per session, synthetic SMPL files, small thread counts for a 2-core CI.

Tests use the test encoders (tiny CLIP, oracles; avatarclip_core/guidance/test_encoders.py), which are accepted by
name only with AVATARCLIP_TEST_ENCODERS=1. It is set here, in os.environ at import time, so every subprocess a test
starts (the CLI, papermill kernels, nbconvert, JupyterLab) inherits it.
"""
from __future__ import annotations

import os

os.environ["AVATARCLIP_TEST_ENCODERS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def anny_body():
    from avatarclip_core.body import get_body_model

    return get_body_model("anny")


def write_synthetic_smpl(folder, n_betas: int = 10, seed: int = 0):
    """Write `SMPL_NEUTRAL.npz` in SMPL's format (v_template, f, shapedirs, posedirs, J_regressor, weights,
    kintree_table) built from a small synthetic body: a box-shaped T-pose figure with one vertex per joint
    region. Returns (path, joints (24, 3)). Used to test the smplx code path without the licensed files."""
    from avatarclip_core import skeleton

    rng = np.random.default_rng(seed)
    parents = list(skeleton.PARENTS) + [20, 21]
    joints = np.zeros((24, 3))
    dirs = {1: (0.1, -0.08, 0), 2: (-0.1, -0.08, 0), 3: (0, 0.12, 0), 4: (0, -0.4, 0), 5: (0, -0.4, 0),
            6: (0, 0.12, 0), 7: (0, -0.4, 0), 8: (0, -0.4, 0), 9: (0, 0.12, 0), 10: (0, -0.05, 0.12),
            11: (0, -0.05, 0.12), 12: (0, 0.15, 0), 13: (0.07, 0.08, 0), 14: (-0.07, 0.08, 0), 15: (0, 0.1, 0),
            16: (0.1, 0, 0), 17: (-0.1, 0, 0), 18: (0.25, 0, 0), 19: (-0.25, 0, 0), 20: (0.25, 0, 0),
            21: (-0.25, 0, 0), 22: (0.1, 0, 0), 23: (-0.1, 0, 0)}
    for j in range(1, 24):
        joints[j] = joints[parents[j]] + np.array(dirs[j])
    # Vertices: a small jittered cloud around each joint; each vertex skinned to its joint.
    per = 8
    v = np.repeat(joints, per, 0) + rng.normal(0, 0.02, (24 * per, 3))
    weights = np.repeat(np.eye(24), per, 0)
    f = np.array([[i, i + 1, i + 2] for i in range(0, 24 * per - 2, 2)])
    J_regressor = np.repeat(np.eye(24), per, 1) / per
    data = dict(v_template=v, f=f, shapedirs=rng.normal(0, 0.01, (len(v), 3, n_betas)),
                posedirs=np.zeros((len(v), 3, 207)), J_regressor=J_regressor, weights=weights,
                kintree_table=np.stack([np.array([4294967295] + parents[1:]), np.arange(24)]))
    path = os.path.join(folder, "SMPL_NEUTRAL.npz")
    np.savez(path, **data)
    return path, J_regressor @ v


@pytest.fixture
def glb_validator():
    """`validate_glb` of the Khronos glTF validator; skips the test where node or the validator is unavailable."""
    import shutil

    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Khronos glTF validator (npm gltf-validator) needs node")
    from avatarclip_core.animate.gltf_validate import ensure_validator, validate_glb

    try:
        ensure_validator()
    except RuntimeError as e:
        pytest.skip(f"gltf-validator unavailable and could not be installed with npm: {e}")
    return validate_glb
