"""Benchmark of stages 2–3: `full` vs `fast` preset side by side (docs/method.md, Fast path), JSON on stdout.

Both presets run through the same code (`fit_neus_init`, `texture_step`); only their configuration
(confs/full.conf, confs/fast.conf, loaded with `load_config`) differs. At reduced scale the run-length and
image-size knobs are overridden identically for both (ray budget, image size, views, batch), never the
network / encoding / sample settings being compared.

Figures:
- texture: iterations/second of `texture_step` (ColorOracle encoder, no weights needed; same ray budget,
  same encoder, same body) for full and fast, and fast/full.
- init: wall time of `fit_neus_init` (training only — for init_mode "sdf" including the SDF bank and
  regression phase; resume overhead subtracted) until the held-out-view silhouette IoU (views between the
  training views) reaches `--iou` AND the symmetric Chamfer distance to the body mesh
  (`pipeline.chamfer_to_body`, marching cubes at 128³, evaluated only once the IoU bar is met, not timed)
  is ≤ `--chamfer-mm` (10 mm), for full and fast, and fast/full. Both presets get the body mesh
  (`body=(V, F)`; only init_mode "sdf" uses it). A preset that does not reach the bars within its time cap
  reports the cap as a lower bound (reached = false).
- memory: peak RSS (MiB, resource.getrusage in a fresh subprocess) of one texture step of each of
  `--memory-presets` (default small) at the scale's ray budget and image size (reduced / gpu: the presets' real
  ones, 7,000 rays for small, 12,544 for full, 256²); on CUDA also torch.cuda.max_memory_allocated.
- profile (`--profile DIR`): torch.profiler over 4 texture steps of each preset after the timed ones (CPU and, on
  CUDA, CUDA activity): DIR/texture_<preset>.txt, the top operators by self time, and DIR/texture_<preset>.json.gz, a
  gzipped Chrome trace (chrome://tracing, ui.perfetto.dev).

Usage: python bench/neus.py [--scale tiny|reduced|gpu] [--threads N] [--device cpu|cuda] [--body anny|ellipsoid]
       [--memory-presets small full] [--profile DIR]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatarclip_core.cameras import orbit_cameras  # noqa: E402
from avatarclip_core.config import load_config  # noqa: E402
from avatarclip_core.guidance.test_encoders import ColorOracle  # noqa: E402
from avatarclip_core.neus import NeusModel, TextureCameraSampler, body_views, fit_neus_init  # noqa: E402
from avatarclip_core.neus.renderer import render_views  # noqa: E402
from avatarclip_core.neus.texture import TextureState, texture_step  # noqa: E402
from avatarclip_core.render import render_mesh  # noqa: E402

PROMPTS = {"body": "a 3D rendering of a red person in unreal engine",
           "face": "a 3D rendering of the face of a red person in unreal engine",
           "back": "a 3D rendering of the back of a red person in unreal engine"}

SCALES = {
    # texture: rays per step, GT image side, timed steps; init: image side, views, batch, eval cadence,
    # time cap per preset (s), held-out view side.
    "tiny": dict(rays=256, tex_size=48, tex_steps=3, init_size=32, elev=[-20.0, 20.0], az_step=90.0, batch=256,
                 eval_every=25, cap=20.0, end_iter=2000, val_size=32, mem_rays=1000, mem_size=64),
    "reduced": dict(rays=512, tex_size=64, tex_steps=2, init_size=48, elev=[-30.0, 0.0, 30.0], az_step=60.0,
                    batch=256, eval_every=25, cap=30.0, end_iter=3000, val_size=32, mem_rays=7000, mem_size=256),
    # GPU: each preset's own ray budget and image size (rays / mem_rays None), enough steps to time kernels.
    "gpu": dict(rays=None, tex_size=None, tex_steps=20, init_size=64, elev=[-30.0, 0.0, 30.0], az_step=60.0,
                batch=5120, eval_every=100, cap=60.0, end_iter=3000, val_size=64, mem_rays=None, mem_size=None),
}


def get_body(kind: str, device):
    """(V, 3), (F, 3) long: the anny body in the stand pose, or an ellipsoid of body-like extent."""
    if kind == "anny":
        from avatarclip_core.body import get_body_model, stand_pose

        mesh = get_body_model("anny")(pose=stand_pose()[None])
        return mesh.vertices[0].float().to(device), mesh.faces.long().to(device)
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=3)
    m.apply_scale((0.45, 0.8, 0.25))
    return (torch.tensor(m.vertices, dtype=torch.float32, device=device),
            torch.tensor(m.faces, dtype=torch.long, device=device))


def preset_params(preset: str):
    cfg = load_config(preset)
    return cfg.params("neus_init"), cfg.params("texture")


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _rays(tp, rays, size):
    """`tp` with the ray budget / image size of a scale (None keeps the preset's own)."""
    change = {k: v for k, v in (("max_ray_num", rays), ("image_size", size)) if v is not None}
    return tp.replace({"rays": change}) if change else tp


def bench_texture(preset: str, V, F, sc: dict, device, seed: int = 0, profile_dir: str | None = None) -> dict:
    """Iterations/second of texture_step for a preset at the scale's ray budget and image size; with
    `profile_dir`, 4 more steps run under torch.profiler (see the module docstring)."""
    ip, tp = preset_params(preset)
    ip = ip.replace({"sdf_network.sphere_init_steps": 0})
    tp = _rays(tp, sc["rays"], sc["tex_size"])
    torch.manual_seed(seed)
    state = texture_state(ip, tp, V, F, device, seed)
    texture_step(state, 1)  # warm-up (step 1: body view)
    _sync(device)
    t0 = time.perf_counter()
    rays = 0
    for s in range(2, 2 + sc["tex_steps"]):
        out = texture_step(state, s)
        rays += out["n_rays"]
    _sync(device)
    dt = time.perf_counter() - t0
    if profile_dir:  # after the timed steps (the profiler slows what it watches); 4 steps keep the trace small
        first = 2 + sc["tex_steps"]
        with _profiler(device) as prof:
            for s in range(first, first + PROFILE_STEPS):
                texture_step(state, s)
            _sync(device)
        _write_profile(prof, Path(profile_dir), f"texture_{preset}", device)
    r, sdf = ip.renderer, ip.sdf_network
    return {"it_per_s": sc["tex_steps"] / dt, "mean_rays": rays / sc["tex_steps"],
            "samples_per_ray": r.n_samples + r.n_importance, "encoding": sdf.encoding,
            "sdf": f"{sdf.n_layers}x{sdf.d_hidden}", "params": sum(p.numel() for p in state.model.parameters())}


#: Texture steps recorded by `--profile` (one face step and three body steps: step % 4 == 0 is a face step).
PROFILE_STEPS = 4


def _profiler(device):
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if str(device).startswith("cuda") else [])
    return profile(activities=acts, record_shapes=False, with_stack=False)


