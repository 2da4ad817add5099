"""Tests of the fast path (docs/method.md, Fast path): the torch multiresolution hash-grid encoding and NeuS with
encoding = "hashgrid" (same code path as the reference's frequency encoding, switched by NeusInitParams)."""
from __future__ import annotations

import pytest
import torch
import trimesh

from avatarclip_core.config import load_config
from avatarclip_core.neus import NeusInitParams, NeusModel, body_views, extract_mesh, fit_neus_init
from avatarclip_core.neus.hashgrid import HashGridEncoding
from avatarclip_core.params import build

from test_neus import _mesh_iou, _zero_radius, tiny_init_params

torch.set_num_threads(1)

HASH_TINY = {"sdf_network": dict(encoding="hashgrid", skip_in=[], hash=dict(n_levels=8, n_features=2, log2_table_size=12,
                                                                          base_resolution=4, max_resolution=64))}


def test_hashgrid_shape_interpolation_and_continuity():
    enc = HashGridEncoding(n_levels=4, n_features=2, log2_table_size=10, base_resolution=4, max_resolution=32,
                           init_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert enc.resolutions == [4, 8, 16, 32] and enc.out_dim == 8
    x = torch.rand(500, 3, generator=torch.Generator().manual_seed(1)) * 1.8 - 0.9
    f = enc(x)
    assert f.shape == (500, 8) and torch.isfinite(f).all()
    # at a grid vertex of the dense level 0 (5³ = 125 ≤ 1024 corners) the feature is that table entry
    v = torch.tensor([[1, 2, 3]])
    p = v.float() / 4 * 2 - 1
    assert torch.allclose(enc(p)[0, :2], enc.table[1 + 2 * 5 + 3 * 25], atol=1e-6)
    # continuity: Lipschitz with constant ≤ Σ_l 2·max|table|·N_l·√3 (trilinear interpolation)
    d = torch.nn.functional.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(2)), dim=-1)
    for eps in (1e-3, 1e-5):
        diff = (enc(x + eps * d) - f).abs().max().item()
        assert diff <= eps * 2 * (4 + 8 + 16 + 32) * 3 ** 0.5 / 2 * 1.01 + 1e-6, (eps, diff)
    assert (enc(x + 1e-5 * d) - f).abs().max() < 5e-3
    with pytest.raises(ValueError, match="max_resolution"):
        HashGridEncoding(base_resolution=16, max_resolution=8)


def test_hashgrid_sdf_init_sphere_and_eikonal_gradients_reach_table():
    torch.manual_seed(0)
    P = build(NeusInitParams, {"sdf_network": dict(encoding="hashgrid", d_hidden=64, n_layers=2, skip_in=[],
                                                   hash=dict(n_levels=8, log2_table_size=12)),
                               "rendering_network.d_hidden": 64})
    model = NeusModel.from_params(P)
    assert model.sdf.d_in == 3 + 16
    r = _zero_radius(model)
    assert abs(r.mean().item() - 0.5) < 0.02 and (r - 0.5).abs().quantile(0.95).item() < 0.02
    x = torch.rand(256, 3) * 1.6 - 0.8
    sdf, feat, grad = model.sdf.sdf_and_gradient(x, create_graph=True)
    assert feat.shape == (256, 64) and grad.shape == (256, 3)
    eik = ((grad.norm(dim=-1) - 1) ** 2).mean()  # double backward through the trilinear interpolation
    g_table, = torch.autograd.grad(eik, model.sdf.grid.table, retain_graph=True)
    assert g_table.abs().sum() > 0
    g_table2, = torch.autograd.grad(sdf.sum(), model.sdf.grid.table)
    assert g_table2.abs().sum() > 0
    with pytest.raises(ValueError, match="encoding"):
        build(NeusInitParams, {"sdf_network.encoding": "hash"})


