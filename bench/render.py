"""Benchmark of the differentiable rasteriser (avatarclip_core.render) on the default body.

Renders the anny body (13,718 vertices, 27,420 triangles, standing pose) with per-vertex colours and Lambert
shading at 512² from AvatarCLIP's camera distance (2.2 m, 60° FoV) and prints one JSON object:
ms per frame for the forward pass and for forward + backward (gradients w.r.t. vertices and colours), for a
single view and per view of a batch.

Usage: python bench/render.py [--size 512] [--views 4] [--repeats 5] [--device cpu|cuda|auto] [--threads N]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch


def _timed(fn, repeats: int, device: torch.device) -> float:
    """Median wall time of fn() in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000.0 * (time.perf_counter() - t0))
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--views", type=int, default=4, help="cameras in the batched measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--distance", type=float, default=2.2, help="camera distance in metres")
    args = parser.parse_args(argv)
    if args.size < 1 or args.views < 1 or args.repeats < 1:
        raise ValueError("--size, --views and --repeats must be ≥ 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))

    from avatarclip_core.body import get_body_model, stand_pose
    from avatarclip_core.cameras import orbit_cameras
    from avatarclip_core.render import render_mesh

    body = get_body_model("anny")
    mesh = body(pose=stand_pose())
    verts, faces = mesh.vertices[0].detach().to(device), mesh.faces.to(device)
    lo, hi = verts.min(0).values, verts.max(0).values
    colours = ((verts - lo) / (hi - lo)).clamp(0, 1)
    one = orbit_cameras(args.distance, [0.0], [0.0]).to(device)
    many = orbit_cameras(args.distance, [10.0], torch.linspace(0, 360, args.views + 1)[:-1].tolist()).to(device)
    size = args.size

    def forward(cams):
        with torch.no_grad():
            return render_mesh(verts, faces, cams, size, colors=colours)

    def forward_backward(cams):
        v = verts.clone().requires_grad_(True)
        c = colours.clone().requires_grad_(True)
        out = render_mesh(v, faces, cams, size, colors=c)
        (out.rgb.mean() + out.alpha.mean()).backward()
        return v.grad, c.grad

    ms_fwd = _timed(lambda: forward(one), args.repeats, device)
    ms_fb = _timed(lambda: forward_backward(one), args.repeats, device)
    ms_fwd_batch = _timed(lambda: forward(many), args.repeats, device) / args.views
    ms_fb_batch = _timed(lambda: forward_backward(many), args.repeats, device) / args.views
    out = forward(one)
    result = {
        "ms_per_frame_512" if size == 512 else f"ms_per_frame_{size}": round(ms_fwd, 2),
        "ms_per_frame_forward_backward": round(ms_fb, 2),
        f"ms_per_frame_batched_{args.views}_views": round(ms_fwd_batch, 2),
        f"ms_per_frame_batched_{args.views}_views_forward_backward": round(ms_fb_batch, 2),
        "image_size": size,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "vertices": int(verts.shape[0]),
        "faces": int(faces.shape[0]),
        "covered_pixels_front_view": int(out.mask.sum()),
        "camera_distance_m": args.distance,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
