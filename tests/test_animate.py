"""Stage 6: rig transfer, skinned animated GLB, Khronos validation, avatar video (docs/design.md §2 stage 6, §6; docs/method.md §5, Avatar animation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib
import pytest
import roma
import torch
import trimesh

from avatarclip_core import skeleton
from avatarclip_core.animate import (RiggedAvatar, VideoParams, build_gltf, decimate_rigged, export_glb,
                                     largest_component, render_motion_frames, render_video, rig_avatar,
                                     smooth_weights, top4_weights)
from avatarclip_core.body import stand_pose
from avatarclip_core.video import read_video

POSE_LIBRARY = Path(__file__).resolve().parents[1] / "avatarclip_core" / "assets" / "pose_library.npz"
FPS = 30.0


def own_poses() -> torch.Tensor:
    """(3, 22, 3) test poses: a walking step with arm swing, arms raised, a crouch with a twist."""
    p = torch.zeros(3, 22, 3)
    J = skeleton.JOINT_INDEX
    p[0, J["left_hip"], 0], p[0, J["right_hip"], 0], p[0, J["left_knee"], 0] = -0.5, 0.4, 0.6
    p[0, J["left_shoulder"], 2], p[0, J["right_shoulder"], 2] = -1.1, 1.2
    p[0, J["left_shoulder"], 1] = 0.4
    p[1, J["left_shoulder"], 2], p[1, J["right_shoulder"], 2] = 1.2, -1.2
    p[1, J["left_elbow"], 1], p[1, J["neck"], 0] = -1.0, 0.3
    p[2, 0] = torch.tensor([0.3, 0.5, 0.0])
    p[2, J["left_hip"], 0] = p[2, J["right_hip"], 0] = -1.2
    p[2, J["left_knee"], 0] = p[2, J["right_knee"], 0] = 1.8
    p[2, J["spine2"], 1], p[2, J["head"], 2] = 0.6, 0.3
    return p


def test_poses() -> torch.Tensor:
    """4 poses spread over the pose library ("poses", (K, 22, 3)) when it exists, else `own_poses`."""
    if POSE_LIBRARY.exists():
        with np.load(POSE_LIBRARY) as lib:
            if "poses" in lib.files and lib["poses"].ndim == 3 and lib["poses"].shape[1:] == (22, 3):
                a = lib["poses"]
                return torch.as_tensor(a[np.linspace(0, len(a) - 1, 4).astype(int)], dtype=torch.float32)
    return own_poses()


test_poses.__test__ = False  # a helper, not a test


def motion(T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, 22, 3) swinging-arms-and-legs motion and (T, 3) root moving along +x."""
    t = torch.arange(T, dtype=torch.float32) / FPS
    J = skeleton.JOINT_INDEX
    p = stand_pose().repeat(T, 1, 1)
    s = torch.sin(2 * np.pi * t)
    p[:, J["left_hip"], 0], p[:, J["right_hip"], 0] = 0.5 * s, -0.5 * s
    p[:, J["left_knee"], 0] = 0.4 * (1 + s)
    p[:, J["left_shoulder"], 2] = -1.1 + 0.6 * s
    p[:, 0, 1] = 0.3 * s
    root = torch.stack([0.3 * t, 0.02 * s, torch.zeros_like(t)], -1)
    return p, root


@pytest.fixture(scope="module")
def body_mesh(anny_body):
    """The body model's own stand-pose mesh (no vertex merging) with colours that encode position."""
    v = anny_body.forward(pose=stand_pose()).vertices[0].numpy()
    col = np.full((len(v), 4), 255, dtype=np.uint8)
    col[:, 0] = np.clip(128 + 300 * v[:, 1], 0, 255)
    col[:, 1] = 60
    col[:, 2] = np.where(v[:, 0] > 0, 230, 20)
    return trimesh.Trimesh(v, anny_body.faces.numpy(), vertex_colors=col, process=False)


@pytest.fixture(scope="module")
def rigged(body_mesh, anny_body) -> RiggedAvatar:
    return rig_avatar(body_mesh, anny_body)


