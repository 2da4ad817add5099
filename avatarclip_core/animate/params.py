"""Parameters of stage 6 (rig transfer, GLB export, avatar video) in one validated dataclass."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class VideoParams:
    """Stage-6 settings (docs/design.md §2, stage 6; docs/method.md §5 for the rigging, §6.3 for AvatarCLIP's videos).

    Video:
        image_size: frame height and width in pixels (512 = the issue's 512²; side-by-side doubles the width).
        fps: video frame rate; None = the motion's fps. Another value resamples the motion by nearest frame.
        orbit_deg_per_s: camera orbit speed around the vertical axis, degrees per second (0 = fixed front view;
            azimuth 0 = camera on +z seeing the avatar's front).
        side_by_side: render the plain body model posed with the same motion (grey) to the right.
        elevation_deg: camera elevation in degrees (> 0 = above).
        fov_deg: horizontal field of view in degrees.
        margin: camera distance factor over the tight fit of the motion's bounding sphere (≥ 1).
        background: RGB in [0, 1] behind the avatar (neutral light grey).
        ambient: Lambert ambient fraction in [0, 1]; the light comes from the camera side, from above.
        body_color: RGB in [0, 1] of the plain body in the side-by-side view.
        smooth_normals: interpolate vertex normals (smooth shading) instead of flat faces.
        edge_sigma: silhouette anti-aliasing width in pixels (renderer `sigma`; 0 = hard edges, a bit faster).
        batch_frames: frames rendered per renderer call (memory vs. speed).
        render_max_faces: the video renders a decimated copy when the avatar has more faces (0 = never);
            faces far below a pixel add render time, not detail (the GLB keeps the full mesh).
        gif: also write a GIF for sharing.
        gif_size: GIF frame height (and width per view) in pixels.
        gif_fps: GIF frame rate (frames are subsampled from the video by time).
    Rig and export:
        target_faces: decimate the avatar to about this many faces before rigging (0 = no decimation).
        smooth_iterations: neighbour-averaging iterations of the transferred skinning weights.
        smooth_falloff: distance to the body (metres) at which weight smoothing reaches full strength.
        keep_largest_component: drop floating pieces (marching-cubes floaters).
        unlit: GLB material KHR_materials_unlit (colours as baked) instead of rough PBR.
    """

    image_size: int = 512
    fps: float | None = None
    orbit_deg_per_s: float = 0.0
    side_by_side: bool = False
    elevation_deg: float = 5.0
    fov_deg: float = 30.0
    margin: float = 1.05
    background: tuple[float, float, float] = (0.9, 0.9, 0.9)
    ambient: float = 0.4
    body_color: tuple[float, float, float] = (0.65, 0.65, 0.65)
    smooth_normals: bool = True
    edge_sigma: float = 0.5
    batch_frames: int = 8
    render_max_faces: int = 200_000
    gif: bool = True
    gif_size: int = 256
    gif_fps: float = 15.0
    target_faces: int = 0
    smooth_iterations: int = 20
    smooth_falloff: float = 0.03
    keep_largest_component: bool = True
    unlit: bool = False

    def validate(self) -> "VideoParams":
        """Raise ValueError naming the first bad field and its allowed range; return self."""
        def bad(name, rule):
            raise ValueError(f"VideoParams.{name} = {getattr(self, name)!r} is invalid: {rule}")

        if not (isinstance(self.image_size, int) and 16 <= self.image_size <= 4096):
            bad("image_size", "use an int in [16, 4096] pixels (512 for the final video)")
        if self.fps is not None and not 0 < float(self.fps) <= 240:
            bad("fps", "use None (the motion's fps) or a value in (0, 240]")
        if not -3600 <= float(self.orbit_deg_per_s) <= 3600:
            bad("orbit_deg_per_s", "use degrees per second in [-3600, 3600] (0 = fixed camera)")
        if not -89 <= float(self.elevation_deg) <= 89:
            bad("elevation_deg", "use degrees in [-89, 89]")
        if not 1 <= float(self.fov_deg) <= 120:
            bad("fov_deg", "use degrees in [1, 120]")
        if not 1.0 <= float(self.margin) <= 10.0:
            bad("margin", "use a factor in [1, 10]")
        for name in ("background", "body_color"):
            v = getattr(self, name)
            if len(v) != 3 or not all(0.0 <= float(c) <= 1.0 for c in v):
                bad(name, "use three floats in [0, 1]")
        if not 0.0 <= float(self.ambient) <= 1.0:
            bad("ambient", "use a fraction in [0, 1]")
        if not 0.0 <= float(self.edge_sigma) <= 4.0:
            bad("edge_sigma", "use pixels in [0, 4] (0 = hard edges)")
        if not (isinstance(self.batch_frames, int) and self.batch_frames >= 1):
            bad("batch_frames", "use an int ≥ 1")
        if not (isinstance(self.render_max_faces, int) and (self.render_max_faces == 0 or self.render_max_faces >= 4)):
            bad("render_max_faces", "use 0 (render the full mesh) or a face count ≥ 4")
        if not (isinstance(self.gif_size, int) and 16 <= self.gif_size <= 2048):
            bad("gif_size", "use an int in [16, 2048] pixels")
        if not 0 < float(self.gif_fps) <= 50:
            bad("gif_fps", "use a value in (0, 50] (GIF players cap the frame rate)")
        if not (isinstance(self.target_faces, int) and (self.target_faces == 0 or self.target_faces >= 4)):
            bad("target_faces", "use 0 (no decimation) or a face count ≥ 4")
        if not (isinstance(self.smooth_iterations, int) and 0 <= self.smooth_iterations <= 10000):
            bad("smooth_iterations", "use an int in [0, 10000]")
        if not 0 < float(self.smooth_falloff) <= 1.0:
            bad("smooth_falloff", "use metres in (0, 1]")
        return self

    def to_dict(self) -> dict:
        """Plain dict of the fields (for manifests)."""
        return asdict(self)
