"""Stage-6 speed: rig transfer + GLB export of a ~200k-vertex avatar, and a 60-frame 512² video render.

Prints one JSON object: wall times (the targets) and process CPU times (≈ 2 × wall on an idle 2-core machine;
the wall times suffer when other jobs share the CPU). Targets on the 2-core CI CPU (docs/method.md, Avatar
animation): rig + GLB < 30 s, video < 60 s.
Avatar: the anny body in the stand pose, subdivided twice (~219k vertices), pushed 1 cm out along its normals
(loose clothes) with a colour pattern; motion: 60 frames of a walking-like swing at 30 fps.

Usage: python bench/animate.py [--frames 60] [--size 512] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatarclip_core import skeleton  # noqa: E402
from avatarclip_core.animate import VideoParams, export_glb, rig_avatar, render_video  # noqa: E402
from avatarclip_core.body import get_body_model, stand_pose  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    body = get_body_model("anny")
    v = body.forward(pose=stand_pose()).vertices[0].numpy()
    m = trimesh.Trimesh(v, body.faces.numpy(), process=False).subdivide().subdivide()
    m.vertices = m.vertices + 0.01 * m.vertex_normals
    col = np.full((len(m.vertices), 4), 255, np.uint8)
    col[:, :3] = (127 + 127 * np.sin(m.vertices * np.array([40.0, 25.0, 60.0]))).astype(np.uint8)
    m.visual.vertex_colors = col

    T = args.frames
    t = torch.arange(T) / 30.0
    s = torch.sin(2 * np.pi * t)
    poses = stand_pose().repeat(T, 1, 1)
    J = skeleton.JOINT_INDEX
    poses[:, J["left_hip"], 0], poses[:, J["right_hip"], 0] = 0.5 * s, -0.5 * s
    poses[:, J["left_shoulder"], 2] = -1.1 + 0.6 * s
    root = torch.stack([0.3 * t, 0.02 * s, torch.zeros_like(t)], -1)

    with tempfile.TemporaryDirectory() as tmp:
        params = VideoParams(image_size=args.size)
        c0, t0 = time.process_time(), time.perf_counter()
        avatar = rig_avatar(m, body)
        t1 = time.perf_counter()
        glb = export_glb(Path(tmp) / "avatar.glb", avatar, poses, root, 30.0)
        c2, t2 = time.process_time(), time.perf_counter()
        video = render_video(Path(tmp) / "avatar.mp4", avatar, poses, root, 30.0, params, device=args.device,
                             progress=False)
        c3, t3 = time.process_time(), time.perf_counter()
        glb_mb = glb.stat().st_size / 2**20
    out = {
        "bench": "animate", "device": args.device, "threads": args.threads,
        "vertices": avatar.num_vertices, "faces": int(avatar.faces.shape[0]),
        "rig_transfer_s": round(t1 - t0, 2), "glb_export_s": round(t2 - t1, 2),
        "rig_plus_glb_s": round(t2 - t0, 2), "rig_plus_glb_target_s": 30, "rig_plus_glb_cpu_s": round(c2 - c0, 2),
        "glb_MiB": round(glb_mb, 1),
        "video_frames": video["num_frames"], "video_size": video["size"],
        "video_render_s": round(t3 - t2, 2), "video_target_s": 60, "video_cpu_s": round(c3 - c2, 2),
        "video_faces_rendered": min(int(avatar.faces.shape[0]), params.render_max_faces or 1 << 62),
        "video_s_per_frame": round((t3 - t2) / T, 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
