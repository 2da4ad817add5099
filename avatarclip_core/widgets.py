"""What the notebooks show: the settings check, live training previews, each stage's results, the 3D viewer.

The notebooks stay thin — a settings cell (Colab form fields, papermill parameters) and one `run_stage` call per
stage — and this module does the showing (docs/notebooks.md):
- `configure` turns the settings cell into a validated Config and RunDir, shows a summary, and stops with one line
  naming the field to fill when a prompt the notebook needs is empty;
- `run_stage` runs a stage from the stage table (`stages.py`); for the training stages it shows the newest
  validation image and the loss curves in one output area, updated in place (`LivePreview`); then it shows the
  stage's results (images, videos, the labelled pose grid, the 3D viewer).
Only plain outputs are used (no widget models), so saved notebooks show everything after a kernel restart.
"""
from __future__ import annotations

import base64
import html
import io
import warnings
from pathlib import Path

from . import stages

PROMPT_LABELS = {"shape": "Body shape", "appearance": "Appearance", "motion": "Motion"}


def _display(obj, **kwargs):
    try:
        from IPython.display import display
    except ImportError:  # plain Python: print what would be shown
        print(obj)
        return None
    return display(obj, **kwargs)


def _html(text: str):
    from IPython.display import HTML

    return HTML(text)


def setup() -> None:
    """Prepare a notebook session: quiet library noise and print which device the stages use.

    The device is CUDA when a GPU is visible (`run.device = auto` then uses it); otherwise the line says how to get
    one on Colab/Gradient."""
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        line = f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB — stages run on CUDA"
    else:
        line = ("no GPU visible — stages run on the CPU (use the tiny preset there). On Colab: Runtime ▸ Change "
                "runtime type ▸ GPU; on Gradient: pick a GPU machine.")
    print(line)


def configure(run_name: str, stage_ids, preset: str = "", clip_model: str = "", overrides: dict | None = None,
              exp_root: str = "", shape: str = "", appearance: str = "", motion: str = "", motion_file: str = ""):
    """Validated (Config, RunDir) for a notebook's settings cell.

    Args:
        run_name: the run folder's name under the run root (`paths.exp_root`).
        stage_ids: the stages this notebook runs ("01" … "06"); the prompts they need must be non-empty.
        preset, clip_model: "" keeps the run's own (run.conf), a new run gets the default preset / CLIP.
        overrides: {"section.key": value}. exp_root: "" = `paths.exp_root()`.
        shape, appearance, motion: the prompts; "" keeps the run's prompt.
        motion_file: a BVH clip that drives the avatar (`motion.file`: stage 5 retargets it, stage 4 and the
            motion prompt are not needed); "" keeps the run's setting.
    Returns: (conf, run); `run.conf` is written (the merged settings, see `config.load_run_config`).
    Raises:
        UpstreamMissing: an earlier stage this notebook's stages read has not finished in this run (checked first:
            it is the more useful message).
        ConfigError: a bad value or an empty prompt a stage of this notebook needs (one line in Jupyter).
    """
    from .config import check_run_name, load_run_config
    from .paths import exp_root as resolve_exp_root
    from .pipeline import prepare_run

    root = resolve_exp_root(exp_root) / check_run_name(run_name)
    overrides = dict(overrides or {})
    if clip_model:
        overrides["run.clip_model"] = clip_model
    if motion_file:
        overrides["motion.file"] = str(Path(motion_file).expanduser().resolve())
    from .pipeline import check_motion_file
    from .rundir import RunDir

    conf = load_run_config(root, preset, overrides, {"shape": shape, "appearance": appearance, "motion": motion})
    specs = [s for s in (stages.get(sid) for sid in stage_ids) if not s.skipped(conf)]
    ids = [s.folder for s in specs]
    for spec in specs:
        for up in spec.upstream_for(conf):
            if up not in ids:
                RunDir(root).require(up)
    for spec in specs:
        for prompt in spec.prompts_for(conf):
            conf.prompts.require(prompt)
        if spec.file_given(conf):
            check_motion_file(conf)
    run = prepare_run(root, conf)
    _display(_html(settings_html(conf, run.root)))
    return conf, run


