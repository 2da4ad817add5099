"""Many avatars at once: a CSV of prompts → one run folder per row, the stages as Ray tasks (docs/batch.md).

Each row becomes `<batch root>/<name>/`, exactly the folder `avatarclip run --run <name>` would make (same run.conf,
manifests, artifacts), so everything about single runs — skip when finished, resume when interrupted, the stage
cache — holds per row. The stage table (`stages.py`) gives the task graph: a stage waits for its upstream stages,
so the chains 01 → 02 → 03 and 04 → 05 of a row run concurrently and 06 starts after both. The pose-library
embeddings of stage 04 are computed by one task per distinct (CLIP model, body, pose settings) before any row's
stage 04, which then finds them in the cache. A row that fails (bad value, NaN, out of memory) is recorded with its
error; the other rows go on. Ray (`ray.init()`) is the scheduler: embedded on this machine by default, or an
existing cluster with `address` ("auto", "ray://head:10001"); the batch root must then be on storage all nodes see.
"""
from __future__ import annotations

import contextlib
import csv
import html
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import stages
from .config import ConfigError, check_run_name, load_run_config, parse_override
from .io import atomic_write_text
from .rundir import LOCK_ENV, RunDir, run_lock

PROMPT_COLUMNS = ("shape", "appearance", "motion")
#: Figures of each stage's manifest that summary.csv reports.
SUMMARY_FIGURES = {"01_shape": ("height_m", "score"), "02_neus_init": ("silhouette_iou", "chamfer_mm"),
                   "03_texture": ("vertices",), "04_poses": ("num_candidates",), "05_motion": ("frames",),
                   "06_video": ("faces",)}


@dataclass
class BatchRow:
    """One CSV row: run `name`, its prompts, per-row overrides ({"section.key": value}) and, when the row cannot
    run, the one-line reason (`error`)."""

    name: str
    prompts: dict
    overrides: dict = field(default_factory=dict)
    error: str | None = None
    results: dict = field(default_factory=dict)  # stage folder → task result


def read_rows(path: str | os.PathLike) -> list[BatchRow]:
    """Rows of a prompts CSV: columns `name`, `shape`, `appearance`, `motion`; any other column named
    `section.key` is a per-row override (an empty cell keeps the preset's value; values are parsed as HOCON, as
    `--set`). Bad rows are kept with their `error` (a blank or duplicate name, an unreadable override).

    Raises: ConfigError when the file is missing, empty or lacks one of the four columns."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"prompts file {path} does not exist; give a CSV with columns name, shape, appearance, "
                          "motion (and optional section.key override columns)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in ("name", *PROMPT_COLUMNS) if c not in columns]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}; the header must name name, shape, "
                              f"appearance, motion (found {', '.join(columns) or 'no header'})")
        records = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    if not records:
        raise ConfigError(f"{path} has a header but no rows; add one line per avatar")
    rows, seen = [], set()
    for i, rec in enumerate(records, start=2):
        row = BatchRow(rec.get("name", ""), {k: rec.get(k, "") for k in PROMPT_COLUMNS})
        try:
            row.name = check_run_name(row.name)
            if row.name in seen:
                raise ConfigError(f"run name {row.name!r} is used by an earlier row; names must be unique")
            seen.add(row.name)
            row.overrides = dict(parse_override(f"{k}={v}") for k, v in rec.items()
                                 if "." in k and v != "" and k not in PROMPT_COLUMNS)
        except ConfigError as err:
            row.error = f"line {i}: {err}"
        rows.append(row)
    return rows


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:400]}"


def _stage_task(run_root: str, folder: str, *upstream: dict) -> dict:
    """Ray task body: run one stage of one row (skipped by the run folder when already finished)."""
    failed = [u for u in upstream if u.get("status") != "ok"]
    if failed:
        return {"status": "skipped", "stage": folder, "error": f"upstream {failed[0]['stage']} did not finish"}
    t0 = time.time()
    try:
        conf = load_run_config(run_root)
        manifest = stages.get(folder).run_function()(RunDir(Path(run_root)), conf, progress=False)
        return {"status": "ok", "stage": folder, "seconds": round(time.time() - t0, 2),
                "finished": manifest.get("finished")}
    except BaseException as err:  # one row's failure (bad value, NaN, OOM) must not stop the batch
        return {"status": "failed", "stage": folder, "error": _one_line(err)}


def _pose_embeddings_task(run_root: str) -> dict:
    """Ray task body: compute (or find) the pose-library embeddings stage 04 of this run's settings reads."""
    from . import pipeline
    from .motion import library_embeddings, load_pose_library

    try:
        conf = load_run_config(run_root)
        emb = library_embeddings(pipeline.load_encoder(conf), pipeline.body_of(conf), load_pose_library(),
                                 conf.params("poses"), progress=False)
    except BaseException as err:  # the rows needing these embeddings report it; the batch goes on
        return {"status": "failed", "stage": "pose_embeddings", "error": _one_line(err)}
    return {"status": "ok", "stage": "pose_embeddings", "count": int(emb.shape[0])}


