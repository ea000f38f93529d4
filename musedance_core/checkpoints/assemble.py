"""Assembling a MuseDance model from the files users have: an SD 1.5 base, an AnimateDiff motion
module, Moore-AnimateAnyone weights and a MuseDance bundle — with a report of where every tensor
came from.

Layers are applied in this order, a later layer replacing what an earlier one gave:

    base (SD 1.5: vae, text_encoder, denoising_unet; reference_unet initialised from the same UNet,
          as Animate Anyone does)
    -> animate_anyone (reference_unet, denoising_unet, motion)
    -> motion module (motion)
    -> bundle (the trained parts it holds)

so a bundle's trained parts always win, and a bundle that holds only some parts sits on the base
it names. The model's shapes come from the bundle's config, else from SD 1.5 with the motion
layout of the motion file. The model is built on the meta device and the file tensors are
assigned to it (no second copy of the weights in memory); music and beat branches that no file
provides are fresh and zero-initialised, so the model animates but does not follow music until
trained.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..models.config import SD15_UNET, MuseDanceConfig, sd15_config
from ..models.musedance import MuseDanceModel
from .bundle import COMPONENTS, bundle_config, component_state, read_metadata
from .files import CheckpointError, read_state_dict

REQUIRED = ("vae", "text_encoder", "reference_unet", "denoising_unet", "motion")
OPTIONAL = ("music", "beat")  # fresh zero-initialised branches when no file has them
_REFERENCE_HEAD = ("conv_norm_out.", "conv_out.")  # never used by a reference net; AnimateAnyone drops them
_WHERE = {
    "vae": "an SD 1.5 base checkpoint (models/checkpoints) or a complete bundle",
    "text_encoder": "an SD 1.5 base checkpoint (models/checkpoints) or a complete bundle",
    "reference_unet": "an SD 1.5 base checkpoint, Moore-AnimateAnyone weights or a bundle",
    "denoising_unet": "an SD 1.5 base checkpoint, Moore-AnimateAnyone weights or a bundle",
    "motion": "an AnimateDiff motion module (models/animatediff_models) or a bundle with motion modules",
}


@dataclass
class ModelSources:
    """The files to assemble from; any may be None."""

    bundle: Path | None = None
    base: Path | None = None  # SD 1.5 single file, or a diffusers folder
    motion: Path | None = None  # AnimateDiff motion module
    animate_anyone: Path | None = None  # folder with reference_unet.pth, denoising_unet.pth, motion_module.pth
    tokenizer: Path | None = None  # CLIP tokenizer folder (vocab.json + merges.txt)

    def __post_init__(self) -> None:
        for name in ("bundle", "base", "motion", "animate_anyone", "tokenizer"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))


@dataclass
class Layer:
    """Tensors one file provides, by bundle component, in the model's own names."""

    source: str
    role: str
    parts: dict[str, dict[str, torch.Tensor]]
    notes: list[str] = field(default_factory=list)


@dataclass
class ComponentReport:
    component: str
    expected: int
    sources: dict[str, int] = field(default_factory=dict)  # file -> tensors it gave that are used
    replaced: dict[str, int] = field(default_factory=dict)  # file -> tensors a later file replaced
    missing: list[str] = field(default_factory=list)
    unexpected: dict[str, list[str]] = field(default_factory=dict)  # file -> names the model lacks
    shape_errors: list[str] = field(default_factory=list)
    fresh: bool = False  # built new (zero-initialised branches)


@dataclass
class AssemblyReport:
    """Which tensors came from which file, and what is missing or wrong."""

    model: str
    components: list[ComponentReport]
    notes: list[str]
    tokenizer: str | None
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [f"MuseDance model: {self.model}"]
        width = max(len(c.component) for c in self.components)
        for c in self.components:
            used = sum(c.sources.values())
            if c.fresh:
                origin = "fresh, zero-initialised (no file provides it)"
            elif c.sources:
                origin = ", ".join(f"{n} from {s}" for s, n in c.sources.items())
            else:
                origin = "nothing"
            line = f"  {c.component:<{width}}  {used:>5}/{c.expected:<5} {origin}"
            if c.replaced:
                line += "; replaced: " + ", ".join(f"{n} of {s}" for s, n in c.replaced.items())
            lines.append(line)
            if c.missing and not c.fresh:
                lines.append(f"  {'':<{width}}  missing {len(c.missing)}: {_few(c.missing)}")
            for source, keys in c.unexpected.items():
                lines.append(f"  {'':<{width}}  ignored {len(keys)} tensors of {source} the model has no place for: "
                             f"{_few(keys)}")
            for error in c.shape_errors[:3]:
                lines.append(f"  {'':<{width}}  shape: {error}")
        lines.append(f"tokenizer: {self.tokenizer or 'none found'}")
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"error: {e}" for e in self.errors]
        lines.append("ready to run" if self.ok else "NOT loadable: see the errors above")
        return "\n".join(lines)


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n})" if len(keys) > n else "")


