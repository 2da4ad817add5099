"""Mesh clean-up of a rigged avatar for game engines: cut the webbing, close the cuts, orient outwards.

At coarse marching-cubes resolutions (the `tiny` preset) the arms hanging at the sides fuse with the torso and
the legs with each other: the stage-3 mesh is one solid from arm to torso. Rigged, the vertices of that solid
get blended weights and stretch into a web when the arms move, or stay on the torso as a flap when they do not
(docs/method.md, Avatar animation). Here:

- `body_detachment`: pose the avatar (its own weights) and the body model alike in a few probe poses that pull
  the limbs apart (rest T-pose, arms raised, legs spread); a vertex of the fused solid, which lay close to the
  body in the stand pose only because an arm hung next to it, ends up far from every body surface. Its
  detachment is the largest increase, over the probe poses, of its distance to the posed body surface with
  respect to the stand pose (the pose the avatar was sculpted in). Sculpted detail that follows the body
  (clothes, hair on the head) keeps its distance and scores ≈ 0.
- `webbing_faces`: faces with a vertex detached by more than `detach` metres, and faces that join the left leg to
  the right leg (no body triangle does: the pelvis lies between them). Part labels (`part_labels`) come from the
  avatar's transferred weights: the part with the largest summed weight.
- the webbing is removed, the largest component kept, and every hole closed by `close_holes`: each run of
  same-part vertices along a hole gets its own fan, and the runs' ends are joined by a small polygon (ear
  clipping preferring triangles over the fewest parts), so no fan re-joins two parts and the mesh is closed
  (no open, no non-manifold edge);
- `orient_outward`: the closed mesh is wound so that its signed volume is positive (normals point out).

`mesh_checks` measures the result with rules independent of these (the body's own weights).
Frames: avatar frame, metres; the rigged avatar is in the rest T-pose (`RiggedAvatar`).
"""
from __future__ import annotations

import numpy as np
import torch
import trimesh

from .. import skeleton
from .rig_transfer import RiggedAvatar, closest_body_points, largest_component

PART_NAMES = ("torso", "left_arm", "right_arm", "left_leg", "right_leg")
_PART_OF_JOINT = {"left_shoulder": 1, "left_elbow": 1, "left_wrist": 1, "right_shoulder": 2, "right_elbow": 2,
                  "right_wrist": 2, "left_hip": 3, "left_knee": 3, "left_ankle": 3, "left_foot": 3,
                  "right_hip": 4, "right_knee": 4, "right_ankle": 4, "right_foot": 4}  # all others: torso (0)
JOINT_PART = np.array([_PART_OF_JOINT.get(n, 0) for n in skeleton.JOINT_NAMES])


def part_weights(weights) -> np.ndarray:
    """(V, 5) float64 summed skinning weight of each body part (`PART_NAMES`) per vertex.
    weights: (V, 22) skinning weights over `skeleton.JOINT_NAMES` (numpy or torch)."""
    w = np.asarray(torch.as_tensor(weights).detach().cpu(), dtype=np.float64)
    parts = np.zeros((len(w), len(PART_NAMES)))
    np.add.at(parts.T, JOINT_PART, w.T)
    return parts


def part_labels(weights) -> np.ndarray:
    """(V,) int64 body part of each vertex: index into `PART_NAMES` of the largest `part_weights`."""
    return part_weights(weights).argmax(1)


def probe_poses() -> torch.Tensor:
    """(3, 22, 3) axis-angle poses that pull the limbs apart: rest T-pose, arms raised overhead, legs spread."""
    J = skeleton.JOINT_INDEX
    p = torch.zeros(3, 22, 3)
    p[1, J["left_shoulder"], 2], p[1, J["right_shoulder"], 2] = 1.2, -1.2
    p[2, J["left_hip"], 2], p[2, J["right_hip"], 2] = 0.6, -0.6
    return p


