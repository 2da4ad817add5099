"""Map any humanoid BVH skeleton onto the 22-joint skeleton by joint names and the hierarchy (docs/method.md,
Motion priors, "Retargeting").

`map_skeleton(names, parents, rest, frames)` finds, for each of our 22 joints (SMPL order), the BVH point that
plays its role — a joint, an end site or a weighted mix of joints — and, for our five leaf joints (head, wrists,
toes), the BVH joint whose rotation carries that end segment and the end point of the segment. Steps:

1. **Names.** Each BVH name is normalised: namespace (`mixamorig:`), rig prefixes (`CC_Base_`, `Bip01 `, `DEF-`),
   case, camelCase and separators; a side (`Left`/`L`/`l`/`_l`/`.R`/`right`…) is split off, including the
   one-letter prefixes of the CMU ASF names (`lfemur`, `rhumerus`). The rest is classed by synonyms (`_CLASSES`):
   hand/wrist, foot/ankle, toe, head, eye, thumb, finger, twist/roll/share helper bones.
2. **Anchors.** Per side the hand (`hand`/`wrist`) and the foot (`foot`/`ankle`) are the shallowest joints of that
   class and side; the head is the shallowest `head` joint. Side tokens missing, the side comes from the rest
   geometry (the body's left = up × the toes' forward direction).
3. **Chains** (topology, not names, so that "LeftShoulder" may be a clavicle or an upper arm): the leg chain runs
   from the joint where legs and spine meet to the foot, the arm chain from the chest (the joint where both
   arms and the head branch) to the hand; joints coincident with their predecessor in the rest pose (CMU's
   zero-length `LHipJoint`, `LeftShoulder`) and twist/helper bones are dropped; the last three joints are hip,
   knee, ankle and shoulder, elbow, wrist; the joint before the shoulder is the collar, or, when the clavicle
   starts on the spine, a point on the clavicle at our skeleton's lateral proportion. The neck is the first
   joint after the chest towards the head.
4. **Torso.** Pelvis, spine1 and spine2 are placed along the source's polyline from the hip centre up the spine
   to the chest at the arc-length fractions of our rest skeleton; spine3 is the chest. Points between two joints
   are mixes of a joint and its child, so they are rigid on the parent's bone.
5. **Units** from the rest leg length (hip → knee → ankle): the unit in `UNITS` that makes it closest to 0.85 m
   (metres, centimetres, millimetres, inches, feet, or the CMU ASF unit of 1/0.45 inch).
6. **Up axis**: y (the BVH convention) unless the mean hip-centre → chest direction over the frames has a y
   component below 0.5; then the world axis nearest to it (z-up files).

Users override any of it with a map (`joint_map`: a dict or a JSON file, `load_joint_map`): `{"joints": {our
joint: BVH joint name or "end:<BVH joint>"}, "unit_scale": metres per BVH unit, "up_axis": "y" | "z" | "-x" …}`
(a flat {our joint: BVH name} dict also works). `SkeletonMapError` lists what could not be found and how to fix it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .. import skeleton

LEAVES = ("head", "left_wrist", "right_wrist", "left_foot", "right_foot")
# Metres per BVH unit; the one that gives a leg (hip → ankle) nearest 0.85 m wins.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "foot": 0.3048, "cmu_asf": 0.0254 / 0.45}
TYPICAL_LEG_M = 0.85
# Labels of well-known skeletons (reporting only: the mapping itself is automatic): every listed joint present.
KNOWN_SKELETONS = {
    "avatarclip22": set(skeleton.JOINT_NAMES),
    "iclone_cc3": {"CC_Base_Pelvis", "CC_Base_L_Thigh", "CC_Base_L_Hand"},
    "cgspeed_daz": {"hip", "lThigh", "lShldr", "lHand"},
    "cmu31": {"Hips", "LHipJoint", "LeftUpLeg", "LowerBack", "Neck1", "LeftFingerBase"},
    "cmu31_asfnames": {"hip", "lhipjoint", "lfemur", "lhumerus", "lradius"},
    "cgspeed_max": {"Hips", "LHipJoint", "LeftHip", "LeftCollar", "LeftWrist"},
    "mixamo": {"mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:LeftHand"},
}
_PREFIX_TOKENS = {"mixamorig", "cc", "base", "bip", "bip01", "bip001", "def", "org", "mch", "rig", "armature",
                  "character", "skeleton", "sk", "b", "bone", "jnt", "j"}
# Class of a normalised name (side removed, tokens joined), first match wins.
_CLASSES = (
    ("twist", r"twist|roll|share|helper|corrective|adjust|bend"),
    ("thumb", r"thumb"),
    ("finger", r"index|middle|mid\d|ring|pinky|little|finger|carpal"),
    ("eye", r"eye"),
    ("toe", r"toe|ball"),
    ("hand", r"hand|wrist"),
    ("foot", r"foot|ankle"),
    ("head", r"head"),
)
_PARTS = re.compile(r"(hipjoint|hip|femur|thigh|upleg|leg|tibia|shin|calf|knee|foot|ankle|toes?|toebase|clavicle|"
                    r"collar|shoulder|shldr|humerus|upperarm|arm|radius|forearm|elbow|wrist|hand|fingers?|thumb|"
                    r"buttock|eye)\d*$")


class SkeletonMapError(ValueError):
    """A BVH skeleton could not be mapped onto the 22-joint skeleton (the message lists what is missing)."""


@dataclass
class SkeletonMap:
    """How the 22 joints are read from one BVH skeleton.

    Attributes:
        points: our joint name → BVH point, a tuple of (kind, BVH joint index, weight) with kind "joint" (the
            joint's position) or "end" (its end site); the point is the weighted sum.
        bodies: our leaf joint (head, wrists, toes) → index of the BVH joint whose world rotation moves that end
            segment (its orientation is transferred, see `bvh_retarget.solve_rotations`).
        ends: our leaf joint → BVH point at the far end of its segment (finger bases, head top or eyes, toe tip),
            where the source has one; used to check end-segment directions.
        unit_scale: metres per BVH unit; unit: its name in `UNITS` or "given".
        up: (3,) unit BVH world axis that is up; up_rotation: (3, 3) rotation taking it to +y (avatar frame).
        skeleton_type: a `KNOWN_SKELETONS` label or "generic".
        sources: our joint → the BVH joint name(s) used (for reports).
    """

    points: dict[str, tuple]
    bodies: dict[str, int]
    ends: dict[str, tuple]
    unit_scale: float
    unit: str
    up: np.ndarray
    up_rotation: np.ndarray
    skeleton_type: str
    sources: dict[str, str] = field(default_factory=dict)

    def evaluate(self, positions: np.ndarray, end_sites: np.ndarray, which: str = "points") -> np.ndarray:
        """(F, N, 3) positions of `points` (N = 22, SMPL order) or of `ends` (N = 5, `LEAVES` order, NaN where the
        source has no end point), in BVH units and the BVH world frame, from (F, J, 3) BVH positions/end sites."""
        spec = self.points if which == "points" else self.ends
        names = skeleton.JOINT_NAMES if which == "points" else LEAVES
        out = np.full((positions.shape[0], len(names), 3), np.nan)
        for k, name in enumerate(names):
            if name in spec:
                out[:, k] = sum(w * (positions if kind == "joint" else end_sites)[:, i] for kind, i, w in spec[name])
        return out


def load_joint_map(joint_map: dict | str | os.PathLike | None) -> dict:
    """A user joint map as a dict {"joints": {...}, "unit_scale": …, "up_axis": …} from a dict or a JSON file.

    A flat dict whose keys are our joint names is taken as {"joints": it}. Raises SkeletonMapError on an unknown
    key, a missing file or invalid JSON."""
    if joint_map is None or joint_map == "" or joint_map == {}:
        return {}
    if isinstance(joint_map, (str, os.PathLike)):
        try:
            with open(joint_map, encoding="utf-8") as f:
                joint_map = json.load(f)
        except FileNotFoundError:
            raise SkeletonMapError(f"joint map file not found: {joint_map}") from None
        except json.JSONDecodeError as e:
            raise SkeletonMapError(f"joint map {joint_map} is not valid JSON ({e}); expected "
                                   f'{{"joints": {{"left_wrist": "<BVH joint>", ...}}}}') from None
    if not isinstance(joint_map, dict):
        raise SkeletonMapError(f"joint map must be a dict or a JSON file, got {type(joint_map).__name__}")
    if joint_map and set(joint_map) <= set(skeleton.JOINT_NAMES):
        joint_map = {"joints": joint_map}
    bad = set(joint_map) - {"joints", "unit_scale", "up_axis"}
    if bad:
        raise SkeletonMapError(f"unknown joint map keys {sorted(bad)}: use 'joints', 'unit_scale', 'up_axis'")
    bad = set(joint_map.get("joints", {})) - set(skeleton.JOINT_NAMES)
    if bad:
        raise SkeletonMapError(f"joint map names unknown joints {sorted(bad)}; ours are {list(skeleton.JOINT_NAMES)}")
    return joint_map


def parse_name(name: str) -> tuple[str | None, str, str]:
    """(side 'L' | 'R' | None, normalised part string, class) of a BVH joint name.

    Examples: 'mixamorig:LeftUpLeg' → ('L', 'upleg', 'other'); 'CC_Base_R_Hand' → ('R', 'hand', 'hand');
    'lfemur' → ('L', 'femur', 'other'); 'Bip01 L Foot' → ('L', 'foot', 'foot'); 'thigh_l' → ('L', 'thigh', …)."""
    base = re.split(r"[:|]", name)[-1]
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", base)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", s)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", s.lower()) if t]
    while len(tokens) > 1 and tokens[0] in _PREFIX_TOKENS:
        tokens = tokens[1:]
    side = None
    for pos in (0, -1):
        if len(tokens) > 1 and tokens[pos] in ("l", "left", "r", "right"):
            side = "L" if tokens[pos][0] == "l" else "R"
            tokens.pop(pos)
            break
    if side is None and tokens and tokens[0][:1] in "lr" and _PARTS.match(tokens[0][1:]):
        side, tokens[0] = ("L" if tokens[0][0] == "l" else "R"), tokens[0][1:]  # CMU ASF: lfemur, rhumerus
    part = "".join(tokens)
    cls = next((c for c, rx in _CLASSES if re.search(rx, part)), "other")
    return side, part, cls


# ----------------------------------------------------------------------------------------------- the mapper
def map_skeleton(names: list[str], parents: list[int], rest: np.ndarray, rest_end: np.ndarray,
                 frames: np.ndarray, joint_map: dict | str | os.PathLike | None = None,
                 our_rest: np.ndarray | None = None) -> SkeletonMap:
    """Map a BVH skeleton onto the 22 joints (module docstring: names, anchors, chains, torso, units, up axis).

    Args:
        names, parents: BVH joints in file order and their parent indices (-1 = root).
        rest: (J, 3) rest-pose world positions (OFFSETs, zero rotations), BVH units; rest_end: (J, 3) end sites.
        frames: (F, J, 3) world positions of (some of) the clip's frames, BVH units (for the up axis).
        joint_map: user overrides (`load_joint_map`).
        our_rest: (22, 3) our rest joints in metres (torso proportions; default `DEFAULT_REST_JOINTS`).
    Returns:
        `SkeletonMap`.
    Raises:
        SkeletonMapError: listing our joints that could not be found, the BVH joints seen and how to give a map.
    """
    from .bvh_retarget import DEFAULT_REST_JOINTS

    user = load_joint_map(joint_map)
    pins = dict(user.get("joints", {}))
    ours = np.asarray(DEFAULT_REST_JOINTS if our_rest is None else our_rest, dtype=np.float64)
    index = {n: i for i, n in enumerate(names)}
    bad = {k: v for k, v in pins.items() if v.removeprefix("end:") not in index}
    if bad:
        raise SkeletonMapError(f"joint map names BVH joints that are not in the file: {bad}; the file's joints "
                               f"are {names}")
    parsed = [parse_name(n) for n in names]
    children: list[list[int]] = [[] for _ in names]
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)
    depth = [0] * len(names)
    for i, p in enumerate(parents):
        depth[i] = 0 if p < 0 else depth[p] + 1
    bone = np.linalg.norm(rest - rest[np.maximum(np.asarray(parents), 0)], axis=-1)

    def path_from_root(j: int) -> list[int]:
        out = []
        while j >= 0:
            out.append(j)
            j = parents[j]
        return out[::-1]

    def anchor(cls: str, side: str | None, our: str) -> int | None:
        if our in pins and not pins[our].startswith("end:"):
            return index[pins[our]]
        cands = [i for i, (s, _, c) in enumerate(parsed) if c == cls and (side is None or s == side)]
        return min(cands, key=lambda i: depth[i]) if cands else None

    missing: list[str] = []
    hand = {s: anchor("hand", s, f"{w}_wrist") for s, w in (("L", "left"), ("R", "right"))}
    foot = {s: anchor("foot", s, f"{w}_ankle") for s, w in (("L", "left"), ("R", "right"))}
    head = anchor("head", None, "head")
    # No side tokens: take the two hand/foot joints and sort them by the rest geometry below.
    for anchors, cls in ((hand, "hand"), (foot, "foot")):
        if anchors["L"] is None and anchors["R"] is None:
            cands = sorted((i for i, (_, _, c) in enumerate(parsed) if c == cls), key=lambda i: depth[i])
            if len(cands) >= 2 and depth[cands[0]] == depth[cands[1]]:
                anchors["L"], anchors["R"] = cands[0], cands[1]
                anchors["unsided"] = True
    for key, val in (("left_wrist", hand["L"]), ("right_wrist", hand["R"]), ("left_ankle", foot["L"]),
                     ("right_ankle", foot["R"]), ("head", head)):
        if val is None:
            missing.append(key)
    if missing:
        raise _error(missing, names, "no joint named like a hand/wrist, foot/ankle or head with a side")

    paths = {k: path_from_root(v) for k, v in (("lh", hand["L"]), ("rh", hand["R"]), ("lf", foot["L"]),
                                                ("rf", foot["R"]), ("head", head))}

    def lca(*ps: list[int]) -> int:
        common = None
        for nodes in zip(*ps):
            if len(set(nodes)) != 1:
                break
            common = nodes[0]
        if common is None:
            raise _error(["pelvis"], names, "the arms, legs and head do not share a root joint")
        return common

    chest = lca(paths["lh"], paths["rh"], paths["head"])
    hips_root = lca(paths["lf"], paths["rf"], paths["head"])
    leg_len = float(np.mean([_chain_length(p, bone, parsed, 3) for p in (paths["lf"], paths["rf"])]))
    eps = 1e-3 * max(leg_len, 1e-9)

    def chain(path: list[int], start: int, skip_twist: bool = True) -> list[int]:
        """Joints of `path` from `start` on, twist bones and joints coincident with their predecessor dropped."""
        out = []
        for j in path[path.index(start):]:
            if out and (np.linalg.norm(rest[j] - rest[out[-1]]) < eps or (skip_twist and parsed[j][2] == "twist")):
                continue
            out.append(j)
        return out

    points: dict[str, tuple] = {}
    src: dict[str, str] = {}

    def put(our: str, *terms: tuple[str, int, float]):
        points[our] = tuple(terms)
        src[our] = " + ".join(f"{w:.2f}·{'end:' if k == 'end' else ''}{names[i]}" if abs(w - 1) > 1e-9 else
                              f"{'end:' if k == 'end' else ''}{names[i]}" for k, i, w in terms)

    for side, w in (("L", "left"), ("R", "right")):
        leg = chain(paths["lf" if side == "L" else "rf"], hips_root)
        arm = chain(paths["lh" if side == "L" else "rh"], chest)
        if len(leg) < 4:
            missing += [f"{w}_hip", f"{w}_knee"]
        else:
            put(f"{w}_hip", ("joint", leg[-3], 1.0))
            put(f"{w}_knee", ("joint", leg[-2], 1.0))
            put(f"{w}_ankle", ("joint", leg[-1], 1.0))
        if len(arm) < 4:
            missing += [f"{w}_collar", f"{w}_shoulder", f"{w}_elbow"]
        else:
            put(f"{w}_shoulder", ("joint", arm[-3], 1.0))
            put(f"{w}_elbow", ("joint", arm[-2], 1.0))
            put(f"{w}_wrist", ("joint", arm[-1], 1.0))
    if missing:
        raise _error(missing, names, "the limb chains are too short (fewer than three distinct joints)")

    J = {n: points[n][0][1] for n in points}  # our joint → its single BVH joint (limbs)
    # Sides from the rest geometry when the names carry none: left = up × forward (the toes point forward).
    hip_c = 0.5 * (rest[J["left_hip"]] + rest[J["right_hip"]])
    up_rest = _unit(rest[chest] - hip_c)
    toe_of = {s: _toe(foot[s], children, parsed, rest, eps) for s in ("L", "R")}
    if foot.get("unsided") or hand.get("unsided"):
        fwd = sum((rest_end[foot[s]] if toe_of[s] is None else rest[toe_of[s]]) - rest[foot[s]] for s in ("L", "R"))
        left = np.cross(up_rest, fwd)
        if _swap_if_needed(points, src, left, rest, "hip", foot.get("unsided")):
            paths["lf"], paths["rf"] = paths["rf"], paths["lf"]
        if _swap_if_needed(points, src, left, rest, "shoulder", hand.get("unsided")):
            paths["lh"], paths["rh"] = paths["rh"], paths["lh"]
        J = {n: points[n][0][1] for n in points}
        hip_c = 0.5 * (rest[J["left_hip"]] + rest[J["right_hip"]])
        foot = {"L": J["left_ankle"], "R": J["right_ankle"]}
        toe_of = {s: _toe(foot[s], children, parsed, rest, eps) for s in ("L", "R")}

    # Toes: the foot's toe joint, else its end site.
    for s, w in (("L", "left"), ("R", "right")):
        t = toe_of[s]
        if t is not None:
            put(f"{w}_foot", ("joint", t, 1.0))
        elif np.linalg.norm(rest_end[foot[s]] - rest[foot[s]]) > eps:
            put(f"{w}_foot", ("end", foot[s], 1.0))
        else:
            missing.append(f"{w}_foot")

    # Collars: the joint before the shoulder, moved out along the clavicle to our lateral proportion.
    for s, w in (("L", "left"), ("R", "right")):
        arm = chain(paths["lh" if s == "L" else "rh"], chest)
        sh = arm[-3]
        base = arm[-4]
        lat_axis = rest[J["left_shoulder"]] - rest[J["right_shoulder"]]
        lat_axis = lat_axis - up_rest * (lat_axis @ up_rest)
        lat_axis = _unit(lat_axis)

        def lateral(p):
            return abs((p - rest[chest]) @ lat_axis)

        ours_frac = abs((ours[skeleton.JOINT_INDEX[f"{w}_collar"]] - ours[9])[0]) / max(
            abs((ours[skeleton.JOINT_INDEX[f"{w}_shoulder"]] - ours[9])[0]), 1e-9)
        l_base, l_sh = lateral(rest[base]), lateral(rest[sh])
        if l_sh > eps and l_base / l_sh < ours_frac:
            t = float(np.clip((ours_frac * l_sh - l_base) / max(l_sh - l_base, 1e-9), 0.0, 1.0))
            put(f"{w}_collar", ("joint", base, 1.0 - t), ("joint", sh, t))
        else:
            put(f"{w}_collar", ("joint", base, 1.0))

    # Neck and head.
    head_chain = chain(paths["head"], chest, skip_twist=False)
    put("head", ("joint", head, 1.0))
    if len(head_chain) >= 3:
        put("neck", ("joint", head_chain[1], 1.0))
    else:
        f = _frac(ours, (9, 12, 15))[1]
        put("neck", ("joint", chest, 1.0 - f), ("joint", head, f))

    # Torso: the polyline hip centre → spine joints → chest → neck. spine3 goes where the collars rise from it
    # as steeply as ours do (our collars sit high above spine3), between the lower spine and the neck; pelvis,
    # spine1 and spine2 at our rest arc-length fractions of hip centre → spine3.
    hc = 0.5 * (ours[1] + ours[2])
    spine = [j for j in chain(paths["head"][:paths["head"].index(chest) + 1], hips_root, skip_twist=False)
             if (rest[j] - hip_c) @ up_rest > eps]
    if not spine or spine[-1] != chest:
        spine.append(chest)
    neck_j = points["neck"][-1][1]
    verts = [("hips", -1)] + [("joint", j) for j in spine] + [("joint", neck_j)]
    vpos = np.stack([hip_c] + [rest[j] for j in spine] + [_point(points["neck"], rest)])
    seg = np.linalg.norm(np.diff(vpos, axis=0), axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    height = (vpos - hip_c) @ up_rest

    def at(arc: float) -> tuple:
        k = int(np.clip(np.searchsorted(cum, arc, side="right") - 1, 0, len(seg) - 1))
        t = float(np.clip((arc - cum[k]) / max(seg[k], 1e-12), 0.0, 1.0))
        terms: list[tuple[str, int, float]] = []
        for (kind, j), wgt in ((verts[k], 1.0 - t), (verts[k + 1], t)):
            if wgt < 1e-9:
                continue
            if kind == "hips":
                terms += [("joint", J["left_hip"], 0.5 * wgt), ("joint", J["right_hip"], 0.5 * wgt)]
            else:
                terms.append(("joint", j, wgt))
        return tuple(terms)

    col = 0.5 * (_point(points["left_collar"], rest) + _point(points["right_collar"], rest))
    col_l = 0.5 * np.linalg.norm(_point(points["left_collar"], rest) - _point(points["right_collar"], rest))
    our_up = _unit(ours[9] - hc)
    slope = (0.5 * (ours[13] + ours[14]) - ours[9]) @ our_up / max(0.5 * np.linalg.norm(ours[13] - ours[14]), 1e-9)
    want = float(np.clip((col - hip_c) @ up_rest - slope * col_l, 0.6 * height[-2], height[-2] + 0.8 * (height[-1] - height[-2])))
    k = int(np.clip(np.searchsorted(height, want) - 1, 0, len(seg) - 1))  # heights rise along the polyline
    arc3 = cum[k] + seg[k] * float(np.clip((want - height[k]) / max(height[k + 1] - height[k], 1e-12), 0, 1))
    put("spine3", *at(arc3))
    our_poly = np.stack([hc, ours[0], ours[3], ours[6], ours[9]])
    for our, f in zip(("pelvis", "spine1", "spine2"), _frac(our_poly, range(5))[1:4]):
        put(our, *at(f * arc3))

    # User pins win.
    for our, name in pins.items():
        put(our, ("end", index[name[4:]], 1.0) if name.startswith("end:") else ("joint", index[name], 1.0))
    missing = [n for n in skeleton.JOINT_NAMES if n not in points]
    if missing:
        raise _error(missing, names, "these joints have no counterpart")

    # Leaf end segments: the BVH joint whose rotation moves the segment and the segment's far end point.
    bodies, ends = {}, {}
    for our in LEAVES:
        j = points[our][0][1] if points[our][0][0] == "joint" else None
        if our.endswith("foot") and j is None:  # toe = the foot's end site: the foot body carries it
            bodies[our] = points[our][0][1]
            continue
        body = _pass_through(j, children, parsed, rest, eps)
        bodies[our] = body
        tip = _end_point(body, children, parsed, rest, rest_end, eps, head_mode=(our == "head"))
        if tip is not None:
            ends[our] = tip

    # Units and up axis.
    if "unit_scale" in user:
        unit_scale, unit = float(user["unit_scale"]), "given"
        if not unit_scale > 0:
            raise SkeletonMapError(f"unit_scale must be > 0 metres per BVH unit, got {user['unit_scale']}")
    else:
        unit = min(UNITS, key=lambda u: abs(np.log(max(leg_len, 1e-12) * UNITS[u] / TYPICAL_LEG_M)))
        unit_scale = UNITS[unit]
    if "up_axis" in user:
        up = _axis(user["up_axis"])
    else:
        hip_f = 0.5 * (frames[:, J["left_hip"]] + frames[:, J["right_hip"]])
        d = frames[:, chest] - hip_f
        d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
        m = d.mean(0)
        # BVH files are y-up by convention: another axis only when the torso is mostly not along y (a climbing
        # or lying excerpt leans, a z-up file has m ≈ (0, 0, 1)).
        a = 1 if abs(m[1]) >= 0.5 else int(np.argmax(np.abs(m)))
        up = np.zeros(3)
        up[a] = np.sign(m[a]) or 1.0
    stype = next((k for k, need in KNOWN_SKELETONS.items() if need <= set(names)), "generic")
    return SkeletonMap(points, bodies, ends, unit_scale, unit, up, _rotation_to_y(up), stype, src)


# ----------------------------------------------------------------------------------------------- helpers
def _error(missing: list[str], names: list[str], why: str) -> SkeletonMapError:
    return SkeletonMapError(
        f"cannot map this BVH skeleton onto the 22-joint skeleton ({why}): could not find {missing}. "
        f"BVH joints in the file: {names}. Give the missing joints with a joint map: "
        f"retarget_bvh(path, joint_map={{'left_wrist': '<BVH joint>', ...}}), or on the command line "
        f"--set motion.joint_map=map.json with map.json = "
        f'{{"joints": {{"<our joint>": "<BVH joint name>" or "end:<BVH joint>"}}, "unit_scale": <metres per '
        f'BVH unit, optional>, "up_axis": "y" or "z" (optional)}}; our joints: {list(skeleton.JOINT_NAMES)}.')


def _point(terms: tuple, rest: np.ndarray) -> np.ndarray:
    return sum(w * rest[i] for _, i, w in terms)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _frac(P: np.ndarray, idx) -> np.ndarray:
    """Arc-length fractions along the polyline through rows `idx` of P."""
    pts = P[list(idx)]
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    return cum / max(cum[-1], 1e-12)


def _chain_length(path: list[int], bone: np.ndarray, parsed, n: int) -> float:
    """Rest length of the last n distinct bones into the foot: thigh + shin (n = 3 joints → 2 bones)."""
    lengths = [float(bone[j]) for j in path[1:] if parsed[j][2] != "twist" and bone[j] > 0]
    return float(sum(lengths[-(n - 1):]))


def _toe(foot: int, children, parsed, rest, eps) -> int | None:
    kids = [c for c in children[foot] if parsed[c][2] != "twist" and np.linalg.norm(rest[c] - rest[foot]) > eps]
    named = [c for c in kids if parsed[c][2] == "toe"]
    return (named or kids or [None])[0]


def _swap_if_needed(points, src, left, rest, part, unsided) -> bool:
    """Swap the left and right legs ("hip") or arms ("shoulder") when the one called left lies on the body's right
    (`left`: the body's left direction in the rest pose). Returns whether it swapped."""
    if not unsided:
        return False
    names = {"hip": ("hip", "knee", "ankle"), "shoulder": ("shoulder", "elbow", "wrist")}[part]
    if (rest[points[f"left_{part}"][0][1]] - rest[points[f"right_{part}"][0][1]]) @ left >= 0:
        return False
    for n in names:
        points[f"left_{n}"], points[f"right_{n}"] = points[f"right_{n}"], points[f"left_{n}"]
        src[f"left_{n}"], src[f"right_{n}"] = src[f"right_{n}"], src[f"left_{n}"]
    return True


def _pass_through(j: int, children, parsed, rest, eps) -> int:
    """Descend from j while it has exactly one non-thumb child at zero distance (CMU: LeftHand → LeftFingerBase)."""
    while True:
        kids = [c for c in children[j] if parsed[c][2] not in ("thumb", "twist")]
        if len(kids) == 1 and np.linalg.norm(rest[kids[0]] - rest[j]) < eps:
            j = kids[0]
        else:
            return j


def _end_point(body: int, children, parsed, rest, rest_end, eps, head_mode: bool) -> tuple | None:
    """Far end of a leaf segment: end site; for the head the eyes; else the mean of the non-thumb, non-twist
    children at a distance (finger bases, toe tips, a HeadTop_End joint)."""
    if not children[body]:
        return (("end", body, 1.0),) if np.linalg.norm(rest_end[body] - rest[body]) > eps else None
    if head_mode:
        eyes, stack = [], list(children[body])
        while stack:
            c = stack.pop()
            if parsed[c][2] == "eye":
                eyes.append(c)
            else:
                stack += children[c]
        if len(eyes) >= 2:
            return tuple(("joint", e, 1.0 / len(eyes)) for e in sorted(eyes))
    kids = [c for c in children[body] if parsed[c][2] not in ("thumb", "twist", "eye")
            and np.linalg.norm(rest[c] - rest[body]) > eps]
    if not kids:
        return None
    return tuple(("joint", c, 1.0 / len(kids)) for c in kids)


def _axis(spec: str) -> np.ndarray:
    m = re.fullmatch(r"\s*([+-]?)([xyz])\s*", str(spec).lower())
    if not m:
        raise SkeletonMapError(f"up_axis must be one of x, y, z, -x, -y, -z, got {spec!r}")
    v = np.zeros(3)
    v["xyz".index(m.group(2))] = -1.0 if m.group(1) == "-" else 1.0
    return v


def _rotation_to_y(up: np.ndarray) -> np.ndarray:
    """Proper rotation (3, 3) taking the unit axis `up` to +y (identity for +y, 180° about x for -y)."""
    y = np.array([0.0, 1.0, 0.0])
    c = float(up @ y)
    if c > 1 - 1e-9:
        return np.eye(3)
    if c < -1 + 1e-9:
        return np.diag([1.0, -1.0, -1.0])
    axis = _unit(np.cross(up, y))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    s = float(np.linalg.norm(np.cross(up, y)))
    return np.eye(3) + s * K + (1 - c) * K @ K
