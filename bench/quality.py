"""Quality per compute of the texture stage: `full` vs `fast` under the part-colour and geometry oracles, JSON on
stdout (docs/method.md, "Fast at equal quality").

Both presets run the same stage-3 code (`TextureState`, `texture_step`, the `train` loop with its LR schedule) on
the same anny body, prompts, oracle and seed; only their configuration (confs/full.conf, confs/fast.conf) differs.

What is compared, per oracle (`oracle:parts` with "a person in a red top and blue trousers"; `oracle:geometry`
with "a woman in a wide skirt" — a score only sculpting can raise):
- score: the oracle's cosine between the body prompt (front) / back prompt (back) and the texture head's render
  with its Σw as alpha, from the validation camera (front, 20° up, 2 m) and the same camera behind, 64² px,
  averaged; every `--eval-every` steps and at the end.
- iterations: `full` runs the paper's schedule compressed to `--full-steps` (300) steps (warm-up and cosine end
  scaled by full_steps / 30,010), `fast` its own schedule (confs/fast.conf). Both cast 1/`--ray-fraction` (64) of
  their preset's rays on a 64² ground truth: the CPU cannot afford the real budgets for hundreds of steps.
- seconds: CPU seconds = iterations × the preset's real step time, measured over `--real-steps` steps (after one
  warm-up) at its real ray budget and image size (12,544 rays for full, 7,000 for fast, 256²); the proxy's own
  wall time is reported too.
- target: the fast run's first evaluation whose score reaches the full run's final score; ratio = its CPU
  seconds / the full run's. `recommended_fast_iterations` = twice the larger reach iteration over the oracles,
  rounded up to 100 (the margin for a proxy whose evaluations move by ±0.02–0.05 between steps): the iteration
  count confs/fast.conf takes. `--summarise FILE` recomputes these figures and the plot from a saved JSON.

Both presets start from a stage-2 model of their own architecture fitted the same way (`sdf_init` of fast.conf:
the body's SDF regressed, then colour head 1 and inv_s with frozen geometry), trained once and shared by the oracles.

Usage: python bench/quality.py [--oracles parts geometry] [--full-steps 300] [--ray-fraction 64] [--real-steps 1]
       [--eval-every 25] [--threads 1] [--memory] [--json bench/quality.json] [--plot docs/img/quality.png]
       python bench/quality.py --summarise bench/quality.json [--json …] [--plot …]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avatarclip_core.cameras import Cameras, eye_from_angles, look_at  # noqa: E402
from avatarclip_core.config import load_config  # noqa: E402
from avatarclip_core.guidance.prompts import appearance_prompts  # noqa: E402
from avatarclip_core.guidance.test_encoders import make_test_encoder  # noqa: E402
from avatarclip_core.neus import body_views, fit_neus_init  # noqa: E402
from avatarclip_core.neus.renderer import render_rays_chunked  # noqa: E402
from avatarclip_core.neus.texture import TextureState, texture_step  # noqa: E402
from avatarclip_core.neus.training import train  # noqa: E402

PROMPTS = {"parts": "a person in a red top and blue trousers", "geometry": "a woman in a wide skirt"}
PRESETS = ("full", "fast")
EVAL_SIZE = 64
PROXY_IMAGE_SIZE = 64


def stand_body():
    """(V, 3) float, (F, 3) long stand-posed default anny body and its (3,) head joint (avatar frame, metres)."""
    from avatarclip_core import skeleton
    from avatarclip_core.body import get_body_model, stand_pose

    out = get_body_model("anny")(pose=stand_pose()[None])
    return out.vertices[0].float(), out.faces.long(), out.joints[0, skeleton.JOINT_INDEX["head"]].float()


def init_model(preset: str, V, F, seed: int, folder: Path):
    """Stage 2 of `preset`'s networks with fast.conf's sdf_init (see the module docstring), 64² views."""
    ip = load_config(preset).params("neus_init")
    fast = load_config("fast").params("neus_init")
    ip = ip.replace({"sdf_init": fast.sdf_init.to_dict(),
                     "schedule": {"iterations": 20, "end_iter": 20, "warm_up_end": 2, "val_every": 10 ** 6,
                                  "save_every": 10 ** 6, "learning_rate": fast.schedule.learning_rate},
                     "views": {"image_size": 64}, "batch_size": 1024})
    images, masks, cams = body_views(V, F, ip)
    return fit_neus_init(images, masks, cams, ip, folder, seed=seed, progress=False, body=(V, F))


def eval_cameras() -> tuple[Cameras, list[str]]:
    """The validation camera (front, 20° above, 2 m) and its mirror behind; the prompt key of each."""
    eyes = torch.stack([eye_from_angles(2.0, 20.0, az) for az in (0.0, 180.0)])
    return Cameras(look_at(eyes), 60.0), ["body", "back"]


def oracle_score(state: TextureState) -> float:
    """Mean oracle cosine of the texture head's renders (Σw as alpha) over `eval_cameras` (no gradient)."""
    cams, keys = eval_cameras()
    model = state.model
    was_training = model.training
    model.eval()
    with torch.no_grad():
        o, d = cams.rays(EVAL_SIZE, EVAL_SIZE)
        out = render_rays_chunked(model, o.reshape(-1, 3), d.reshape(-1, 3), chunk=4096)
        img = out["texture"].clamp(0, 1).reshape(len(keys), EVAL_SIZE, EVAL_SIZE, 3)
        alpha = out["weights_sum"].clamp(0, 1).reshape(len(keys), EVAL_SIZE, EVAL_SIZE)
        emb = state.encoder.encode_image(img, alpha)
        text = torch.stack([state.text_emb.get(k, state.text_emb["body"]) for k in keys])
        score = float((emb * text).sum(-1).mean())
    model.train(was_training)
    return score