def body_detachment(avatar: RiggedAvatar, body, shape=None, poses: torch.Tensor | None = None) -> np.ndarray:
    """(V,) float64 metres: per vertex, the largest increase over `poses` (default `probe_poses`) of the distance
    to the posed body surface, relative to the stand pose (`body.stand_pose()`); see the module docstring.

    Args:
        avatar: rigged avatar; body: the `BodyModel` it was rigged to; shape: its (S,) shape (None = default).
    """
    from ..body import stand_pose

    poses = torch.cat([stand_pose()[None], probe_poses() if poses is None else torch.as_tensor(poses)])
    shape = body.check_shape(body.default_shape() if shape is None else shape)[:1]
    with torch.no_grad():
        body_v = body.forward(shape, pose=poses).vertices.cpu().numpy()
        avatar_v = avatar.pose(poses).cpu().numpy()
    faces = body.faces.cpu().numpy()
    # 1 cm surface samples: distances agree with the 4 mm default to ~0.1 mm at a third of the time
    dist = np.stack([closest_body_points(a, b, faces, spacing=0.01)[2] for a, b in zip(avatar_v, body_v)])
    return (dist[1:] - dist[0]).max(0)


def webbing_faces(avatar: RiggedAvatar, body, shape=None, detach: float = 0.02) -> np.ndarray:
    """(F,) bool: faces with a vertex whose `body_detachment` exceeds `detach` metres, or with a left-leg and a
    right-leg vertex (`part_labels`). Raises ValueError for detach ≤ 0."""
    if not detach > 0:
        raise ValueError(f"detach must be > 0 metres, got {detach}")
    faces = avatar.faces.numpy()
    labels = part_labels(avatar.weights)[faces]
    leg_leg = (labels == 3).any(1) & (labels == 4).any(1)
    return leg_leg | (body_detachment(avatar, body, shape)[faces] > detach).any(1)


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Closed loops of boundary half-edges (a → b where no face has b → a), in the faces' winding direction."""
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    n = int(faces.max()) + 1
    key = he[:, 0] * n + he[:, 1]
    bnd = he[~np.isin(key, he[:, 1] * n + he[:, 0])]
    nxt: dict[int, list[int]] = {}
    for a, b in bnd:
        nxt.setdefault(int(a), []).append(int(b))
    loops = []
    for start in list(nxt):
        while nxt.get(start):
            loop, v = [start], nxt[start].pop()
            while v != start and nxt.get(v):
                loop.append(v)
                v = nxt[v].pop()
            loops.append(loop)
    return loops


def _ear_clip(polygon: list[int], labels: np.ndarray, points: np.ndarray, edges: set) -> list[list[int]]:
    """Triangulate a hole polygon (loop order) by ear clipping: the next ear is the one whose new diagonal is
    not an existing edge, spans the fewest parts, and is shortest. Faces wound to close the loop (b → a)."""
    poly, faces = list(polygon), []
    while len(poly) > 3:
        def cost(j):
            a, b, c = poly[j - 1], poly[j], poly[(j + 1) % len(poly)]
            return ((min(a, c), max(a, c)) in edges, len({labels[a], labels[b], labels[c]}),
                    float(np.linalg.norm(points[a] - points[c])))
        j = min(range(len(poly)), key=cost)
        a, b, c = poly[j - 1], poly[j], poly[(j + 1) % len(poly)]
        faces.append([c, b, a])
        edges.add((min(a, c), max(a, c)))
        poly.pop(j)
    if len(poly) == 3:
        faces.append(poly[::-1])
    return faces


