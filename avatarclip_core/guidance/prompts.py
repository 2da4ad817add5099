"""AvatarCLIP's prompt templates (docs/method.md §1.3, §3.7, §6).

* shape (stage 1):        "a 3d rendering of {X} in unreal engine", neutral "a 3d rendering of a person in unreal engine"
* appearance (stage 3):   body "a 3D rendering of {X} in unreal engine",
                          face "a 3D rendering of the face of {X} in unreal engine",
                          back "a 3D rendering of the back of {X} in unreal engine"
* pose / motion (4, 5):   "a rendered 3d man is {X}"

(The lower-case "3d" in the shape and pose templates and upper-case "3D" in the appearance templates are as in
the official code.) Each builder takes the user's free-text description, strips surrounding whitespace and
returns the full sentence(s); a blank description raises ValueError naming the prompt.
"""
from __future__ import annotations

__all__ = [
    "SHAPE_TEMPLATE", "SHAPE_NEUTRAL", "APPEARANCE_TEMPLATE", "FACE_TEMPLATE", "BACK_TEMPLATE", "POSE_TEMPLATE",
    "AppearancePrompts", "shape_prompt", "shape_prompts", "appearance_prompts", "pose_prompt",
]

SHAPE_TEMPLATE = "a 3d rendering of {} in unreal engine"
SHAPE_NEUTRAL = "a 3d rendering of a person in unreal engine"
APPEARANCE_TEMPLATE = "a 3D rendering of {} in unreal engine"
FACE_TEMPLATE = "a 3D rendering of the face of {} in unreal engine"
BACK_TEMPLATE = "a 3D rendering of the back of {} in unreal engine"
POSE_TEMPLATE = "a rendered 3d man is {}"


def _clean(description, which: str, example: str) -> str:
    if not isinstance(description, str):
        raise ValueError(f"the {which} description must be a string, got {type(description).__name__}; "
                         f"give a phrase such as {example!r}")
    text = " ".join(description.split())
    if not text:
        raise ValueError(f"the {which} description is empty; give a phrase such as {example!r} "
                         f"(it is inserted into the template)")
    return text


def shape_prompt(description: str) -> str:
    """Stage-1 shape prompt: ``"a 3d rendering of {description} in unreal engine"`` (docs/method.md §1.3 step 2).

    `description` e.g. "a tall and skinny person"; internal whitespace is collapsed.
    Raises ValueError on a blank/non-string description."""
    return SHAPE_TEMPLATE.format(_clean(description, "shape", "a tall and skinny person"))


def shape_prompts(description: str) -> tuple[str, str]:
    """(target, neutral) for AvatarCLIP's offset rule: the shape prompt and
    ``"a 3d rendering of a person in unreal engine"`` (docs/method.md §1.3 steps 2–3). Raises like `shape_prompt`."""
    return shape_prompt(description), SHAPE_NEUTRAL


class AppearancePrompts(dict):
    """The three texture-stage prompts (docs/method.md §3.7) as a dict ``{"body", "face", "back"}`` with attribute
    access: `body` for ordinary views, `face` for face views, `back` for views from behind (`use_back_prompt`)."""

    def __init__(self, body: str, face: str, back: str):
        super().__init__(body=body, face=face, back=back)

    body = property(lambda self: self["body"], doc="prompt for ordinary views")
    face = property(lambda self: self["face"], doc="prompt for face close-ups")
    back = property(lambda self: self["back"], doc="prompt for views from behind")

    def as_list(self) -> list[str]:
        """[body, face, back]."""
        return [self["body"], self["face"], self["back"]]


def appearance_prompts(description: str, face_description: str | None = None) -> AppearancePrompts:
    """Stage-3 prompts: "a 3D rendering of {X} in unreal engine", "... of the face of {X} ...",
    "... of the back of {X} ..." (docs/method.md §3.7).

    Args:
        description: the appearance, e.g. "a female soldier" (also "Iron Man").
        face_description: optional override of X in the face prompt (the official biohazard example uses
            "the mask of biohazard protective outfit"); default: `description`.
    Raises:
        ValueError: blank description, or blank face_description when given.
    """
    x = _clean(description, "appearance", "a female soldier")
    fx = x if face_description is None else _clean(face_description, "face", "a female soldier")
    return AppearancePrompts(APPEARANCE_TEMPLATE.format(x), FACE_TEMPLATE.format(fx), BACK_TEMPLATE.format(x))


def pose_prompt(description: str) -> str:
    """Stage-4/5 prompt: ``"a rendered 3d man is {description}"`` (docs/method.md §6), description a verb phrase
    such as "raising both arms". Raises ValueError on a blank/non-string description."""
    return POSE_TEMPLATE.format(_clean(description, "motion/pose", "raising both arms"))