def test_fast_conf_uses_hashgrid():
    p = load_config("fast").params("neus_init")
    assert p.sdf_network.encoding == "hashgrid" and p.validate() is p
    assert load_config("full").params("neus_init").sdf_network.encoding == "frequency"
    assert load_config("fast").params("texture").encoding == "hashgrid"
    # the texture stage refuses an init model of the other encoding, before any work
    from avatarclip_core.neus import TextureParams, train_texture
    with pytest.raises(ValueError, match="encoding"):
        train_texture(NeusModel(build(NeusInitParams, {"sdf_network.sphere_init_steps": 0})), torch.zeros(3, 3),
                      torch.zeros(1, 3, dtype=torch.long), None, {"body": "x", "face": "x", "back": "x"},
                      TextureParams(encoding="hashgrid"), "/nonexistent/never-created")


def test_hashgrid_init_fit_matches_silhouette(tmp_path):
    m = trimesh.creation.icosphere(subdivisions=3)
    m.apply_scale((0.45, 0.7, 0.3))
    V, F = torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)
    P = tiny_init_params({**HASH_TINY, "schedule": dict(iterations=100, end_iter=100, save_every=100, val_every=100)})
    images, masks, cams = body_views(V, F, P)
    torch.manual_seed(0)
    untrained = NeusModel.from_params(P)
    model = fit_neus_init(images, masks, cams, P, tmp_path, seed=0, progress=False)
    iou = _mesh_iou(extract_mesh(model, 48, head="base", with_colors=False), V, F)
    iou0 = _mesh_iou(extract_mesh(untrained, 48, head="base", with_colors=False), V, F)
    assert iou >= 0.8 and iou > iou0 + 0.05, (iou, iou0)


# ------------------------------------------------------------------------------- sdf_init.mode = "sdf" (docs/method.md, Fast path)
SDF_TINY = {"sdf_init": dict(mode="sdf", steps=60, batch=1024, bank_size=20000),
            "schedule.save_every": 1000, "schedule.val_every": 1000}


@pytest.fixture(scope="module")
def ellipsoid():
    m = trimesh.creation.icosphere(subdivisions=3)
    m.apply_scale((0.45, 0.7, 0.3))
    return torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)


def test_body_sdf_bank_signs_and_distances(ellipsoid):
    from avatarclip_core.neus import body_sdf_bank

    V, F = ellipsoid
    bank = body_sdf_bank(V, F, 6000, near_std=0.03, seed=0)
    m = bank["parts"].tolist()
    assert sum(m) == 6000 and bank["points"].shape == (6000, 3) and bank["sdf"].shape == (6000,)
    p, s = bank["points"], bank["sdf"]
    assert (s[:m[0]] == 0).all() and torch.allclose(bank["normals"].norm(dim=-1), torch.ones(6000), atol=1e-4)
    # the mesh is a faceted ellipsoid: compare with the analytic one away from the facets (|sdf| > 1 cm)
    q = ((p / torch.tensor([0.45, 0.7, 0.3])) ** 2).sum(-1)
    far = s.abs() > 0.01
    assert ((s[far] < 0) == (q[far] < 1)).float().mean() > 0.995
    mesh = trimesh.Trimesh(V.numpy(), F.numpy(), process=False)
    sub = torch.arange(m[0], 6000, 25)
    exact = -trimesh.proximity.signed_distance(mesh, p[sub].double().numpy())  # trimesh: positive inside
    assert (s[sub] - torch.tensor(exact, dtype=torch.float32)).abs().max() < 5e-3


def test_sdf_mode_reaches_iou_in_far_fewer_steps(ellipsoid, tmp_path):
    V, F = ellipsoid
    P = tiny_init_params({**SDF_TINY, "schedule.iterations": 5})
    images, masks, cams = body_views(V, F, P)
    fast = fit_neus_init(images, masks, cams, P, tmp_path / "sdf", seed=0, progress=False, body=(V, F))
    # the same total number of steps (60 SDF + 5 render) of the reference's render-only init
    R = tiny_init_params({"schedule": dict(iterations=65, end_iter=300, save_every=1000, val_every=1000)})
    ref = fit_neus_init(images, masks, cams, R, tmp_path / "render", seed=0, progress=False)
    iou_fast = _mesh_iou(extract_mesh(fast, 48, head="base", with_colors=False), V, F)
    iou_ref = _mesh_iou(extract_mesh(ref, 48, head="base", with_colors=False), V, F)
    assert iou_fast >= 0.95 and iou_ref < 0.9, (iou_fast, iou_ref)  # render mode needs ~300 steps for 0.8
    ck = torch.load(tmp_path / "sdf" / "ckpt.pt", weights_only=False)
    assert ck["init_mode"] == "sdf" and ck["sdf_step"] == 60 and ck["step"] == 5


