"""Generate notebooks/00_quickstart.ipynb … 06_video_render.ipynb (thin: parameters, form, one stage call, results).

Run `python scripts/make_notebooks.py` after changing this file; the notebooks are committed.
"""
from pathlib import Path

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]

STAGES = [
    ("01_coarse_shape", "01_shape", "run_coarse_shape", ("shape",),
     "Stage 1 — coarse body shape",
     "Renders candidate bodies from the body model's shape space, embeds them with CLIP and picks the one whose "
     "embedding offset from the neutral body best matches the prompt's offset from a neutral prompt "
     "(AvatarCLIP §3.1). Writes `01_shape/shape.json`, `body.ply` and `preview.png` (neutral | chosen).",
     "nb.show_image(run.path('01_shape') / 'preview.png')"),
    ("02_neus_init", "02_neus_init", "run_neus_init", (),
     "Stage 2 — NeuS initialisation",
     "Renders the coarse body from a ring of cameras and fits a NeuS SDF + colour field to the renders "
     "(AvatarCLIP §3.2). Writes `02_neus_init/views/`, `ckpt.pt` and `preview.png` (ground truth | NeuS).",
     "nb.show_image(run.path('02_neus_init') / 'preview.png')"),
    ("03_clip_texturing", "03_texture", "run_texture", ("appearance",),
     "Stage 3 — CLIP sculpting and texturing",
     "Optimises the NeuS geometry and a texture head so random renders match the appearance prompt under CLIP "
     "(AvatarCLIP §3.3), then extracts `avatar.ply` with vertex colours. Progress images become `progress.mp4`.",
     "nb.show_video(run.path('03_texture') / 'progress.mp4')"),
    ("04_pose_retrieval", "04_poses", "run_poses", ("motion",),
     "Stage 4 — candidate poses",
     "Scores a library of poses retargeted from CMU mocap with CLIP against the motion prompt and keeps the top K "
     "distinct ones (AvatarCLIP §4.1). Writes `04_poses/candidates.npz` and `candidate_XX.png`.",
     "[nb.show_image(p, width=256) for p in sorted(run.path('04_poses').glob('candidate_*.png'))]"),
    ("05_motion", "05_motion", "run_motion", (),
     "Stage 5 — motion",
     "Turns the ranked candidate poses into a smooth motion (AvatarCLIP §4.2). Writes `05_motion/motion.npz`, "
     "`motion.bvh` and `preview.mp4` (the plain body moving).",
     "nb.show_video(run.path('05_motion') / 'preview.mp4')"),
    ("06_video_render", "06_video", "run_video", (),
     "Stage 6 — animated avatar and video",
     "Carries the body's skinning weights to the sculpted avatar, drives it with the motion, and writes "
     "`06_video/avatar.glb` (skinned, animated, vertex colours) and `avatar.mp4`.",
     "nb.show_video(run.path('06_video') / 'avatar.mp4')"),
]

PARAMS = '''# Parameters (papermill overrides these; `avatarclip run` passes them).
run_name = "demo"
preset = "small"          # tiny | small | full | fast
shape = ""                # body-shape prompt, e.g. "a tall and skinny person"
appearance = ""           # appearance prompt, e.g. "a female soldier"
motion = ""               # motion prompt, e.g. "arguing"
overrides = {}            # {"section.key": value}, e.g. {"run.clip_model": "tiny"}
exp_root = "exp"
interactive = True        # show the prompt form; `avatarclip run` (papermill) passes False
'''


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = cells
    return nb


def params_cell():
    cell = nbf.v4.new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    return cell


def setup_cells(uses):
    return [
        nbf.v4.new_code_cell("import avatarclip_core.widgets as nb\n"
                             "from avatarclip_core import pipeline\n"
                             f"form = nb.prompt_form(run_name, preset, shape, appearance, motion, uses={tuple(uses)!r}, "
                             "interactive=interactive)\n"
                             "form"),
        nbf.v4.new_code_cell("conf, run = nb.configure(form, overrides, exp_root)\n"
                             "print('run folder:', run.root.resolve(), '| preset:', conf.preset, "
                             "'| CLIP:', conf.run.clip_model, '| body:', conf.run.body)"),
    ]


def stage_notebook(name, stage, fn, uses, title, text, show):
    return notebook([
        nbf.v4.new_markdown_cell(f"# {title}\n\n{text}\n\nFill the form (or pass papermill parameters), then run "
                                 "all cells. A finished stage is skipped; an interrupted one resumes."),
        params_cell(), *setup_cells(uses),
        nbf.v4.new_code_cell(f"manifest = pipeline.{fn}(run, conf)\nmanifest['figures']"),
        nbf.v4.new_code_cell(show),
    ])


def quickstart():
    calls = "\n".join(f"manifests['{stage}'] = pipeline.{fn}(run, conf)" for _, stage, fn, *_ in STAGES)
    return notebook([
        nbf.v4.new_markdown_cell("# avatarclip quickstart — all six stages\n\nThree prompts in: body shape, "
                                 "appearance, motion. Out: `exp/<run>/06_video/avatar.mp4` and `avatar.glb`. "
                                 "Each stage can also be run on its own with notebooks 01–06."),
        params_cell(), *setup_cells(("shape", "appearance", "motion")),
        nbf.v4.new_code_cell("manifests = {}\n" + calls + "\n{k: m['wall_time_s'] for k, m in manifests.items()}"),
        nbf.v4.new_code_cell("nb.show_image(run.path('01_shape') / 'preview.png')\n"
                             "nb.show_video(run.path('06_video') / 'avatar.mp4')"),
    ])


def main():
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    nbf.write(quickstart(), out / "00_quickstart.ipynb")
    for spec in STAGES:
        nbf.write(stage_notebook(*spec), out / f"{spec[0]}.ipynb")
    print("wrote", len(STAGES) + 1, "notebooks to", out)


if __name__ == "__main__":
    main()