def _embedding_key(conf) -> str:
    return json.dumps([conf.run.clip_model, conf.run.clip_pretrained, conf.run.body,
                       conf.params("poses").render_key()], sort_keys=True, default=str)


def _resources(stage, gpus: bool) -> dict:
    """Ray resource needs of a stage: one GPU for the CLIP/NeuS stages when the cluster has GPUs, else a CPU."""
    uses_gpu = gpus and (stage.clip or stage.live)
    return {"num_gpus": 1, "num_cpus": 1} if uses_gpu else {"num_cpus": 1}


def run_batch(rows: list[BatchRow], batch_root: str | os.PathLike, preset: str = "", overrides: dict | None = None,
              stage_ids=None, address: str | None = None, workers: int | None = None,
              progress: bool = True) -> list[BatchRow]:
    """Run every valid row's stages on Ray; write `summary.csv` and `index.html` in `batch_root`; return the rows
    with their per-stage results.

    Args:
        rows: from `read_rows`. batch_root: the folder holding one run folder per row.
        preset, overrides: as `avatarclip run --preset/--set` (per-row overrides win). stage_ids: stages to run
            (default all). address: None = start Ray on this machine; "auto" / "ray://…" = join a cluster.
        workers: CPUs of the embedded Ray (None = all). progress: a tqdm bar over rows × stages.
    Raises: RunLocked when another process uses one of the rows' run folders. Everything else is recorded per row.
    """
    import ray
    from tqdm.auto import tqdm

    root = Path(batch_root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    selected = [stages.get(s) for s in (stage_ids or stages.BY_ID)]
    confs = {}
    for row in rows:
        if row.error is None:
            try:
                conf = load_run_config(root / row.name, preset, {**(overrides or {}), **row.overrides}, row.prompts)
                for s in selected:
                    for p in s.prompts_for(conf):
                        conf.prompts.require(p)
                confs[row.name] = conf
            except ConfigError as err:
                row.error = str(err)
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k.startswith("AVATARCLIP_")} | {LOCK_ENV: token}
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address, num_cpus=workers if address is None else None, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": env})
    try:
        with contextlib.ExitStack() as locks:
            for name in confs:
                locks.enter_context(run_lock(root / name, token=token))
            _schedule(ray, tqdm, rows, confs, root, selected, progress)
    finally:
        if started_ray:
            ray.shutdown()
    write_summary(rows, root, [s.folder for s in selected])
    write_gallery(rows, root)
    return rows


def _schedule(ray, tqdm, rows, confs, root: Path, selected, progress: bool) -> None:
    from .pipeline import prepare_run

    gpus = ray.cluster_resources().get("GPU", 0) > 0
    stage_fn = ray.remote(_stage_task)
    embed_fn = ray.remote(_pose_embeddings_task)
    warm, pending = {}, {}
    for row in rows:
        conf = confs.get(row.name)
        if conf is None:
            continue
        prepare_run(root / row.name, conf)
        refs = {}
        for s in selected:
            if s.skipped(conf):  # e.g. stage 4 when the row gives a motion file: said so in summary.csv
                row.results[s.folder] = {"status": NOT_NEEDED, "stage": s.folder}
                continue
            deps = [refs[u] for u in s.upstream_for(conf) if u in refs]
            if s.folder == "04_poses" and conf.params("poses").generator == "library":
                key = _embedding_key(conf)
                if key not in warm:
                    warm[key] = embed_fn.options(**_resources(s, gpus)).remote(str(root / row.name))
                deps.append(warm[key])
            refs[s.folder] = stage_fn.options(**_resources(s, gpus)).remote(str(root / row.name), s.folder, *deps)
            pending[refs[s.folder]] = (row, s.folder)
    bar = tqdm(total=len(pending), desc="batch stages", unit="stage", disable=not progress)
    waiting = list(pending)
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            row, folder = pending[done[0]]
            try:
                row.results[folder] = ray.get(done[0])
            except Exception as err:  # the worker itself died (out of memory, killed): record it, go on
                row.results[folder] = {"status": "failed", "stage": folder, "error": _one_line(err)}
            bar.update(1)
            bar.set_postfix_str(f"{row.name} {folder} {row.results[folder]['status']}")
    except KeyboardInterrupt:
        # Ctrl-C stops the batch now, not after the queued stages: finished stages are on disk (atomic writes,
        # manifests), a running one is redone from its last checkpoint by the next run of the same command.
        for ref in waiting:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()


#: The task result status of a stage the row's configuration leaves out (`Stage.skip_when`, e.g. stage 4 with a
#: motion file); summary.csv shows it in the stage's seconds column.
NOT_NEEDED = "not needed"


