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


def animate_avatar(out_dir, mesh: trimesh.Trimesh, body, shape: torch.Tensor | None, poses: torch.Tensor,
                   root: torch.Tensor | None, fps: float, params: VideoParams | None = None,
                   device: str | torch.device = "cpu", progress: bool = True) -> tuple[RiggedAvatar, dict]:
    """Rig `mesh` (stand pose, avatar frame) to `body`, write `avatar.glb`, `avatar.mp4` and `avatar.gif`.

    Args:
        out_dir: folder for the outputs (created).
        mesh: stage-3 avatar mesh with RGBA vertex colours, in `body.stand_pose()` (avatarclip_core.body.stand_pose).
        body, shape: body model and its (S,) shape parameters from stage 1 (None = default shape).
        poses: (T, 22, 3) axis-angle radians; root: (T, 3) metres or None; fps: motion frame rate (> 0).
        params: VideoParams (validated here, before any long work).
        device: torch device for posing/rendering.
    Returns:
        (RiggedAvatar, figures dict: paths, vertex/face counts, frame count, timings in seconds).
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
    t1 = time.perf_counter()
    glb = export_glb(out_dir / "avatar.glb", avatar, poses, root, fps, unlit=params.unlit)
    t2 = time.perf_counter()
    video = render_video(out_dir / "avatar.mp4", avatar, poses, root, fps, params, body=body, shape=shape,
                         gif_path=out_dir / "avatar.gif", device=device, progress=progress)
    t3 = time.perf_counter()
    video.pop("first_frame")
    figures = {"glb": str(glb), **video, "vertices": avatar.num_vertices, "faces": int(avatar.faces.shape[0]),
               "max_body_distance_m": float(avatar.body_distance.max()),
               "seconds": {"rig": t1 - t0, "glb": t2 - t1, "video": t3 - t2}}
    return avatar, figures
