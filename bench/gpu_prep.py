"""Prepare `bench/gpu.sh` here, for a GPU machine that has no internet and no anny (bench/RESULTS.md, "GPU").

Writes into `.gpu/` of the repository (ignored by git; the device tool carries it with `carry: [".gpu"]`):
- `body.npz`: the anny body frozen at the default shape and `--shapes − 1` shapes drawn from anny's plausible
  range (`body.precomputed.save_precomputed_body`), which the pipeline reads with `run.body = precomputed` —
  anny's warp-lang wheel is too big to carry;
- `wheels/`: the wheels of the packages the GPU image lacks (`WHEELS`, at the versions installed here, for
  CPython 3.12 on manylinux x86-64), which gpu.sh installs with `pip install --no-index --no-deps`;
- `prep.json`: what was written, with sizes, and the check that every requirement of every wheel is met by
  another wheel or by the GPU image (`GPU_IMAGE`).
The package itself is not made a wheel: the working tree travels with every device call and gpu.sh puts it first
on PYTHONPATH, so the code measured is the code checked out.

Usage: python bench/gpu_prep.py [--out .gpu] [--shapes 16] [--skip-wheels]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Distributions the pipeline imports that the GPU image does not hold (their own requirements included).
WHEELS = ("open_clip_torch", "ftfy", "wcwidth", "trimesh", "PyMCubes", "pyhocon", "roma", "bvhio", "pyglm",
          "spatial-transform", "pygltflib", "dataclasses-json", "marshmallow", "Deprecated", "imageio-ffmpeg",
          "fast_simplification", "xatlas", "rtree")
#: Versions other than the installed one: imageio-ffmpeg 0.8's wheel (ffmpeg 7) is 68 MB, over what a device call
#: carries; 0.5.1 (ffmpeg 4.2, 27 MB) has the same API (`get_ffmpeg_exe`, `write_frames`).
WHEEL_PINS = {"imageio-ffmpeg": "0.5.1"}
#: Distributions of the GPU image ('cuda' image: python 3.12, torch 2.11 + CUDA 13), as the device notes list them
#: (read there on 2026-11-17); `unmet_requirements` and the CPU smoke's import guard (bench/gpu_guard) use it.
GPU_IMAGE = (
    "absl-py", "accelerate", "aiofiles", "aiohappyeyeballs", "aiohttp", "aiosignal", "annotated-doc", "anyio",
    "attrs", "botorch", "build", "certifi", "charset-normalizer", "chex", "click", "cloudpickle", "cmake",
    "colorama", "contourpy", "coverage", "cuda-bindings", "cuda-core", "cuda-pathfinder", "cuda-toolkit",
    "cupy-cuda13x", "cycler", "cython", "diffrax", "e3nn", "einops", "equinox", "etils", "execnet", "filelock",
    "flatbuffers", "flax", "fonttools", "formulaic", "frozenlist", "fsspec", "gpytorch", "grpcio", "h11", "h5py",
    "hf-xet", "httpcore", "httpx", "huggingface-hub", "humanize", "hypothesis", "idna", "imageio", "iniconfig",
    "interface-meta", "jax", "jax-cuda13-pjrt", "jax-cuda13-plugin", "jaxlib", "jaxtyping", "jinja2", "joblib",
    "kiwisolver", "lazy-loader", "lightning", "lightning-utilities", "linear-operator", "lineax", "llvmlite", "lxml",
    "markdown", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "meson", "ml-dtypes", "mpi4py", "mpmath",
    "msgpack", "multidict", "multipledispatch", "mypy-extensions", "nanobind", "narwhals", "networkx", "ninja",
    "numba", "numba-cuda", "numpy", "numpyro", "nvidia-cublas", "nvidia-cuda-cupti", "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cufft", "nvidia-cufile", "nvidia-curand", "nvidia-cusolver",
    "nvidia-cusparse", "nvidia-cusparselt-cu13", "nvidia-ml-py", "nvidia-nccl-cu13", "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13", "nvidia-nvtx", "onnx", "onnx-ir", "onnxruntime", "onnxscript", "opencv-python-headless",
    "optax", "opt-einsum", "opt-einsum-fx", "optimistix", "orbax-checkpoint", "packaging", "pandas", "pathspec",
    "patsy", "peft", "pillow", "pip", "pluggy", "portalocker", "prometheus-client", "propcache", "protobuf",
    "psutil", "pyarrow", "pybind11", "py-cpuinfo", "pygments", "pyparsing", "pyproject-hooks", "pyre-extensions",
    "pytest", "pytest-benchmark", "pytest-cov", "pytest-mock", "pytest-timeout", "pytest-xdist", "python-dateutil",
    "pytorch-lightning", "pyyaml", "regex", "requests", "rich", "sacrebleu", "safetensors", "scikit-build-core",
    "scikit-image", "scikit-learn", "scipy", "seaborn", "sentencepiece", "sentence-transformers", "setuptools",
    "shellingham", "simplejson", "six", "sortedcontainers", "statsmodels", "sympy", "tabulate", "tensorboard",
    "tensorboard-data-server", "tensorstore", "threadpoolctl", "tifffile", "tiktoken", "timm", "tokenizers", "toolz",
    "torch", "torchaudio", "torchdiffeq", "torch-geometric", "torchmetrics", "torchvision", "tqdm", "transformers",
    "treescope", "triton", "typer", "typing-extensions", "typing-inspect", "urllib3", "uvloop", "wadler-lindig",
    "werkzeug", "wheel", "wrapt", "xarray", "xxhash", "yarl", "zipp",
)
#: What one device call may carry, the working tree included (MiB).
CARRY_LIMIT_MIB = 64
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_body(out: Path, n_shapes: int, seed: int = 0) -> dict:
    """`out/body.npz`: anny at its default shape + n_shapes − 1 shapes sampled with `seed`."""
    import torch

    from avatarclip_core.body import get_body_model
    from avatarclip_core.body.precomputed import PrecomputedBody, save_precomputed_body

    body = get_body_model("anny")
    shapes = torch.cat([body.default_shape()[None],
                        body.sample_shapes(n_shapes - 1, torch.Generator().manual_seed(seed))])
    path = save_precomputed_body(out / "body.npz", body, shapes)
    back = PrecomputedBody(path)
    assert torch.allclose(back.rest(shapes)[0], body.rest(shapes)[0])
    return {"file": str(path.relative_to(ROOT)), "shapes": len(shapes), "vertices": body.num_vertices,
            "bytes": path.stat().st_size}


def download_wheels(out: Path) -> list[dict]:
    """A wheel of each of `WHEELS` for CPython 3.12 / manylinux x86-64: at its installed version where the index has
    it, else the newest the index has; a package published only as source (pyhocon) is built here, which is
    accepted only for a pure-Python ("none-any") wheel."""
    folder = out / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    target = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
              *[a for p in PLATFORMS for a in ("--platform", p)]]
    pip = [sys.executable, "-m", "pip"]
    for name in WHEELS:
        before = set(folder.glob("*.whl"))
        for req in (f"{name}=={WHEEL_PINS.get(name) or metadata.version(name)}", name):
            if subprocess.run([*pip, "download", "-q", "--no-deps", *target, "-d", str(folder), req],
                              capture_output=True).returncode == 0:
                break
        else:
            subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(folder), name], check=True,
                           capture_output=True)
            built = set(folder.glob("*.whl")) - before
            if not built or not all(w.name.endswith("-none-any.whl") for w in built):
                raise RuntimeError(f"{name}: no binary wheel for CPython 3.12 and the one built here is not pure "
                                   f"Python ({[w.name for w in built]}); build it on a CPython 3.12 machine")
    return [{"file": f.name, "bytes": f.stat().st_size} for f in sorted(folder.glob("*.whl"))]


def unmet_requirements(folder: Path) -> list[str]:
    """Requirements (no extras, no markers that exclude Linux/CPython 3.12) of the wheels in `folder` that neither
    another wheel nor `GPU_IMAGE` provides."""
    import zipfile

    have = {_norm(n) for n in GPU_IMAGE} | {_norm(n) for n in WHEELS}
    missing = []
    for whl in sorted(folder.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            for line in z.read(meta).decode().splitlines():
                if not line.startswith("Requires-Dist:") or "extra ==" in line:
                    continue
                req = line.split(":", 1)[1].strip()
                if ";" in req and ("python_version < \"3" in req or "sys_platform == \"win32\"" in req):
                    continue
                name = re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0]
                if _norm(name) not in have:
                    missing.append(f"{whl.name}: {req}")
    return missing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / ".gpu"))
    ap.add_argument("--shapes", type=int, default=16, help="shapes stored in body.npz (default + sampled)")
    ap.add_argument("--skip-wheels", action="store_true", help="only the body file (CPU smoke runs need no wheels)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"body": write_body(out, a.shapes)}
    if not a.skip_wheels:
        wheels = download_wheels(out)
        report["wheels"] = wheels
        report["unmet_requirements"] = unmet_requirements(out / "wheels")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    report["total_mib"] = round(total / 2 ** 20, 2)
    report["carry_limit_mib"] = CARRY_LIMIT_MIB
    (out / "prep.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if report.get("unmet_requirements") or report["total_mib"] > CARRY_LIMIT_MIB - 8:  # leave room for the tree
        print("error: see unmet_requirements / total_mib above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
