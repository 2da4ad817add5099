"""Differentiable triangle rasteriser in pure torch (CPU and CUDA, batched cameras): RGB, soft alpha, depth,
normals and face index of triangle meshes with per-vertex colours, Lambert + ambient shading, backgrounds.
See `rasterizer` for the method and `renderer.render_mesh` for the API."""
from .rasterizer import Fragments, mesh_topology, project, rasterize
from .renderer import RenderOutput, render_mesh, silhouette
from .shading import composite, face_normals, lambert, lambert_factor, vertex_normals

__all__ = ["RenderOutput", "render_mesh", "silhouette", "project", "rasterize", "Fragments", "mesh_topology",
           "face_normals", "vertex_normals", "lambert", "lambert_factor", "composite"]
