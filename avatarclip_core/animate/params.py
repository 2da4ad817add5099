"""Parameters of stage 6 (rig transfer, GLB export, avatar video), ranges declared with `params.param`."""
from __future__ import annotations

from dataclasses import dataclass

from ..params import Params, group, param


@dataclass
class FloorParams(Params):
    """The floor drawn under the avatar in the videos (`video.floor.*`; `animate.floor.floor_image`,
    docs/method.md "Root motion and foot contact"). The floor plane is at the rest mesh's lowest point (the soles,
    `motion.contact.floor_height`); it is drawn behind the avatar (never in front of it).

    Attributes:
        style: "checker" (two-grey checkerboard, box-filtered so that distant tiles do not alias), "plain" (one
            grey) or "none" (no floor and no shadow: the background only).
        tile: checker square size in metres.
        colors: the two grey levels in [0, 1] of the squares ("plain" uses their mean).
        radius: metres; the floor is a disc of this radius about the camera's target, fading into the
            background over its outer third.
        shadow: darkness in [0, 1] of the soft shadow under the figure (0 = none): a blob per joint, darker and
            sharper the nearer the joint is to the floor.
        shadow_blur: metres; the shadow blob radius of a joint on the floor (it widens with the joint's height).
    """

    style: str = param("checker", choices=("checker", "plain", "none"))
    tile: float = param(0.5, gt=0, le=100.0, fix="metres, e.g. 0.5")
    colors: tuple[float, float] = param((0.74, 0.82), ge=0.0, le=1.0, fix="two grey levels in [0, 1]")
    radius: float = param(3.0, gt=0, le=1000.0, fix="metres, e.g. 3")
    shadow: float = param(0.55, ge=0.0, le=1.0)
    shadow_blur: float = param(0.08, gt=0, le=10.0, fix="metres, e.g. 0.08")

    def relations(self):
        yield len(self.colors) == 2, "colors", "give two grey levels in [0, 1], e.g. (0.74, 0.82)"


@dataclass
class VideoParams(Params):
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
        floor: the ground plane and soft shadow under the avatar (`FloorParams`, keys `video.floor.*`).
        ground: re-fit the root height to this avatar's legs (`motion.contact.ground_root` on its rest skeleton)
            so that its lowest foot joint stays on its floor in the video and the GLB (stage 5 grounded the
            motion on the default body, whose legs differ).
    Rig and export:
        target_faces: decimate the avatar to about this many faces before rigging (0 = no decimation).
        smooth_iterations: neighbour-averaging iterations of the transferred skinning weights.
        smooth_falloff: distance to the body (metres) at which weight smoothing reaches full strength.
        keep_largest_component: drop floating pieces (marching-cubes floaters).
        unlit: GLB material KHR_materials_unlit (colours as baked) instead of rough PBR.
    Game-engine asset (docs/method.md, Avatar animation):
        texture_size: baked UV texture height and width in texels (0 = no texture: vertex colours only).
        texture_sampling: "surface" = the NeuS texture head at each texel's point on the level set (one network
            evaluation per texel), "rays" = AvatarCLIP's 6-ray least-occlusion render per texel (closer to the
            NeuS renders of a blurry model, ~6 × n_samples times slower); without a NeuS model the vertex
            colours are interpolated.
        bone_names: joint node names in the GLB: "ours" (left_wrist, …) or "mixamo" (mixamorig:LeftHand, …).
        export_obj: also write avatar.obj + avatar.mtl + avatar.png (needs a texture).
        cut_webbing: remove the webbing that fuses arms to the torso and the legs to each other at coarse mesh
            resolutions, close the cuts part by part (a closed mesh); off for loose clothing between the legs.
        web_detach: metres; a vertex is webbing when, posed in a probe pose (T-pose, arms up, legs spread), it
            is this much farther from the posed body than in the stand pose (`animate.mesh_clean`).
        mesh_checks: record open / non-manifold edges, self-intersecting face pairs and faces joining an arm to
            the torso or the legs (judged with the body's own weights) in the manifest (`animate.mesh_checks`).
    """

    image_size: int = param(512, ge=16, le=4096, fix="512 for the final video")
    fps: float | None = param(None, gt=0, le=240, fix="None = the motion's fps")
    orbit_deg_per_s: float = param(0.0, ge=-3600, le=3600, fix="degrees per second; 0 = fixed camera")
    side_by_side: bool = False
    elevation_deg: float = param(5.0, ge=-89, le=89)
    fov_deg: float = param(30.0, ge=1, le=120)
    margin: float = param(1.05, ge=1.0, le=10.0)
    background: tuple[float, float, float] = param((0.9, 0.9, 0.9), ge=0.0, le=1.0, fix="three floats in [0, 1]")
    ambient: float = param(0.4, ge=0.0, le=1.0)
    body_color: tuple[float, float, float] = param((0.65, 0.65, 0.65), ge=0.0, le=1.0, fix="three floats in [0, 1]")
    smooth_normals: bool = True
    edge_sigma: float = param(0.5, ge=0.0, le=4.0, fix="pixels; 0 = hard edges")
    batch_frames: int = param(8, ge=1)
    render_max_faces: int = param(200_000, ge=0, fix="0 renders the full mesh")
    gif: bool = True
    gif_size: int = param(256, ge=16, le=2048)
    gif_fps: float = param(15.0, gt=0, le=50, fix="GIF players cap the frame rate")
    floor: FloorParams = group(FloorParams)
    ground: bool = True
    target_faces: int = param(0, ge=0, fix="0 = no decimation")
    smooth_iterations: int = param(20, ge=0, le=10000)
    smooth_falloff: float = param(0.03, gt=0, le=1.0, fix="metres")
    keep_largest_component: bool = True
    unlit: bool = False
    texture_size: int = param(1024, ge=0, le=8192, fix="0 = no texture, else ≥ 16 texels")
    texture_sampling: str = param("surface", choices=("surface", "rays"))
    bone_names: str = param("ours", choices=("ours", "mixamo"))
    export_obj: bool = True
    cut_webbing: bool = True
    web_detach: float = param(0.02, gt=0.0, le=0.5, fix="metres, e.g. 0.02")
    mesh_checks: bool = True

    def relations(self):
        for name in ("background", "body_color"):
            yield len(getattr(self, name)) == 3, name, "use three floats in [0, 1]"
        for name, what in (("render_max_faces", "render the full mesh"), ("target_faces", "no decimation")):
            value = getattr(self, name)
            yield value == 0 or value >= 4, name, f"use 0 ({what}) or a face count ≥ 4"
        yield self.texture_size == 0 or self.texture_size >= 16, "texture_size", "use 0 (no texture) or ≥ 16"
