"""Tests of the fast path (issue 4): the torch multiresolution hash-grid encoding and NeuS with
encoding = "hashgrid" (same code path as the reference's frequency encoding, switched by NeusInitParams)."""
from __future__ import annotations

import pytest
import torch
import trimesh

from avatarclip_core.config import load_config
from avatarclip_core.neus import NeusInitParams, NeusModel, body_views, extract_mesh, fit_neus_init
from avatarclip_core.neus.hashgrid import HashGridEncoding

from test_neus import _mesh_iou, _zero_radius, tiny_init_params

torch.set_num_threads(1)

HASH_TINY = dict(encoding="hashgrid", hash_levels=8, hash_features=2, hash_log2_size=12, hash_base_resolution=4,
                 hash_max_resolution=64, skip_in=[])


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
    P = NeusInitParams(encoding="hashgrid", sdf_hidden=64, sdf_layers=2, skip_in=[], color_hidden=64,
                       hash_levels=8, hash_log2_size=12)
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
        NeusInitParams(encoding="hash").validate()


def test_fast_conf_uses_hashgrid():
    p = load_config("fast").params("neus_init")
    assert p.encoding == "hashgrid" and p.validate() is p
    assert load_config("full").params("neus_init").encoding == "frequency"
    assert load_config("fast").params("texture").encoding == "hashgrid"
    # the texture stage refuses an init model of the other encoding, before any work
    from avatarclip_core.neus import TextureParams, train_texture
    with pytest.raises(ValueError, match="encoding"):
        train_texture(NeusModel(NeusInitParams(sphere_init_steps=0)), torch.zeros(3, 3),
                      torch.zeros(1, 3, dtype=torch.long), None, {"body": "x", "face": "x", "back": "x"},
                      TextureParams(encoding="hashgrid"), "/nonexistent/never-created")


def test_hashgrid_init_fit_matches_silhouette(tmp_path):
    m = trimesh.creation.icosphere(subdivisions=3)
    m.apply_scale((0.45, 0.7, 0.3))
    V, F = torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)
    P = tiny_init_params(**HASH_TINY, iterations=100, end_iter=100, save_every=100, val_every=100)
    images, masks, cams = body_views(V, F, P)
    torch.manual_seed(0)
    untrained = NeusModel.from_params(P)
    model = fit_neus_init(images, masks, cams, P, tmp_path, seed=0, progress=False)
    iou = _mesh_iou(extract_mesh(model, 48, head="base", with_colors=False), V, F)
    iou0 = _mesh_iou(extract_mesh(untrained, 48, head="base", with_colors=False), V, F)
    assert iou >= 0.8 and iou > iou0 + 0.05, (iou, iou0)