def test_sdf_mode_without_body_raises(ellipsoid, tmp_path):
    V, F = ellipsoid
    P = tiny_init_params({**SDF_TINY, "schedule.iterations": 5})
    images, masks, cams = body_views(V, F, P)
    with pytest.raises(ValueError, match="body=\\(vertices, faces\\)"):
        fit_neus_init(images, masks, cams, P, tmp_path / "never", seed=0, progress=False)
    assert not (tmp_path / "never").exists()
    with pytest.raises(ValueError, match="sdf_init.mode"):
        build(NeusInitParams, {"sdf_init.mode": "mesh"})


def test_sdf_mode_resume_skips_sdf_phase_and_matches(ellipsoid, tmp_path, monkeypatch):
    import avatarclip_core.neus.init as init_mod

    V, F = ellipsoid
    images, masks, cams = body_views(V, F, tiny_init_params(SDF_TINY))
    sched = {"schedule.end_iter": 20, "schedule.warm_up_end": 2}
    P8 = tiny_init_params({**SDF_TINY, **sched, "schedule.iterations": 8})
    full = fit_neus_init(images, masks, cams, P8, tmp_path / "a", seed=0, progress=False, body=(V, F))
    P4 = tiny_init_params({**SDF_TINY, **sched, "schedule.iterations": 4})
    fit_neus_init(images, masks, cams, P4, tmp_path / "b", seed=0, progress=False, body=(V, F))  # "killed"

    def boom(*a, **k):
        raise AssertionError("a resumed init must not redo the SDF phase / sphere init")

    monkeypatch.setattr(init_mod, "fit_body_sdf", boom)
    monkeypatch.setattr(init_mod, "body_sdf_bank", boom)
    monkeypatch.setattr(init_mod.NeusModel, "from_params", boom)
    resumed = fit_neus_init(images, masks, cams, P8, tmp_path / "b", seed=0, progress=False, body=(V, F))
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def _quality_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "quality.py"
    spec = importlib.util.spec_from_file_location("bench_quality", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quality_bench_reach_arithmetic():
    """bench/quality.py: the bar is full's final score; fast's first evaluation at or above it, in real CPU seconds."""
    q = _quality_bench()
    runs = {"full": {"iterations": 300, "final_score": 0.5, "trace": [(0, 0.0, 0.1), (300, 90.0, 0.5)]},
            "fast": {"iterations": 300, "final_score": 0.7, "trace": [(0, 0.0, 0.1), (50, 5.0, 0.45), (100, 10.0, 0.55)]}}
    c = q.compare(runs, {"full": 10.0, "fast": 1.0})
    assert c["bar_full_final_score"] == 0.5 and c["fast_iterations_to_bar"] == 100
    assert c["full_cpu_seconds"] == 3000.0 and c["fast_cpu_seconds_to_bar"] == 100.0
    assert c["ratio_cpu_seconds_fast_over_full"] == pytest.approx(100 / 3000, abs=1e-4)
    runs["fast"]["trace"] = [(0, 0.0, 0.1), (300, 30.0, 0.49)]
    assert q.compare(runs, {"full": 10.0, "fast": 1.0})["fast_reached"] is False


def test_fast_texture_schedule_comes_from_the_quality_bench():
    """confs/fast.conf's stage-3 iteration count is the one bench/quality.py recommended (bench/quality.json), whose
    table has fast reaching full's final part-colour and geometry scores with ≤ 1/10 of full's CPU seconds."""
    import json
    from pathlib import Path

    rec = json.loads((Path(__file__).resolve().parents[1] / "bench" / "quality.json").read_text())
    iterations = load_config("fast").params("texture").schedule.iterations
    assert iterations == rec["recommended_fast_iterations"]
    for name in ("parts", "geometry"):
        c = rec["oracles"][name]["compare"]
        assert c["fast_reached"] and c["ratio_cpu_seconds_fast_over_full"] <= 0.1, (name, c)
        assert c["fast_iterations_to_bar"] <= iterations
