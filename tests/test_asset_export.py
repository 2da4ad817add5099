"""Game-engine asset of stage 6: baked UV texture in the GLB, OBJ export, Mixamo bone names, webbing cut and mesh
checks (docs/method.md, Avatar animation; issue 12)."""
from __future__ import annotations


import mcubes
import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from avatarclip_core.animate import (MIXAMO_NAMES, VideoParams, bake_texture, cut_webbing, export_glb, export_obj,
                                     mesh_report, render_textured, rig_avatar, unwrap, webbing_counts)
from avatarclip_core.animate.pipeline import bake_avatar_texture
from avatarclip_core.body import stand_pose
from avatarclip_core.cameras import Cameras, eye_from_angles, look_at
from test_animate import FPS, _gltf_skin_positions, motion

TINY_MESH_RESOLUTION = 48  # confs/tiny.conf texture.mesh_resolution
BAKE_MAE_MAX = 0.02  # mean |baked texture render − NeuS render| per view, colours in [0, 1]


@pytest.fixture(scope="module")
def stand_mesh(anny_body):
    """The body's own stand-pose mesh with red vertex colours."""
    v = anny_body.forward(pose=stand_pose()).vertices[0].numpy()
    col = np.tile(np.array([[220, 30, 30, 255]], np.uint8), (len(v), 1))
    return trimesh.Trimesh(v, anny_body.faces.numpy(), vertex_colors=col, process=False)


@pytest.fixture(scope="module")
def fused_mesh(stand_mesh):
    """The stand-pose body re-meshed like the tiny preset: occupancy on a 48³ grid over [−1.01, 1.01]³, then
    marching cubes — at ~4.3 cm voxels the hanging arms fuse with the torso and the legs with each other."""
    R = TINY_MESH_RESOLUTION
    xs = np.linspace(-1.01, 1.01, R)
    grid = np.stack(np.meshgrid(xs, xs, xs, indexing="ij"), -1).reshape(-1, 3)
    inside = stand_mesh.contains(grid).reshape(R, R, R).astype(np.float64)
    v, f = mcubes.marching_cubes(mcubes.smooth(inside), 0.0)
    v = v / (R - 1) * 2.02 - 1.01
    col = np.tile(np.array([[220, 30, 30, 255]], np.uint8), (len(v), 1))
    return trimesh.Trimesh(v, f[:, ::-1], vertex_colors=col, process=False)


@pytest.fixture(scope="module")
def rigged(stand_mesh, anny_body):
    return rig_avatar(stand_mesh, anny_body)


def _green(points: torch.Tensor) -> torch.Tensor:
    return torch.tensor([0.1, 0.8, 0.2]).expand(len(points), 3)


def test_textured_glb_validates_and_mixamo_names_keep_the_animation(rigged, tmp_path, glb_validator):
    tex = bake_texture(unwrap(rigged.rest_vertices.numpy(), rigged.faces.numpy(), 128),
                       rigged.pose(stand_pose()), 128, color_fn=_green)
    poses, root = motion(5)
    ours = export_glb(tmp_path / "ours.glb", rigged, poses, root, FPS, texture=tex)
    mixamo = export_glb(tmp_path / "mixamo.glb", rigged, poses, root, FPS, texture=tex, bone_names="mixamo")
    g = pygltflib.GLTF2().load(str(ours))
    prim = g.meshes[0].primitives[0]
    assert prim.attributes.TEXCOORD_0 is not None and prim.attributes.COLOR_0 is None
    assert getattr(prim.attributes, "_COLOR_0") is not None  # vertex colours kept, not multiplied in
    info = g.materials[prim.material].pbrMetallicRoughness.baseColorTexture
    assert info is not None and g.images[g.textures[info.index].source].mimeType == "image/png"
    gm = pygltflib.GLTF2().load(str(mixamo))
    assert [gm.nodes[j].name for j in gm.skins[0].joints] == list(MIXAMO_NAMES)
    assert MIXAMO_NAMES[0] == "mixamorig:Hips" and "mixamorig:LeftHand" in MIXAMO_NAMES
    for k in (0, 2, 4):  # forward kinematics and skinning equal, frame by frame
        np.testing.assert_allclose(_gltf_skin_positions(mixamo, k), _gltf_skin_positions(ours, k), atol=1e-6)
    for path in (ours, mixamo):
        report = glb_validator(path)
        assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
        assert report["issues"]["numWarnings"] == 0, report["issues"]["messages"][:5]
        assert report["info"]["hasTextures"] and report["info"]["maxUVs"] == 1


