"""Pure-torch triangle rasteriser: projection, hard z-buffer, perspective-correct re-evaluation with autograd,
and soft (anti-aliased) silhouette coverage from screen-space contour edges.

Method (docs/design.md §1 render/, §6):
1. Project vertices with the OpenGL pinhole of `cameras.Cameras` (pixel centres at +0.5, v down).
2. Hard pass, no autograd: cull faces behind the near plane or degenerate on screen, enumerate candidate
   (face, pixel) pairs from each face's pixel bounding box (vectorised, chunked to bound memory), test
   the pixel centre with screen-space barycentrics (either winding: "fill_back"; barycentrics and 1/z are
   affine in the pixel position, so each face stores 12 coefficients relative to its box corner), and keep
   the nearest face per pixel with one `scatter_reduce(amin)` on a packed int64 key (float32 depth bits << 32
   | face index; ties go to the lower face index, so results are deterministic).
3. Differentiable pass: re-evaluate the winning face's barycentrics at each covered pixel centre with autograd
   and make them perspective-correct (1/z interpolates linearly in screen space).
4. Soft coverage: the projected silhouette is bounded by contour edges (mesh edges whose two faces have
   opposite screen orientation, or boundary edges). For pixels within `margin` pixels of a contour edge and
   near a coverage change, alpha = sigmoid(±distance(pixel centre, nearest contour edge) / sigma), + inside,
   (covered pixels only look at contour edges with empty pixels just beyond them, so fold contours inside
   the silhouette do not dim it),
   − outside (analytic anti-aliasing in the spirit of SoftRas, Liu et al. 2019, but calibrated: alpha > 0.5
   exactly on the hard coverage). Moving a silhouette vertex outward raises alpha outside the old silhouette,
   so gradients reach vertex positions; elsewhere alpha is the hard 0/1 coverage. Along straight edges the
   soft coverage sums to the true area; each convex corner adds O(sigma²) pixels.
Limitations: faces crossing the near plane are culled, not clipped; alpha has no gradient from occlusion
boundaries inside the silhouette (e.g. an arm in front of the torso) — only from the outer silhouette.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from ..cameras import Cameras

_INT64_MAX = torch.iinfo(torch.int64).max


def project(vertices: torch.Tensor, cameras: Cameras, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable pinhole projection (same maths as `Cameras.project`).

    Args:
        vertices: (B, V, 3) float world points in metres, one batch entry per camera.
        cameras: B cameras (OpenGL convention, horizontal FoV in degrees).
        height, width: image size in pixels.
    Returns:
        uv: (B, V, 2) continuous pixel coordinates (u right, v down, pixel centres at +0.5);
        depth: (B, V) distance along the viewing axis (−z_cam; positive in front of the camera).
    """
    return cameras.to(vertices.device).project(vertices, height, width)


def _float_key(x: torch.Tensor) -> torch.Tensor:
    """Non-negative float32 values → int64 keys with the same order, shifted into the high 32 bits."""
    return x.float().clamp_min(0).contiguous().view(torch.int32).to(torch.int64) << 32


def _bbox_pairs(x0: torch.Tensor, x1: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor,
                chunk: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Enumerate (item, dx, dy) for every pixel of every item's inclusive pixel box, in chunks.

    Args: x0, x1, y0, y1: (N,) int64 inclusive pixel-index bounds (empty boxes allowed). chunk: pairs/chunk.
    Yields: item (M,) int64 index into N; dx, dy (M,) int64 pixel offsets from the box corner (x0, y0).
    """
    w = (x1 - x0 + 1).clamp_min(0)
    counts = w * (y1 - y0 + 1).clamp_min(0)
    keep = torch.nonzero(counts > 0).squeeze(1)
    if keep.numel() == 0:
        return
    counts, w = _sel(counts, keep), _sel(w, keep)
    cum = counts.cumsum(0)
    start = cum - counts
    total = int(cum[-1])
    dev = x0.device
    for s in range(0, total, chunk):
        e = min(s + chunk, total)
        first = int(torch.searchsorted(cum, torch.tensor(s, device=dev), right=True))
        last = int(torch.searchsorted(cum, torch.tensor(e - 1, device=dev), right=True))
        items = torch.arange(first, last + 1, device=dev)
        n = cum[first:last + 1].clamp_max(e) - start[first:last + 1].clamp_min(s)
        k = torch.repeat_interleave(items, n, output_size=e - s)
        local = torch.arange(s, e, device=dev) - _sel(start, k)
        wk = _sel(w, k)
        dy = torch.div(local, wk, rounding_mode="floor")
        yield _sel(keep, k), local - dy * wk, dy


def _pixel_bounds(lo_u, hi_u, lo_v, hi_v, height, width, margin=0):
    """Continuous coordinate ranges → inclusive pixel-index ranges of the pixel centres inside (+margin)."""
    x0 = torch.ceil(lo_u - 0.5 - margin).clamp(0, width).long()
    x1 = torch.floor(hi_u - 0.5 + margin).clamp(-1, width - 1).long()
    y0 = torch.ceil(lo_v - 0.5 - margin).clamp(0, height).long()
    y1 = torch.floor(hi_v - 0.5 + margin).clamp(-1, height - 1).long()
    return x0, x1, y0, y1


def _sel(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx] along dim 0 for a 1-D int64 idx (index_select: several times faster than x[idx] on CPU)."""
    return x.index_select(0, idx)


def _area2(tri: torch.Tensor) -> torch.Tensor:
    """Twice the signed screen area (...,) of triangles tri (..., 3, 2) (positive = clockwise on screen)."""
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])