def settings_html(conf, root) -> str:
    """A small table of the run's settings (prompts escaped: they are user text)."""
    rows = [("Run folder", str(root)), ("Preset", conf.preset), ("CLIP", conf.run.clip_model),
            ("Body", conf.run.body), ("Device", conf.run.device)]
    rows += [(PROMPT_LABELS[k], getattr(conf.prompts, k) or "—") for k in PROMPT_LABELS]
    body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table class='avatarclip-settings'>{body}</table>"


def _png_b64(image) -> str:
    """PNG (base64) of an (H, W, 3) float [0, 1] array/tensor or a matplotlib figure."""
    buf = io.BytesIO()
    if hasattr(image, "savefig"):
        image.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    else:
        import imageio.v3 as iio

        from .video import to_uint8

        iio.imwrite(buf, to_uint8(image), extension=".png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class LivePreview:
    """`on_progress(step, losses, image)` callback that keeps one output area up to date while a stage trains:
    the newest validation image beside the loss curves (log scale), redrawn in place.

    The area is an HTML `<div class="avatarclip-live" data-stage=… data-step=…>` (the browser test reads it).
    Outside IPython it does nothing but collect `history` ({loss name: [(step, value), …]}).
    """

    def __init__(self, stage_folder: str):
        self.stage = stage_folder
        self.history: dict[str, list[tuple[int, float]]] = {}
        self.image = None
        self.updates = 0
        self._handle = _display(_html(self._html(None, "waiting for the first validation image …")),
                                display_id=True)

    def __call__(self, step: int, losses: dict, image=None):
        for key, value in losses.items():
            if isinstance(value, (int, float)) and key in ("loss", "clip", "color", "mask", "sdf_l1", "eikonal"):
                self.history.setdefault(key, []).append((int(step), float(value)))
        if image is not None:
            self.image = image.detach().cpu().numpy() if hasattr(image, "detach") else image
        if self._handle is None:
            return
        self.updates += 1
        self._handle.update(_html(self._html(step, None)))

    def _figure(self):
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1.1, 1]})
        if self.image is not None:
            axes[0].imshow(self.image.clip(0, 1))
        axes[0].set_axis_off()
        axes[0].set_title("newest validation image" if self.image is not None else "no validation image yet")
        for key, points in self.history.items():
            xs, ys = zip(*points)
            axes[1].plot(xs, [max(y, 1e-8) for y in ys], label=key)
        if self.history:
            axes[1].set_yscale("log")
            axes[1].legend(fontsize=8)
        axes[1].set_xlabel("step")
        axes[1].set_title("losses")
        fig.tight_layout()
        return fig

    def _html(self, step, message):
        head = f"<div class='avatarclip-live' data-stage='{self.stage}' data-step='{'' if step is None else step}'>"
        if message:
            return head + f"<i>{html.escape(message)}</i></div>"
        import matplotlib.pyplot as plt

        fig = self._figure()
        try:
            img = _png_b64(fig)
        finally:
            plt.close(fig)
        return head + f"<b>step {step}</b><br><img src='data:image/png;base64,{img}'></div>"


def run_stage(run, conf, stage_id: str, progress: bool = True) -> dict:
    """Run stage `stage_id` ("01" … "06") of the run (skipped when finished, resumed when interrupted), with a
    live preview for the training stages, then show its results. Returns the manifest.

    Raises: what the stage raises (ConfigError, FileNotFoundError for a missing upstream stage, …)."""
    spec = stages.get(stage_id)
    if spec.skipped(conf):
        _display(_html(f"<small>{html.escape(spec.title)}: not needed, {html.escape(spec.skip_when)} is given — "
                       "skipped.</small>"))
        return None
    live = LivePreview(spec.folder) if spec.live else None
    manifest = spec.run_function()(run, conf, progress=progress, on_progress=live)
    show_results(run, spec.id)
    return manifest


