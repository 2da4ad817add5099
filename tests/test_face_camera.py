"""The head close-up camera of stage 3 aims at the centre of the head, as the reference's (docs/method.md §3.3):
measured on two anny bodies of different shape, it lies inside the head, 5–9 cm below the crown, and the
camera 0.4 m from it is about 0.28–0.31 m from the face."""
import pytest
import torch

from avatarclip_core import skeleton
from avatarclip_core.body import stand_pose
from avatarclip_core.neus.params import TextureCameraParams
from avatarclip_core.neus.sampler import TextureCameraSampler, face_anchor

BODIES = {"default": None, "tall": [0.5, 0.65, 0.5, 0.5, 0.6, 0.5], "short and heavy": [1.0, 0.5, 0.2, 1.0, 0.3, 0.8]}


@pytest.fixture(scope="module")
def bodies(anny_body):
    out = {}
    for name, shape in BODIES.items():
        mesh = anny_body(shape=None if shape is None else torch.tensor(shape), pose=stand_pose())
        out[name] = (mesh.vertices[0], mesh.joints[0, skeleton.JOINT_INDEX["head"]])
    return out


def _front_z(v, y):
    """z of the face surface on the mid-sagittal line at height y (largest z of the nearby vertices)."""
    band = ((v[:, 1] - y).abs() < 0.01) & (v[:, 0].abs() < 0.02)
    return float(v[band, 2].max()), float(v[band, 2].min())


@pytest.mark.parametrize("name", list(BODIES))
def test_face_camera_aims_at_the_head_centre(bodies, name):
    v, head = bodies[name]
    y, z = face_anchor(v, head)
    crown = float(v[:, 1].max())
    assert 0.05 <= crown - y <= 0.09, (name, crown - y)
    front, back = _front_z(v, y)
    assert back + 0.05 < z < front - 0.05, (name, back, z, front)   # inside the head, well behind the face
    assert y > float(head[1])                                        # above the head joint (the old aim height)
    assert face_anchor(v) == pytest.approx((y, z), abs=1e-6)          # the mesh alone gives the same point
    sampler = TextureCameraSampler((0.0, y, z), seed=0)
    cams = sampler.sample(torch.arange(0, 64, 4))                     # every 4th step is a face step
    assert cams.is_face.all() and torch.allclose(cams.distance, torch.tensor(TextureCameraParams().face_distance))
    assert torch.allclose(cams.at, torch.tensor([0.0, y, z]).expand(len(cams.at), 3))
    eye_to_face = z + TextureCameraParams().face_distance - front     # the frontal close-up (θ = 0)
    assert 0.27 <= eye_to_face <= 0.32, (name, eye_to_face)


def test_the_aim_follows_the_body(bodies):
    (yd, zd), (yt, zt) = (face_anchor(*bodies[n]) for n in ("default", "tall"))
    grow = float(bodies["tall"][0][:, 1].max() - bodies["default"][0][:, 1].max())
    assert yt - yd == pytest.approx(grow, abs=0.03)  # the aim point rises with the crown of the taller body


def test_raised_hands_are_not_taken_for_the_head(bodies):
    v, head = bodies["default"]
    hand = v[v[:, 1].argmax()] + torch.tensor([0.35, 0.25, 0.0])     # a blob above and beside the head
    blob = hand + 0.03 * torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    assert face_anchor(torch.cat([v, blob]), head) == pytest.approx(face_anchor(v, head), abs=1e-3)
