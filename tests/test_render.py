"""Tests of the differentiable rasteriser (avatarclip_core.render): silhouettes and depth against trimesh ray
casting, normals, analytic Lambert values, perspective-correct interpolation, gradients, batching, compositing."""
import math

import numpy as np
import pytest
import torch
import trimesh

from avatarclip_core.cameras import Cameras, look_at, orbit_cameras
from avatarclip_core.render import render_mesh, silhouette

torch.set_num_threads(1)


def _mesh_tensors(mesh):
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces, dtype=torch.int64)


def _front_camera(distance=2.0, fov=60.0, target=(0.0, 0.0, 0.0)):
    eye = torch.tensor(target) + torch.tensor([0.0, 0.0, distance])
    return Cameras(look_at(eye[None], torch.tensor(target)[None]), fov)


def _triangle(scale=1.0):
    base = torch.tensor([[-0.3, -0.25, 0.0], [0.35, -0.2, 0.0], [0.0, 0.3, 0.0]])
    centroid = base.mean(0)
    return centroid + scale * (base - centroid), torch.tensor([[0, 1, 2]])


def _ray_cast(mesh, cameras, size):
    """Reference: trimesh ray casting through every pixel centre → hit mask (B, H·W), axis depth, face id."""
    origins, dirs = cameras.rays(size, size)
    masks, depths, face_ids = [], [], []
    for b in range(len(cameras)):
        o = origins[b].reshape(-1, 3).double().numpy()
        d = dirs[b].reshape(-1, 3).double().numpy()
        locs, ray_idx, tri_idx = mesh.ray.intersects_location(o, d, multiple_hits=False)
        hit = np.zeros(size * size, bool)
        hit[ray_idx] = True
        depth = np.zeros(size * size)
        forward = -cameras.c2w[b, :3, 2].double().numpy()
        depth[ray_idx] = (locs - o[ray_idx]) @ forward
        fid = np.full(size * size, -1)
        fid[ray_idx] = tri_idx
        masks.append(hit), depths.append(depth), face_ids.append(fid)
    return np.stack(masks), np.stack(depths), np.stack(face_ids)


@pytest.fixture(scope="module")
def body_mesh():
    """The anny body in its standing pose (falls back to a capsule if the body model is unavailable)."""
    try:
        from avatarclip_core.body import get_body_model, stand_pose

        body = get_body_model("anny")
        out = body(pose=stand_pose())
        return out.vertices[0].detach(), out.faces
    except Exception:  # pragma: no cover - only when the body model cannot be built
        return _mesh_tensors(trimesh.creation.capsule(height=1.0, radius=0.2, count=[48, 48]))


def test_body_silhouette_and_depth_match_ray_casting(body_mesh):
    verts, faces = body_mesh
    mesh = trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False)
    # Oblique views are slow to ray-cast without Embree (trimesh's fallback needs ~40 s), so use the front then.
    cams = orbit_cameras(1.7, [0.0], [35.0, 90.0] if trimesh.ray.has_embree else [0.0])
    size = 256
    v = verts.clone().requires_grad_(True)
    out = render_mesh(v, faces, cams, size)
    hit, ref_depth, ref_face = _ray_cast(mesh, cams, size)
    for b in range(len(cams)):
        for mine in (out.mask[b].reshape(-1).numpy(), (out.alpha[b] > 0.5).reshape(-1).numpy()):
            iou = (hit[b] & mine).sum() / (hit[b] | mine).sum()
            assert iou >= 0.99, iou
        assert hit[b].sum() > 4000  # the body fills a good part of the frame
        both = hit[b] & out.mask[b].reshape(-1).numpy()
        err = np.abs(out.depth[b].detach().reshape(-1).numpy()[both] - ref_depth[b][both])
        assert np.percentile(err, 99) < 1e-4 and err.max() < 1e-2
        assert (out.face_index[b].reshape(-1).numpy()[both] == ref_face[b][both]).mean() > 0.99
    assert (out.depth[~out.mask] == 0).all() and (out.normals[~out.mask] == 0).all()
    assert (out.face_index[~out.mask] == -1).all()
    # Soft silhouette gradients reach the body: inflating it about its vertical axis grows the coverage.
    out.alpha.sum().backward()
    assert torch.isfinite(v.grad).all()
    radial = verts * torch.tensor([1.0, 0.0, 1.0])
    assert float((v.grad * radial).sum()) > 0
    assert 0 < int((v.grad.norm(dim=-1) > 0).sum()) < len(verts) // 2   # only silhouette vertices
    alpha = silhouette(verts, faces, cams, size)
    assert torch.allclose(alpha, out.alpha.detach(), atol=1e-6)