def show_results(run, stage_id: str):
    """Show what the stage table lists for the stage (`Stage.shows`): PNG images, MP4 videos, candidate pose
    grids with their scores, the GLB in the 3D viewer, and the stage's key figures."""
    spec = stages.get(stage_id)
    folder = run.path(spec.folder)
    manifest = run.manifest(spec.folder) or {}
    for pattern in spec.shows:
        files = sorted(folder.glob(pattern))
        if len(files) > 1 and all(f.suffix == ".png" for f in files):
            show_pose_grid(files, manifest.get("figures", {}).get("scores"))
        for path in files if len(files) == 1 else []:
            {".png": show_image, ".mp4": show_video, ".glb": show_avatar}[path.suffix](path)
    figures = manifest.get("figures")
    if figures:
        _display(_html("<small class='avatarclip-figures'>" + html.escape(
            ", ".join(f"{k}: {v}" for k, v in figures.items() if not isinstance(v, (list, dict)))) + "</small>"))


def show_image(path, width: int = 512):
    """Display a PNG in the notebook (prints the path outside IPython)."""
    try:
        from IPython.display import Image
    except ImportError:
        print(path)
        return
    _display(Image(filename=str(path), width=width))


def show_video(path, width: int = 512):
    """Embed an MP4 in the notebook so it plays in Jupyter, Colab and in saved notebooks."""
    try:
        from IPython.display import Video
    except ImportError:
        print(path)
        return
    _display(Video(str(path), embed=True, width=width, html_attributes="controls loop autoplay muted playsinline"))


def show_pose_grid(paths, scores=None, columns: int = 4):
    """The candidate poses as one labelled grid: rank and CLIP score under each image (stage 4)."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = list(paths)
    rows = (len(paths) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(paths):
            ax.imshow(iio.imread(paths[i]))
            score = f" — score {scores[i]:.4f}" if scores is not None and i < len(scores) else ""
            ax.set_title(f"#{i + 1}{score}", fontsize=9)
    fig.tight_layout()
    try:
        _display(_html(f"<img class='avatarclip-poses' src='data:image/png;base64,{_png_b64(fig)}'>"))
    finally:
        plt.close(fig)


def show_avatar(run_or_glb, width: int = 512, height: int = 512):
    """The avatar's GLB in an interactive 3D viewer (orbit, zoom, the animation playing): `avatarclip_core.viewer`.

    Args: run_or_glb: a RunDir (shows 06_video/avatar.glb) or a GLB path.
    Raises: FileNotFoundError when there is no GLB yet (run stage 06)."""
    from .viewer import viewer_iframe

    glb = run_or_glb.path("06_video") / "avatar.glb" if hasattr(run_or_glb, "path") else Path(run_or_glb)
    _display(_html(viewer_iframe(glb, width, height)))


def run_batch_table(prompts_csv: str, batch_name: str, preset: str = "", clip_model: str = "", workers: int = 0,
                    exp_root: str = "", overrides: dict | None = None):
    """The batch notebook's work (docs/batch.md): write `prompts_csv` (CSV text: name, shape, appearance, motion,
    optional section.key columns) to `<run root>/<batch_name>/prompts.csv`, run `batch.run_batch` on a local Ray
    with `workers` CPUs (0 = all), then show the gallery inline. Returns the rows (with their results).

    Raises: ConfigError for a bad table or setting (before Ray starts); per-row failures are in the gallery."""
    from .batch import gallery_html, read_rows, run_batch
    from .config import check_run_name
    from .io import atomic_write_text
    from .paths import exp_root as resolve_exp_root

    root = resolve_exp_root(exp_root) / check_run_name(batch_name)
    table = atomic_write_text(root / "prompts.csv", prompts_csv.strip() + "\n")
    rows = read_rows(table)
    extra = dict(overrides or {})
    if clip_model:
        extra["run.clip_model"] = clip_model
    rows = run_batch(rows, root, preset, extra, workers=workers or None)
    _display(_html(gallery_html(rows, root, inline=True)))
    return rows

