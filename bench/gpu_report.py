"""The JSON of `bench/gpu.sh`: per-stage seconds of the pipeline run (from its stage manifests) next to the
estimates of avatarclip_core/estimate.py for the same device class, the end-to-end minutes, the bench/neus.py
figures (texture steps per second, peak memory of one small / full texture step), the device and versions.

Usage: python bench/gpu_report.py RUN_FOLDER NEUS_JSON [--log PIPELINE_LOG] [--pipeline-rc N] [--bench-rc N]
       [--times T0 T1 T2 T3] [--device cuda|cpu] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def stage_figures(run: Path) -> dict:
    """{stage folder: {"seconds", "figures"}} of the finished stages of `run`."""
    out = {}
    for manifest in sorted(run.glob("0*/manifest.json")):
        m = json.loads(manifest.read_text())
        out[m["stage"]] = {"seconds": m["wall_time_s"], "figures": m.get("figures", {})}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("neus_json")
    ap.add_argument("--log", default=None)
    ap.add_argument("--pipeline-rc", type=int, default=0)
    ap.add_argument("--bench-rc", type=int, default=0)
    ap.add_argument("--times", nargs=4, type=float, default=None, help="start, after install, after pipeline, end")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    import torch

    from avatarclip_core.config import load_run_config
    from avatarclip_core.estimate import estimate_stages

    run = Path(a.run)
    report = {"device": a.device, "torch": torch.__version__, "python": platform.python_version(),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "pipeline": {"returncode": a.pipeline_rc, "finished": a.pipeline_rc == 0,
                           "timed_out": a.pipeline_rc in (124, 137)}}
    stages = stage_figures(run) if run.is_dir() else {}
    if (run / "run.conf").is_file():
        conf = load_run_config(run)
        est = estimate_stages(conf, a.device)
        report["pipeline"]["preset"] = conf.preset
        report["pipeline"]["texture_iterations"] = conf.params("texture").schedule.iterations
        for sid, (seconds, _) in est.items():
            folder = next((k for k in stages if k.startswith(sid)), None)
            if folder:
                stages[folder]["estimate_s"] = round(seconds, 1)
    report["pipeline"]["stages"] = stages
    if a.times:
        t0, t1, t2, t3 = a.times
        report["pipeline"]["end_to_end_minutes"] = round((t2 - t1) / 60, 2)
        report["install_seconds"] = round(t1 - t0, 1)
        report["bench_seconds"] = round(t3 - t2, 1)
        report["total_minutes"] = round((t3 - t0) / 60, 2)
    if a.pipeline_rc and a.log and Path(a.log).is_file():
        report["pipeline"]["log_tail"] = Path(a.log).read_text(errors="replace")[-3000:]
    try:
        neus = json.loads(Path(a.neus_json).read_text())
        report["texture"] = neus.get("texture")
        report["memory"] = {k: v for k, v in neus.items() if k.startswith("memory_")}
    except (OSError, ValueError) as err:
        report["bench_error"] = f"{type(err).__name__}: {err} (bench/neus.py rc {a.bench_rc})"
    text = json.dumps(report, indent=1)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