def _write_profile(prof, folder: Path, name: str, device) -> None:
    """Top operators by self time (CUDA time on CUDA) as a table, and the Chrome trace."""
    folder.mkdir(parents=True, exist_ok=True)
    key = "self_cuda_time_total" if str(device).startswith("cuda") else "self_cpu_time_total"
    (folder / f"{name}.txt").write_text(prof.key_averages().table(sort_by=key, row_limit=30))
    import gzip
    import shutil

    trace = folder / f"{name}.json"
    prof.export_chrome_trace(str(trace))
    with open(trace, "rb") as src, gzip.open(f"{trace}.gz", "wb") as dst:  # ~10× smaller: the device returns ≤ 16 MiB
        shutil.copyfileobj(src, dst)
    trace.unlink()


def texture_state(ip, tp, V, F, device, seed: int) -> TextureState:
    """A stage-3 state on an untrained init model of `ip` (head 2 seeded by `seed`) with the colour oracle."""
    model = NeusModel(ip).to(device).with_texture_head(torch.Generator().manual_seed(seed))
    enc = ColorOracle()
    text = {k: enc.encode_text([v])[0].to(device) for k, v in PROMPTS.items()}
    sampler = TextureCameraSampler.from_params(tp, (0.0, 0.6, 0.1), seed)
    opt = torch.optim.Adam(model.parameters(), lr=tp.schedule.learning_rate)
    return TextureState(model, opt, sampler, torch.Generator().manual_seed(seed), text, V, F, enc, tp)


def heldout_iou(model, V, F, size: int) -> float:
    """Silhouette IoU (alpha > 0.5) over 4 views between the training views (azimuths 30+90k°, elevation 10°)."""
    cams = orbit_cameras(2.2, [10.0], [30.0, 120.0, 210.0, 300.0]).to(V.device)
    with torch.no_grad():
        pred = render_views(model, cams, size, size, chunk=4096)["alpha"] > 0.5
        gt = render_mesh(V, F, cams, size).alpha > 0.5
    return float((pred & gt).sum()) / max(float((pred | gt).sum()), 1.0)


