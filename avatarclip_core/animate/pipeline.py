"""Stage 6 in one call: rig the sculpted avatar, export the skinned animated GLB, render the MP4/GIF.

The stage runner (`run_<stage>`, rundir/manifest handling) calls `animate_avatar` with the stage-3 mesh, the
stage-1 body shape and the stage-5 motion; this module only knows files it is told to write.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import trimesh

from .gltf_export import export_glb
from .params import VideoParams
from .rig_transfer import RiggedAvatar, rig_avatar
from .video_render import render_video


def bake_avatar_texture(avatar: RiggedAvatar, params: VideoParams, neus_model=None):
    """UV-unwrap `avatar` and bake its colour (`texture_bake`): the NeuS texture head when `neus_model` (a
    stage-3 `NeusModel`) is given, sampled as `params.texture_sampling` says, else the vertex colours.
    Colours are looked up on the stand-pose mesh (`avatar.pose(body.stand_pose())`, the NeuS pose).
    Returns a baked `texture_bake.UVTexture` (params.texture_size² texels)."""
    from ..body import stand_pose
    from ..neus.mesh import surface_colors, vertex_colors
    from .texture_bake import bake_texture, unwrap

    size = params.texture_size
    tex = unwrap(avatar.rest_vertices.numpy(), avatar.faces.numpy(), size)
    stand = avatar.pose(stand_pose())
    color_fn = None
    if neus_model is not None:
        head = "texture" if neus_model.has_texture_head else "base"
        color_fn = (lambda p: surface_colors(neus_model, p, head)) if params.texture_sampling == "surface" else \
            (lambda p: vertex_colors(neus_model, p, head))
    return bake_texture(tex, stand, size, color_fn=color_fn, vertex_colors=avatar.vertex_colors)


def animate_avatar(out_dir, mesh: trimesh.Trimesh, body, shape: torch.Tensor | None, poses: torch.Tensor,
                   root: torch.Tensor | None, fps: float, params: VideoParams | None = None,
                   device: str | torch.device = "cpu", progress: bool = True,
                   neus_model=None) -> tuple[RiggedAvatar, dict]:
    """Rig `mesh` (stand pose, avatar frame) to `body`, clean it, bake its texture, write `avatar.glb`,
    `avatar.obj/.mtl/.png`, `avatar.mp4` and `avatar.gif` (docs/method.md §5, Avatar animation).

    Args:
        out_dir: folder for the outputs (created).
        mesh: stage-3 avatar mesh with RGBA vertex colours, in `body.stand_pose()` (avatarclip_core.body.stand_pose).
        body, shape: body model and its (S,) shape parameters from stage 1 (None = default shape).
        poses: (T, 22, 3) axis-angle radians; root: (T, 3) metres or None; fps: motion frame rate (> 0).
        params: VideoParams (validated here, before any long work).
        device: torch device for posing/rendering.
        neus_model: the stage-3 NeusModel whose texture head is baked into the texture (None = vertex colours).
    Returns:
        (RiggedAvatar (cleaned), figures dict: paths, vertex/face counts, frame count, webbing and mesh checks,
        texture size/coverage, timings in seconds, and with `params.ground` the largest root-height change
        'ground_shift_cm' of re-grounding the motion on this avatar's skeleton).
    Raises:
        ValueError: on bad params, mesh, shape or motion.
    """
    params = (params or VideoParams()).validate()
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    avatar = rig_avatar(mesh, body, shape, smooth_iterations=params.smooth_iterations,
                        smooth_falloff=params.smooth_falloff, target_faces=params.target_faces,
                        keep_largest_component=params.keep_largest_component)
    extra = {}
    if params.ground:  # stage 5 grounded the motion on the default body; this avatar's legs differ
        from ..motion.contact import ground_root

        root = torch.zeros(len(poses), 3) if root is None else torch.as_tensor(root, dtype=torch.float32)
        grounded = ground_root(poses, root, avatar.rest_joints)
        extra["ground_shift_cm"] = round(float((grounded - root)[:, 1].abs().max()) * 100, 3)
        root = grounded
    from .mesh_clean import cut_webbing, orient_outward

    if params.cut_webbing:
        avatar, extra["webbing"] = cut_webbing(avatar, body, shape, params.web_detach)
    else:
        avatar = orient_outward(avatar)
    if params.mesh_checks:
        from .mesh_checks import mesh_report

        extra["mesh"] = mesh_report(avatar, body, shape)
    t1 = time.perf_counter()
    tex = None
    if params.texture_size:
        tex = bake_avatar_texture(avatar, params, neus_model)
        extra["texture"] = {"size": params.texture_size, "coverage": tex.coverage, "uv_vertices": len(tex.uv),
                            "source": "neus_" + params.texture_sampling if neus_model is not None else "vertex_colors"}
    t_tex = time.perf_counter()
    glb = export_glb(out_dir / "avatar.glb", avatar, poses, root, fps, unlit=params.unlit, texture=tex,
                     bone_names=params.bone_names)
    if tex is not None and params.export_obj:
        from .obj_export import export_obj

        extra["obj"] = {k: str(v) for k, v in export_obj(out_dir, avatar, tex).items()}
    t2 = time.perf_counter()
    video = render_video(out_dir / "avatar.mp4", avatar, poses, root, fps, params, body=body, shape=shape,
                         gif_path=out_dir / "avatar.gif", device=device, progress=progress)
    t3 = time.perf_counter()
    video.pop("first_frame")
    figures = {"glb": str(glb), **video, "vertices": avatar.num_vertices, "faces": int(avatar.faces.shape[0]),
               "max_body_distance_m": float(avatar.body_distance.max()), "bone_names": params.bone_names, **extra,
               "seconds": {"rig": t1 - t0, "texture": t_tex - t1, "glb": t2 - t_tex, "video": t3 - t2}}
    return avatar, figures
