"""avatarclip: text → sculpted, textured, rigged 3D avatar, its motion and a video (AvatarCLIP, Hong et al.
SIGGRAPH 2022, reimplemented). See docs/design.md for the stage contract; notebooks call `run_<stage>`."""
__version__ = "0.1.0"
