"""Mesh clean-up of a rigged avatar for game engines: cut the webbing, cap the cuts, mesh checks.

At coarse marching-cubes resolutions (the `tiny` preset) the arms hanging at the sides fuse with the torso and
the legs with each other; the rig transfer then gives the bridging triangles one vertex on the arm and one on
the torso, and they stretch into a web when the arms move (docs/method.md, Avatar animation). Here:

- every vertex gets a body-part label from its transferred skinning weights (`part_labels`: the part with the
  largest summed weight; parts = torso, left/right arm, left/right leg);
- a triangle is *webbing* when it joins a left leg to a right leg, or an arm to the torso **and** one of its
  edges stretches by more than `stretch` × between the stand pose (the NeuS pose) and any of a few probe poses
  (rest T-pose, arms raised, legs spread) — the genuine shoulder triangles bend there but do not stretch;
- webbing triangles are removed and each hole is capped part by part (a fan over every run of same-part
  boundary vertices, `cap_holes`), so no cap joins two parts again;
- `mesh_report` counts non-manifold edges and self-intersections (edges piercing non-adjacent triangles).

Frames: avatar frame, metres; the rigged avatar is in the rest T-pose (`RiggedAvatar`).
"""
from __future__ import annotations

import numpy as np
import torch
import trimesh

from .. import skeleton
from .rig_transfer import RiggedAvatar, largest_component

PART_NAMES = ("torso", "left_arm", "right_arm", "left_leg", "right_leg")
_PART_OF_JOINT = {"left_shoulder": 1, "left_elbow": 1, "left_wrist": 1, "right_shoulder": 2, "right_elbow": 2,
                  "right_wrist": 2, "left_hip": 3, "left_knee": 3, "left_ankle": 3, "left_foot": 3,
                  "right_hip": 4, "right_knee": 4, "right_ankle": 4, "right_foot": 4}  # all others: torso (0)
JOINT_PART = np.array([_PART_OF_JOINT.get(n, 0) for n in skeleton.JOINT_NAMES])


def part_labels(weights) -> np.ndarray:
    """Body part of each vertex: the part (index into `PART_NAMES`) with the largest summed skinning weight.

    Args:
        weights: (V, 22) skinning weights (numpy or torch). Returns: (V,) int64 labels in 0…4.
    """
    w = np.asarray(torch.as_tensor(weights).detach().cpu(), dtype=np.float64)
    parts = np.zeros((len(w), len(PART_NAMES)))
    np.add.at(parts.T, JOINT_PART, w.T)
    return parts.argmax(1)


def probe_poses() -> torch.Tensor:
    """(3, 22, 3) axis-angle poses that pull the limbs apart: rest T-pose, arms raised overhead, legs spread."""
    J = skeleton.JOINT_INDEX
    p = torch.zeros(3, 22, 3)
    p[1, J["left_shoulder"], 2], p[1, J["right_shoulder"], 2] = 1.2, -1.2
    p[2, J["left_hip"], 2], p[2, J["right_hip"], 2] = 0.6, -0.6
    return p