# ------------------------------------------------------------------------------------------------ rig transfer


def test_self_transfer_reproduces_body_model(body_mesh, anny_body):
    """Rigging the body's own stand-pose mesh and posing it gives body.forward(pose) within 1 mm."""
    av = rig_avatar(body_mesh, anny_body, keep_largest_component=False)
    assert av.num_vertices == anny_body.num_vertices
    assert torch.allclose(av.weights, anny_body.skin_weights, atol=1e-5)
    rest = anny_body.forward(pose=torch.zeros(22, 3)).vertices[0]
    assert (av.rest_vertices - rest).norm(dim=-1).max() < 1e-4  # unposed to the T-pose
    poses = test_poses()
    root = torch.tensor([[0.1, -0.2, 0.3]]).expand(len(poses), 3)
    ref = anny_body.forward(pose=poses, root_translation=root).vertices
    err = (av.pose(poses, root) - ref).norm(dim=-1)
    assert err.max() < 1e-3, f"max error {err.max() * 1000:.3f} mm"


def test_weights_nonnegative_sum_to_one_on_loose_geometry(body_mesh, anny_body):
    """An inflated body with a 'hair' flap far from the body: weights ≥ 0, rows sum to 1, far part smoothed."""
    m = body_mesh.copy()
    m.vertices = m.vertices + 0.02 * m.vertex_normals  # loose clothes, 2 cm off the body
    v = m.vertices
    head_z = v[v[:, 1] > v[:, 1].max() - 0.15, 2].mean()
    top = (v[:, 1] > v[:, 1].max() - 0.12) & (v[:, 2] < head_z - 0.03)
    v[top] += [0.0, 0.0, -0.12]  # the back of the head pulled 12 cm back: a hair flap
    m.vertices = v
    av = rig_avatar(m, anny_body, keep_largest_component=False)
    w = av.weights
    assert (w >= 0).all()
    assert torch.allclose(w.sum(1), torch.ones(len(w)), atol=1e-5)
    assert float(av.body_distance[torch.from_numpy(top)].median()) > 0.05
    # The flap follows the head (and neck): most of its weight is on head/neck joints.
    head = w[torch.from_numpy(top)][:, [skeleton.JOINT_INDEX["head"], skeleton.JOINT_INDEX["neck"]]].sum(1)
    assert head.mean() > 0.8


def test_smoothing_keeps_surface_vertices_and_averages_far_ones():
    """Distance 0 → weights unchanged; far vertices move toward their neighbours' average."""
    # A strip of 4 vertices (2 triangles): vertex 3 is far from the body with a one-hot outlier weight.
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    w = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    out = smooth_weights(w, faces, np.array([0.0, 0.0, 0.0, 1.0]), iterations=5, falloff=0.03)
    assert np.allclose(out[:3], w[:3])
    assert out[3, 0] > 0.9 and np.allclose(out.sum(1), 1.0)
    with pytest.raises(ValueError, match="falloff"):
        smooth_weights(w, faces, np.zeros(4), falloff=0.0)


def test_largest_component_drops_floating_blob(body_mesh, anny_body):
    blob = trimesh.creation.icosphere(2, radius=0.05)
    blob.apply_translation([0.0, 0.3, 0.6])  # floating in front of the chest
    blob.visual.vertex_colors = [255, 0, 0, 255]
    both = trimesh.util.concatenate([body_mesh, blob])
    assert len(both.vertices) == len(body_mesh.vertices) + len(blob.vertices)
    _, _, kept = largest_component(both.vertices, both.faces)
    av = rig_avatar(both, anny_body)
    assert av.num_vertices == len(kept) < len(body_mesh.vertices)  # anny's eyes also go (separate parts)
    assert (av.source_index < len(body_mesh.vertices)).all()
    assert float(av.body_distance.max()) < 1e-5  # nothing off the body survived
    assert av.faces.max() < av.num_vertices


