"""ComfyUI host glue: model folders, device and dtype, model loading/offloading, progress and
interruption. Everything that touches ``comfy`` or ``folder_paths`` lives here, so the node
modules stay declarations plus calls into ``musedance_core``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK_DIR = Path(__file__).resolve().parents[1]
MUSEDANCE_FOLDER = "musedance"
ANIMATEDIFF_FOLDER = "animatediff_models"
CHECKPOINTS_FOLDER = "checkpoints"
MUSIC_ENCODERS_FOLDER = "musedance_music_encoders"  # MERT/HuBERT/wav2vec2/CLAP model folders (one per sub-folder)
# read too, as before: ComfyUI's own loader lists single files there, MuseDance the sub-folders
AUDIO_ENCODERS_FOLDER = "audio_encoders"
MUSEDANCE_EXTENSIONS = {".safetensors"}
MOTION_EXTENSIONS = {".safetensors", ".ckpt", ".pt", ".pth"}
DEMO_DIR = PACK_DIR / "assets" / "demo"  # the bundled demo model shows up in the loader's list
# The example workflows' LoadImage/LoadAudio files: offered in ComfyUI's input folder at start-up
# so the workflows run on a fresh install (input name -> bundled file).
DEMO_INPUTS = {"musedance_demo_robot.png": DEMO_DIR / "robot.png",
               "musedance_demo_groove.mp3": DEMO_DIR / "groove.mp3"}
NONE = "none"
DEMO_BUNDLE = "musedance-demo-tiny.safetensors"  # in DEMO_DIR: the loader's default bundle


def register_model_folders() -> None:
    """Register ``models/musedance`` and ``models/musedance_music_encoders`` (and
    ``models/animatediff_models`` and ``models/audio_encoders`` if neither ComfyUI nor another pack
    did), keeping any paths extra_model_paths.yaml already added, and set
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
    ensure(MUSIC_ENCODERS_FOLDER, set())  # holds folders, not files
    ensure(AUDIO_ENCODERS_FOLDER, set())  # ComfyUI's own extensions stay as they are


def offer_demo_inputs() -> list[str]:
    """Copy the demo picture and song into ComfyUI's input folder where no file of that name is
    there yet (a user's file is never replaced), so LoadImage/LoadAudio list them and the example
    workflows run with nothing copied by hand. Returns the names copied; a read-only input folder
    only costs a log line naming the files to copy."""
    import folder_paths

    log = logging.getLogger("musedance")
    input_dir = Path(folder_paths.get_input_directory())
    copied = []
    for name, source in DEMO_INPUTS.items():
        target = input_dir / name
        if target.exists() or not source.is_file():
            continue
        try:
            input_dir.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{name}.partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)  # whole or not at all
            copied.append(name)
        except OSError as exc:
            log.warning("MuseDance: could not put the demo input %s into %s (%s); the example workflows need "
                        "it: copy %s there.", name, input_dir, exc, source)
    return copied


@contextlib.contextmanager
def collect_notes(node: str):
    """The notes the core makes while a node runs (frames cut to the music, prompt cut, context
    length lowered, ...; see musedance_core/notes.py), every run: the core logs each as
    "<node>: <note>", and the yielded list holds them, each once, for the node's UI text when the
    block ends."""
    from ..musedance_core.notes import collect_notes as core_collect_notes

    unique: list[str] = []
    with core_collect_notes(label=node) as notes:
        yield unique
    unique.extend(dict.fromkeys(notes))


def notes_ui(notes: list[str]):
    """The node's UI text: the notes, or an empty text that clears an earlier run's (web/musedance_notes.js
    shows it)."""
    from comfy_api.latest import ui

    return ui.PreviewText("\n".join(notes))


def model_files(folder: str, optional: bool = False) -> list[str]:
    import folder_paths

    names = folder_paths.get_filename_list(folder)
    return ([NONE] if optional else []) + names


def model_path(folder: str, name: str) -> str:
    """Absolute path of a model file the folder lists (ComfyUI 0.3.75 does not check V3 combo
    values, so any text can arrive through the API): only a name in the list resolves, inside the
    folder; any other name, whether or not such a path exists, gets the same refusal."""
    import folder_paths

    listed = isinstance(name, str) and name in folder_paths.get_filename_list(folder)
    path = folder_paths.get_full_path(folder, name) if listed else None
    if path is None:
        raise FileNotFoundError(f"'{name}' is not in models/{folder} (searched: "
                                f"{', '.join(folder_paths.get_folder_paths(folder))}). Put the file there and refresh.")
    return path