def _barycentric(tri: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space barycentrics of points p (N, 2) in triangles tri (N, 3, 2) → (N, 3), signed area·2 (N,)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def edge(s, e, q):
        return (e[:, 0] - s[:, 0]) * (q[:, 1] - s[:, 1]) - (e[:, 1] - s[:, 1]) * (q[:, 0] - s[:, 0])

    area = edge(a, b, c)
    safe = torch.where(area.abs() < 1e-12, torch.full_like(area, 1e-12), area)
    bary = torch.stack([edge(b, c, p), edge(c, a, p), edge(a, b, p)], -1) / safe[:, None]
    return bary, area


@dataclass
class Fragments:
    """Result of the hard rasterisation pass (no autograd).

    Attributes:
        face_index: (B, H, W) int64 index into `faces` of the nearest face covering each pixel centre, −1 = empty.
        face_valid: (B, F) bool, faces in front of the near plane and not degenerate on screen.
        face_sign: (B, F) int8 screen orientation: +1 counter-clockwise as seen (front-facing for outward-CCW
            meshes), −1 clockwise (back-facing), 0 culled/degenerate.
    """

    face_index: torch.Tensor
    face_valid: torch.Tensor
    face_sign: torch.Tensor


@torch.no_grad()
def rasterize(uv: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, height: int, width: int,
              near: float = 1e-2, max_pairs: int = 1 << 20) -> Fragments:
    """Hard z-buffer rasterisation of projected triangles (both windings rendered: "fill_back").

    Args:
        uv: (B, V, 2) pixel coordinates from `project`; depth: (B, V) view-axis depth (metres).
        faces: (F, 3) int64 vertex indices.
        height, width: image size; near: faces with any vertex at depth ≤ near are culled (no clipping).
        max_pairs: candidate (face, pixel) pairs evaluated per chunk (bounds memory: ~100 bytes/pair).
    Returns:
        `Fragments`; a pixel is covered when its centre lies inside a triangle (edges inclusive).
    """
    B = uv.shape[0]
    n_faces = faces.shape[0]
    tri = uv[:, faces]                                    # (B, F, 3, 2)
    tz = depth[:, faces]                                  # (B, F, 3)
    area = _area2(tri)
    valid = (tz > near).all(-1) & (area.abs() > 1e-10) & torch.isfinite(area)
    # Screen v points down, so a face that is counter-clockwise in the world-up image has negative `area`.
    sign = torch.where(valid, torch.where(area < 0, 1, -1), 0).to(torch.int8)
    lo, hi = tri.amin(-2), tri.amax(-2)
    x0, x1, y0, y1 = _pixel_bounds(lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1], height, width)
    # Candidates: valid faces whose box holds at least one pixel centre (most small faces hold none).
    cand = torch.nonzero((valid & (x1 >= x0) & (y1 >= y0)).reshape(-1)).squeeze(1)
    x0, x1, y0, y1 = (t.reshape(-1)[cand] for t in (x0, x1, y0, y1))
    # Watertight inside test: each face's vertices are sorted by index, so an edge shared by two faces has its
    # edge function evaluated by the same float operations in both (bitwise equal values, opposite sides):
    # a pixel centre on a shared edge is inside both faces and no pixel falls through a crack.
    fsorted = faces.sort(-1).values
    b_idx = cand // n_faces
    vid = _sel(fsorted, cand % n_faces)                   # (N, 3) sorted vertex ids
    uv_flat, iz_flat = uv.reshape(-1, 2), 1.0 / depth.reshape(-1)
    gid = (b_idx * uv.shape[1])[:, None] + vid
    table = torch.cat([_sel(uv_flat, gid.reshape(-1)).reshape(-1, 6), _sel(iz_flat, gid.reshape(-1)).reshape(-1, 3),
                       torch.stack([x0, y0], -1).to(uv.dtype) + 0.5], -1)          # (N, 11)
    base = (b_idx * height + y0) * width + x0
    face_id = cand % n_faces
    zbuf = torch.full((B * height * width,), _INT64_MAX, dtype=torch.int64, device=uv.device)
    for item, dx, dy in _bbox_pairs(x0, x1, y0, y1, max_pairs):
        t = table.index_select(0, item)
        px, py = t[:, 9] + dx, t[:, 10] + dy
        ax, ay, bx, by, cx, cy = t[:, 0], t[:, 1], t[:, 2], t[:, 3], t[:, 4], t[:, 5]
        e01 = (bx - ax) * (py - ay) - (by - ay) * (px - ax)           # opposite vertex 2
        e12 = (cx - bx) * (py - by) - (cy - by) * (px - bx)           # opposite vertex 0
        e02 = (cx - ax) * (py - ay) - (cy - ay) * (px - ax)           # opposite vertex 1 (reversed orientation)
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        w0, w1, w2 = e12 * area, -e02 * area, e01 * area
        inside = torch.nonzero((w0 >= 0) & (w1 >= 0) & (w2 >= 0)).squeeze(1)
        item, dx, dy, t = _sel(item, inside), _sel(dx, inside), _sel(dy, inside), _sel(t, inside)
        e01, e12, e02 = _sel(e01, inside), _sel(e12, inside), _sel(e02, inside)
        zinv = (e12 * t[:, 6] - e02 * t[:, 7] + e01 * t[:, 8]) / (e12 - e02 + e01)
        key = _float_key(1.0 / zinv) | _sel(face_id, item)
        zbuf.scatter_reduce_(0, _sel(base, item) + dy * width + dx, key, "amin")
    face_index = torch.where(zbuf == _INT64_MAX, -1, zbuf & 0xFFFFFFFF).reshape(B, height, width)
    return Fragments(face_index, valid, sign)


