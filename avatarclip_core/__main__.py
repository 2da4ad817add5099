"""Headless entry point: `avatarclip run …` (or `python -m avatarclip_core run …`) executes the stage notebooks
with papermill and leaves the executed copies in `<run root>/<run>/notebooks/`; `avatarclip notebooks DIR`
copies the notebooks out of an installed package.

Everything that can fail fast is checked first, before torch is imported (stages, run name, configuration, run
root, prompts, SMPL files, the CLIP model name or file, finished upstream stages), then the CLIP weights; a user
error prints one line naming the value and the fix and exits with status 2, within about a second. Runs live under
the run root of `paths.exp_root` (`--exp-root`, else $AVATARCLIP_EXP, else ./exp of the project folder), the same
folder the notebooks use.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import stages
from .config import ConfigError
from .guidance.encoder import ClipWeightsMissing  # torch-free module (guidance/encoder.py)
from .neus.training import TrainingDiverged  # torch-free until a checkpoint is loaded
from .rundir import RunDir, RunLocked, UpstreamMissing, run_lock

#: Errors whose message already names the value and the fix: printed as one line, exit status 2.
USER_ERROR_CLASSES: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, UpstreamMissing,
                                                       ClipWeightsMissing, RunLocked, TrainingDiverged)
#: The same errors as papermill reports them from a notebook kernel (`PapermillExecutionError.ename`).
USER_ERROR_NAMES = frozenset(c.__name__ for c in USER_ERROR_CLASSES)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatarclip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run stage notebooks headless with papermill")
    r.add_argument("--shape", default="", help='body-shape prompt, e.g. "a tall and skinny person"')
    r.add_argument("--appearance", default="", help='appearance prompt, e.g. "a female soldier"')
    r.add_argument("--motion", default="", help='motion prompt, e.g. "arguing"')
    r.add_argument("--preset", default="", help="tiny | small | full | fast | cpu | a .conf file (default: the "
                                                "run's own preset; for a new run fast with a CUDA GPU, cpu without "
                                                "one)")
    r.add_argument("--run", default="demo", help="run name: outputs go to <exp-root>/<run>/")
    r.add_argument("--exp-root", default="", help="folder holding runs (default $AVATARCLIP_EXP, else ./exp of "
                                                  "the project folder)")
    r.add_argument("--clip", default="", help="CLIP model: open_clip name or checkpoint path (with "
                                              "AVATARCLIP_TEST_ENCODERS=1 also 'tiny' or 'oracle:…')")
    r.add_argument("--body", default="", help="body model: anny (default) or smpl")
    r.add_argument("--smpl-dir", default="", help="folder of the SMPL files (default $AVATARCLIP_SMPL_DIR, else "
                                                  "./smpl_models of the project folder)")
    r.add_argument("--device", default="", help="auto | cpu | cuda")
    r.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a configuration value, e.g. --set texture.schedule.iterations=200 (repeatable)")
    r.add_argument("--stages", default=",".join(stages.BY_ID), help="comma-separated stage numbers to run")
    r.add_argument("--motion-file", default="", metavar="BVH",
                   help="drive the avatar with this BVH clip (any humanoid skeleton) instead of a generated motion: "
                        "stage 5 retargets it, stage 4 and the motion prompt are skipped (= --set motion.file=BVH; "
                        "a skeleton that needs a joint map: --set motion.joint_map=map.json)")
    r.add_argument("--no-notebooks", action="store_true",
                   help="call the stage functions directly instead of executing the notebooks")
    g = sub.add_parser("gc", help="delete the stage caches (results of earlier inputs kept under <run>/.cache)")
    g.add_argument("--run", default="", help="only this run (default: every run under the run root)")
    g.add_argument("--exp-root", default="", help="folder holding runs (default $AVATARCLIP_EXP, else ./exp)")
    b = sub.add_parser("batch", help="one avatar per row of a prompts CSV, the stages as Ray tasks (docs/batch.md)")
    b.add_argument("prompts", help="CSV with columns name, shape, appearance, motion (+ optional section.key "
                                   "override columns)")
    b.add_argument("--run-root", default="", help="batch folder: one run folder per row (default <exp root>/<CSV "
                                                  "name>); on a cluster, storage every node sees")
    b.add_argument("--preset", default="", help="tiny | small | full | fast | cpu | a .conf file (default: fast "
                                                "with a CUDA GPU, cpu without one)")
    b.add_argument("--clip", default="", help="CLIP model, as for `run`")
    b.add_argument("--device", default="", help="auto | cpu | cuda")
    b.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override for every row (a row's own section.key column wins)")
    b.add_argument("--stages", default=",".join(stages.BY_ID), help="comma-separated stage numbers to run")
    b.add_argument("--address", default=None, help="Ray cluster to join ('auto', 'ray://head:10001'); default: "
                                                   "start Ray on this machine")
    b.add_argument("--workers", type=int, default=None, help="CPUs of the embedded Ray (default: all)")
    e = sub.add_parser("eval", help="CLIP score and R-precision of a run's avatar under another CLIP model "
                                    "(writes <run>/eval.json and the stage-3 manifest; docs/method.md, Evaluation)")
    e.add_argument("run", help="run name under the run root, or the path of a run folder")
    e.add_argument("--clip", default="ViT-L-14", help="evaluation CLIP model: open_clip name or checkpoint path "
                                                      "(default ViT-L-14; refused if it guided the run, see --force)")
    e.add_argument("--pretrained", default="openai", help="open_clip weights tag of --clip (default openai)")
    e.add_argument("--clip-cache", default="", help="folder of CLIP weights (default ~/.cache/avatarclip/clip)")
    e.add_argument("--exp-root", default="", help="folder holding runs (default $AVATARCLIP_EXP, else ./exp)")
    e.add_argument("--device", default="auto", help="auto | cpu | cuda")
    e.add_argument("--prompt", default=None, help="appearance description to score against (default: the run's)")
    e.add_argument("--views", type=int, default=8, help="cameras on the evaluation ring (default 8)")
    e.add_argument("--force", action="store_true", help="evaluate even with the model that guided the run")
    n = sub.add_parser("notebooks", help="copy the notebooks into a folder (for an installed package)")
    n.add_argument("dir", help="destination folder (created; existing notebooks are not overwritten)")
    n.add_argument("--force", action="store_true", help="overwrite notebooks that are already there")
    return p


def _one_line(err: BaseException) -> str:
    return " ".join(s.strip() for s in str(err).splitlines() if s.strip()) or type(err).__name__


def _hocon_errors() -> tuple[type[BaseException], ...]:
    """What pyhocon raises on bad HOCON text (pyparsing syntax errors, unresolved substitutions)."""
    from pyhocon.exceptions import ConfigException
    from pyparsing import ParseBaseException

    return ConfigException, ParseBaseException


def _overrides(args) -> dict:
    from .config import parse_override

    out = {}
    for text in args.set:
        try:
            key, value = parse_override(text)
        except _hocon_errors() as err:
            raise ConfigError(f"--set {text!r}: the value is not valid HOCON ({_one_line(err)}); quote text values, "
                              "e.g. --set 'prompts.shape=\"a tall person\"', and close lists, e.g. [1, 2]") from None
        out[key] = value
    for key, value in (("run.clip_model", args.clip), ("run.body", args.body), ("run.device", args.device),
                       ("run.smpl_dir", args.smpl_dir)):
        if value:
            out[key] = value
    if getattr(args, "motion_file", ""):  # absolute: the notebooks run with the run folder as working directory
        out["motion.file"] = str(Path(args.motion_file).expanduser().resolve())
    return out


def check_exp_root(path: Path) -> Path:
    """The run root `path`, created if missing, after checking that a file can be written in it.

    Raises:
        ConfigError: it is a file, or it cannot be created or written (the message names the folder and the fix).
    """
    fix = "choose a writable folder with --exp-root DIR (or the environment variable AVATARCLIP_EXP)"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"run root {path} is a file, not a folder; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".avatarclip-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = f": {err.filename}" if err.filename and str(err.filename) != str(path) else ""
        raise ConfigError(f"run root {path} cannot be created or written ({err.strerror or err}{where}); "
                          f"{fix}") from None
    return path


def preflight(conf, selected: list[stages.Stage], run_root: str | os.PathLike | None = None) -> None:
    """Fail fast: prompts of the selected stages, SMPL files, the CLIP model name or file, the finished upstream
    stages the selection does not run itself (when `run_root` is given) — all without importing torch — and last
    the CLIP weights (loads the encoder, imports torch). Raises the error that names the value and the fix."""
    from .guidance.encoder import clip_source_problem

    for s in selected:
        for prompt in s.prompts_for(conf):
            conf.prompts.require(prompt)
    if conf.run.body == "smpl":
        from .body.smpl_files import find_smpl_file  # torch-free
        from .paths import smpl_dir

        find_smpl_file(smpl_dir(conf.run.smpl_dir))
    uses_clip = any(s.uses_clip(conf) for s in selected)
    problem = clip_source_problem(conf.run.clip_model, key="run.clip_model") if uses_clip else None
    if problem:
        raise ConfigError(problem)
    if run_root is not None:
        run, earlier = RunDir(Path(run_root)), set()
        for s in selected:  # in the order they run: an upstream stage selected later has not run yet either
            for up in s.upstream_for(conf):
                if up not in earlier:
                    run.require(up)  # UpstreamMissing: not finished, or a file of it is missing / changed
            earlier.add(s.folder)
    from .pipeline import check_motion_file  # a user's BVH: exists, parses, maps (imports torch)

    if any(s.file_given(conf) for s in selected):
        check_motion_file(conf)
    if uses_clip:
        from .pipeline import load_encoder  # the first torch import

        load_encoder(conf)


def cmd_run(args) -> int:
    from .config import check_run_name, load_run_config
    from .paths import exp_root as resolve_exp_root

    try:
        selected = [stages.get(s) for s in args.stages.split(",") if s.strip()]
    except ValueError as err:
        raise ConfigError(f"--stages {args.stages!r}: {err}") from None
    if not selected:
        raise ConfigError(f"--stages {args.stages!r} names no stage; use e.g. --stages 01,02 "
                          f"(stages {','.join(stages.BY_ID)})")
    run_name = check_run_name(args.run)
    if args.preset.endswith(".conf"):  # absolute: the notebooks run with the run folder as working directory
        args.preset = str(Path(args.preset).expanduser().resolve())
    overrides = _overrides(args)
    prompts = {"shape": args.shape, "appearance": args.appearance, "motion": args.motion}
    exp_root = resolve_exp_root(args.exp_root)
    run_root = exp_root / run_name
    try:
        conf = load_run_config(run_root, args.preset, overrides, prompts)
    except _hocon_errors() as err:
        source = (f"--preset {args.preset}" if args.preset.endswith(".conf") else
                  f"{run_root / 'run.conf'}" if (run_root / "run.conf").is_file() else f"preset {args.preset!r}")
        raise ConfigError(f"the configuration ({source}) is not valid HOCON: {_one_line(err)}; fix its syntax "
                          "(or its ${…} references)") from None
    check_exp_root(exp_root)
    for s in [s for s in selected if s.skipped(conf)]:
        print(f"[{s.folder}] not needed: {s.skip_when} is given — skipped", flush=True)
    selected = [s for s in selected if not s.skipped(conf)]
    with run_lock(run_root):  # one process per run folder, from the first check to the last stage
        return _run_stages(args, conf, selected, exp_root, run_root, overrides, prompts)


def _default_preset_note(conf) -> str:
    """What `avatarclip run` says when it picked the preset of a new run by hardware (`config.default_preset`)."""
    if conf.preset == "cpu":
        steps = conf.params("texture").schedule.iterations
        return (f"preset cpu: no CUDA GPU found, so the CPU preset, sized to finish in under 30 minutes with CLIP "
                f"ViT-B/32 — LOWER QUALITY ({steps} texture steps instead of the paper's 30,000: colours and rough "
                "regions, no sculpted detail; confs/cpu.conf). On a GPU the default is fast; name one with --preset.")
    return f"preset {conf.preset}: a CUDA GPU was found (--preset full for the paper's setting, cpu for the CPU one)"


def _pending_stages(run, conf, selected) -> list[str]:
    """Ids of the selected stages that will run: not finished with these inputs, or after one that will run."""
    from .pipeline import stage_inputs

    pending = []
    for s in selected:
        if pending or run.status(s.folder, stage_inputs(s.folder, conf)) != "done":
            pending.append(s.id)
    return pending


def _run_stages(args, conf, selected, exp_root: Path, run_root: Path, overrides: dict, prompts: dict) -> int:
    new_run = not (run_root / "run.conf").is_file()
    preflight(conf, selected, run_root)
    if not args.preset and new_run:
        print(_default_preset_note(conf), flush=True)
    start = time.time()
    from . import pipeline
    from .estimate import format_estimate

    run = pipeline.prepare_run(run_root, conf)  # every notebook below starts from these settings (run.conf)
    pending = _pending_stages(run, conf, selected)
    if pending:  # before the long work: what each stage will take, roughly
        print(format_estimate(conf, pipeline.resolve_device(conf.run.device), pending), flush=True)
    if args.no_notebooks:
        for s in selected:
            s.run_function()(run, conf)
    else:
        import papermill as pm

        from .paths import shipped_dir

        out_dir = run_root / "notebooks"
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in selected:
            if run.status(s.folder, pipeline.stage_inputs(s.folder, conf, run)) == "done":  # no kernel start when finished
                print(f"[{s.folder}] already finished with these inputs — skipped", flush=True)
                continue
            print(f"== {s.notebook} ==", flush=True)
            params = dict(run_name=args.run, preset=args.preset, clip_model=args.clip, overrides=overrides,
                          exp_root=str(exp_root), **{p: prompts[p] for p in s.prompts})
            t = time.time()
            executed = out_dir / f"{s.notebook}.ipynb"
            try:
                pm.execute_notebook(str(shipped_dir("notebooks") / f"{s.notebook}.ipynb"), str(executed),
                                    parameters=params, cwd=str(run_root), progress_bar=False, log_output=True,
                                    kernel_name="python3")
            except pm.PapermillExecutionError as err:
                if err.ename in USER_ERROR_NAMES:
                    print(f"error: {err.evalue}", file=sys.stderr)
                    return 2
                print(f"error: notebook {s.notebook} failed: {err.ename}: {err.evalue}\n"
                      f"see the executed notebook {executed}", file=sys.stderr)
                return 1
            print(f"   {s.notebook} done in {time.time() - t:.1f} s", flush=True)
    print(f"finished stages {','.join(s.id for s in selected)} in {time.time() - start:.1f} s → {run_root}")
    return 0


def cmd_batch(args) -> int:
    """`avatarclip batch`: validate the CSV and the shared settings (fast, one-line errors), then run on Ray."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError("`avatarclip batch` runs on Ray, which is not installed: pip install 'avatarclip[batch]' "
                          "(or pip install ray)")
    from .batch import read_rows, row_status, run_batch
    from .config import parse_override
    from .paths import exp_root as resolve_exp_root

    rows = read_rows(args.prompts)
    try:
        selected = [stages.get(s).id for s in args.stages.split(",") if s.strip()]
    except ValueError as err:
        raise ConfigError(f"--stages {args.stages!r}: {err}") from None
    if not selected:
        raise ConfigError(f"--stages {args.stages!r} names no stage; use e.g. --stages 01,02")
    overrides = dict(parse_override(s) for s in args.set)
    for key, value in (("run.clip_model", args.clip), ("run.device", args.device)):
        if value:
            overrides[key] = value
    root = Path(args.run_root).expanduser() if args.run_root else resolve_exp_root("") / Path(args.prompts).stem
    check_exp_root(root)
    t0 = time.time()
    rows = run_batch(rows, root, args.preset, overrides, selected, address=args.address, workers=args.workers)
    statuses = [row_status(r)[0] for r in rows]
    for row, status in zip(rows, statuses):
        if status != "ok":
            print(f"[{row.name}] {status}: {row_status(row)[1]}", file=sys.stderr)
    print(f"batch: {statuses.count('ok')} of {len(rows)} rows finished in {time.time() - t0:.1f} s → "
          f"{root / 'index.html'}, {root / 'summary.csv'}")
    return 0 if statuses.count("ok") == len(rows) else 1