def test_decimation_to_target_faces(body_mesh, anny_body):
    pytest.importorskip("fast_simplification", reason="decimation needs fast_simplification (pip install)")
    av = rig_avatar(body_mesh, anny_body, target_faces=4000)
    assert 3000 <= av.faces.shape[0] <= 4400
    assert torch.allclose(av.weights.sum(1), torch.ones(av.num_vertices), atol=1e-5)
    assert (av.vertex_colors[:, 3] == 255).all() and av.vertex_colors[:, 2].float().std() > 50  # colours kept
    light = decimate_rigged(av, 1000)  # the video's render copy
    assert light.faces.shape[0] <= 1100 and torch.allclose(light.weights.sum(1), torch.ones(light.num_vertices))
    pose = test_poses()[:1]
    # Its posed vertices stay on the full avatar's posed surface (within a few cm at 1000 faces).
    d = torch.cdist(light.pose(pose)[0], av.pose(pose)[0]).min(1).values
    assert d.max() < 0.05


def test_rig_rejects_bad_input(body_mesh, anny_body):
    with pytest.raises(ValueError, match="target_faces"):
        rig_avatar(body_mesh, anny_body, target_faces=2)
    with pytest.raises(ValueError, match="non-empty"):
        rig_avatar(trimesh.Trimesh(), anny_body)
    with pytest.raises(ValueError, match="poses"):
        _dummy_avatar().pose(torch.zeros(3, 21, 3))


def _dummy_avatar() -> RiggedAvatar:
    return RiggedAvatar(torch.zeros(3, 3), torch.tensor([[0, 1, 2]]), torch.zeros(3, 4, dtype=torch.uint8),
                        torch.full((3, 22), 1 / 22), torch.zeros(22, 3))


# ------------------------------------------------------------------------------------------------ glTF


