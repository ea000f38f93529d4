"""ComfyUI host glue: model folders, device and dtype, model loading/offloading, progress and
interruption. Everything that touches ``comfy`` or ``folder_paths`` lives here, so the node
modules stay declarations plus calls into ``musedance_core``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_DIR = Path(__file__).resolve().parents[1]
MUSEDANCE_FOLDER = "musedance"
ANIMATEDIFF_FOLDER = "animatediff_models"
CHECKPOINTS_FOLDER = "checkpoints"
AUDIO_ENCODERS_FOLDER = "audio_encoders"  # music encoder model folders (ComfyUI 0.3.75 registers it too)
MUSEDANCE_EXTENSIONS = {".safetensors"}
MOTION_EXTENSIONS = {".safetensors", ".ckpt", ".pt", ".pth"}
DEMO_DIR = PACK_DIR / "assets" / "demo"  # the bundled demo model shows up in the loader's list
NONE = "none"


def register_model_folders() -> None:
    """Register ``models/musedance`` (and ``models/animatediff_models`` and ``models/audio_encoders`` if
    neither ComfyUI nor another pack did), keeping any paths extra_model_paths.yaml already added, and set
    their file extensions."""
    import folder_paths

    def ensure(name: str, extensions: set[str], extra: list[Path] = ()) -> None:
        default = os.path.join(folder_paths.models_dir, name)
        folder_paths.add_model_folder_path(name, default)
        for path in extra:
            folder_paths.add_model_folder_path(name, str(path))
        paths, exts = folder_paths.folder_names_and_paths[name]
        folder_paths.folder_names_and_paths[name] = (paths, set(exts) | extensions)

    ensure(MUSEDANCE_FOLDER, MUSEDANCE_EXTENSIONS, [DEMO_DIR])
    ensure(ANIMATEDIFF_FOLDER, MOTION_EXTENSIONS)
    ensure(AUDIO_ENCODERS_FOLDER, set())  # holds folders; ComfyUI's own extensions stay as they are


def model_files(folder: str, optional: bool = False) -> list[str]:
    import folder_paths

    names = folder_paths.get_filename_list(folder)
    return ([NONE] if optional else []) + names


def model_path(folder: str, name: str) -> str:
    """Absolute path of a listed model file (ComfyUI resolves it inside the folder, no traversal)."""
    import folder_paths

    path = folder_paths.get_full_path(folder, name)
    if path is None:
        raise FileNotFoundError(f"'{name}' is not in models/{folder} (searched: "
                                f"{', '.join(folder_paths.get_folder_paths(folder))}). Put the file there and refresh.")
    return path


def audio_encoder_dirs() -> list[str]:
    """The models/audio_encoders folders (extra_model_paths.yaml may add more); each sub-folder with a
    Hugging Face MERT/HuBERT/wav2vec2/CLAP model is a music encoder."""
    import folder_paths

    return folder_paths.get_folder_paths(AUDIO_ENCODERS_FOLDER)


def empty_cache() -> None:
    """Return freed GPU memory (e.g. a music encoder's) to the driver."""
    import comfy.model_management as mm

    mm.soft_empty_cache()


def named_base(bundle: Path) -> Path | None:
    """The SD 1.5 checkpoint a partial bundle names as its base, if models/checkpoints has a file of
    that name (only the file name is used, so a bundle cannot point outside the model folders)."""
    import folder_paths

    from ..musedance_core.checkpoints.assemble import REQUIRED
    from ..musedance_core.checkpoints.bundle import read_metadata

    meta = read_metadata(bundle)
    if not meta.get("base") or set(REQUIRED) <= set(meta.get("parts", "").split(",")):  # complete: no base needed
        return None
    name = Path(meta["base"]).name
    if name not in folder_paths.get_filename_list(CHECKPOINTS_FOLDER):
        return None  # the assembler reports the missing parts and names the base
    return Path(folder_paths.get_full_path(CHECKPOINTS_FOLDER, name))


def torch_device():
    import comfy.model_management as mm

    return mm.get_torch_device()


def choose_dtype(precision: str, device):
    """auto: what ComfyUI would pick for a UNet on this device (fp16/bf16 on GPUs, fp32 on CPU)."""
    import torch

    from ..musedance_core.devices import pick_dtype

    if precision != "auto":
        return pick_dtype(precision, device)
    import comfy.model_management as mm

    if device.type == "cpu":
        return torch.float32
    if mm.should_use_fp16(device):
        return torch.float16
    if mm.should_use_bf16(device):
        return torch.bfloat16
    return torch.float32


@dataclass
class LoadedModel:
    """Payload of MUSEDANCE_MODEL: the model, the ComfyUI patcher that moves it, and provenance."""

    patcher: Any  # comfy.model_patcher.ModelPatcher
    dtype: Any
    sources: dict[str, str] = field(default_factory=dict)  # component -> file(s) it came from

    @property
    def model(self):
        return self.patcher.model

    @property
    def config(self):
        return self.patcher.model.config


def wrap_model(model, dtype, sources: dict[str, str]) -> LoadedModel:
    """Hand the model to ComfyUI's memory manager (loaded to the GPU on use, offloaded after)."""
    import comfy.model_management as mm
    import comfy.model_patcher

    model = model.to(device=mm.unet_offload_device(), dtype=dtype).eval()
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=torch_device(), offload_device=mm.unet_offload_device())
    return LoadedModel(patcher, dtype, sources)


def load_to_device(loaded: LoadedModel) -> None:
    import comfy.model_management as mm

    mm.load_models_gpu([loaded.patcher])


def offload(loaded: LoadedModel) -> None:
    """Move the model back to the offload device and free cached GPU memory."""
    import comfy.model_management as mm

    loaded.patcher.detach()
    mm.soft_empty_cache()


PREVIEW_MAX_PIXELS = 512  # ComfyUI's own preview size limit


class Progress:
    """ComfyUI progress bar over steps x windows, with interruption checked at every update and,
    once per step, a preview: the middle frame of the current latents through the VAE (one
    frame, so it costs a small fraction of a step)."""

    def __init__(self, model=None, node_id: str | None = None):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(1, node_id=node_id)
        self.model = model

    def __call__(self, progress) -> None:
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()
        preview = None
        if self.model is not None and progress.window == progress.windows - 1:
            preview = ("JPEG", self._preview(progress.latents), PREVIEW_MAX_PIXELS)
        self.bar.update_absolute(progress.done, progress.total, preview)

    def _preview(self, latents):
        import numpy as np
        import torch
        from PIL import Image

        with torch.no_grad():
            frame = latents[:, :, latents.shape[2] // 2]  # (1, C, h, w)
            image = self.model.decode_latents(frame)[0]
        array = ((image.float().nan_to_num().clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).cpu().numpy().astype(np.uint8)
        return Image.fromarray(array)