def proxy_params(preset: str, full_steps: int, ray_fraction: int):
    """The texture parameters of the proxy run (module docstring): rays / ray_fraction on a 64² ground truth;
    full's schedule compressed to full_steps."""
    tp = load_config(preset).params("texture")
    change = {"rays": {"max_ray_num": math.ceil(tp.rays.max_ray_num / ray_fraction),
                       "image_size": PROXY_IMAGE_SIZE}}
    if preset == "full":
        s, k = tp.schedule, full_steps / tp.schedule.iterations
        change["schedule"] = {"iterations": full_steps, "end_iter": max(full_steps, round(s.end_iter * k)),
                              "warm_up_end": round(s.warm_up_end * k)}
    return tp.replace(change)


def run_proxy(preset: str, model, body, encoder, prompts, tp, eval_every: int, seed: int) -> dict:
    """Train the proxy, scoring every eval_every steps; trace rows (iteration, proxy seconds, score)."""
    V, F, head = body
    state = TextureState.start(model, V, F, encoder, prompts, tp, seed, head_joint=head)
    seconds = [0.0]

    def step_fn(s):
        t0 = time.perf_counter()
        out = texture_step(state, s)
        seconds[0] += time.perf_counter() - t0
        return out

    trace = [(0, 0.0, oracle_score(state))]

    def validate(s):
        if s % eval_every == 0 or s == tp.schedule.iterations:
            trace.append((s, round(seconds[0], 2), round(oracle_score(state), 5)))

    log(f"{preset}: {tp.schedule.iterations} proxy steps at {tp.rays.max_ray_num} rays")
    sched = tp.schedule.replace({"val_every": 1})
    state.model.train()
    train(step_fn, state.optimizer, sched, 0, validate=validate, progress=False)
    return {"iterations": tp.schedule.iterations, "rays_per_step": tp.rays.max_ray_num,
            "schedule": tp.schedule.to_dict(), "proxy_seconds": round(seconds[0], 1), "trace": trace,
            "final_score": trace[-1][2]}


def real_step_seconds(preset: str, model, body, encoder, prompts, steps: int, seed: int) -> float:
    """Mean wall seconds of one texture step at the preset's real ray budget and image size (one warm-up step;
    body-camera steps, as 3 of 4 steps are)."""
    V, F, head = body
    tp = load_config(preset).params("texture")
    state = TextureState.start(model, V, F, encoder, prompts, tp, seed, head_joint=head)
    state.model.train()
    body_steps = [s for s in range(1, 4 * steps + 4) if s % 4][:steps + 1]
    texture_step(state, body_steps[0])
    t0 = time.perf_counter()
    for s in body_steps[1:]:
        texture_step(state, s)
    sec = (time.perf_counter() - t0) / steps
    log(f"{preset}: {sec:.2f} s per real-size texture step")
    return sec


def log(msg: str) -> None:
    """Progress on stderr (stdout is the JSON)."""
    print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def reach(trace, bar: float):
    """First (iteration, proxy seconds) of a trace whose score ≥ bar, or None."""
    return next(((it, sec) for it, sec, sc in trace if sc >= bar), None)


def compare(runs: dict, real: dict) -> dict:
    """The reach figures of one oracle (module docstring)."""
    full, fast = runs["full"], runs["fast"]
    bar = full["final_score"]
    full_cpu = full["iterations"] * real["full"]
    hit = reach(fast["trace"], bar)
    res = {"bar_full_final_score": bar, "full_iterations": full["iterations"],
           "full_cpu_seconds": round(full_cpu, 1), "fast_final_score": fast["final_score"],
           "fast_reached": hit is not None}
    if hit is not None:
        res.update(fast_iterations_to_bar=hit[0], fast_cpu_seconds_to_bar=round(hit[0] * real["fast"], 1),
                   ratio_cpu_seconds_fast_over_full=round(hit[0] * real["fast"] / full_cpu, 4))
    return res