def row_status(row: BatchRow) -> tuple[str, str]:
    """("ok" | "failed" | "invalid", error) of a row after the batch; stages that were not needed count as ok."""
    if row.error:
        return "invalid", row.error
    bad = [r for r in row.results.values() if r.get("status") == "failed"]
    if bad:
        return "failed", f"{bad[0]['stage']}: {bad[0]['error']}"
    unfinished = [r for r in row.results.values() if r.get("status") not in ("ok", NOT_NEEDED)]
    if unfinished:
        return "failed", unfinished[0]["error"]
    return "ok", ""


def write_summary(rows: list[BatchRow], root: Path, folders: list[str]) -> Path:
    """`summary.csv`: one line per row — name, status, error, prompts, wall time per stage (s, from the manifests;
    `NOT_NEEDED` for a stage the row leaves out) and the `SUMMARY_FIGURES` of each stage."""
    import io as _io

    fig_cols = [f"{f}.{k}" for f in folders for k in SUMMARY_FIGURES.get(f, ())]
    header = ["name", "status", "error", *PROMPT_COLUMNS, *[f"{f}.seconds" for f in folders], *fig_cols]
    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        status, error = row_status(row)
        run = RunDir(root / row.name) if not row.error else None
        manifests = {f: (run.manifest(f) if run else None) or {} for f in folders}
        w.writerow([row.name, status, error, *[row.prompts.get(k, "") for k in PROMPT_COLUMNS],
                    *[NOT_NEEDED if row.results.get(f, {}).get("status") == NOT_NEEDED
                      else manifests[f].get("wall_time_s", "") for f in folders],
                    *[manifests[c.split(".")[0]].get("figures", {}).get(c.split(".", 1)[1], "") for c in fig_cols]])
    return atomic_write_text(root / "summary.csv", buf.getvalue())


def gallery_html(rows: list[BatchRow], root: Path, inline: bool = False) -> str:
    """The gallery page: per finished avatar its GIF, the stage previews, the prompts (escaped: user text) and links
    to the GLB and MP4; failed rows with their error. Images are paths relative to `root` (the page opens from
    disk), or data URIs with `inline` (for showing the page inside a notebook)."""
    import base64

    def src(row, rel):
        if not inline:
            return html.escape(f"{row.name}/{rel}", quote=True)
        mime = "image/gif" if rel.endswith(".gif") else "image/png"
        return f"data:{mime};base64," + base64.b64encode((root / row.name / rel).read_bytes()).decode("ascii")

    cards = []
    for row in rows:
        status, error = row_status(row)
        name = html.escape(row.name)
        prompts = "".join(f"<div><b>{k}</b>: {html.escape(row.prompts.get(k, '') or '—')}</div>"
                          for k in PROMPT_COLUMNS)
        if status == "ok" and (root / row.name / "06_video" / "avatar.gif").is_file():
            link = lambda p: html.escape(f"{row.name}/{p}", quote=True)  # noqa: E731
            previews = "".join(f"<img class='preview' src='{src(row, p)}' alt='{p}'>" for p in
                               ("01_shape/preview.png", "02_neus_init/preview.png", "04_poses/candidate_00.png")
                               if (root / row.name / p).is_file())
            cards.append(f"<div class='card avatar' data-run='{name}'><h3>{name}</h3>"
                         f"<img class='gif' src='{src(row, '06_video/avatar.gif')}' alt='{name} moving'>{prompts}"
                         f"<div class='previews'>{previews}</div>"
                         f"<a href='{link('06_video/avatar.glb')}'>GLB</a> · <a href='{link('06_video/avatar.mp4')}'>"
                         f"MP4</a> · <a href='{link('')}'>folder</a></div>")
        else:
            cards.append(f"<div class='card failed' data-run='{name}'><h3>{name} — {status}</h3>{prompts}"
                         f"<pre>{html.escape(error)}</pre></div>")
    n_ok = sum(row_status(r)[0] == "ok" for r in rows)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>avatarclip batch — {html.escape(root.name)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;background:#fafafa}} .grid{{display:flex;flex-wrap:wrap;gap:1em}}
.card{{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.8em;width:300px;font-size:13px}}
.card h3{{margin:.2em 0 .5em}} .gif{{width:100%;background:#e6e6e6}} .preview{{width:32%;margin-right:1%}}
.failed{{border-color:#d33}} pre{{white-space:pre-wrap;color:#b00}}</style></head><body>
<h1>{html.escape(root.name)}: {n_ok} of {len(rows)} avatars</h1><p>summary: <a href="summary.csv">summary.csv</a></p>
<div class="grid">{''.join(cards)}</div></body></html>
"""


def write_gallery(rows: list[BatchRow], root: Path) -> Path:
    """`index.html` in the batch root (`gallery_html` with relative image paths)."""
    return atomic_write_text(root / "index.html", gallery_html(rows, root))
