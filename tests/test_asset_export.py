"""Game-engine asset of stage 6: baked UV texture in the GLB, OBJ export, Mixamo bone names, webbing cut and mesh
checks (docs/method.md, Avatar animation; issue 12)."""
from __future__ import annotations


import mcubes
import numpy as np
import pygltflib
import pytest
import torch
import trimesh

from avatarclip_core.animate import (MIXAMO_NAMES, RiggedAvatar, VideoParams, bake_texture, body_detachment,
                                     cut_webbing, edge_counts, export_glb, export_obj, limb_joins, mesh_report,
                                     render_textured, rig_avatar, self_intersections, unwrap)
from avatarclip_core.animate.mesh_clean import close_holes
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


def _remesh(mesh: trimesh.Trimesh, resolution: int = TINY_MESH_RESOLUTION) -> trimesh.Trimesh:
    """`mesh` re-meshed like the tiny preset: occupancy on a resolution³ grid over [−1.01, 1.01]³, then marching
    cubes (outward winding), red vertex colours."""
    R = resolution
    xs = np.linspace(-1.01, 1.01, R)
    grid = np.stack(np.meshgrid(xs, xs, xs, indexing="ij"), -1).reshape(-1, 3)
    inside = mesh.contains(grid).reshape(R, R, R).astype(np.float64)
    v, f = mcubes.marching_cubes(mcubes.smooth(inside), 0.0)
    v = v / (R - 1) * 2.02 - 1.01
    col = np.tile(np.array([[220, 30, 30, 255]], np.uint8), (len(v), 1))
    return trimesh.Trimesh(v, f, vertex_colors=col, process=False)


@pytest.fixture(scope="module")
def fused_mesh(stand_mesh):
    """The stand-pose body re-meshed like the tiny preset: at ~4.3 cm voxels the hanging arms fuse with the
    torso and the legs with each other."""
    return _remesh(stand_mesh)


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
    # Rest pose as retargeting tools expect it: joints carry offsets only (no rotation), T-pose, y up, facing +z.
    nodes = {gm.nodes[j].name: gm.nodes[j] for j in gm.skins[0].joints}
    assert all(n.rotation in (None, [0, 0, 0, 1]) for n in nodes.values())
    parent = {gm.nodes[c].name: gm.nodes[p].name for p in gm.skins[0].joints for c in gm.nodes[p].children or []}
    def rest(name):  # noqa: E306  global rest position = sum of the offsets up the chain
        return np.asarray(nodes[name].translation) + (rest(parent[name]) if name in parent else 0.0)
    arm = rest("mixamorig:LeftHand") - rest("mixamorig:LeftArm")
    assert arm[0] > 0.4 and np.abs(arm[1:]).max() < 0.02 * arm[0] + 1e-3  # left arm straight out along +x
    assert (rest("mixamorig:RightHand") - rest("mixamorig:RightArm"))[0] < -0.4
    assert rest("mixamorig:Head")[1] - rest("mixamorig:Hips")[1] > 0.4  # y up
    assert (rest("mixamorig:LeftToeBase") - rest("mixamorig:LeftFoot"))[2] > 0.05  # toes point to +z: facing +z
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
    assert mesh.is_watertight and mesh.volume > 0  # wound outward
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


def test_webbing_cut_at_tiny_resolution(fused_mesh, anny_body, rigged):
    """The tiny grid fuses arms and legs; after the cut no triangle joins an arm to the torso or the two legs
    (judged with the body's own weights, `limb_joins`), and the mesh is closed, manifold and outward."""
    avatar = rig_avatar(fused_mesh, anny_body)
    before = limb_joins(avatar, anny_body)
    assert before["arm_torso"] > 0 and before["leg_leg"] > 0
    clean, fig = cut_webbing(avatar, anny_body)
    after = limb_joins(clean, anny_body)
    report = mesh_report(clean)
    print("limb joins before", before, "after", after, fig, report)
    assert after == {"arm_torso": 0, "leg_leg": 0}
    assert report["non_manifold_edges"] == 0 and report["boundary_edges"] == 0 and report["watertight"]
    tm = clean.to_trimesh()
    assert tm.is_winding_consistent and tm.volume > 0.03  # outward, about the body's volume (m³)
    assert clean.faces.shape[0] > 0.8 * avatar.faces.shape[0]
    assert torch.allclose(clean.weights.sum(1), torch.ones(clean.num_vertices), atol=1e-5)
    # The plain body has no webbing: nothing detaches, nothing is cut.
    assert body_detachment(rigged, anny_body).max() < 0.01
    plain, fig = cut_webbing(rigged, anny_body)
    assert fig["webbing_faces_cut"] == 0 and plain.faces.shape == rigged.faces.shape