def summarise(res: dict) -> dict:
    """(Re)compute each oracle's `compare` and `recommended_fast_iterations` (module docstring) in `res`."""
    for r in res["oracles"].values():
        r["compare"] = compare(r["runs"], res["real_step_seconds"])
    reached = [r["compare"].get("fast_iterations_to_bar") for r in res["oracles"].values()]
    res.pop("recommended_fast_iterations", None)
    if reached and all(it is not None for it in reached):
        res["recommended_fast_iterations"] = int(math.ceil(2 * max(reached) / 100) * 100)
    return res


def memory_figures(threads: int) -> dict:
    """Peak RSS of one small-preset texture step at its real budget (7,000 rays, 256²), from bench/neus.py."""
    cmd = [sys.executable, str(ROOT / "bench" / "neus.py"), "--scale", "reduced", "--threads", str(threads),
           "--skip", "texture", "init", "--memory-presets", "small"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["memory_small_texture_step"]


def plot(results: dict, path: Path) -> None:
    """Score against iterations and against CPU seconds, one row per oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    oracles = list(results["oracles"])
    fig, axes = plt.subplots(len(oracles), 2, figsize=(10, 3.6 * len(oracles)), squeeze=False)
    for row, name in zip(axes, oracles):
        r = results["oracles"][name]
        for preset in PRESETS:
            tr = r["runs"][preset]["trace"]
            it = [t[0] for t in tr]
            sc = [t[2] for t in tr]
            row[0].plot(it, sc, marker=".", label=preset)
            row[1].plot([i * results["real_step_seconds"][preset] / 60 for i in it], sc, marker=".", label=preset)
        for ax in row:
            ax.axhline(r["compare"]["bar_full_final_score"], color="grey", ls="--", lw=0.8,
                       label="full's final score")
            ax.set_ylabel(f"{name} oracle score")
            ax.grid(alpha=0.3)
        row[0].set_xlabel("texture iterations")
        row[1].set_xlabel("CPU minutes (iterations × real step time)")
        row[0].set_title(f'"{PROMPTS[name]}"')
        row[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oracles", nargs="+", default=list(PROMPTS), choices=list(PROMPTS))
    ap.add_argument("--full-steps", type=int, default=300, help="full's compressed schedule length")
    ap.add_argument("--ray-fraction", type=int, default=64, help="proxy runs cast 1/N of each preset's rays")
    ap.add_argument("--real-steps", type=int, default=1, help="timed steps at the real ray budgets")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", action="store_true", help="also the peak RSS of one small-preset step")
    ap.add_argument("--json", default=None, help="also write the JSON here")
    ap.add_argument("--plot", default=None, help="write the score curves (PNG) here")
    ap.add_argument("--summarise", default=None, metavar="FILE", help="recompute figures and plot from a saved JSON")
    a = ap.parse_args(argv)
    if a.summarise:
        res = summarise(json.loads(Path(a.summarise).read_text()))
        return write_outputs(res, a)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_all = time.perf_counter()
    V, F, head = stand_body()
    body = (V, F, head)
    res = {"torch": torch.__version__, "threads": a.threads, "full_steps": a.full_steps,
           "ray_fraction": a.ray_fraction, "eval_size": EVAL_SIZE, "oracles": {}}
    log("stage-2 models")
    with tempfile.TemporaryDirectory() as tmp:
        models = {p: init_model(p, V, F, a.seed, Path(tmp) / p) for p in PRESETS}
    first = make_test_encoder(f"oracle:{a.oracles[0]}")
    first_prompts = appearance_prompts(PROMPTS[a.oracles[0]])
    res["real_step_seconds"] = {p: round(real_step_seconds(p, models[p], body, first, first_prompts, a.real_steps,
                                                           a.seed), 3) for p in PRESETS}
    for name in a.oracles:
        enc, prompts = make_test_encoder(f"oracle:{name}"), appearance_prompts(PROMPTS[name])
        runs = {p: run_proxy(p, models[p], body, enc, prompts, proxy_params(p, a.full_steps, a.ray_fraction),
                             a.eval_every, a.seed) for p in PRESETS}
        res["oracles"][name] = {"prompt": PROMPTS[name], "runs": runs, "compare": compare(runs, res["real_step_seconds"])}
    summarise(res)
    if a.memory:
        res["memory_small_texture_step"] = memory_figures(a.threads)
    res["bench_seconds"] = round(time.perf_counter() - t_all, 1)
    write_outputs(res, a)


def write_outputs(res: dict, a) -> None:
    """The JSON on stdout (and in --json), the plot in --plot."""
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    if a.plot:
        plot(res, Path(a.plot))


if __name__ == "__main__":
    main()