def cmd_gc(args) -> int:
    """Delete `<run>/.cache` of one run or of every run under the run root; prints what was freed."""
    from .config import check_run_name
    from .paths import exp_root as resolve_exp_root

    root = resolve_exp_root(args.exp_root)
    runs = [root / check_run_name(args.run)] if args.run else sorted(p for p in root.glob("*") if p.is_dir())
    total = 0
    for run_root in runs:
        with run_lock(run_root):
            freed = RunDir(run_root).clear_cache()
        if freed:
            print(f"{run_root}: freed {freed / 2 ** 20:.1f} MiB")
        total += freed
    print(f"stage caches cleared: {total / 2 ** 20:.1f} MiB freed in {len(runs)} run(s) under {root}")
    return 0


def cmd_eval(args) -> int:
    """`avatarclip eval RUN`: torch-free checks (run folder, stage 3 finished, not the guidance model, the CLIP
    name or file), then load the evaluation encoder, score, write <run>/eval.json and print the figures."""
    from .evaluate import EvalParams, check_eval_model, evaluate_run
    from .guidance.encoder import clip_source_problem, encoder_name_problem
    from .paths import exp_root as resolve_exp_root

    given = Path(args.run).expanduser()
    run_root = given if given.is_dir() else resolve_exp_root(args.exp_root) / args.run
    if not run_root.is_dir():
        raise ConfigError(f"run {args.run!r} not found: {run_root} is not a folder; give a run name under the run "
                          "root (--exp-root) or the path of a run folder")
    run = RunDir(run_root)
    params = EvalParams().replace({"views": args.views})
    check_eval_model(run, args.clip, args.pretrained, force=args.force)
    problem = encoder_name_problem(args.clip, key="--clip") or clip_source_problem(args.clip, key="--clip")
    if problem:
        raise ConfigError(problem)
    from .device import resolve_device  # the first torch import
    from .guidance import load_encoder

    encoder = load_encoder(args.clip, pretrained=args.pretrained, cache_dir=args.clip_cache or None,
                           device=resolve_device(args.device))
    figures = evaluate_run(run_root, encoder, prompt=args.prompt, params=params, force=args.force)
    print(f"eval {run_root.name} with {figures['eval_model']}: CLIP score {figures['clip_score']:.4f}, "
          f"R-precision {figures['r_precision']:.3f} (mean rank {figures['rank_mean']:.2f} of "
          f"{figures['distractors'] + 1} prompts, {figures['views']} views) → {run_root / 'eval.json'}")
    return 0


def cmd_notebooks(args) -> int:
    from .paths import shipped_dir

    dest = Path(args.dir).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for nb in sorted(shipped_dir("notebooks").glob("*.ipynb")):
        target = dest / nb.name
        if target.exists() and not args.force:
            print(f"kept {target} (exists; --force overwrites)")
            continue
        shutil.copyfile(nb, target)
        copied.append(target.name)
    print(f"copied {len(copied)} notebooks to {dest.resolve()}: {', '.join(copied)}" if copied else
          f"nothing copied to {dest.resolve()}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": cmd_run, "batch": cmd_batch, "gc": cmd_gc, "eval": cmd_eval,
                "notebooks": cmd_notebooks}[args.command](args)
    except USER_ERROR_CLASSES as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished artifact is kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