def test_sphere_normals_point_outward_and_to_camera():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    verts, faces = _mesh_tensors(mesh)
    cams = orbit_cameras(2.0, [20.0], [0.0, 120.0])
    out = render_mesh(verts, faces, cams, 96)
    origins, dirs = cams.rays(96, 96)
    m = out.mask
    n = out.normals[m]
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(n)), atol=1e-4)
    assert ((n * -dirs[m]).sum(-1) > 0).all()                        # towards the camera
    points = origins[m] + dirs[m] * (out.depth[m] / (dirs[m] * -cams.c2w[:, None, None, :3, 2].expand_as(dirs)[m]).sum(-1))[:, None]
    radial = torch.nn.functional.normalize(points, dim=-1)
    assert (n * radial).sum(-1).min() > 0.97                         # outward (flat faces of a 642-vertex sphere)
    assert ((points.norm(dim=-1) - 0.5).abs() < 0.01).all()          # depth puts the points on the sphere


def _plane(size=0.6, z=0.0):
    v = torch.tensor([[-size, -size, z], [size, -size, z], [size, size, z], [-size, size, z]])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize("theta_deg", [0.0, 40.0, 75.0, 120.0])
def test_lambert_values_on_plane_are_analytic(theta_deg):
    verts, faces = _plane()
    cam = _front_camera(2.0)
    colour = torch.tensor([0.8, 0.6, 0.4])
    th = math.radians(theta_deg)
    light = torch.tensor([math.sin(th), 0.0, math.cos(th)])          # angle θ from the plane normal (+z)
    out = render_mesh(verts, faces, cam, 32, colors=colour.expand(4, 3), light_dir=light * 3.0, ambient=0.3)
    expected = colour * (0.3 + 0.7 * max(0.0, math.cos(th)))
    centre = out.rgb[0, 11:21, 11:21].reshape(-1, 3)
    assert torch.allclose(centre, expected.expand_as(centre), atol=1e-5)
    assert torch.allclose(out.normals[0, 16, 16], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_back_faces_render_with_flipped_normals():
    verts, faces = _plane()
    back = Cameras(look_at(torch.tensor([[0.0, 0.0, -2.0]])), 60.0)
    lit_from_front = render_mesh(verts, faces, back, 32, light_dir=(0.0, 0.0, 1.0), ambient=0.5)
    lit_from_back = render_mesh(verts, faces, back, 32, light_dir=(0.0, 0.0, -1.0), ambient=0.5)
    assert lit_from_front.mask[0, 11:21, 11:21].all()
    assert torch.allclose(lit_from_front.normals[0, 16, 16], torch.tensor([0.0, 0.0, -1.0]), atol=1e-6)
    assert torch.allclose(lit_from_front.rgb[0, 16, 16], torch.full((3,), 0.5), atol=1e-6)
    assert torch.allclose(lit_from_back.rgb[0, 16, 16], torch.ones(3), atol=1e-6)


def test_perspective_correct_interpolation_and_depth_on_tilted_plane():
    verts, faces = _plane(0.5)
    R = torch.tensor([[1.0, 0, 0], [0, math.cos(1.0), -math.sin(1.0)], [0, math.sin(1.0), math.cos(1.0)]])
    verts = verts @ R.T                                                # tilted by ~57° about x
    colours = (verts + 1.0) / 2.0                                     # colour = affine function of position
    cam = Cameras(look_at(torch.tensor([[0.3, 0.2, 1.5]])), 50.0)
    out = render_mesh(verts, faces, cam, 64, colors=colours, shading="none", sigma=0.0)
    o, d = cam.rays(64, 64)
    m = out.mask[0]
    forward = -cam.c2w[0, :3, 2]
    t = out.depth[0][m] / (d[0][m] @ forward)
    points = o[0][m] + t[:, None] * d[0][m]
    normal = torch.nn.functional.normalize(torch.linalg.cross(verts[1] - verts[0], verts[2] - verts[0]), dim=0)
    assert ((points - verts[0]) @ normal).abs().max() < 1e-4          # depth lands on the plane
    assert torch.allclose(out.rgb[0][m], (points + 1.0) / 2.0, atol=1e-4)  # perspective-correct colours
    assert m.sum() > 500


def test_opengl_convention_matches_camera_projection():
    verts, faces = _triangle(0.1)
    verts = verts + torch.tensor([0.4, 0.25, 0.0])                    # up and to the right of the target
    cam = _front_camera(2.0)
    out = render_mesh(verts, faces, cam, (48, 64), sigma=0.0)
    ii, jj = torch.nonzero(out.mask[0], as_tuple=True)
    uv, _ = cam.project(verts.mean(0, keepdim=True), 48, 64)
    assert abs((jj.float() + 0.5).mean() - uv[0, 0, 0]) < 1.0 and abs((ii.float() + 0.5).mean() - uv[0, 0, 1]) < 1.0
    assert uv[0, 0, 0] > 32 and uv[0, 0, 1] < 24                     # right half, top half


def test_alpha_gradient_wrt_triangle_scale_matches_area():
    cam = _front_camera(2.0)
    size, sigma = 64, 0.5

    def soft_area(s):
        verts, faces = _triangle(s)
        return silhouette(verts, faces, cam, size, sigma=sigma).sum()

    s = torch.tensor(1.0, requires_grad=True)
    area = soft_area(s)
    area.backward()
    area = float(area.detach())
    assert s.grad > 0
    # Pixel area of the projected triangle scales as s², so d(area)/ds ≈ 2·area at s = 1.
    verts, _ = _triangle(1.0)
    uv, _ = cam.project(verts, size, size)
    a, b, c = uv[0]
    px_area = 0.5 * abs(float((b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]))
    # Soft coverage sums to the area up to O(sigma²) per convex corner (rounded outside, trimmed inside).
    assert abs(area - px_area) / px_area < 0.05
    assert abs(float(s.grad) - 2 * px_area) / (2 * px_area) < 0.1
    h = 0.02
    fd = (soft_area(torch.tensor(1 + h)) - soft_area(torch.tensor(1 - h))) / (2 * h)
    assert abs(float(fd) - float(s.grad)) / float(s.grad) < 0.05


def test_moving_a_vertex_outward_raises_alpha_outside_the_silhouette():
    verts, faces = _triangle(1.0)
    verts = verts.clone().requires_grad_(True)
    cam = _front_camera(2.0)
    alpha = silhouette(verts, faces, cam, 64, sigma=0.7)
    outside = (alpha[0] < 0.5) & (alpha[0] > 1e-3)
    assert outside.sum() > 20
    (alpha[0] * outside).sum().backward()
    outward = verts.detach() - verts.detach().mean(0)
    assert ((verts.grad * outward).sum(-1) > 0).all()
    assert torch.isfinite(verts.grad).all()


def test_vertex_gradients_agree_with_finite_differences():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    verts, faces = _mesh_tensors(mesh)
    cam = orbit_cameras(2.0, [15.0], [30.0])
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(len(verts), 3, generator=g)
    weights = torch.rand(1, 48, 48, 3, generator=g)

    def loss(v):
        out = render_mesh(v, faces, cam, 48, colors=colours, background=0.3, sigma=1.0)
        return (out.rgb * weights).sum() + 2.0 * out.alpha.sum()

    v = verts.clone().requires_grad_(True)
    loss(v).backward()
    grad = v.grad
    assert torch.isfinite(grad).all()
    # Directional derivatives along a few smooth deformations (scale, shift, random smooth field).
    directions = [verts.clone(), torch.tensor([1.0, 0.0, 0.0]).expand_as(verts),
                  torch.stack([verts[:, 1], -verts[:, 0], 0.5 * verts[:, 2]], -1)]
    h = 2e-3
    for dvec in directions:
        analytic = float((grad * dvec).sum())
        fd = float((loss(verts + h * dvec) - loss(verts - h * dvec)) / (2 * h))
        assert abs(analytic - fd) <= 0.1 * abs(fd) + 0.5, (analytic, fd)
    assert abs(float((grad * directions[0]).sum())) > 50                 # growing the sphere matters


def test_colour_gradients_are_finite_and_signed():
    verts, faces = _plane()
    colours = torch.full((4, 3), 0.5, requires_grad=True)
    out = render_mesh(verts, faces, _front_camera(), 32, colors=colours, shading="none",
                      background=(0.0, 0.0, 0.5))
    target = torch.tensor([1.0, 0.0, 0.5])
    ((out.rgb - target) ** 2).sum().backward()
    g = colours.grad
    assert torch.isfinite(g).all()
    assert (g[:, 0] < 0).all() and (g[:, 1] > 0).all() and (g[:, 2].abs() < 1e-3).all()


def test_batched_cameras_equal_single_renders():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    verts, faces = _mesh_tensors(mesh)
    verts = verts * torch.tensor([1.0, 1.6, 0.8])
    colours = (verts + 1) / 2
    cams = orbit_cameras(2.0, [-10.0, 25.0], [0.0, 100.0])
    batched = render_mesh(verts, faces, cams, 40, colors=colours)
    for b in range(len(cams)):
        single = render_mesh(verts, faces, cams[b], 40, colors=colours)
        for name in ("rgb", "alpha", "depth", "normals"):
            assert torch.allclose(getattr(batched, name)[b], getattr(single, name)[0], atol=1e-5), name
        assert torch.equal(batched.face_index[b], single.face_index[0])
    # (B, V, 3) pairs mesh b with camera b; (B, V, 3) with one camera broadcasts the camera.
    shifted = torch.stack([verts, verts + torch.tensor([0.2, 0.0, 0.0])])
    paired = render_mesh(shifted, faces, cams[:2], 40)
    assert torch.allclose(paired.rgb[1], render_mesh(shifted[1], faces, cams[1], 40).rgb[0], atol=1e-5)
    one_cam = render_mesh(shifted, faces, cams[0], 40)
    assert one_cam.rgb.shape == (2, 40, 40, 3)
    assert torch.allclose(one_cam.rgb[1], render_mesh(shifted[1], faces, cams[0], 40).rgb[0], atol=1e-5)


def test_background_compositing():
    verts, faces = _triangle(1.0)
    cam = _front_camera()
    bg1 = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    out1 = render_mesh(verts, faces, cam, 32, background=bg1)
    out2 = render_mesh(verts, faces, cam, 32, background=(0.1, 0.9, 0.2))
    bg2 = torch.tensor([0.1, 0.9, 0.2])
    empty = out1.alpha[0] == 0
    assert empty.sum() > 100
    assert torch.equal(out1.rgb[0][empty], bg1[0][empty])
    # rgb = alpha·shaded + (1 − alpha)·background for every pixel, soft edges included.
    diff = out1.rgb - out2.rgb
    assert torch.allclose(diff, (1 - out1.alpha[..., None]) * (bg1 - bg2), atol=1e-6)
    soft = (out1.alpha > 0.05) & (out1.alpha < 0.95)
    assert soft.sum() > 10
    black = render_mesh(verts, faces, cam, 32)
    assert (black.rgb[black.alpha == 0] == 0).all() and black.rgb.max() <= 1.0


def test_hard_mode_and_alpha_calibration():
    verts, faces = _triangle(1.0)
    cam = _front_camera()
    hard = render_mesh(verts, faces, cam, 32, sigma=0.0)
    soft = render_mesh(verts, faces, cam, 32, sigma=0.5)
    assert set(hard.alpha.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(hard.mask, soft.alpha > 0.5) or torch.equal(hard.mask, soft.alpha >= 0.5)
    assert torch.equal(hard.alpha > 0.5, hard.mask)


def test_faces_behind_the_camera_are_culled():
    verts, faces = _plane(0.5, z=3.0)                                  # behind a camera at z = 2 looking at −z
    out = render_mesh(verts, faces, _front_camera(2.0), 16)
    assert not out.mask.any() and (out.alpha == 0).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(shading="phong"), "shading"),
    (dict(ambient=1.5), "ambient"),
    (dict(light_dir=(0.0, 0.0, 0.0)), "light_dir"),
    (dict(image_size=(0, 8)), "image_size"),
    (dict(colors=torch.ones(5, 3)), "colors"),
    (dict(background=torch.zeros(7, 7, 3)), "background"),
    (dict(sigma=-1.0), "sigma"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    verts, faces = _triangle()
    args = dict(image_size=8)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        render_mesh(verts, faces, _front_camera(), **args)


def test_bad_geometry_raises_value_error():
    verts, faces = _triangle()
    with pytest.raises(ValueError, match="faces"):
        render_mesh(verts, torch.tensor([[0, 1, 3]]), _front_camera(), 8)
    with pytest.raises(ValueError, match="vertices"):
        render_mesh(verts[:, :2], faces, _front_camera(), 8)
    with pytest.raises(ValueError, match="cameras"):
        render_mesh(torch.stack([verts] * 3), faces, orbit_cameras(2.0, [0.0], [0.0, 90.0]), 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    verts, faces = _mesh_tensors(mesh)
    cams = orbit_cameras(2.0, [10.0], [0.0, 90.0])
    cpu = render_mesh(verts, faces, cams, 64, colors=(verts + 1) / 2)
    gpu = render_mesh(verts.cuda(), faces.cuda(), cams.to("cuda"), 64, colors=((verts + 1) / 2).cuda())
    assert torch.allclose(cpu.rgb, gpu.rgb.cpu(), atol=1e-4)
    assert torch.equal(cpu.face_index, gpu.face_index.cpu())
