"""Thin ComfyUI adapters over musedance_core: ComfyUI types in, core calls, ComfyUI types out."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .animate import MuseDanceAnimateImage
from .model_loader import MuseDanceModelLoader
from .music import MuseDanceBeatExtractor, MuseDanceMusicEncoder, MuseDanceMusicEncoderLoader

NODES: list[type[io.ComfyNode]] = [
    MuseDanceModelLoader,
    MuseDanceMusicEncoderLoader,
    MuseDanceMusicEncoder,
    MuseDanceBeatExtractor,
    MuseDanceAnimateImage,
]


class MuseDanceExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