# -- reading the files --------------------------------------------------------------------------
def _base_layer(path: Path, config: MuseDanceConfig) -> tuple[Layer, Path | None]:
    from . import sd15

    if path.is_dir():
        weights = sd15.from_diffusers_folder(path, config)
    else:
        from .identify import identify, require

        state = read_state_dict(path)
        require(identify(state, _metadata(path)), {"sd15"}, path, "base checkpoint")
        weights = sd15.from_single_file(state, path.name, config)
    unet = weights.unet
    parts = {"vae": weights.vae, "text_encoder": weights.text_encoder, "denoising_unet": unet,
             "reference_unet": {k: v.clone() for k, v in unet.items()}}  # own copy: never aliased with the denoiser
    notes = list(weights.notes) + [f"reference_unet initialised from the base UNet of {path.name} (as Animate Anyone does)"]
    return Layer(path.name, "base", parts, notes), weights.tokenizer_dir


def _metadata(path: Path) -> dict[str, str] | None:
    if path.suffix.lower() != ".safetensors":
        return None
    try:
        return read_metadata(path)
    except Exception:
        return None


def _motion_layer(path: Path):
    from .identify import identify, require
    from .motion import convert_motion_module

    state = read_state_dict(path)
    require(identify(state, _metadata(path)), {"animatediff_motion", "diffusers_motion_adapter"}, path, "motion module")
    weights = convert_motion_module(state, path.name)
    return Layer(path.name, "motion", {"motion": weights.state}, list(weights.notes)), weights


def _animate_anyone_layer(folder: Path):
    from .animate_anyone import load_animate_anyone

    weights = load_animate_anyone(folder)
    parts = {"reference_unet": weights.reference_unet, "denoising_unet": weights.denoising_unet,
             "motion": weights.motion.state}
    return Layer(folder.name, "animate_anyone", parts, list(weights.notes)), weights


def _bundle_layer(path: Path) -> tuple[Layer, MuseDanceConfig, dict[str, str]]:
    from safetensors.torch import load_file

    config, meta = bundle_config(path)
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(str(path), device="cpu").items():
        part, _, rest = key.partition(".")
        if part not in COMPONENTS:
            raise CheckpointError(f"'{path.name}' has tensor '{key}' outside the known components.")
        parts.setdefault(part, {})[rest] = tensor
    return Layer(path.name, "bundle", parts), config, meta


def _is_sd15_shaped(config: MuseDanceConfig) -> bool:
    keys = ("block_out_channels", "cross_attention_dim", "layers_per_block", "in_channels")
    return all(config.unet.get(k) == SD15_UNET[k] for k in keys)


def read_layers(sources: ModelSources) -> tuple[MuseDanceConfig, list[Layer], Path | None, list[str]]:
    """Read every given file, decide the model's config, and return the layers in order."""
    if not any((sources.bundle, sources.base, sources.motion, sources.animate_anyone)):
        raise CheckpointError("nothing to load: give a MuseDance bundle, or an SD 1.5 base checkpoint with an "
                              "AnimateDiff motion module (and optionally Moore-AnimateAnyone weights).")
    notes: list[str] = []
    bundle_layer = None
    if sources.bundle is not None:
        bundle_layer, config, meta = _bundle_layer(sources.bundle)
        named_base = meta.get("base")
        if named_base and sources.base is None and not set(REQUIRED) <= set(bundle_layer.parts):
            notes.append(f"{sources.bundle.name} is meant to sit on the base '{named_base}'")
        elif named_base and sources.base is not None and Path(named_base).name != sources.base.name:
            notes.append(f"{sources.bundle.name} was trained on '{named_base}'; loading it on '{sources.base.name}'")
        if (sources.base or sources.animate_anyone) and not _is_sd15_shaped(config):
            raise CheckpointError(f"'{sources.bundle.name}' is a '{config.name}' model (UNet channels "
                                  f"{config.unet['block_out_channels']}); SD 1.5 base or Animate Anyone weights do not "
                                  "fit it. Use a base only with bundles trained on SD 1.5.")
    else:
        config = sd15_config()
    layers: list[Layer] = []
    tokenizer_dir = None
    if sources.base is not None:
        layer, tokenizer_dir = _base_layer(sources.base, config)
        layers.append(layer)
    motion_layout = None
    if sources.animate_anyone is not None:
        layer, animate_anyone = _animate_anyone_layer(sources.animate_anyone)
        layers.append(layer)
        motion_layout = animate_anyone.motion
        if bundle_layer is None:  # a bundle's config has the schedule it was trained with
            config = config.with_changes(scheduler=config.scheduler | animate_anyone.scheduler)
            notes.append(f"noise schedule of {sources.animate_anyone.name}: "
                         + ", ".join(f"{k}={v}" for k, v in animate_anyone.scheduler.items()))
    if sources.motion is not None:
        layer, motion_layout = _motion_layer(sources.motion)
        layers.append(layer)
    if bundle_layer is not None:
        layers.append(bundle_layer)
    _keep_last_motion(layers)
    if motion_layout is not None and (bundle_layer is None or "motion" not in bundle_layer.parts):
        from .motion import motion_config

        config = config.with_changes(motion=motion_config(motion_layout, config.motion))
    return config, layers, tokenizer_dir, notes