def close_holes(avatar: RiggedAvatar, labels: np.ndarray) -> tuple[RiggedAvatar, int]:
    """Close every boundary loop of `avatar` without re-joining body parts (see the module docstring).

    Along a loop, each run of ≥ 3 consecutive vertices with the same label is closed by a fan around a new
    vertex at the run's mean (rest pose; weights, colour and body distance averaged); the runs' end vertices
    (and the vertices of shorter runs) form an inner polygon, triangulated by `_ear_clip`. A loop with a single
    label is one fan. New faces are wound like their neighbours.

    Args:
        avatar: rigged avatar with holes; labels: (V,) part label of each vertex.
    Returns:
        (closed RiggedAvatar, number of fan-centre vertices added).
    """
    faces = avatar.faces.numpy()
    V, points = avatar.num_vertices, avatar.rest_vertices.numpy()
    edges = {(min(a, b), max(a, b)) for a, b in faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).tolist()}
    new_faces, fans = [], []

    def fan(run):
        c = V + len(fans)
        fans.append(run)
        new_faces.extend([b, a, c] for a, b in zip(run, run[1:] + run[:1]))
        if len(run) >= 2:
            edges.add((min(run[0], run[-1]), max(run[0], run[-1])))

    for loop in boundary_loops(faces):
        lab = labels[loop]
        starts = np.nonzero(lab != np.roll(lab, 1))[0]
        if len(starts) == 0:
            fan(loop)
            continue
        loop = loop[starts[0]:] + loop[:starts[0]]
        bounds = list(starts - starts[0]) + [len(loop)]
        inner = []
        for run in (loop[i:j] for i, j in zip(bounds[:-1], bounds[1:])):
            if len(run) >= 3 and (min(run[0], run[-1]), max(run[0], run[-1])) not in edges:
                fan(run)
                inner += [run[0], run[-1]]
            else:
                inner += run
        new_faces += _ear_clip(inner, labels, points, edges)
    if not new_faces:
        return avatar, 0
    mean = lambda x: torch.stack([x[r].float().mean(0) for r in fans]) if fans else x[:0].float()  # noqa: E731
    w = mean(avatar.weights)
    col = mean(avatar.vertex_colors).round().clamp(0, 255).to(torch.uint8)
    cat = lambda a, b: None if a is None else torch.cat([a, b.to(a.dtype)])  # noqa: E731
    out = RiggedAvatar(torch.cat([avatar.rest_vertices, mean(avatar.rest_vertices)]),
                       torch.cat([avatar.faces, torch.tensor(new_faces, dtype=torch.int64).reshape(-1, 3)]),
                       torch.cat([avatar.vertex_colors, col]),
                       torch.cat([avatar.weights, w / w.sum(1, keepdim=True).clamp_min(1e-12)]),
                       avatar.rest_joints, cat(avatar.source_index, torch.full((len(fans),), -1)),
                       None if avatar.body_distance is None else cat(avatar.body_distance, mean(avatar.body_distance)))
    return out, len(fans)


def subset(avatar: RiggedAvatar, faces: np.ndarray) -> RiggedAvatar:
    """The avatar restricted to `faces` (F', 3) (indices into its vertices), unreferenced vertices dropped and
    the largest connected component kept (`rig_transfer.largest_component`)."""
    _, f, kept = largest_component(avatar.rest_vertices.numpy(), faces)
    k = torch.from_numpy(kept)
    pick = lambda x: None if x is None else x[k]  # noqa: E731
    return RiggedAvatar(avatar.rest_vertices[k], torch.from_numpy(f), avatar.vertex_colors[k], avatar.weights[k],
                        avatar.rest_joints, pick(avatar.source_index), pick(avatar.body_distance))


def orient_outward(avatar: RiggedAvatar) -> RiggedAvatar:
    """The avatar with consistently wound faces whose normals point outwards (trimesh `fix_normals`: winding
    made consistent, then flipped when the signed volume is negative). Vertices are unchanged."""
    mesh = trimesh.Trimesh(avatar.rest_vertices.numpy(), avatar.faces.numpy(), process=False)
    trimesh.repair.fix_normals(mesh)
    faces = torch.from_numpy(np.asarray(mesh.faces, dtype=np.int64))
    return RiggedAvatar(avatar.rest_vertices, faces, avatar.vertex_colors, avatar.weights, avatar.rest_joints,
                        avatar.source_index, avatar.body_distance)


def cut_webbing(avatar: RiggedAvatar, body, shape=None, detach: float = 0.02) -> tuple[RiggedAvatar, dict]:
    """Remove the webbing (`webbing_faces`), keep the largest component, close the holes per part
    (`close_holes`) and orient the faces outwards (`orient_outward`).

    Args:
        avatar: rigged avatar (rest T-pose); body, shape: the body model and (S,) shape it was rigged to;
        detach: metres, see `webbing_faces`.
    Returns:
        (clean RiggedAvatar, figures: 'webbing_faces_cut', 'holes' closed, 'cap_vertices' added).
    Raises:
        ValueError: detach ≤ 0, or every face is webbing.
    """
    web = webbing_faces(avatar, body, shape, detach)
    if web.all():
        raise ValueError("cut_webbing: every face is webbing; check the rig (shape, weights) or raise detach")
    out = subset(avatar, avatar.faces.numpy()[~web]) if web.any() else avatar
    holes = len(boundary_loops(out.faces.numpy()))
    out, caps = close_holes(out, part_labels(out.weights))
    return orient_outward(out), {"webbing_faces_cut": int(web.sum()), "holes": holes, "cap_vertices": caps}
