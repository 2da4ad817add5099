"""An interactive 3D view of a GLB for notebooks: Google's `<model-viewer>` web component (three.js inside) in a
self-contained iframe — orbit with the mouse, zoom with the wheel, the first animation playing.

The page carries the GLB as a data URI and, when a local copy of model-viewer is found (`npm install
@google/model-viewer`: the repository's package.json; see `paths.find_node_file`, or `$AVATARCLIP_MODEL_VIEWER_JS`),
the script itself, so it renders without internet. Without a local copy it loads model-viewer from Google's CDN
(Colab and other online notebooks). docs/notebooks.md describes the choice.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from .paths import find_node_file

MODEL_VIEWER_FILE = "@google/model-viewer/dist/model-viewer-umd.min.js"
MODEL_VIEWER_CDN = "https://ajax.googleapis.com/ajax/libs/model-viewer/4.0.0/model-viewer.min.js"


def model_viewer_script() -> tuple[str, str]:
    """The `<script>` element that defines `<model-viewer>`, and where it came from ("local: <path>" or "cdn").

    Looks at `$AVATARCLIP_MODEL_VIEWER_JS` (a file), then `node_modules/` (`paths.node_prefixes`); inlines a found
    file (a classic UMD script), else refers to the CDN module."""
    env = os.environ.get("AVATARCLIP_MODEL_VIEWER_JS")
    path = Path(env) if env and Path(env).is_file() else find_node_file(MODEL_VIEWER_FILE)
    if path is None:
        return f'<script type="module" src="{MODEL_VIEWER_CDN}"></script>', "cdn"
    code = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
    return f"<script>{code}</script>", f"local: {path}"


def viewer_page(glb: str | os.PathLike, background: str = "#f2f2f2", label: str = "") -> str:
    """A complete HTML page showing the GLB file `glb` in `<model-viewer>` (camera controls, autoplay of the first
    animation, a neutral environment light). `label` is user text (prompts) and is HTML-escaped.

    Raises:
        FileNotFoundError: `glb` does not exist (the message says which stage writes it).
    """
    glb = Path(glb)
    if not glb.is_file():
        raise FileNotFoundError(f"no GLB at {glb}; stage 06 writes 06_video/avatar.glb — run it first")
    data = base64.b64encode(glb.read_bytes()).decode("ascii")
    script, _ = model_viewer_script()
    caption = f'<div class="label">{html.escape(label)}</div>' if label else ""
    return f"""<!doctype html><html><head><meta charset="utf-8">{script}
<style>html,body{{margin:0;height:100%;background:{background};font-family:sans-serif}}
model-viewer{{width:100%;height:100%;--poster-color:transparent}}
.label{{position:absolute;left:8px;bottom:6px;font-size:12px;color:#444}}</style></head>
<body><model-viewer src="data:model/gltf-binary;base64,{data}" camera-controls autoplay
 shadow-intensity="1" exposure="1" camera-orbit="0deg 80deg auto" interaction-prompt="none"
 alt="animated avatar"></model-viewer>{caption}</body></html>"""


def viewer_iframe(glb: str | os.PathLike, width: int = 512, height: int = 512, label: str = "") -> str:
    """`viewer_page` wrapped in an `<iframe srcdoc>` inside a `<div>` (its own document, so the viewer's script and styles never
    touch the notebook's page), with class `avatarclip-viewer`."""
    page = html.escape(viewer_page(glb, label=label), quote=True)
    return (f'<div><iframe class="avatarclip-viewer" srcdoc="{page}" width="{width}" height="{height}" '
            'style="border:1px solid #ddd;border-radius:4px" allow="fullscreen"></iframe></div>')
