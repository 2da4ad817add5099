"""Stage-6 video: the rigged avatar driven by a motion, rendered frame by frame (`avatarclip_core.render`),
written as `avatar.mp4` (H.264) and a smaller GIF.

AvatarCLIP renders its motion videos of the plain SMPL body only (docs/method.md §6.3); here the textured avatar
moves. Camera: one OpenGL look-at camera aimed at the centre of the bounding sphere of every posed vertex of the
whole motion (plain body included for the side-by-side), at the distance where that sphere fits the field of
view (× `margin`), azimuth 0 = on +z seeing the avatar's front, optionally orbiting at `orbit_deg_per_s`.
Lighting: Lambert + ambient with the light coming from the camera side and from above (it orbits with the
camera). Vertex colours are used as the albedo in the renderer's colour space (as rendered in stage 3). Behind
the avatar: the floor at the rest mesh's soles with a soft shadow of the figure (`floor.floor_image`,
`VideoParams.floor`), so the video shows whether the feet stand on it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import skeleton
from ..cameras import Cameras, eye_from_angles, look_at
from ..motion.contact import floor_height
from ..video import to_uint8, write_gif, write_mp4
from .floor import floor_image
from .params import VideoParams
from .rig_transfer import RiggedAvatar, decimate_rigged


@dataclass
class VideoCamera:
    """Where the video camera looks from (avatar frame, metres, degrees)."""

    target: torch.Tensor  # (3,)
    distance: float
    elevation_deg: float
    fov_deg: float

    def cameras(self, azimuths_deg: torch.Tensor) -> tuple[Cameras, torch.Tensor]:
        """Cameras (B) at the given azimuths (B,) degrees and the unit light directions (B, 3) toward the light
        (from the camera side, raised 35° and turned 20° to the avatar's right for some modelling)."""
        az = torch.as_tensor(azimuths_deg, dtype=torch.float32)
        eye = eye_from_angles(self.distance, self.elevation_deg, az, self.target)
        light = eye_from_angles(1.0, self.elevation_deg + 35.0, az - 20.0)
        return Cameras(look_at(eye, self.target), self.fov_deg), light


def fit_camera(points: torch.Tensor, fov_deg: float = 30.0, elevation_deg: float = 5.0,
               margin: float = 1.05) -> VideoCamera:
    """Camera that keeps every point in view from any azimuth.

    Args:
        points: (..., 3) float points in metres (e.g. all posed vertices of all frames).
    Returns:
        VideoCamera aimed at the bounding-box centre c with distance r / sin(FoV/2) · margin, r = max |p − c|
        (the bounding sphere about c then fits the horizontal and, for square frames, vertical FoV).
    Raises:
        ValueError: on no points or non-finite values.
    """
    p = points.detach().reshape(-1, 3).float()
    if p.shape[0] == 0 or not torch.isfinite(p).all():
        raise ValueError("fit_camera needs a non-empty set of finite points")
    lo, hi = p.amin(0), p.amax(0)
    centre = 0.5 * (lo + hi)
    radius = float((p - centre).norm(dim=-1).max().clamp_min(1e-3))
    distance = radius / math.sin(math.radians(fov_deg) / 2) * margin
    return VideoCamera(centre.cpu(), distance, float(elevation_deg), float(fov_deg))


def resample_indices(num_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Nearest source frame for every frame of the same duration at `dst_fps`: (T',) int64, T' = floor((T−1)·dst/src)+1."""
    if num_frames < 1 or not src_fps > 0 or not dst_fps > 0:
        raise ValueError(f"need ≥ 1 frame and positive fps, got T={num_frames}, {src_fps}, {dst_fps}")
    duration = (num_frames - 1) / src_fps
    n = int(math.floor(duration * dst_fps + 1e-6)) + 1
    return np.clip(np.rint(np.arange(n) / dst_fps * src_fps), 0, num_frames - 1).astype(np.int64)


def _check_motion(poses: torch.Tensor, root: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    poses = torch.as_tensor(poses, dtype=torch.float32)
    if poses.ndim != 3:
        raise ValueError(f"poses must be (T, 22, 3) axis-angle, got {tuple(poses.shape)}")
    skeleton.check_pose(poses, "poses")
    if poses.shape[0] == 0:
        raise ValueError("poses has no frames")
    root = torch.zeros(poses.shape[0], 3) if root is None else torch.as_tensor(root, dtype=torch.float32)
    if root.shape != (poses.shape[0], 3) or not torch.isfinite(root).all():
        raise ValueError(f"root must be finite (T, 3) = ({poses.shape[0]}, 3), got {tuple(root.shape)}")
    return poses, root


@torch.no_grad()
def render_motion_frames(avatar: RiggedAvatar, poses: torch.Tensor, root: torch.Tensor | None = None,
                         fps: float = 30.0, params: VideoParams | None = None, body=None,
                         shape: torch.Tensor | None = None, device: str | torch.device = "cpu",
                         progress: bool = True) -> np.ndarray:
    """Render the posed avatar for every frame of a motion.

    Args:
        avatar: rigged avatar (rest pose, weights, colours).
        poses: (T, 22, 3) local axis-angle in radians; root: (T, 3) metres or None.
        fps: the motion's frame rate; `params.fps` (if set) resamples by nearest frame.
        params: VideoParams (defaults if None); uses image_size, orbit, side_by_side, camera, light, floor and
            render_max_faces (meshes above it are rendered from a decimated copy, `decimate_rigged`). The floor
            is at `floor_height(avatar.rest_vertices)`.
        body, shape: the body model and its shape parameters, required when `params.side_by_side`.
        device: torch device for posing and rendering.
        progress: show a tqdm bar.
    Returns:
        (T', H, W, 3) uint8 frames, H = image_size, W = image_size (or 2·image_size side by side).
    Raises:
        ValueError: on bad poses/root/fps/params, or side_by_side without a body model.
    """
    from ..render import render_mesh

    params = (params or VideoParams()).validate()
    poses, root = _check_motion(poses, root)
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if params.side_by_side and body is None:
        raise ValueError("side_by_side needs the body model (body=get_body_model(...)) and its shape")
    out_fps = float(params.fps or fps)
    if out_fps != fps:
        idx = torch.from_numpy(resample_indices(poses.shape[0], fps, out_fps))
        poses, root = poses[idx], root[idx]
    T, S = poses.shape[0], params.image_size
    floor_y = floor_height(avatar.rest_vertices)  # the full mesh's soles (a decimated copy may lose the lowest point)
    if params.render_max_faces:
        try:
            avatar = decimate_rigged(avatar, params.render_max_faces)
        except ImportError as e:  # fast_simplification missing: render the full mesh (slower, same picture)
            warnings.warn(f"rendering all {avatar.faces.shape[0]} faces: {e}")
    dev = torch.device(device)
    faces = avatar.faces.to(dev)
    colors = avatar.vertex_colors[:, :3].to(dev).float() / 255.0

    def pose_avatar(sl):
        return avatar.pose(poses[sl].to(dev), root[sl].to(dev))

    def pose_body(sl):
        return body.forward(shape, pose=poses[sl], root_translation=root[sl]).vertices.to(dev)

    cam = fit_motion_camera(avatar, poses, root, params, pose_body if params.side_by_side else None)
    az = torch.arange(T, dtype=torch.float32) / out_fps * float(params.orbit_deg_per_s)
    bg = torch.tensor(params.background, dtype=torch.float32, device=dev)
    body_rgb = torch.tensor(params.body_color, dtype=torch.float32, device=dev)

    frames = np.empty((T, S, 2 * S if params.side_by_side else S, 3), dtype=np.uint8)
    bar = tqdm(total=T, desc="render video", unit="frame", disable=not progress)
    for s in range(0, T, params.batch_frames):
        sl = slice(s, min(T, s + params.batch_frames))
        cameras, light = cam.cameras(az[sl])
        cameras = cameras.to(dev)
        joints = skeleton.forward_kinematics(poses[sl], avatar.rest_joints, root[sl])[0][..., :3, 3]
        ground = floor_image(cameras, S, floor_y, joints, bg, params.floor, centre=cam.target)
        shade = dict(background=ground, shading="lambert", light_dir=light.to(dev), ambient=params.ambient,
                     smooth_normals=params.smooth_normals, sigma=params.edge_sigma)
        out = render_mesh(pose_avatar(sl), faces, cameras, S, colors=colors, **shade)
        frames[sl, :, :S] = to_uint8(out.rgb)
        if params.side_by_side:
            bout = render_mesh(pose_body(sl), body.faces.to(dev), cameras, S,
                               colors=body_rgb.expand(body.num_vertices, 3), **shade)
            frames[sl, :, S:] = to_uint8(bout.rgb)
        bar.update(sl.stop - sl.start)
    bar.close()
    return frames


def fit_motion_camera(avatar: RiggedAvatar, poses: torch.Tensor, root: torch.Tensor, params: VideoParams,
                      pose_body=None) -> VideoCamera:
    """The video camera of `render_motion_frames`: `fit_camera` on the posed vertices of every frame (≤ 5000 per
    frame, the margin +1 % for the others; plus the plain body's when `pose_body(slice)` → (n, V, 3) is given).
    poses (T, 22, 3) radians, root (T, 3) metres."""
    pts = []
    sub = torch.arange(0, avatar.num_vertices, max(1, avatar.num_vertices // 5000))
    sub_avatar = RiggedAvatar(avatar.rest_vertices[sub], avatar.faces[:0], avatar.vertex_colors[sub],
                              avatar.weights[sub], avatar.rest_joints)
    for s in range(0, poses.shape[0], 64):
        sl = slice(s, s + 64)
        pts.append(sub_avatar.pose(poses[sl], root[sl]).reshape(-1, 3))
        if pose_body is not None:
            pts.append(pose_body(sl).reshape(-1, 3).cpu())
    return fit_camera(torch.cat(pts), params.fov_deg, params.elevation_deg, params.margin * 1.01)


def _resize(frames: np.ndarray, height: int) -> np.ndarray:
    """(T, H, W, 3) uint8 → (T, height, round(W·height/H), 3) uint8 by area averaging (torch)."""
    T, H, W, _ = frames.shape
    width = max(1, round(W * height / H))
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(height, width), mode="area" if height <= H else "bilinear")
    return x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def render_video(mp4_path, avatar: RiggedAvatar, poses: torch.Tensor, root: torch.Tensor | None = None,
                 fps: float = 30.0, params: VideoParams | None = None, body=None, shape=None,
                 gif_path=None, device: str | torch.device = "cpu", progress: bool = True) -> dict:
    """Render the motion video and write it as MP4 (and GIF), atomically.

    Args:
        mp4_path: output .mp4 path; gif_path: output .gif path (default: mp4_path with .gif, when params.gif).
        Others: see `render_motion_frames`.
    Returns:
        dict with "mp4" (path str), "gif" (path str or None), "num_frames", "fps", "size" ([H, W]), "gif_size"
        ([H, W] or None), "first_frame" ((H, W, 3) uint8 array for previews).
    """
    from pathlib import Path

    params = (params or VideoParams()).validate()
    frames = render_motion_frames(avatar, poses, root, fps, params, body, shape, device, progress)
    out_fps = float(params.fps or fps)
    write_mp4(mp4_path, frames, fps=out_fps)
    gif_written, gif_hw = None, None
    if params.gif:
        gif_path = Path(gif_path) if gif_path else Path(mp4_path).with_suffix(".gif")
        idx = resample_indices(len(frames), out_fps, min(params.gif_fps, out_fps))
        small = _resize(frames[idx], params.gif_size)
        write_gif(gif_path, small, fps=min(params.gif_fps, out_fps))
        gif_written, gif_hw = str(gif_path), list(small.shape[1:3])
    return {"mp4": str(mp4_path), "gif": gif_written, "num_frames": int(len(frames)), "fps": out_fps,
            "size": list(frames.shape[1:3]), "gif_size": gif_hw, "first_frame": frames[0]}