def _joins(labels: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F,) bool masks: the face has an arm and a torso vertex; the face has a left-leg and a right-leg vertex."""
    fl = labels[faces]
    has = lambda k: (fl == k).any(1)  # noqa: E731
    return (has(1) | has(2)) & has(0), has(3) & has(4)


def edge_stretch(avatar: RiggedAvatar, poses: torch.Tensor | None = None) -> np.ndarray:
    """(F,) largest ratio, over `poses` (default `probe_poses`), of a face's longest edge posed vs. in the stand
    pose (`body.stand_pose()`, the pose the avatar was sculpted in)."""
    from ..body import stand_pose

    poses = probe_poses() if poses is None else poses
    faces = avatar.faces.numpy()

    def longest(v):
        v = v.detach().cpu().numpy().astype(np.float64)
        return np.linalg.norm(v[:, faces] - v[:, faces[:, [1, 2, 0]]], axis=-1).max(-1)

    ref = longest(avatar.pose(stand_pose())[None])[0]
    return (longest(avatar.pose(poses)) / np.maximum(ref, 1e-9)).max(0)


def webbing_faces(avatar: RiggedAvatar, stretch: float = 1.5) -> np.ndarray:
    """(F,) bool: the faces that join a left leg to a right leg, or an arm to the torso while stretching by more
    than `stretch` × in a probe pose (see the module docstring). Raises ValueError for stretch ≤ 1."""
    if not stretch > 1:
        raise ValueError(f"stretch must be > 1, got {stretch}")
    arm_torso, leg_leg = _joins(part_labels(avatar.weights), avatar.faces.numpy())
    return leg_leg | (arm_torso & (edge_stretch(avatar) > stretch))


def _boundary_loops(faces: np.ndarray) -> list[list[int]]:
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


def cap_holes(avatar: RiggedAvatar, labels: np.ndarray) -> tuple[RiggedAvatar, int]:
    """Cap the boundary loops of `avatar` part by part: every run of ≥ 3 consecutive loop vertices with the same
    label gets a fan around a new vertex at the run's mean (rest pose; weights, colour and body distance
    averaged), wound to face outwards. The few edges where a loop changes part stay open.

    Returns (new RiggedAvatar, number of cap vertices added).
    """
    faces = avatar.faces.numpy()
    V = avatar.num_vertices
    new_faces, centres = [], []
    for loop in _boundary_loops(faces):
        lab = labels[loop]
        cut = np.nonzero(lab != np.roll(lab, 1))[0]  # where a new part starts along the loop
        runs = [loop]
        if len(cut):
            loop = loop[cut[0]:] + loop[:cut[0]]
            runs = [loop[i:j] for i, j in zip(cut - cut[0], list(cut[1:] - cut[0]) + [len(loop)])]
        for run in runs:
            if len(run) < 3:
                continue
            c = V + len(centres)
            centres.append(run)
            closed = run + [run[0]]
            new_faces += [[closed[i + 1], closed[i], c] for i in range(len(run) - (len(cut) > 0))]
            if len(cut):
                new_faces.append([run[0], run[-1], c])
    if not centres:
        return avatar, 0
    mean = lambda x: torch.stack([x[r].float().mean(0) for r in centres])  # noqa: E731
    w = mean(avatar.weights)
    col = mean(avatar.vertex_colors).round().clamp(0, 255).to(torch.uint8)
    cat = lambda a, b: None if a is None else torch.cat([a, b.to(a.dtype)])  # noqa: E731
    out = RiggedAvatar(torch.cat([avatar.rest_vertices, mean(avatar.rest_vertices)]),
                       torch.cat([avatar.faces, torch.tensor(new_faces, dtype=torch.int64)]),
                       torch.cat([avatar.vertex_colors, col]), torch.cat([avatar.weights, w / w.sum(1, keepdim=True)]),
                       avatar.rest_joints, cat(avatar.source_index, torch.full((len(centres),), -1)),
                       None if avatar.body_distance is None else cat(avatar.body_distance, mean(avatar.body_distance)))
    return out, len(centres)


def subset(avatar: RiggedAvatar, faces: np.ndarray) -> RiggedAvatar:
    """The avatar restricted to `faces` (F', 3) (indices into its vertices), unreferenced vertices dropped and
    the largest connected component kept (`rig_transfer.largest_component`)."""
    _, f, kept = largest_component(avatar.rest_vertices.numpy(), faces)
    k = torch.from_numpy(kept)
    pick = lambda x: None if x is None else x[k]  # noqa: E731
    return RiggedAvatar(avatar.rest_vertices[k], torch.from_numpy(f), avatar.vertex_colors[k], avatar.weights[k],
                        avatar.rest_joints, pick(avatar.source_index), pick(avatar.body_distance))


def cut_webbing(avatar: RiggedAvatar, stretch: float = 1.5) -> tuple[RiggedAvatar, dict]:
    """Remove the webbing (`webbing_faces`), cap the cuts per part (`cap_holes`), keep the largest component.

    Args:
        avatar: rigged avatar (rest T-pose); stretch: > 1, see `webbing_faces`.
    Returns:
        (clean RiggedAvatar, figures: faces cut, cap vertices, arm–torso / leg–leg webbing faces before and after).
    Raises:
        ValueError: stretch ≤ 1, or nothing would be left.
    """
    web = webbing_faces(avatar, stretch)
    if web.all():
        raise ValueError("cut_webbing: every face is webbing; check the rig (weights) or raise `stretch`")
    before = webbing_counts(avatar, stretch)
    labels = part_labels(avatar.weights)
    out = subset(avatar, avatar.faces.numpy()[~web]) if web.any() else avatar
    caps = 0
    if web.any():
        out, caps = cap_holes(out, part_labels(out.weights) if out is not avatar else labels)
    after = webbing_counts(out, stretch)
    return out, {"webbing_faces_cut": int(web.sum()), "cap_vertices": caps,
                 "webbing_before": before, "webbing_after": after}


def webbing_counts(avatar: RiggedAvatar, stretch: float = 1.5) -> dict:
    """{'arm_torso': faces joining an arm to the torso that stretch > `stretch` × in a probe pose,
    'leg_leg': faces joining the two legs, 'arm_torso_any': faces with an arm and a torso vertex (incl. the
    genuine shoulder)}."""
    arm_torso, leg_leg = _joins(part_labels(avatar.weights), avatar.faces.numpy())
    s = edge_stretch(avatar)
    return {"arm_torso": int((arm_torso & (s > stretch)).sum()), "leg_leg": int(leg_leg.sum()),
            "arm_torso_any": int(arm_torso.sum())}


def non_manifold_edges(faces) -> int:
    """Number of undirected edges shared by more than two faces. faces: (F, 3) int."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return int((counts > 2).sum())


def self_intersections(vertices, faces) -> int:
    """Number of (edge, triangle) pairs where a mesh edge pierces a triangle it does not touch (a mesh
    self-intersection), found by casting every edge as a ray segment against the mesh (trimesh ray queries,
    Embree when installed). vertices: (V, 3) float metres; faces: (F, 3) int."""
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=False)
    edges = mesh.edges_unique
    a, b = mesh.vertices[edges[:, 0]], mesh.vertices[edges[:, 1]]
    length = np.linalg.norm(b - a, axis=1)
    ok = length > 1e-12
    edges, a, b, length = edges[ok], a[ok], b[ok], length[ok]
    loc, ray, tri = mesh.ray.intersects_location(a, (b - a) / length[:, None], multiple_hits=True)
    if len(ray) == 0:
        return 0
    t = np.linalg.norm(loc - a[ray], axis=1)
    touching = (mesh.faces[tri] == edges[ray, :1]).any(1) | (mesh.faces[tri] == edges[ray, 1:]).any(1)
    inside = (t > 1e-6 * length[ray]) & (t < length[ray] * (1 - 1e-6))
    return int(np.unique(np.stack([ray, tri], 1)[inside & ~touching], axis=0).shape[0])


def mesh_report(avatar: RiggedAvatar) -> dict:
    """{'non_manifold_edges', 'boundary_edges', 'self_intersections'} of the rest T-pose mesh (see above)."""
    f = avatar.faces.numpy()
    e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return {"non_manifold_edges": int((counts > 2).sum()), "boundary_edges": int((counts == 1).sum()),
            "self_intersections": self_intersections(avatar.rest_vertices.numpy(), f)}