def music_encoder_dirs() -> list[str]:
    """Where music encoder folders are looked for: models/musedance_music_encoders, then (as before it
    existed) models/audio_encoders, plus what extra_model_paths.yaml adds to either. Each sub-folder
    with a Hugging Face MERT/HuBERT/wav2vec2/CLAP model is a music encoder; the first of a name wins."""
    import folder_paths

    return [*folder_paths.get_folder_paths(MUSIC_ENCODERS_FOLDER), *folder_paths.get_folder_paths(AUDIO_ENCODERS_FOLDER)]


@dataclass
class LoadedEncoder:
    """Payload of MUSEDANCE_MUSIC_ENCODER: a music encoder kept between runs by ComfyUI's cache of the
    loader's output; a learned one's network is in a ModelPatcher, so ComfyUI's memory manager moves
    it to the GPU to encode and may offload it when another model needs the room."""

    name: str
    encoder: Any  # musedance_core MusicEncoder (SpectralEncoder or BackboneEncoder)
    patcher: Any = None  # comfy.model_patcher.ModelPatcher for learned encoders


def load_music_encoder(name: str) -> LoadedEncoder:
    """The encoder ``name`` lists ('spectral' or a folder in music_encoder_dirs; never a path)."""
    import comfy.model_management as mm
    import comfy.model_patcher

    from ..musedance_core.audio.backbones.encoder import load_backbone
    from ..musedance_core.audio.backbones.folders import find_backbones
    from ..musedance_core.audio.backbones.selection import SPECTRAL
    from ..musedance_core.audio.encoders import SpectralEncoder
    from ..musedance_core.errors import MusicEncoderError

    if name == SPECTRAL:
        return LoadedEncoder(name, SpectralEncoder())
    found, broken = find_backbones(music_encoder_dirs())
    if name in broken:
        raise MusicEncoderError(broken[name])
    if name not in found:
        raise MusicEncoderError(f"unknown music encoder '{name}': put its model folder in models/"
                                f"{MUSIC_ENCODERS_FOLDER} and refresh. Available: {', '.join([SPECTRAL, *sorted(found)])}.")
    logging.getLogger("musedance").info("MuseDance: loading music encoder '%s' from %s", name, found[name].folder)
    encoder = load_backbone(found[name], device=mm.unet_offload_device())
    import torch

    holder = torch.nn.Module()  # the patcher sets .device, a read-only property on transformers models
    holder.network = encoder.model
    holder.device = mm.unet_offload_device()
    patcher = comfy.model_patcher.ModelPatcher(holder, load_device=torch_device(),
                                               offload_device=mm.unet_offload_device())
    return LoadedEncoder(name, encoder, patcher)


def encoder_to_device(loaded: LoadedEncoder) -> None:
    import comfy.model_management as mm

    if loaded.patcher is not None:
        mm.load_models_gpu([loaded.patcher])


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




def check_interrupt() -> None:
    """Raise ComfyUI's InterruptProcessingException once /interrupt was asked (the pipeline calls
    this before every UNet and VAE block, so a run stops within a fraction of a step)."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()


class Progress:
    """ComfyUI progress bar over steps x windows, with interruption checked at every update and,
    once per step (at its last window), the preview ComfyUI's --preview-method asks for (see
    nodes/preview.py): the middle frame of the step's denoised estimate (the current latents
    when the scheduler gives none), or no preview image with the default "none"."""

    _UNSET = object()

    def __init__(self, model=None, node_id: str | None = None):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(1, node_id=node_id)
        self.model = model
        self.previewer = self._UNSET  # chosen at the first preview, from the settings at run time

    def __call__(self, progress) -> None:
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()
        preview = None
        if self.model is not None and progress.window == progress.windows - 1:
            preview = self._preview(progress)
        self.bar.update_absolute(progress.done, progress.total, preview)

    def _preview(self, progress):
        import logging

        import torch

        from .preview import make_previewer

        latents = progress.latents if getattr(progress, "denoised", None) is None else progress.denoised
        frame = latents[:, :, latents.shape[2] // 2]  # (1, C, h, w)
        try:
            with torch.no_grad():
                if self.previewer is self._UNSET:
                    self.previewer = make_previewer(self.model, frame.device)
                return None if self.previewer is None else self.previewer(frame)
        except Exception as exc:  # a preview never stops the run: no more previews in it
            logging.warning("MuseDance: previews are off for this run, making one failed: %s", exc)
            self.previewer = None
            return None