def interpolate_barycentric(uv: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, pix: torch.Tensor,
                            face: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable perspective-correct barycentrics of given faces at given pixel centres.

    Args:
        uv, depth: (B, V, 2), (B, V) from `project` (carry autograd).
        faces: (F, 3) int64; pix: (N,) int64 flat pixel index into B·H·W; face: (N,) int64 face per pixel.
    Returns:
        weights: (N, 3) perspective-correct barycentric weights (sum to 1), z: (N,) view-axis depth (metres).
    """
    b = pix // (height * width)
    rem = pix % (height * width)
    p = torch.stack([rem % width, rem // width], -1).to(uv.dtype) + 0.5
    vid = faces[face]                                     # (N, 3)
    tri = uv[b[:, None], vid]                             # (N, 3, 2)
    tz = depth[b[:, None], vid]                           # (N, 3)
    bary, _ = _barycentric(tri, p)
    w = bary / tz
    zinv = w.sum(-1, keepdim=True)
    return w / zinv, 1.0 / zinv[:, 0]


@dataclass
class Topology:
    """Edge topology of a triangle mesh (computed once per faces tensor).

    Attributes:
        edges: (E, 2) int64 unique undirected edges (sorted vertex pairs).
        half_edge_to_edge: (3F,) int64 edge of half-edge 3·f + k (k-th edge of face f: (v_k, v_{k+1})).
        edge_faces: (E, 2) int64 two faces sharing each edge (−1 where a boundary edge has only one;
            non-manifold edges list two of theirs).
    """

    edges: torch.Tensor
    half_edge_to_edge: torch.Tensor
    edge_faces: torch.Tensor


_TOPO_CACHE: dict = {}


def mesh_topology(faces: torch.Tensor) -> Topology:
    """Unique edges and half-edge → edge map of `faces` (F, 3) int64 (the last few results are cached and
    reused when a faces tensor with identical contents comes again)."""
    key = (tuple(faces.shape), str(faces.device))
    hit = _TOPO_CACHE.get(key)
    if hit is not None and torch.equal(hit[0], faces):
        return hit[1]
    he = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).sort(-1).values
    n = int(faces.max()) + 1 if faces.numel() else 1
    codes, inv = torch.unique(he[:, 0] * n + he[:, 1], return_inverse=True)
    order = torch.argsort(inv, stable=True)
    grouped = inv[order]
    first = torch.searchsorted(grouped, torch.arange(len(codes), device=faces.device))
    second = (first + 1).clamp_max(len(grouped) - 1)
    edge_faces = torch.stack([order[first] // 3, torch.where(grouped[second] == torch.arange(
        len(codes), device=faces.device), order[second] // 3, -1)], -1) if len(codes) else inv.new_zeros(0, 2)
    topo = Topology(torch.stack([torch.div(codes, n, rounding_mode="floor"), codes % n], -1), inv, edge_faces)
    if len(_TOPO_CACHE) >= 8:
        _TOPO_CACHE.pop(next(iter(_TOPO_CACHE)))
    _TOPO_CACHE[key] = (faces.clone(), topo)
    return topo


@dataclass
class EdgeHits:
    """Nearest screen-space contour edge of each band pixel (soft-silhouette pixels).

    Attributes:
        pix: (N,) int64 flat pixel indices (into B·H·W) of pixels that got a soft alpha.
        distance: (N,) float signed distance in pixels from the pixel centre to the silhouette
            (+ inside the hard coverage, − outside); carries autograd to vertex positions.
        t: (N,) float in [0, 1], position of the closest point along the edge (from its first vertex).
        edge_vertices: (N, 2) int64 the edge's vertex indices.
        face: (N,) int64 a face adjacent to the edge, front-facing when there is one.
    """

    pix: torch.Tensor
    distance: torch.Tensor
    t: torch.Tensor
    edge_vertices: torch.Tensor
    face: torch.Tensor


def contour_edge_hits(uv: torch.Tensor, faces: torch.Tensor, frags: Fragments, height: int, width: int,
                      margin: int, max_pairs: int = 1 << 20) -> EdgeHits:
    """Signed distances of pixels near the silhouette to the nearest screen-space contour edge.

    Contour edges: edges whose adjacent valid faces have both screen orientations, or exactly one valid face.
    Only pixels within `margin` pixels (Euclidean) of a contour edge and near a coverage change count.

    Args:
        uv: (B, V, 2) projected vertices (with autograd); faces: (F, 3); frags: from `rasterize`.
        margin: band half-width in pixels (int ≥ 1).
    Returns:
        `EdgeHits` for every band pixel that has a contour edge within `margin` pixels.
    """
    B = uv.shape[0]
    n_faces = faces.shape[0]
    topo = mesh_topology(faces)
    E = topo.edges.shape[0]
    covered = frags.face_index >= 0
    with torch.no_grad():
        # Band: pixels with a pixel of the other coverage state within margin + 1 (square dilation), a
        # superset of the pixels within `margin` of the silhouette (the nearest boundary point has a pixel
        # centre of the other state within one pixel of it).
        near_cov = dilate_mask(covered, margin + 1)
        near_unc = dilate_mask(~covered, margin + 1)
        band = torch.where(covered, near_unc, near_cov).reshape(-1)
        # Contour edges per camera: count front (+1) and back (−1) facing valid faces around each edge.
        sign = frags.face_sign.reshape(B, n_faces).repeat_interleave(3, dim=1)      # (B, 3F)
        code = torch.where(sign > 0, 1, torch.where(sign < 0, 1 << 20, 0))
        counts = torch.zeros(B, E, dtype=torch.int64, device=uv.device).index_add_(1, topo.half_edge_to_edge, code)
        pos, neg = counts & 0xFFFFF, counts >> 20
        contour = ((pos > 0) & (neg > 0)) | (pos + neg == 1)
        cb, ce = torch.nonzero(contour, as_tuple=True)                                  # (C,)
        ends = uv.detach()[cb[:, None], topo.edges[ce]]                                # (C, 2, 2)
        lo, hi = ends.amin(1), ends.amax(1)
        x0, x1, y0, y1 = _pixel_bounds(lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1], height, width, margin)
        best = torch.full((B * height * width,), _INT64_MAX, dtype=torch.int64, device=uv.device)
        # Silhouette test for covered pixels: a contour edge bounds the silhouette only if the pixels just
        # beyond it (away from its faces) are empty; fold contours inside the silhouette do not count.
        f0, f1 = topo.edge_faces[ce].unbind(-1)
        fv = torch.where(frags.face_sign[cb, f0] != 0, f0, f1.clamp_min(0))
        third = faces[fv].sum(-1) - topo.edges[ce].sum(-1)
        c = uv.detach()[cb, third]
        along = ends[:, 1] - ends[:, 0]
        normal = torch.nn.functional.normalize(torch.stack([along[:, 1], -along[:, 0]], -1), dim=-1)
        normal = torch.where(((c - ends[:, 0]) * normal).sum(-1, keepdim=True) > 0, -normal, normal)
        mid = ends.mean(1)
        sil = torch.zeros(len(cb), dtype=torch.bool, device=uv.device)
        flat_cov = covered.reshape(-1)
        for step in (0.6, 1.2, 1.8):
            q = torch.floor(mid + step * normal).long()
            inside_img = (q[:, 0] >= 0) & (q[:, 0] < width) & (q[:, 1] >= 0) & (q[:, 1] < height)
            qi = (cb * height + q[:, 1].clamp(0, height - 1)) * width + q[:, 0].clamp(0, width - 1)
            sil |= ~inside_img | ~_sel(flat_cov, qi)
        corner = torch.stack([x0, y0], -1).to(ends.dtype) + 0.5
        rel = (ends - corner[:, None]).reshape(-1, 4)                                    # (C, 4) a, e
        base = (cb * height + y0) * width + x0
        for item, dx, dy in _bbox_pairs(x0, x1, y0, y1, max_pairs):
            pix = _sel(base, item) + dy * width + dx
            keep = torch.nonzero(_sel(band, pix) & (_sel(sil, item) | ~_sel(flat_cov, pix))).squeeze(1)
            item, dx, dy, pix = _sel(item, keep), _sel(dx, keep), _sel(dy, keep), _sel(pix, keep)
            t = rel.index_select(0, item)
            d2 = _segment_distance2(t[:, 0:2], t[:, 2:4], torch.stack([dx, dy], -1).to(t.dtype))[0]
            ok = torch.nonzero(d2 <= float(margin) ** 2).squeeze(1)
            best.scatter_reduce_(0, _sel(pix, ok), _float_key(_sel(d2, ok)) | _sel(item, ok), "amin")
        pix = torch.nonzero(best != _INT64_MAX).squeeze(1)
        item = best[pix] & 0xFFFFFFFF
    b = cb[item]
    ev = topo.edges[ce[item]]
    ends = uv[b[:, None], ev]                                                           # with autograd
    rem = pix % (height * width)
    p = torch.stack([rem % width, rem // width], -1).to(uv.dtype) + 0.5
    d2, t = _segment_distance2(ends[:, 0], ends[:, 1], p)
    dist = torch.sqrt(d2 + 1e-12)
    signed = torch.where(covered.reshape(-1)[pix], dist, -dist)
    # Adjacent face to take the normal from: the front-facing one if any, else a valid one.
    f0, f1 = topo.edge_faces[ce[item]].unbind(-1)
    s0 = frags.face_sign[b, f0]
    s1 = torch.where(f1 >= 0, frags.face_sign[b, f1.clamp_min(0)], torch.zeros_like(s0))
    face = torch.where((s0 > 0) | ((s1 <= 0) & (s0 != 0)), f0, f1.clamp_min(0))
    return EdgeHits(pix, signed, t, ev, face)


def dilate_mask(mask: torch.Tensor, r: int) -> torch.Tensor:
    """Binary dilation of a bool mask (..., H, W) by a (2r+1)² square (= r iterations of a 3×3, 8-connected
    structuring element); outside the image counts as off. Separable shifted ORs (fast on CPU). Returns a new
    bool tensor of the same shape."""
    mask = mask.bool()
    out = mask.clone()
    for k in range(1, r + 1):
        out[..., :, k:] |= mask[..., :, :-k]
        out[..., :, :-k] |= mask[..., :, k:]
    rows = out.clone()
    for k in range(1, r + 1):
        out[..., k:, :] |= rows[..., :-k, :]
        out[..., :-k, :] |= rows[..., k:, :]
    return out


def _segment_distance2(a: torch.Tensor, b: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distance (N,) from points p (N, 2) to segments a–b (N, 2), and the clamped parameter t (N,)."""
    ab = b - a
    t = ((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    t = t.clamp(0.0, 1.0)
    q = a + t[:, None] * ab
    return ((p - q) ** 2).sum(-1), t