def bench_init(preset: str, V, F, sc: dict, iou_bar: float, device, seed: int = 0,
               chamfer_bar: float = 10.0) -> dict:
    """Training time of fit_neus_init until the held-out silhouette IoU ≥ iou_bar and the Chamfer distance to
    the body ≤ chamfer_bar mm (or the time cap)."""
    from avatarclip_core.pipeline import chamfer_to_body

    ip, _ = preset_params(preset)
    ip = ip.replace({"views": {"image_size": sc["init_size"], "elevations_deg": sc["elev"],
                               "azimuth_step_deg": sc["az_step"]},
                     "batch_size": sc["batch"],
                     "schedule": {"end_iter": sc["end_iter"], "val_every": 10 ** 9, "save_every": sc["eval_every"],
                                  "warm_up_end": min(ip.schedule.warm_up_end, sc["end_iter"] // 20),
                                  "iterations": sc["eval_every"]}})
    images, masks, cams = body_views(V, F, ip)
    trace, train_time, overhead = [], 0.0, None
    with tempfile.TemporaryDirectory() as tmp:
        step = 0
        while True:
            step += sc["eval_every"]
            p = ip.replace({"schedule.iterations": step})
            _sync(device)
            t0 = time.perf_counter()
            model = fit_neus_init(images, masks, cams, p, tmp, seed=seed, progress=False, body=(V, F))
            _sync(device)
            dt = time.perf_counter() - t0
            if step > sc["eval_every"]:
                if overhead is None:  # construction + checkpoint load of a resumed call, measured once
                    t1 = time.perf_counter()
                    fit_neus_init(images, masks, cams, p, tmp, seed=seed, progress=False, body=(V, F))
                    overhead = time.perf_counter() - t1
                dt = max(dt - overhead, 0.0)
            train_time += dt
            iou = heldout_iou(model, V, F, sc["val_size"])
            cd = chamfer_to_body(model, V, F) if iou >= iou_bar else None
            trace.append((step, round(train_time, 2), round(iou, 4), cd))
            done = iou >= iou_bar and cd <= chamfer_bar
            if done or train_time >= sc["cap"] or step >= sc["end_iter"]:
                break
    if cd is None:
        cd = chamfer_to_body(model, V, F)
    return {"seconds": train_time, "steps": step, "iou": iou, "chamfer_mm": cd, "reached": bool(done),
            "trace": trace, "encoding": ip.sdf_network.encoding, "init_mode": ip.sdf_init.mode,
            "sdf_steps": ip.sdf_init.steps if ip.sdf_init.mode == "sdf" else 0, "lr": ip.schedule.learning_rate}


def memory_child(rays: int, size: int, device: str, preset: str = "small") -> None:
    """Run one texture step of `preset` and print {'peak_rss_mib', 'cuda_peak_mib', …} (subprocess); rays / size
    0 keep the preset's own."""
    V, F = get_body("ellipsoid", device)
    ip, tp = preset_params(preset)
    ip = ip.replace({"sdf_network.sphere_init_steps": 0})
    tp = _rays(tp, rays or None, size or None)
    state = texture_state(ip, tp, V, F, device, 0)
    t0 = time.perf_counter()
    out = texture_step(state, 1)
    _sync(device)
    dt = time.perf_counter() - t0
    res = {"preset": preset, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "n_rays": out["n_rays"], "image_size": tp.rays.image_size, "step_seconds": dt}
    if device.startswith("cuda"):
        res["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(res))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--body", choices=["anny", "ellipsoid"], default="ellipsoid")
    ap.add_argument("--iou", type=float, default=None, help="held-out silhouette IoU bar (0.9 tiny/reduced)")
    ap.add_argument("--chamfer-mm", type=float, default=10.0, help="Chamfer bar to the body mesh (mm)")
    ap.add_argument("--cap", type=float, default=None, help="init time cap per preset in seconds")
    ap.add_argument("--presets", nargs="+", default=["fast", "full"], choices=["fast", "full"],
                    help="presets of the init benchmark (ratio only with both)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["texture", "init", "memory"])
    ap.add_argument("--memory-presets", nargs="+", default=["small"], choices=["tiny", "small", "fast", "full"],
                    help="presets whose one texture step's peak memory is measured")
    ap.add_argument("--profile", default=None, metavar="DIR", help="torch.profiler tables/traces of the texture steps")
    ap.add_argument("--_memory_child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a._memory_child:
        rays, size, preset = a._memory_child
        return memory_child(int(rays), int(size), a.device, preset)
    sc = dict(SCALES[a.scale])
    if a.cap is not None:
        sc["cap"], sc["end_iter"] = a.cap, max(sc["end_iter"], int(a.cap * 20))
    iou_bar = a.iou if a.iou is not None else 0.9
    V, F = get_body(a.body, a.device)
    res = {"scale": a.scale, "threads": a.threads, "device": a.device, "body": a.body,
           "torch": torch.__version__}
    t_all = time.perf_counter()
    if "texture" not in a.skip:
        tex = {p: bench_texture(p, V, F, sc, a.device, profile_dir=a.profile) for p in ("full", "fast")}
        tex["ratio_fast_over_full"] = tex["fast"]["it_per_s"] / tex["full"]["it_per_s"]
        tex["target"] = ">= 5"
        res["texture"] = tex
    if "init" not in a.skip:
        ini = {p: bench_init(p, V, F, sc, iou_bar, a.device, chamfer_bar=a.chamfer_mm) for p in a.presets}
        ini["iou_bar"], ini["chamfer_bar_mm"] = iou_bar, a.chamfer_mm
        if "fast" in ini and "full" in ini:
            ini["ratio_fast_over_full"] = ini["fast"]["seconds"] / max(ini["full"]["seconds"], 1e-9)
            ini["ratio_is_upper_bound"] = not ini["full"]["reached"]
            ini["ratio_valid"] = ini["fast"]["reached"]
            ini["target"] = "<= 0.1"
        res["init"] = ini
    if "memory" not in a.skip:
        for preset in a.memory_presets:
            cmd = [sys.executable, __file__, "--threads", str(a.threads), "--device", a.device,
                   "--_memory_child", str(sc["mem_rays"] or 0), str(sc["mem_size"] or 0), preset]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            res[f"memory_{preset}_texture_step"] = json.loads(out)
    res["bench_seconds"] = time.perf_counter() - t_all
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
