"""Estimated wall time of each stage before the long work starts (docs/design.md, "Time estimates").

An estimate, not a promise: the stage's loop counts read from the configuration (iterations, rays, candidates,
poses, frames) times per-unit costs measured once per device class and kept in `COSTS`, the one table of these
numbers, with the source of each. The real time depends on the machine (core count, other jobs, GPU model): the
CPU figures come from a shared 2-core x86-64 machine, often under load, so an idle or bigger CPU is faster; the
CUDA figures are scaled from one published A100 figure until `bench/gpu.sh` measures them.
"""
from __future__ import annotations

from . import stages

__all__ = ["COSTS", "CLIP_COST", "estimate_stages", "format_estimate", "device_class"]

# Relative cost of one image through an image tower, ViT-B/32 = 1 (forward GFLOPs from the open_clip model
# cards: ViT-B/32 4.4, ViT-B/16 17.6, ViT-L/14 81); the test encoders cost next to nothing.
CLIP_COST = {"ViT-B-32": 1.0, "ViT-B-16": 4.0, "ViT-L-14": 18.4, "ViT-L-14-336": 41.0, "tiny": 0.003,
             "oracle": 0.0005}

#: Per-unit costs in seconds. neus_texture: one stage-3 step per 1,000 rays (NeuS forward + backward, the grey
#: body raster, losses) by preset network; neus_init: a stage-2 render step per 1,000 rays relative to that;
#: sdf_step: one SDF-regression step per 1,000 points; clip_forward / clip_backward: one ViT-B/32 image
#: forward (no grad) / forward + backward to the image (scaled by `CLIP_COST`); frame + raster: one mesh render
#: of the body, per frame + per megapixel; body: one body-model evaluation (a shape candidate); mesh: marching
#: cubes + vertex colours at 256³ (scaled by resolution³); fixed: per stage (loading, files, previews).
COSTS = {
    "cpu": {
        "source": "shared 2-core x86-64 dev machine, torch 2.x CPU: neus_texture fast/full from bench/RESULTS.md "
                  "(3.10 / 0.535 it/s at ~500 rays), tiny from a tiny-preset run (80 steps, 400 rays, 24 s), small "
                  "interpolated by MLP size; ViT-B/32 measured with random weights under load ~8 "
                  "(forward 0.82 s, forward+backward 5.7 s per image); frame/body from stage-1 profiles "
                  "(0.12 s per 224² anny render, 0.08 s per anny shape), raster from bench/render.py (30 ms per "
                  "512² frame)",
        "neus_texture": {"tiny": 0.75, "fast": 0.65, "cpu": 0.65, "small": 1.2, "full": 3.74},
        "neus_init": 0.4, "sdf_step": 0.02, "clip_forward": 0.82, "clip_backward": 5.7, "frame": 0.1,
        "raster": 0.11, "body": 0.08,
        "mesh": 40.0, "fixed": {"01": 3.0, "02": 5.0, "03": 5.0, "04": 3.0, "05": 3.0, "06": 20.0},
    },
    "cuda": {
        "source": "not measured here: neus_texture full = a published 360 min per avatar on one A100 over 30,000 "
                  "steps of 12,544 rays (0.055 s per 1,000 rays), other presets scaled by their CPU ratios; CLIP "
                  "and raster guessed for an A100 in fp16; replace with bench/gpu.sh figures",
        "neus_texture": {"tiny": 0.011, "fast": 0.0096, "cpu": 0.0096, "small": 0.018, "full": 0.055},
        "neus_init": 0.4, "sdf_step": 0.001, "clip_forward": 0.003, "clip_backward": 0.01, "frame": 0.01,
        "raster": 0.005, "body": 0.01,
        "mesh": 3.0, "fixed": {"01": 5.0, "02": 5.0, "03": 5.0, "04": 5.0, "05": 5.0, "06": 20.0},
    },
}


def device_class(device) -> str:
    """"cuda" or "cpu" for a torch.device or device string."""
    return "cuda" if str(getattr(device, "type", device)).startswith("cuda") else "cpu"