def _keep_last_motion(layers: list[Layer]) -> None:
    """Motion modules come whole from one file: the last one given. An earlier file's motion
    tensors are dropped rather than merged, since its layout (v1/v2/v3) may differ."""
    with_motion = [layer for layer in layers if "motion" in layer.parts]
    for layer in with_motion[:-1]:
        del layer.parts["motion"]
        layer.notes.append(f"its motion modules are not used: {with_motion[-1].source} provides them")


# -- planning: which tensor goes where ----------------------------------------------------------
def empty_model(config: MuseDanceConfig) -> MuseDanceModel:
    """The model's modules on the meta device: shapes and names, no memory."""
    with torch.device("meta"):
        return MuseDanceModel(config)


def plan(config: MuseDanceConfig, layers: list[Layer], notes: list[str], tokenizer: str | None,
         expected: dict[str, dict[str, torch.Tensor]]) -> tuple[AssemblyReport, dict[str, dict[str, torch.Tensor]]]:
    """Resolve the layers into one tensor per model name; the report says where each came from."""
    chosen: dict[str, dict[str, torch.Tensor]] = {c: {} for c in COMPONENTS}
    origin: dict[str, dict[str, str]] = {c: {} for c in COMPONENTS}
    reports = {c: ComponentReport(c, len(expected[c])) for c in COMPONENTS}
    errors: list[str] = []
    notes = list(notes)
    for layer in layers:
        notes += [f"{layer.source}: {n}" for n in layer.notes]
        for part, state in layer.parts.items():
            want, report = expected[part], reports[part]
            unexpected = sorted(k for k in state if k not in want)
            if unexpected:
                report.unexpected[layer.source] = unexpected
            for key, tensor in state.items():
                if key not in want:
                    continue
                if tuple(tensor.shape) != tuple(want[key].shape):
                    report.shape_errors.append(f"{layer.source} '{key}' is {tuple(tensor.shape)}, the model needs "
                                               f"{tuple(want[key].shape)}")
                    continue
                if key in origin[part]:
                    report.replaced[origin[part][key]] = report.replaced.get(origin[part][key], 0) + 1
                chosen[part][key], origin[part][key] = tensor, layer.source
    _fill_reference_head(chosen, origin, notes)
    for part in COMPONENTS:
        report = reports[part]
        for source in origin[part].values():
            report.sources[source] = report.sources.get(source, 0) + 1
        report.missing = sorted(set(expected[part]) - set(chosen[part]))
        if report.shape_errors:
            errors.append(f"{part}: {len(report.shape_errors)} tensors have the wrong shape for a '{config.name}' "
                          f"model ({report.shape_errors[0]}); the files are for another model size or family.")
        if part in OPTIONAL and not chosen[part]:
            report.fresh = True
        elif report.missing and not chosen[part]:
            errors.append(f"no file provides the {part}: give {_WHERE[part]}.")
        elif report.missing:
            errors.append(f"{part}: {len(report.missing)} of {report.expected} tensors are in no file "
                          f"({_few(report.missing)}); the file is incomplete or of another layout.")
    if reports["music"].fresh or reports["beat"].fresh:
        notes.append("no music/beat branches in any file: they start at zero, so the model animates the image but "
                     "does not follow the music until trained (a MuseDance bundle provides them)")
    if config.tokenizer == "clip" and tokenizer is None:
        errors.append("no CLIP tokenizer: give a folder with vocab.json and merges.txt (--tokenizer), or use a "
                      "diffusers base folder (its tokenizer/); by default MuseDance's built-in copy "
                      "(musedance_core/models/clip_tokenizer) is used.")
    report = AssemblyReport(config.name, [reports[c] for c in COMPONENTS], notes, tokenizer, errors)
    return report, chosen