def test_limb_joins_leave_the_bodys_own_shoulders_and_hips(anny_body, rigged):
    """`limb_joins` counts only bridges: the body's own rest mesh and the T-pose body re-meshed on the tiny grid
    (limbs apart, large triangles across the shoulder blend zone) have no arm–torso join."""
    assert limb_joins(rigged, anny_body) == {"arm_torso": 0, "leg_leg": 0}
    rest_v, _ = anny_body.rest(anny_body.default_shape()[None])
    t_pose = _remesh(trimesh.Trimesh(rest_v[0].numpy(), anny_body.faces.numpy(), process=False))
    n = len(t_pose.vertices)
    remeshed = RiggedAvatar(torch.from_numpy(np.asarray(t_pose.vertices, np.float32)), torch.from_numpy(t_pose.faces),
                            torch.zeros(n, 4, dtype=torch.uint8), torch.full((n, 22), 1 / 22), rigged.rest_joints)
    assert limb_joins(remeshed, anny_body)["arm_torso"] == 0
    with pytest.raises(ValueError, match="margin"):
        limb_joins(rigged, anny_body, margin=0.6)


def test_self_intersections_on_known_cases():
    box = trimesh.creation.box((1, 1, 1))
    moved = lambda m, t: m.copy().apply_translation(t)  # noqa: E731
    crossing = trimesh.util.concatenate([box, moved(box, (0.5, 0.3, 0.2))])
    apart = trimesh.util.concatenate([box, moved(box, (2.0, 0, 0))])
    touching = trimesh.util.concatenate([box, moved(box, (1.0, 0, 0))])  # faces in one plane, no crossing
    sphere = trimesh.creation.icosphere(4)
    pierced = sphere.copy()
    k = np.argmin(np.linalg.norm(pierced.vertices - [0.3, 0.9, 0.2], axis=1))
    pierced.vertices[k] = [-0.2, -1.3, 0.15]  # one vertex pulled through the sphere: its fan crosses the far side
    assert self_intersections(crossing.vertices, crossing.faces) > 0
    assert self_intersections(pierced.vertices, pierced.faces) > 0
    for m in (box, apart, touching, sphere):
        assert self_intersections(m.vertices, m.faces) == 0
    assert edge_counts(sphere.faces) == {"non_manifold_edges": 0, "boundary_edges": 0}
    assert edge_counts(sphere.faces[1:])["boundary_edges"] == 3


def test_close_holes_keeps_the_parts_apart():
    """A sphere with a cap removed and the hole's rim labelled half part 1, half part 2: the closed mesh is
    watertight and outward, and no fan joins a vertex of one part to the other part's fan."""
    sphere = trimesh.creation.icosphere(3)
    keep = sphere.triangles_center[:, 1] < 0.8
    v, f = sphere.vertices, sphere.faces[keep]
    n = len(v)
    labels = np.where(v[:, 0] > 0, 1, 2)
    avatar = RiggedAvatar(torch.from_numpy(v.astype(np.float32)), torch.from_numpy(f),
                          torch.zeros(n, 4, dtype=torch.uint8), torch.full((n, 22), 1 / 22), torch.zeros(22, 3))
    closed, fans = close_holes(avatar, labels)
    tm = closed.to_trimesh()
    assert fans == 2 and tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
    new = closed.faces.numpy()[len(f):]
    for c in range(n, n + fans):  # each fan's rim vertices are of one part
        rim = np.unique(new[(new == c).any(1)])
        assert len(set(labels[rim[rim < n]])) == 1
