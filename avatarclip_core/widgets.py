"""ipywidgets forms for the notebooks, and the small helpers the notebooks share (configure, show results).

The form is pre-filled from the papermill parameters; under papermill it is only displayed and its values are
the parameters, interactively the user edits it and then runs the next cell.
"""
from __future__ import annotations

from pathlib import Path

from .config import PRESETS, load_config
from .pipeline import prepare_run

PROMPT_LABELS = {"shape": "Body shape", "appearance": "Appearance", "motion": "Motion"}


class PromptForm:
    """Text boxes for the prompts a notebook uses, plus run name and preset.

    Attributes: `widget` (an ipywidgets VBox, or None when ipywidgets is missing) and `values()` → dict.
    """

    def __init__(self, run_name: str, preset: str, prompts: dict, uses: tuple[str, ...], interactive: bool = True):
        self._defaults = {"run_name": run_name, "preset": preset, **prompts}
        self.uses = uses
        self.widget = None
        if not interactive:  # headless (papermill): the parameters are the values
            return
        try:
            import ipywidgets as w
        except ImportError:  # plain Python: the parameters are the values
            return
        self._boxes = {"run_name": w.Text(value=run_name, description="Run name"),
                       "preset": w.Dropdown(options=list(PRESETS) if preset in PRESETS else [preset, *PRESETS],
                                            value=preset, description="Preset")}
        for key in uses:
            self._boxes[key] = w.Text(value=prompts.get(key, ""), description=PROMPT_LABELS[key],
                                      placeholder={"shape": "a tall and skinny person",
                                                   "appearance": "a female soldier", "motion": "arguing"}[key],
                                      layout=w.Layout(width="60%"))
        self.widget = w.VBox([*self._boxes.values(),
                              w.HTML("<i>Edit, then run the next cells (Shift+Enter).</i>")])

    def values(self) -> dict:
        if self.widget is None:
            return dict(self._defaults)
        return {**self._defaults, **{k: b.value for k, b in self._boxes.items()}}

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget if self.widget is not None else self.values())


def prompt_form(run_name: str, preset: str, shape: str = "", appearance: str = "", motion: str = "",
                uses: tuple[str, ...] = ("shape", "appearance", "motion"), interactive: bool = True) -> PromptForm:
    """Build the form a notebook shows (see PromptForm); `interactive=False` (papermill) shows no widgets."""
    return PromptForm(run_name, preset, {"shape": shape, "appearance": appearance, "motion": motion}, uses,
                      interactive)


def configure(form: PromptForm, overrides: dict | None = None, exp_root: str = "exp"):
    """Validated Config and RunDir from the form's values (+ overrides {"section.key": value}).

    If the run folder already has a run.conf and the form leaves a prompt empty, the prompt of that run is used,
    so stage notebooks can be run one by one after the first. Raises ConfigError on bad values.
    """
    values = form.values()
    root = Path(exp_root) / values["run_name"]
    prompts = {k: values.get(k, "") for k in ("shape", "appearance", "motion")}
    previous = root / "run.conf"
    if previous.is_file():
        from pyhocon import ConfigFactory

        old = ConfigFactory.parse_file(str(previous)).get("prompts", {})
        prompts = {k: v or old.get(k, "") for k, v in prompts.items()}
    conf = load_config(values["preset"], overrides=overrides or {}, prompts=prompts)
    return conf, prepare_run(root, conf)


def show_image(path, width: int = 512):
    """Display a PNG in the notebook (prints the path outside IPython)."""
    try:
        from IPython.display import Image, display

        display(Image(filename=str(path), width=width))
    except ImportError:
        print(path)


def show_video(path, width: int = 512):
    """Embed an MP4 in the notebook so it plays in Jupyter, Colab and in saved notebooks."""
    try:
        from IPython.display import Video, display

        display(Video(str(path), embed=True, width=width, html_attributes="controls loop autoplay muted"))
    except ImportError:
        print(path)
