"""Tests for avatarclip_core.guidance: CLIP loading (tiny CLIP, offline errors), preprocessing, prompts,
losses and the oracle encoders (docs/design.md §4)."""
import os
import time

import numpy as np
import pytest
import torch

from avatarclip_core.guidance import (ClipWeightsMissing, appearance_prompts, clip_loss, clip_preprocess, cosine,
                                      load_clip, load_encoder, offset_score, pose_prompt, shape_prompt,
                                      shape_prompts, weights_cached)
from avatarclip_core.guidance.test_encoders import (ColorOracle, GeometryOracle, PartColorOracle, PoseOracle, SizeOracle,
                                                    foreground_from_border, make_tiny_clip, silhouette_bands,
                                                    silhouette_stats, stick_figure_alpha)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny_clip.pt", seed=0)


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return load_clip(tiny_path)


# ---------------------------------------------------------------------------------------------------- tiny CLIP
def test_tiny_clip_round_trip(tiny_path, tiny):
    assert os.path.getsize(tiny_path) < 2_000_000
    assert tiny.embed_dim == 16 and tiny.image_size == (64, 64) and tiny.name.startswith("tiny:")
    assert all(not p.requires_grad for p in tiny.model.parameters()) and not tiny.model.training
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(3, 40, 56, 3, generator=g)
    e = tiny.encode_image(imgs)
    assert e.shape == (3, 16) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(tiny.encode_image(imgs), e)                       # deterministic
    assert (e[0] - e[1]).abs().max() > 1e-4                                       # depends on the image
    t = tiny.encode_text(["a 3D rendering of a red man in unreal engine", "a rendered 3d man is walking"])
    assert t.shape == (2, 16)
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2))
    assert (t[0] - t[1]).abs().max() > 1e-4
    torch.testing.assert_close(tiny.encode_text(["a rendered 3d man is walking"])[0], t[1])  # cached / consistent
    # same file, fresh load (also via the explicit tiny: prefix) and a fresh file with the same seed agree
    again = load_encoder("tiny:" + tiny_path)
    torch.testing.assert_close(again.encode_image(imgs), e)
    torch.testing.assert_close(again.encode_text(["a rendered 3d man is walking"])[0], t[1])


def test_tiny_alias_writes_and_reuses_cache_file(tmp_path, tiny):
    enc = load_encoder("tiny", cache_dir=tmp_path)
    assert (tmp_path / "tiny_clip.pt").is_file() and enc.embed_dim == tiny.embed_dim
    imgs = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(enc.encode_image(imgs), tiny.encode_image(imgs))  # same seed → same model


def test_tiny_clip_same_seed_same_weights(tiny_path, tmp_path):
    other = load_clip(make_tiny_clip(tmp_path / "again.pt", seed=0))
    ref = load_clip(tiny_path)
    for (k, a), (_, b) in zip(ref.model.state_dict().items(), other.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_tiny_clip_gradient_reaches_pixels(tiny):
    imgs = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    text = tiny.encode_text(["a 3D rendering of a blue robot in unreal engine"])
    loss = clip_loss(tiny.encode_image(imgs), text)
    loss.backward()
    assert torch.isfinite(imgs.grad).all() and imgs.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.model.parameters())


def test_encoder_input_validation(tiny):
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        tiny.encode_image(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="alpha"):
        tiny.encode_image(torch.rand(1, 32, 32, 3), alpha=torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="non-empty"):
        tiny.encode_text(["  "])
    with pytest.raises(ValueError, match="CUDA"):
        load_encoder(tiny.name, fp16=True, device="cpu")


# ---------------------------------------------------------------------------------------------------- loading
def test_offline_without_weights_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AVATARCLIP_CACHE", str(tmp_path / "cache"))
    t0 = time.time()
    with pytest.raises(ClipWeightsMissing) as info:
        load_clip("ViT-B-32")
    assert time.time() - t0 < 10
    msg = str(info.value)
    assert str(tmp_path / "cache") in msg and "ViT-B-32" in msg and "run.clip_model" in msg and "--clip" in msg
    assert isinstance(info.value, RuntimeError)