def test_obj_export_roundtrip(rigged, tmp_path):
    tex = bake_avatar_texture(rigged, VideoParams(texture_size=64))  # no NeuS model: vertex colours
    assert np.abs(tex.image - np.array([220, 30, 30]) / 255).max() < 0.01
    files = export_obj(tmp_path, rigged, tex)
    assert "map_Kd avatar.png" in files["mtl"].read_text()
    m = trimesh.load(files["obj"], process=False)
    assert len(m.faces) == rigged.faces.shape[0]
    assert m.visual.uv.shape == (len(tex.uv), 2) and m.visual.material.image.size == (64, 64)
    # OBJ v is up: 1 − glTF v.
    np.testing.assert_allclose(m.visual.uv[:, 1], 1 - tex.uv[:, 1], atol=1e-6)


def test_bake_matches_neus_renders():
    """A NeuS sphere (geometric init) with a striped texture head: the mesh with the baked texture, rendered
    unshaded, matches the NeuS volume renders from 4 views (and vertex colours of a coarse mesh do not)."""
    from avatarclip_core.neus import NeusModel
    from avatarclip_core.neus.mesh import extract_mesh, surface_colors
    from avatarclip_core.neus.renderer import render_views
    from test_neus import tiny_init_params

    class StripesColor(torch.nn.Module):
        """Colour heads 1 and 2 as a function of position: stripes about 10 cm wide (detail a flat colour or a
        coarse mesh's vertex colours miss), same (N, 6) interface as `ColorNetwork`."""
        extra = True

        def forward(self, points, gradients, features):
            c = 0.5 + 0.4 * torch.sin(points[:, [1, 0, 2]] * torch.tensor([30.0, 20.0, 25.0]))
            return torch.cat([c, c], -1)

    torch.manual_seed(0)
    model = NeusModel.from_params(tiny_init_params())
    model.color = StripesColor()
    with torch.no_grad():  # a sharp surface, like a trained model (inv_s = exp(10 v) ≈ 400 instead of 20 at init)
        model.variance.variance.fill_(0.6)
    mesh = extract_mesh(model, 64, with_colors=False)
    tex = bake_texture(unwrap(mesh.vertices, mesh.faces, 256), mesh.vertices, 256,
                       color_fn=lambda p: surface_colors(model, p))
    cams = Cameras(look_at(eye_from_angles(2.0, 10.0, torch.tensor([0.0, 90.0, 180.0, 270.0]))), 40.0)
    ref = render_views(model, cams, 64, 64, head="texture")
    rgb, mask = render_textured(mesh.vertices, tex, cams, 64)
    both = mask & (ref["alpha"] > 0.99)
    err = (rgb - ref["rgb"]).abs().mean(-1)
    mae = [float(err[b][both[b]].mean()) for b in range(4)]
    flat = [float((ref["rgb"][b][both[b]] - ref["rgb"][b][both[b]].mean(0)).abs().mean()) for b in range(4)]
    print("bake MAE per view", np.round(mae, 4), "vs. flat colour", np.round(flat, 4))
    assert max(mae) < BAKE_MAE_MAX
    assert min(flat) > 2 * max(mae)  # the texture carries the variation a flat colour misses


def test_webbing_cut_at_tiny_resolution(fused_mesh, anny_body):
    avatar = rig_avatar(fused_mesh, anny_body)
    before = webbing_counts(avatar)
    assert before["arm_torso"] > 0 and before["leg_leg"] > 0  # the tiny grid does fuse them
    clean, fig = cut_webbing(avatar)
    after = webbing_counts(clean)
    print("webbing before", before, "after", after, fig["webbing_faces_cut"], "faces cut")
    assert after["arm_torso"] == 0 and after["leg_leg"] == 0
    report = mesh_report(clean)
    assert report["non_manifold_edges"] == 0
    assert clean.faces.shape[0] > 0.9 * avatar.faces.shape[0]
    assert torch.allclose(clean.weights.sum(1), torch.ones(clean.num_vertices), atol=1e-5)