def _clip_factor(model: str) -> float:
    name = str(model).strip()
    if name.startswith("oracle:"):
        return CLIP_COST["oracle"]
    if name == "tiny" or name.startswith("tiny:"):
        return CLIP_COST["tiny"]
    return CLIP_COST.get(name.replace("/", "-"), 1.0)


def estimate_stages(conf, device, stage_ids=None) -> dict[str, tuple[float, str]]:
    """{stage id: (seconds, what was counted)} for the selected stages under `conf` (a `config.Config`).

    Args:
        device: "cpu" / "cuda" / a torch.device (its class picks the `COSTS` row).
        stage_ids: ids ("01" … "06"); default all.
    """
    c = COSTS[device_class(device)]
    clip = _clip_factor(conf.run.clip_model)
    fwd, bwd = c["clip_forward"] * clip, c["clip_backward"] * clip
    preset = conf.preset if conf.preset in c["neus_texture"] else "small"
    per_kray = c["neus_texture"][preset]

    def frame(size: int) -> float:
        return c["frame"] + c["raster"] * size ** 2 / 1e6
    out = {}
    for sid in stage_ids or list(stages.BY_ID):
        stage = stages.get(sid)
        p = conf.params(stage.section)
        if stage.id == "01":
            n = (p.num_candidates + 1) * len(p.azimuths_deg)
            t = (p.num_candidates + 1) * c["body"] + n * (fwd + frame(p.image_size))
            what = f"{n} candidate renders through CLIP"
        elif stage.id == "02":
            sdf = p.sdf_init.steps if p.sdf_init.mode == "sdf" else 0
            t = sdf * c["sdf_step"] * p.sdf_init.batch / 1000 \
                + p.schedule.iterations * c["neus_init"] * per_kray * p.batch_size / 1000
            what = f"{sdf} SDF + {p.schedule.iterations} render steps × {p.batch_size} rays"
        elif stage.id == "03":
            images = 1 + int(p.ablation.add_no_texture)
            step = per_kray * p.rays.max_ray_num / 1000 + images * bwd
            t = p.schedule.iterations * step + c["mesh"] * (p.mesh_resolution / 256) ** 3
            what = f"{p.schedule.iterations} steps × ({p.rays.max_ray_num} rays + {images} CLIP image(s))"
        elif stage.id == "04":
            if p.generator == "library":
                n = (p.library_limit or 3000) * len(p.azimuths_deg)
                t, what = n * (fwd + frame(p.image_size)), f"{n} pose renders through CLIP (cached after the " \
                                                           "first run)"
            else:
                n = p.num_iterations * p.top_k
                t, what = n * (bwd + frame(p.image_size)), f"{n} optimisation renders"
        elif stage.id == "05":
            n = p.num_iterations if p.generator == "optimize" else 0
            t, what = n * bwd, (f"{n} optimisation steps" if n else "interpolation")
        else:
            frames = conf.params("motion").num_frames
            t, what = frames * frame(p.image_size), f"{frames} frames {p.image_size}² + rig + GLB"
        out[stage.id] = (t + c["fixed"][stage.id], what)
    return out


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_estimate(conf, device, stage_ids=None) -> str:
    """The lines `avatarclip run` prints before the stages start: one per stage and the total, marked as an
    estimate with its source."""
    est = estimate_stages(conf, device, stage_ids)
    cls = device_class(device)
    lines = [f"estimated time on {cls.upper()} (an estimate: loop counts × per-step costs from avatarclip_core/"
             f"estimate.py; this machine may be faster or slower):"]
    for sid, (t, what) in est.items():
        lines.append(f"  {stages.get(sid).folder:<13} ~{_fmt(t):>7}   {what}")
    lines.append(f"  {'total':<13} ~{_fmt(sum(t for t, _ in est.values())):>7}   (preset {conf.preset}, CLIP "
                 f"{conf.run.clip_model})")
    return "\n".join(lines)