def test_unreachable_network_fails_fast(tmp_path, monkeypatch):
    """Without HF_HUB_OFFLINE the loader probes the weight host (2.5 s budget) before calling open_clip."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://avatarclip-unreachable.invalid")
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "ENDPOINT", "https://avatarclip-unreachable.invalid")
    t0 = time.time()
    with pytest.raises(ClipWeightsMissing, match="cannot reach"):
        load_clip("ViT-B-32", cache_dir=tmp_path)
    assert time.time() - t0 < 10


def test_hf_hub_name_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(ClipWeightsMissing, match=str(tmp_path)):
        load_clip("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", cache_dir=tmp_path)
    assert time.time() - t0 < 10


def test_clip_dtype_follows_the_device_as_the_reference():
    from avatarclip_core.guidance.clip_model import clip_dtype

    assert clip_dtype("cuda") == clip_dtype("cuda:1") == clip_dtype(torch.device("cuda", 0)) == torch.float16
    assert clip_dtype("cpu") == clip_dtype(torch.device("cpu")) == torch.float32
    assert clip_dtype("cuda", fp16=False) == torch.float32 and clip_dtype("cuda", fp16=True) == torch.float16
    assert clip_dtype("cpu", fp16=False) == torch.float32
    with pytest.raises(ValueError, match="needs a CUDA device"):
        clip_dtype("cpu", fp16=True)


def test_default_precision_on_the_cpu_is_float32(tiny_path):
    assert load_clip(tiny_path).dtype == torch.float32  # fp16=None on the CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_clip_on_cuda_defaults_to_fp16_and_passes_gradients(tiny_path):
    enc = load_encoder(tiny_path, device="cuda")
    assert enc.dtype == torch.float16
    imgs = torch.rand(2, 64, 64, 3, device="cuda", requires_grad=True)
    emb = enc.encode_image(imgs)
    assert emb.dtype == torch.float32
    emb.sum().backward()
    assert imgs.grad is not None and imgs.grad.dtype == torch.float32 and torch.isfinite(imgs.grad).all()
    assert imgs.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_clip_cuda_fp16_matches_fp32(tiny_path):
    cpu = load_clip(tiny_path)
    gpu = load_clip(tiny_path, device="cuda", fp16=True)
    assert gpu.dtype == torch.float16 and gpu.device.type == "cuda"
    imgs = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    e_gpu = gpu.encode_image(imgs.cuda())
    assert e_gpu.dtype == torch.float32 and e_gpu.device.type == "cuda"
    assert (cosine(e_gpu.cpu(), cpu.encode_image(imgs)) > 0.99).all()
    t = ["a rendered 3d man is walking"]
    assert cosine(gpu.encode_text(t).cpu(), cpu.encode_text(t)) > 0.99


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(ValueError, match="list_models"):
        load_clip("ViT-Q-99")
    with pytest.raises(ValueError, match="valid tags"):
        load_clip("ViT-B-32", pretrained="no_such_tag")
    with pytest.raises(ValueError, match="does not exist"):
        load_clip(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="empty|name"):
        load_clip("  ")


def test_weights_cached_finds_drop_in_and_hf_layout(tmp_path):
    assert weights_cached("ViT-B-32", "openai", tmp_path) is None
    drop = tmp_path / "ViT-B-32.pt"          # the OpenAI download's file name
    drop.write_bytes(b"x")
    assert weights_cached("ViT-B-32", "openai", tmp_path) == str(drop)
    # Hugging Face cache layout used by open_clip's hub download
    repo = tmp_path / "hf" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "open_clip_model.safetensors").write_bytes(b"x")
    hit = weights_cached("ViT-B-32", "laion2b_s34b_b79k", tmp_path / "hf")
    assert hit is not None and hit.endswith("open_clip_model.safetensors")


# ---------------------------------------------------------------------------------------------------- preprocessing
def test_preprocess_matches_open_clip():
    import open_clip
    from PIL import Image

    n = 256
    y, x = np.mgrid[0:n, 0:n] / n
    img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * 1.5 * x), 0.5 + 0.4 * np.cos(4 * np.pi * y), 0.3 + 0.6 * x * y], -1)
    u8 = (img * 255).round().astype(np.uint8)
    pcfg = open_clip.get_pretrained_cfg("ViT-B-32", "openai")
    tf = open_clip.image_transform(224, is_train=False, mean=pcfg["mean"], std=pcfg["std"],
                                   interpolation=pcfg["interpolation"], resize_mode=pcfg["resize_mode"])
    ref = tf(Image.fromarray(u8))
    ours = clip_preprocess(torch.tensor(u8 / 255.0, dtype=torch.float32)[None], 224)[0]
    assert ours.shape == ref.shape == (3, 224, 224)
    diff = (ours - ref).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.05
    # normalisation constants exactly: a constant image maps to (c - mean) / std
    c = clip_preprocess(torch.full((1, 8, 8, 3), 0.25), 4)
    expect = (0.25 - torch.tensor(pcfg["mean"])) / torch.tensor(pcfg["std"])
    torch.testing.assert_close(c[0, :, 2, 2], expect)


def test_preprocess_is_differentiable():
    img = torch.rand(1, 48, 48, 3, requires_grad=True)
    clip_preprocess(img, 224).square().sum().backward()
    assert img.grad.abs().min() > 0


# ---------------------------------------------------------------------------------------------------- prompts
def test_prompt_templates():
    assert shape_prompt("a tall and skinny person") == "a 3d rendering of a tall and skinny person in unreal engine"
    assert shape_prompts("a strong man")[1] == "a 3d rendering of a person in unreal engine"
    ap = appearance_prompts("  Iron   Man ")
    assert isinstance(ap, dict) and ap["face"] == ap.face and ap.as_list() == [ap.body, ap.face, ap.back]
    assert ap.body == "a 3D rendering of Iron Man in unreal engine"
    assert ap.face == "a 3D rendering of the face of Iron Man in unreal engine"
    assert ap.back == "a 3D rendering of the back of Iron Man in unreal engine"
    assert appearance_prompts("x", face_description="a gas mask").face == "a 3D rendering of the face of a gas mask in unreal engine"
    assert pose_prompt("raising both arms") == "a rendered 3d man is raising both arms"
    for fn, which in ((shape_prompt, "shape"), (pose_prompt, "motion/pose"), (appearance_prompts, "appearance")):
        with pytest.raises(ValueError, match=f"{which}.*empty"):
            fn("   ")
    with pytest.raises(ValueError, match="string"):
        shape_prompt(None)


# ---------------------------------------------------------------------------------------------------- losses
def test_losses():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(cosine(a, torch.tensor([1.0, 0.0])), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(clip_loss(a, torch.tensor([[-3.0, 0.0]])), torch.tensor(1.5))
    # offset score: difference direction +x in both spaces → 1; opposite → −1
    n = torch.tensor([0.0, 0.0, 1.0])
    imgs = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]), dim=-1)
    s = offset_score(imgs, n, torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 1.0]), dim=0), n)
    nimg, dt = imgs.numpy(), np.array([1.0, 0.0, 1.0]) / np.sqrt(2) - n.numpy()
    expect = [(d / np.linalg.norm(d)) @ (dt / np.linalg.norm(dt)) for d in nimg - n.numpy()]
    torch.testing.assert_close(s, torch.tensor(expect, dtype=torch.float32))
    assert s.argmax() == 0 and s[0] > 0.999 and s[1] < 0 < s[2]
    with pytest.raises(ValueError, match="D="):
        offset_score(imgs, torch.zeros(4), n, n)


# ---------------------------------------------------------------------------------------------------- oracles
def _render(alpha, color=(1.0, 1.0, 1.0), bg=0.0):
    rgb = torch.tensor(color)
    return alpha[..., None] * rgb + (1 - alpha[..., None]) * bg


def test_color_oracle_monotone():
    oracle = ColorOracle()
    alpha = stick_figure_alpha(48)[None].repeat(6, 1, 1)
    base = torch.tensor([0.3, 0.6, 0.4])
    colors = [(1 - t) * base + t * torch.tensor([1.0, 0.0, 0.0]) for t in np.linspace(0, 1, 6)]
    imgs = torch.stack([_render(alpha[0], c.tolist(), bg=0.2) for c in colors])
    red = oracle.encode_text(["a 3D rendering of a man in a red suit in unreal engine"])
    cos = cosine(oracle.encode_image(imgs, alpha), red)
    assert (cos.diff() > 0).all() and cos[-1] > 0.98  # soft edges mix in some background
    # background ignored with alpha; other colours score lower on a red figure
    others = oracle.encode_text(["blue", "green", "a person"])
    assert (cosine(oracle.encode_image(imgs[-1:], alpha[-1:]), others) < cos[-1] - 0.1).all()
    torch.testing.assert_close(oracle.encode_text(["a person"])[0], torch.eye(8)[-1])  # no colour word → neutral
    # differentiable: gradient ascent on pixel colours reddens the figure
    img = imgs[:1].clone().requires_grad_(True)
    (-cosine(oracle.encode_image(img, alpha[:1]), red).sum()).backward()
    fg = alpha[0] > 0.5
    assert img.grad[0][fg][:, 0].mean() < 0 and img.grad[0][fg][:, 1].mean() > 0


def test_size_oracle_tallest_wins_offset_rule():
    oracle = SizeOracle()
    heights = [0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85]
    alpha = torch.stack([stick_figure_alpha(64, height=h) for h in heights])
    imgs = _render(alpha)
    e = oracle.encode_image(imgs, alpha)
    neutral_img = e[2]
    tall, neutral = oracle.encode_text(list(shape_prompts("a tall person")))
    short = oracle.encode_text([shape_prompt("a short person")])[0]
    s_tall = offset_score(e, neutral_img, tall, neutral)
    s_short = offset_score(e, neutral_img, short, neutral)
    assert s_tall.argmax() == len(heights) - 1 and (s_tall[3:].diff() > 0).all() and s_tall[-1] > 0.9
    assert s_short.argmax() == 0
    # direct cosine also rises with height; neutral prompt is the neutral vector
    assert (cosine(e, tall).diff() > 0).all()
    torch.testing.assert_close(neutral, torch.tensor([0.0, 0.0, 1.0]))
    # bulk: a wider figure of the same height scores higher for "fat", lower for "skinny"
    wide = torch.stack([stick_figure_alpha(64, bulk=b) for b in (0.8, 1.0, 1.3, 1.6)])
    ew = oracle.encode_image(_render(wide), wide)
    fat, skinny = oracle.encode_text(["a 3d rendering of a fat man in unreal engine", "a skinny woman"])
    assert (cosine(ew, fat).diff() > 0).all() and (cosine(ew, skinny).diff() < 0).all()


def test_size_oracle_gradient_and_no_alpha():
    oracle = SizeOracle()
    alpha = stick_figure_alpha(48, height=0.6)[None].requires_grad_(True)
    tall = oracle.encode_text(["tall"])
    (-cosine(oracle.encode_image(_render(alpha.detach()), alpha), tall).sum()).backward()
    assert torch.isfinite(alpha.grad).all()
    # gradient ascent grows the silhouette: adding mass just above the head raises the score
    rows_with_mass = alpha.detach()[0].sum(1) > 0.5
    top = int(torch.nonzero(rows_with_mass)[0])
    assert alpha.grad[0, top - 1].sum() < 0
    # without alpha the foreground comes from the border colour: same stats within a pixel
    a = stick_figure_alpha(48, height=0.6, softness=0.01)
    s_alpha = silhouette_stats(a[None])
    s_img = silhouette_stats(foreground_from_border(_render(a[None], bg=0.5)))
    assert abs(float(s_alpha["rows"] - s_img["rows"])) < 1.0


def test_pose_oracle_semantics():
    oracle = PoseOracle()
    names = ["down", "out", "up"]
    alpha = torch.stack([stick_figure_alpha(64, height=0.55, arms=a) for a in names])
    e = oracle.encode_image(_render(alpha), alpha)
    raise_, stand = oracle.encode_text([pose_prompt("raising both arms"), pose_prompt("standing")])
    c = cosine(e, raise_)
    assert c.argmax() == 2 and c[2] > c[0] + 0.1 and c[2] > c[1] + 0.1
    assert offset_score(e, e[0], raise_, stand).argmax() == 2
    assert (oracle.encode_text(["hands up", "a rendered 3d man is lifting his arms"]) == raise_).all()
    # walking ↔ legs apart; squatting ↔ short silhouette for its area
    legs = torch.stack([stick_figure_alpha(64, leg_spread=s) for s in (0.0, 0.15, 0.3)])
    walk = oracle.encode_text([pose_prompt("walking")])
    assert (cosine(oracle.encode_image(_render(legs), legs), walk).diff() > 0).all()
    sq = torch.stack([stick_figure_alpha(64, squat=s) for s in (0.0, 0.5, 1.0)])
    squat = oracle.encode_text([pose_prompt("squatting")])
    assert (cosine(oracle.encode_image(_render(sq), sq), squat).diff() > 0).all()
    with pytest.raises(ValueError, match="alpha"):
        oracle.encode_image(_render(alpha), alpha[:, :10])


def test_oracles_on_rendered_anny_bodies():
    """Integration: real body-model renders (anny + our rasteriser, fixed camera at AvatarCLIP's azimuth 150°)."""
    pytest.importorskip("anny")
    from avatarclip_core.body import get_body_model
    from avatarclip_core.body.base import stand_pose
    from avatarclip_core.cameras import orbit_cameras
    from avatarclip_core.render import render_mesh
    from avatarclip_core.skeleton import JOINT_NAMES

    body = get_body_model("anny")
    cams = orbit_cameras(2.0, [0.0], [150.0])
    shapes = body.default_shape()[None].repeat(5, 1)
    shapes[:, body.shape_names.index("height")] = torch.tensor([0.3, 0.4, 0.5, 0.6, 0.7])
    mesh = body.forward(shapes, stand_pose()[None].repeat(5, 1, 1))
    out = render_mesh(mesh.vertices, body.faces, cams, 96)
    size = SizeOracle()
    e = size.encode_image(out.rgb, out.alpha)
    tall, neutral = size.encode_text(list(shape_prompts("a tall person")))
    s = offset_score(e, e[2], tall, neutral)
    assert s.argmax() == 4 and s[3] > 0.9 and s[1] < 0

    j = JOINT_NAMES.index
    up = stand_pose().clone()
    up[j("left_shoulder")] = torch.tensor([0.0, 0.0, 1.3])
    up[j("right_shoulder")] = torch.tensor([0.0, 0.0, -1.3])
    poses = torch.stack([stand_pose(), torch.zeros(22, 3), up])
    m = body.forward(body.default_shape()[None].repeat(3, 1), poses)
    o = render_mesh(m.vertices, body.faces, cams, 96)
    pose = PoseOracle()
    c = cosine(pose.encode_image(o.rgb, o.alpha), pose.encode_text([pose_prompt("raising both arms")]))
    assert c.argmax() == 2 and c[2] > c[:2].max() + 0.1


def _paint_bands(alpha, colors):
    """Images whose head / upper / lower bands (`silhouette_bands`) have the given RGB colours, on black."""
    w = silhouette_bands(alpha, ("head", "upper", "lower"))                       # (B, 3, H)
    c = torch.tensor(colors, dtype=torch.float32)                                 # (3, 3)
    return (w[..., None, None] * c[None, :, None, None, :]).sum(1).clamp(0, 1) * alpha[..., None]


def test_part_color_oracle_orders_parts_and_takes_gradients():
    oracle = PartColorOracle()
    assert oracle.part_colors("a person with green hair, a red top and blue trousers") == {
        "head": (0.0, 0.8, 0.0), "upper": (1.0, 0.0, 0.0), "lower": (0.0, 0.0, 1.0)}
    assert oracle.part_colors("a yellow dress") == {"upper": (1.0, 1.0, 0.0), "lower": (1.0, 1.0, 0.0)}
    assert set(oracle.part_colors("a red person").values()) == {(1.0, 0.0, 0.0)}  # no part word: every band
    prompts = appearance_prompts("a man with green hair, a red top and blue trousers")
    assert set(oracle.part_colors(prompts["face"]).values()) == {(0.0, 0.8, 0.0)}  # close-up: the head colour
    # a face prompt without a head colour has no opinion: cos ≡ 0 for every image
    alpha = stick_figure_alpha(64)[None].repeat(3, 1, 1)
    right = _paint_bands(alpha[:1], [(0, 0.8, 0), (1, 0, 0), (0, 0, 1)])
    swapped = _paint_bands(alpha[:1], [(0, 0.8, 0), (0, 0, 1), (1, 0, 0)])
    half = _paint_bands(alpha[:1], [(0, 0.8, 0), (1, 0, 0), (1, 0, 0)])            # red trousers
    imgs = torch.cat([right, half, swapped])
    e = oracle.encode_image(imgs, alpha)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(3))
    assert cosine(e, oracle.encode_text(["the face of a man in a red shirt"])).abs().max() < 1e-6
    c = cosine(e, oracle.encode_text([prompts["body"]]))
    assert c[0] > 0.9 and c[0] > c[1] + 0.2 and c[1] > c[2] + 0.2, c  # 3 bands right > 2 > 1
    # only the named bands count: "a red top" ignores the head and legs
    top = oracle.encode_text(["a person in a red top"])
    assert abs(float(cosine(e[:2], top).diff())) < 0.01  # (soft band edges mix in a little)
    # differentiable: ascent reddens the upper band and bluens the lower band
    img = swapped.clone().requires_grad_(True)
    (-cosine(oracle.encode_image(img, alpha[:1]), oracle.encode_text([prompts["body"]])).sum()).backward()
    w = silhouette_bands(alpha[:1], ("upper", "lower"))[0]
    upper = (w[0, :, None] * alpha[0]) > 0.5
    lower = (w[1, :, None] * alpha[0]) > 0.5
    g = img.grad[0]
    assert g[upper][:, 0].mean() < 0 and g[upper][:, 2].mean() > 0  # descent direction: +red, −blue above
    assert g[lower][:, 2].mean() < 0 and g[lower][:, 0].mean() > 0


