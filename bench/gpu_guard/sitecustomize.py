"""CPU rehearsal of the GPU machine's Python (bench/gpu.sh --device cpu): on PYTHONPATH, this makes every package
installed here that the GPU image lacks (bench/gpu_prep.py: `GPU_IMAGE`) and that gpu.sh does not carry as a wheel
(`WHEELS`) unimportable — anny and warp above all — so a smoke run here fails where the GPU run would."""
import importlib.abc
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_gpu_prep", Path(__file__).resolve().parents[1] / "gpu_prep.py")
_prep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_prep)
_norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()  # noqa: E731
_allowed = {_norm(n) for n in (*_prep.GPU_IMAGE, *_prep.WHEELS, "wheel", "avatarclip")}
# The GPU image's packages bring their own requirements there; here their (other) versions may need others.
_todo = [_norm(n) for n in _prep.GPU_IMAGE]
while _todo:
    try:
        reqs = importlib.metadata.requires(_todo.pop()) or []
    except importlib.metadata.PackageNotFoundError:
        continue
    for req in reqs:
        dep = _norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
        if "extra ==" not in req and dep not in _allowed:
            _allowed.add(dep)
            _todo.append(dep)
BLOCKED = {mod for mod, dists in importlib.metadata.packages_distributions().items()
           if not any(_norm(d) in _allowed for d in dists)}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU machine: bench/gpu_guard)", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
