"""three.js in headless Chromium renders the textured avatar.glb with its baked texture, not its vertex colours
(docs/method.md, Avatar animation; issue 12).

Also a script: `python tests/test_asset_browser.py AVATAR.glb OUT.png [TIME_S]` renders a frame of any GLB
(docs/img/textured_avatar_threejs.png was made this way from the tiny preset's 06_video/avatar.glb at 1.0 s).
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THREE = ROOT / "node_modules" / "three"

PAGE = """<!doctype html><html><body style="margin:0;background:#e6e6e6">
<script type="importmap">{"imports": {"three": "./three/build/three.module.js",
                                      "three/addons/": "./three/examples/jsm/"}}</script>
<script type="module">
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
const W = 512, H = 512, T = %(time)s;
const renderer = new THREE.WebGLRenderer({antialias: true, preserveDrawingBuffer: true});
renderer.setSize(W, H); renderer.setClearColor(0xe6e6e6);
document.body.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.add(new THREE.HemisphereLight(0xffffff, 0x888888, 2.0));
const sun = new THREE.DirectionalLight(0xffffff, 1.5); sun.position.set(0.5, 1.5, 2.0); scene.add(sun);
new GLTFLoader().load('avatar.glb', (gltf) => {
  scene.add(gltf.scene);
  const mixer = new THREE.AnimationMixer(gltf.scene);
  if (gltf.animations.length) { mixer.clipAction(gltf.animations[0]).play(); mixer.setTime(T); }
  gltf.scene.updateMatrixWorld(true);
  let mesh = null; gltf.scene.traverse((o) => { if (o.isSkinnedMesh) mesh = o; });
  const box = new THREE.Box3().setFromObject(gltf.scene, true);
  const c = box.getCenter(new THREE.Vector3()), r = box.getSize(new THREE.Vector3()).length() / 2;
  const cam = new THREE.PerspectiveCamera(30, W / H, 0.01, 100);
  cam.position.set(c.x, c.y + 0.1 * r, c.z + 1.05 * r / Math.tan(15 * Math.PI / 180)); cam.lookAt(c);
  renderer.render(scene, cam);
  const m = mesh.material;
  window.result = {skinned: mesh.isSkinnedMesh, bones: mesh.skeleton.bones.length,
                   hasMap: !!m.map, mapSize: m.map ? [m.map.image.width, m.map.image.height] : null,
                   vertexColors: m.vertexColors, hasUV: !!mesh.geometry.attributes.uv,
                   colorSpace: m.map ? m.map.colorSpace : null,
                   png: renderer.domElement.toDataURL('image/png')};
}, undefined, (e) => { window.result = {error: String(e)}; });
</script></body></html>"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def render_glb(glb: Path, png: Path, time_s: float = 0.0) -> dict:
    """Serve `glb` with three.js on 127.0.0.1, render one 512² frame at `time_s` of its first animation in
    headless Chromium (tests/browser.py), write `png`, return what three.js reports about the mesh."""
    from browser import chrome

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        (site / "three").symlink_to(THREE)
        shutil.copy(glb, site / "avatar.glb")
        (site / "index.html").write_text(PAGE % {"time": float(time_s)})
        handler = functools.partial(_QuietHandler, directory=str(site))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        driver = chrome(700, 700)
        try:
            driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            deadline, result = time.time() + 90, None
            while time.time() < deadline and not result:
                result = driver.execute_script("return window.result || null")
                time.sleep(0.2)
        finally:
            driver.quit()
            server.shutdown()
    if not result or "error" in result:
        raise RuntimeError(f"three.js did not render {glb}: {result}")
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(result.pop("png").split(",", 1)[1]))
    return result


def test_threejs_renders_the_texture_not_vertex_colours(anny_body, tmp_path):
    from browser import require_browser

    require_browser()
    if not (THREE / "build" / "three.module.js").exists():
        pytest.skip("three is not installed in node_modules (npm install)")
    import imageio.v3 as iio
    import numpy as np
    import torch
    import trimesh

    from avatarclip_core.animate import bake_texture, export_glb, rig_avatar, unwrap
    from avatarclip_core.body import stand_pose
    from test_animate import FPS, motion

    v = anny_body.forward(pose=stand_pose()).vertices[0].numpy()
    red = np.tile(np.array([[230, 20, 20, 255]], np.uint8), (len(v), 1))
    avatar = rig_avatar(trimesh.Trimesh(v, anny_body.faces.numpy(), vertex_colors=red, process=False), anny_body)
    green = lambda p: torch.tensor([0.1, 0.85, 0.2]).expand(len(p), 3)  # noqa: E731  texture ≠ vertex colours
    tex = bake_texture(unwrap(avatar.rest_vertices.numpy(), avatar.faces.numpy(), 256),
                       avatar.pose(stand_pose()), 256, color_fn=green)
    poses, root = motion(10)
    glb = export_glb(tmp_path / "avatar.glb", avatar, poses, root, FPS, texture=tex)
    info = render_glb(glb, tmp_path / "frame.png", time_s=5 / FPS)
    print(json.dumps(info))
    assert info["skinned"] and info["bones"] == 22
    assert info["hasMap"] and info["hasUV"] and info["mapSize"] == [256, 256] and not info["vertexColors"]
    img = iio.imread(tmp_path / "frame.png")[..., :3].astype(float)
    fg = np.abs(img - 230).sum(-1) > 30
    assert 0.03 < fg.mean() < 0.8
    g, r = img[..., 1][fg], img[..., 0][fg]
    assert (g > r + 40).mean() > 0.9  # green texture everywhere, no red vertex colour


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    out = render_glb(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    print(json.dumps(out))