def test_geometry_oracle_skirt_only_through_the_silhouette():
    oracle = GeometryOracle()
    alpha = torch.stack([stick_figure_alpha(64, skirt=s) for s in (0.0, 0.2, 0.3, 0.4)])
    grey = _render(alpha, (0.5, 0.5, 0.5))
    skirt, belly, face, plain = oracle.encode_text(["a 3D rendering of a woman in a wide skirt in unreal engine",
                                                    "a man with a big belly",
                                                    "a 3D rendering of the face of a woman in a skirt",
                                                    "a person"])
    e = oracle.encode_image(grey, alpha)
    c = cosine(e, skirt)
    assert (c.diff() > 0.05).all(), c  # wider skirts score higher
    assert cosine(e, face).abs().max() < 1e-6  # a face close-up says nothing about skirts
    assert cosine(e, plain)[0] > cosine(e, plain)[-1]  # no keyword: the typical silhouette wins
    # colour cannot meet the target: the same silhouette painted red scores the same
    torch.testing.assert_close(oracle.encode_image(_render(alpha, (1.0, 0.0, 0.0)), alpha), e)
    # belly: widening the waist band raises the belly score, not the skirt score
    wide = torch.stack([stick_figure_alpha(64, bulk=b) for b in (1.0, 1.4)])
    ew = oracle.encode_image(_render(wide), wide)
    assert float(cosine(ew, belly).diff()) > 0.05
    # gradient w.r.t. the silhouette: mass just outside the legs raises the skirt score (descent is negative there)
    a = alpha[:1].clone().requires_grad_(True)
    (-cosine(oracle.encode_image(grey[:1], a), skirt).sum()).backward()
    assert oracle.alpha_gradient and torch.isfinite(a.grad).all()
    legs = silhouette_bands(alpha[:1], ("legs",))[0, 0] > 0.5                     # (H,) rows of the leg band
    outside = (alpha[0] < 0.1) & legs[:, None]
    assert a.grad[0][outside].mean() < 0
