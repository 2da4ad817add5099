"""Headless entry point: `avatarclip run …` (or `python -m avatarclip_core run …`) executes the stage notebooks
with papermill and leaves the executed copies in `exp/<run>/notebooks/`.

Everything that can fail fast is checked first (configuration, prompts, SMPL files, CLIP weights), so a bad
value stops the run within seconds, before any long work.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {"01": "01_coarse_shape", "02": "02_neus_init", "03": "03_clip_texturing", "04": "04_pose_retrieval",
             "05": "05_motion", "06": "06_video_render"}
STAGE_OF = {"01": "01_shape", "02": "02_neus_init", "03": "03_texture", "04": "04_poses", "05": "05_motion",
            "06": "06_video"}
# Prompts and CLIP needed by each stage (checked before anything runs).
NEEDS_PROMPT = {"01": "shape", "03": "appearance", "04": "motion", "05": "motion"}
NEEDS_CLIP = {"01", "03", "04"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatarclip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run stage notebooks headless with papermill")
    r.add_argument("--shape", default="", help='body-shape prompt, e.g. "a tall and skinny person"')
    r.add_argument("--appearance", default="", help='appearance prompt, e.g. "a female soldier"')
    r.add_argument("--motion", default="", help='motion prompt, e.g. "arguing"')
    r.add_argument("--preset", default="small", help="tiny | small | full | fast (default small)")
    r.add_argument("--run", default="demo", help="run name: outputs go to <exp-root>/<run>/")
    r.add_argument("--exp-root", default="exp", help="folder holding runs (default ./exp)")
    r.add_argument("--clip", default="", help="CLIP model: open_clip name, checkpoint path, 'tiny' or 'oracle:…'")
    r.add_argument("--body", default="", help="body model: anny (default) or smpl")
    r.add_argument("--device", default="", help="auto | cpu | cuda")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a configuration value, e.g. --set texture.iterations=200 (repeatable)")
    r.add_argument("--stages", default="01,02,03,04,05,06", help="comma-separated stage numbers to run")
    r.add_argument("--no-notebooks", action="store_true",
                   help="call the stage functions directly instead of executing the notebooks")
    return p


def _overrides(args) -> dict:
    from .config import parse_override

    out = dict(parse_override(s) for s in args.set)
    for key, value in (("run.clip_model", args.clip), ("run.body", args.body), ("run.device", args.device)):
        if value:
            out[key] = value
    return out


def preflight(conf, stages: list[str]) -> None:
    """Fail fast: prompts of the selected stages, SMPL files, CLIP weights. Raises the error that names the fix."""
    for s in stages:
        if s in NEEDS_PROMPT:
            conf.prompts.require(NEEDS_PROMPT[s])
    if conf.run.body == "smpl":
        from .body.registry import DEFAULT_SMPL_DIR
        from .body.smpl_body import find_smpl_file

        find_smpl_file(DEFAULT_SMPL_DIR)
    if NEEDS_CLIP & set(stages):
        from .pipeline import load_encoder

        load_encoder(conf)


def cmd_run(args) -> int:
    from .config import load_config

    stages = [s.strip().zfill(2) for s in args.stages.split(",") if s.strip()]
    bad = [s for s in stages if s not in NOTEBOOKS]
    if bad:
        print(f"error: unknown stage(s) {bad}; choose from {', '.join(NOTEBOOKS)}", file=sys.stderr)
        return 2
    overrides = _overrides(args)
    prompts = {"shape": args.shape, "appearance": args.appearance, "motion": args.motion}
    conf = load_config(args.preset, overrides=overrides, prompts=prompts)
    exp_root = Path(args.exp_root).resolve()
    run_root = exp_root / args.run
    # Prompts left empty on the command line come from an earlier run.conf of the same run.
    if (run_root / "run.conf").is_file():
        from pyhocon import ConfigFactory

        old = ConfigFactory.parse_file(str(run_root / "run.conf")).get("prompts", {})
        prompts = {k: v or old.get(k, "") for k, v in prompts.items()}
        conf = load_config(args.preset, overrides=overrides, prompts=prompts)
    preflight(conf, stages)
    start = time.time()
    if args.no_notebooks:
        from . import pipeline

        run = pipeline.prepare_run(run_root, conf)
        for s in stages:
            pipeline.STAGE_FUNCTIONS[STAGE_OF[s]](run, conf)
    else:
        import papermill as pm

        out_dir = run_root / "notebooks"
        out_dir.mkdir(parents=True, exist_ok=True)
        params = dict(run_name=args.run, preset=args.preset, overrides=overrides, exp_root=str(exp_root),
                      interactive=False, **prompts)
        from .pipeline import stage_inputs
        from .rundir import RunDir

        run = RunDir(run_root)
        for s in stages:
            name = NOTEBOOKS[s]
            stage = STAGE_OF[s]
            if run.status(stage, stage_inputs(stage, conf)) == "done":  # no kernel start for a finished stage
                print(f"[{stage}] already finished with these inputs — skipped", flush=True)
                continue
            print(f"== {name} ==", flush=True)
            t = time.time()
            try:
                pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
                                    parameters=params, cwd=str(ROOT), progress_bar=False, log_output=True,
                                    kernel_name="python3")
            except pm.PapermillExecutionError as err:
                print(f"error: notebook {name} failed: {err.ename}: {err.evalue}\n"
                      f"see the executed notebook {out_dir / (name + '.ipynb')}", file=sys.stderr)
                return 1
            print(f"   {name} done in {time.time() - t:.1f} s", flush=True)
    print(f"finished stages {','.join(stages)} in {time.time() - start:.1f} s → {run_root}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .config import ConfigError

    try:
        return cmd_run(args)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if type(err).__name__ == "ClipWeightsMissing":
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