def _fill_reference_head(chosen, origin, notes) -> None:
    """A reference net never uses conv_norm_out/conv_out; fill them from the denoiser when a file lacks them."""
    ref, den = chosen["reference_unet"], chosen["denoising_unet"]
    if not ref:
        return
    filled = [k for k in den if k.startswith(_REFERENCE_HEAD) and k not in ref]
    for key in filled:
        ref[key], origin["reference_unet"][key] = den[key], origin["denoising_unet"][key]
    if filled:
        notes.append(f"reference_unet: {len(filled)} unused output-head tensors (conv_norm_out, conv_out) taken "
                     "from the denoising UNet")


def _find_tokenizer(sources: ModelSources, base_tokenizer: Path | None, config: MuseDanceConfig) -> Path | None:
    """The CLIP tokenizer folder: ``--tokenizer``, else the diffusers base's ``tokenizer/``, else the
    built-in copy. CheckpointError (from ``find_tokenizer``) for a ``--tokenizer`` folder without
    vocab.json and merges.txt: a wrong folder the user named is never silently replaced."""
    if config.tokenizer != "clip":
        return None
    from .sd15 import find_tokenizer

    return find_tokenizer(sources.tokenizer, base_tokenizer)


def _tokenizer_label(config: MuseDanceConfig, folder: Path | None) -> str | None:
    if config.tokenizer != "clip":
        return f"built-in {config.tokenizer} (no files needed)"
    if folder is None:
        return None
    from ..models.text import BUILTIN_TOKENIZER

    if folder.resolve() == BUILTIN_TOKENIZER:
        return "built-in CLIP (musedance_core/models/clip_tokenizer)"
    return f"CLIP from {folder}"


def inspect_sources(sources: ModelSources) -> AssemblyReport:
    """The assembly report, without building or running the model."""
    config, layers, base_tokenizer, notes = read_layers(sources)
    tokenizer = _find_tokenizer(sources, base_tokenizer, config)
    expected = component_state(empty_model(config))
    report, _ = plan(config, layers, notes, _tokenizer_label(config, tokenizer), expected)
    return report


def assemble(sources: ModelSources, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             music_encoder: tuple[str, int] | None = None) -> tuple[MuseDanceModel, AssemblyReport]:
    """Build the model from the files; CheckpointError with the report when it cannot be complete.

    ``music_encoder`` (id, feature width): the encoder fresh music branches are sized for, when no
    file provides them (training a new model on features of a learned encoder)."""
    config, layers, base_tokenizer, notes = read_layers(sources)
    if music_encoder is not None and not any("music" in layer.parts for layer in layers):
        config = config.with_changes(music_encoder=music_encoder[0], music_dim=music_encoder[1])
    tokenizer_dir = _find_tokenizer(sources, base_tokenizer, config)
    model = empty_model(config)
    report, chosen = plan(config, layers, notes, _tokenizer_label(config, tokenizer_dir), component_state(model))
    if not report.ok:
        raise CheckpointError("the model cannot be assembled from these files:\n" + report.format())
    del layers
    for part in ("vae", "text_encoder", "reference_unet"):
        getattr(model, part).load_state_dict(_cast(chosen[part], dtype), strict=True, assign=True)
    model.denoising_unet.load_state_dict(_cast(chosen["denoising_unet"] | chosen["motion"], dtype),
                                         strict=True, assign=True)
    if report.components[COMPONENTS.index("music")].fresh or report.components[COMPONENTS.index("beat")].fresh:
        model.music, model.beat = MuseDanceModel.build_branches(config, model.denoising_unet)
    for part in OPTIONAL:
        if chosen[part]:
            getattr(model, part).load_state_dict(_cast(chosen[part], dtype), strict=True, assign=True)
    _materialise_buffers(model)
    if tokenizer_dir is not None:
        from ..models.text import ClipTokenizer

        model.tokenizer = ClipTokenizer(tokenizer_dir)
    model = model.to(device=device, dtype=dtype).eval()
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"internal: {len(left)} tensors were not loaded ({_few(left)}).")
    return model, report


def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def _materialise_buffers(model: MuseDanceModel) -> None:
    """Non-persistent buffers are in no file: CLIP's position ids are recomputed."""
    embeddings = model.text_encoder.embeddings
    if embeddings.position_ids.is_meta:
        n = embeddings.position_ids.shape[-1]
        embeddings.register_buffer("position_ids", torch.arange(n).expand((1, -1)), persistent=False)


def write_report(report: AssemblyReport, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(report.to_dict(), indent=1))