def _gltf_skin_positions(path: Path, frame: int) -> np.ndarray:
    """Evaluate the GLB's skinning at keyframe `frame` from the file alone (glTF 2.0 §3.7.3 skinning maths)."""
    g = pygltflib.GLTF2().load(str(path))
    blob = g.binary_blob()

    def read(acc_i):
        acc = g.accessors[acc_i]
        view = g.bufferViews[acc.bufferView]
        dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_BYTE: np.uint8,
                 pygltflib.UNSIGNED_INT: np.uint32}[acc.componentType]
        n = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
        return np.frombuffer(blob, dtype, acc.count * n, view.byteOffset + (acc.byteOffset or 0)).reshape(acc.count, n)

    prim = g.meshes[0].primitives[0]
    pos = read(prim.attributes.POSITION).astype(np.float64)
    joints, weights = read(prim.attributes.JOINTS_0), read(prim.attributes.WEIGHTS_0).astype(np.float64)
    local = {i: (np.array(n.translation or [0, 0, 0], float), np.array(n.rotation or [0, 0, 0, 1], float))
             for i, n in enumerate(g.nodes)}
    anim = g.animations[0]
    for ch in anim.channels:
        value = read(anim.samplers[ch.sampler].output)[frame].astype(np.float64)
        t, q = local[ch.target.node]
        local[ch.target.node] = (value, q) if ch.target.path == "translation" else (t, value)
    parent = {c: i for i, n in enumerate(g.nodes) for c in (n.children or [])}

    def world(i):
        t, q = local[i]
        m = np.eye(4)
        m[:3, :3] = roma.unitquat_to_rotmat(torch.tensor(q)).numpy()
        m[:3, 3] = t
        return world(parent[i]) @ m if i in parent else m

    skin = g.skins[0]
    ibm = read(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    jm = np.stack([world(n) @ ibm[k] for k, n in enumerate(skin.joints)])
    blend = np.einsum("vk,vkab->vab", weights, jm[joints.astype(np.int64)])
    return np.einsum("vab,vb->va", blend[:, :3, :3], pos) + blend[:, :3, 3]


def test_glb_reloads_and_animates_like_lbs(rigged, tmp_path):
    T = 7
    poses, root = motion(T)
    path = export_glb(tmp_path / "avatar.glb", rigged, poses, root, FPS)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic write left no temporary file
    g = pygltflib.GLTF2().load(str(path))
    assert [g.nodes[j].name for j in g.skins[0].joints] == list(skeleton.JOINT_NAMES)
    prim = g.meshes[0].primitives[0]
    assert prim.attributes.COLOR_0 is not None and prim.attributes.JOINTS_0 is not None
    assert g.accessors[prim.attributes.POSITION].count == rigged.num_vertices
    assert g.accessors[prim.indices].count == 3 * rigged.faces.shape[0]
    anim = g.animations[0]
    assert len(anim.channels) == 23  # 22 rotations + root translation
    times = g.accessors[anim.samplers[0].input]
    assert times.count == T and times.max[0] == pytest.approx((T - 1) / FPS)
    assert {c.target.path for c in anim.channels} == {"rotation", "translation"}
    # The file's own skinning reproduces our LBS with the same top-4 weights (what a viewer shows).
    idx, w4 = top4_weights(rigged.weights.numpy())
    dense = np.zeros((rigged.num_vertices, 22), np.float32)
    np.add.at(dense, (np.arange(len(dense))[:, None], idx.astype(np.int64)), w4)  # unused slots: joint 0, w 0
    ref = RiggedAvatar(rigged.rest_vertices, rigged.faces, rigged.vertex_colors, torch.from_numpy(dense),
                       rigged.rest_joints).pose(poses, root)
    for k in (0, 3, T - 1):
        assert np.abs(_gltf_skin_positions(path, k) - ref[k].numpy()).max() < 1e-4
    # trimesh reads the mesh and its vertex colours (linear in the file → compare after re-encoding).
    scene = trimesh.load(str(path))
    geom = next(iter(scene.geometry.values()))
    assert len(geom.vertices) == rigged.num_vertices
    col = geom.visual.vertex_attributes["color"] if geom.visual.kind == "texture" else geom.visual.vertex_colors
    from avatarclip_core.animate.gltf_export import linear_to_srgb

    col = np.asarray(col, dtype=np.float64)
    col = col / 255.0 if col.max() > 1.0 else col
    srgb = linear_to_srgb(col[:, :3]) * 255.0
    assert np.abs(srgb - rigged.vertex_colors[:, :3].numpy()).max() < 1.0


def test_glb_rejects_bad_motion(rigged):
    with pytest.raises(ValueError, match="fps"):
        build_gltf(rigged, torch.zeros(3, 22, 3), fps=0)
    with pytest.raises(ValueError, match="root"):
        build_gltf(rigged, torch.zeros(3, 22, 3), torch.zeros(2, 3))


def test_khronos_validator_zero_errors(rigged, tmp_path, glb_validator):
    poses, root = motion(5)
    for unlit in (False, True):
        path = export_glb(tmp_path / f"avatar_{unlit}.glb", rigged, poses, root, FPS, unlit=unlit)
        report = glb_validator(path)
        assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
        assert report["issues"]["numWarnings"] == 0, report["issues"]["messages"][:5]
        assert report["info"]["animationCount"] == 1 and report["info"]["hasSkins"]
        assert report["info"]["totalVertexCount"] == rigged.num_vertices


# ------------------------------------------------------------------------------------------------ video


def test_video_frames_size_and_content(rigged, anny_body, tmp_path):
    T = 5
    poses, root = motion(T)
    params = VideoParams(image_size=64, gif_size=32, side_by_side=True, orbit_deg_per_s=30.0,
                         render_max_faces=8000).replace({"floor.style": "none"})  # the floor: next test
    out = render_video(tmp_path / "avatar.mp4", rigged, poses, root, FPS, params, body=anny_body, progress=False)
    frames, fps = read_video(out["mp4"])
    assert frames.shape == (T, 64, 128, 3) and fps == pytest.approx(FPS)
    import imageio.v3 as iio

    g = iio.imread(out["gif"], index=None)
    assert g.shape[0] == 3 and g.shape[1:3] == (32, 64)  # 5 frames at 30 fps → 3 at 15 fps
    # Neutral grey background at the borders, the avatar (coloured) and the body (grey) inside.
    raw = render_motion_frames(rigged, poses, root, FPS, params, body=anny_body, progress=False).astype(float)
    bg = np.array(params.background) * 255
    border = np.concatenate([raw[:, 0], raw[:, -1], raw[:, :, 0], raw[:, :, -1]], 1)
    assert np.abs(border - bg).max() < 2.0  # the camera fits the whole motion
    left, right = raw[..., :64, :], raw[..., 64:, :]
    fg_left = np.abs(left - bg).sum(-1) > 10
    fg_right = np.abs(right - bg).sum(-1) > 10
    assert 0.05 < fg_left.mean() < 0.6 and 0.05 < fg_right.mean() < 0.6
    chroma = lambda x, m: (x.max(-1) - x.min(-1))[m].mean()  # noqa: E731
    assert chroma(left, fg_left) > 40 > 5 > chroma(right, fg_right)


def test_video_shows_the_floor_and_a_shadow_under_the_feet(rigged):
    """Floor pixels in front of the toes and 1.5 m behind the figure: background without a floor, floor grey
    with one; the shadow darkens the floor at the feet and not far from the figure."""
    from avatarclip_core.animate.video_render import fit_motion_camera
    from avatarclip_core.motion.contact import floor_height

    poses, root = stand_pose()[None], torch.zeros(1, 3)
    base = VideoParams(image_size=96, gif=False, render_max_faces=8000)
    renders = {name: render_motion_frames(rigged, poses, root, FPS, base.replace(change), progress=False)[0]
               .astype(float) for name, change in (("none", {"floor.style": "none"}), ("lit", {"floor.shadow": 0.0}),
                                                   ("shadow", {}))}
    cams, _ = fit_motion_camera(rigged, poses, root, base).cameras(torch.zeros(1))
    toes = skeleton.forward_kinematics(poses, rigged.rest_joints)[0][0, [10, 11], :3, 3]
    y = floor_height(rigged.rest_vertices)
    near = torch.stack([toes[:, 0], torch.full((2,), y), toes[:, 2] + 0.16], -1)  # 16 cm in front of each toe joint
    far = near + torch.tensor([[0.45, 0.0, -1.7], [-0.45, 0.0, -1.7]])  # behind, beside the legs in the image
    uv, _ = cams.project(torch.cat([near, far]), 96, 96)
    px = uv[0].floor().long().clamp(0, 95)
    grey = {k: v[px[:, 1], px[:, 0]].mean(-1) for k, v in renders.items()}  # (4,) near L/R, far L/R
    bg = np.mean(base.background) * 255
    assert np.abs(grey["none"] - bg).max() < 4  # no floor: the background
    assert (np.abs(grey["lit"] - bg) > 10).all()  # a floor is drawn there (checker greys 0.74 / 0.82 vs 0.9)
    assert (grey["shadow"][:2] < 0.88 * grey["lit"][:2]).all()  # dark under the feet …
    assert (grey["shadow"][2:] > 0.98 * grey["lit"][2:]).all()  # … not far from them
    # the figure is drawn over the floor: its pixels are the same with and without it
    fg = np.abs(renders["none"] - bg).sum(-1) > 30
    assert fg.mean() > 0.05 and np.abs(renders["shadow"] - renders["none"])[fg].mean() < 8


def test_video_full_size_512(rigged, tmp_path):
    poses, root = motion(2)
    out = render_video(tmp_path / "avatar.mp4", rigged, poses, root, FPS, VideoParams(gif=False), progress=False)
    frames, _ = read_video(out["mp4"])
    assert frames.shape == (2, 512, 512, 3) and out["gif"] is None


def test_video_params_validate():
    VideoParams().validate()
    for bad in (dict(image_size=8), dict(fps=0), dict(ambient=1.5), dict(background=(1, 1)), dict(target_faces=3),
                dict(smooth_falloff=0.0), dict(gif_fps=100)):
        field = next(iter(bad))
        with pytest.raises(ValueError, match=field):
            VideoParams(**bad).validate()
