"""Load MuseDance Model."""

from __future__ import annotations

import logging
from pathlib import Path

from comfy_api.latest import io

from . import host
from .types import CATEGORY, MuseDanceModel

log = logging.getLogger("musedance")


class MuseDanceModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        bundles = host.model_files(host.MUSEDANCE_FOLDER) + [host.NONE]
        return io.Schema(
            node_id="MuseDanceModelLoader",
            display_name="Load MuseDance Model",
            category=CATEGORY,
            description="Loads a MuseDance bundle from models/musedance (the pack's demo model is listed too), "
                        "optionally on an SD 1.5 base checkpoint and an AnimateDiff motion module. The bundle's "
                        "trained parts win over the base and motion files. Nothing is downloaded; the console "
                        "shows which tensors came from which file.",
            inputs=[
                io.Combo.Input("bundle", options=bundles, default=host.DEMO_BUNDLE if host.DEMO_BUNDLE in bundles
                               else bundles[0],
                               tooltip="MuseDance bundle from models/musedance (or the pack's bundled demo model). "
                                       "'none' = base + motion module only (the music branches start untrained)."),
                io.Combo.Input("precision", options=["auto", "fp16", "bf16", "fp32"], default="auto",
                               tooltip="Weight precision. auto = fp16 (or bf16) on GPUs, fp32 on the CPU."),
                io.Combo.Input("base_checkpoint", options=host.model_files(host.CHECKPOINTS_FOLDER, optional=True),
                               default=host.NONE, optional=True,
                               tooltip="SD 1.5 checkpoint from models/checkpoints, for bundles that hold only their "
                                       "trained parts. 'none' = the base the bundle names, if it is in "
                                       "models/checkpoints."),
                io.Combo.Input("motion_module", options=host.model_files(host.ANIMATEDIFF_FOLDER, optional=True),
                               default=host.NONE, optional=True,
                               tooltip="AnimateDiff motion module (v1/v2/v3, SD 1.5) from models/animatediff_models; "
                                       "used when the bundle has no motion modules of its own."),
            ],
            outputs=[
                MuseDanceModel.Output(display_name="model"),
                # connect to the Music Encoder's and Beat Extractor's fps: one fps for the whole graph
                io.Float.Output(display_name="fps", tooltip="The frame rate the model was trained at; connect it "
                                                           "to the fps of the Music Encoder and Beat Extractor."),
            ],
        )

    @classmethod
    def execute(cls, bundle: str, precision: str, base_checkpoint: str = host.NONE,
                motion_module: str = host.NONE) -> io.NodeOutput:
        from ..musedance_core.checkpoints.assemble import ModelSources, assemble

        sources = ModelSources(
            bundle=None if bundle == host.NONE else Path(host.model_path(host.MUSEDANCE_FOLDER, bundle)),
            base=None if base_checkpoint == host.NONE else Path(host.model_path(host.CHECKPOINTS_FOLDER, base_checkpoint)),
            motion=None if motion_module == host.NONE else Path(host.model_path(host.ANIMATEDIFF_FOLDER, motion_module)),
        )
        if sources.base is None and sources.bundle is not None:
            sources.base = host.named_base(sources.bundle)
        dtype = host.choose_dtype(precision, host.torch_device())
        model, report = assemble(sources, device="cpu", dtype=dtype)
        log.info("MuseDance model assembled:\n%s", report.format())
        origins = {c.component: ", ".join(c.sources) or ("fresh" if c.fresh else "") for c in report.components}
        return io.NodeOutput(host.wrap_model(model, dtype, origins), float(model.config.fps))
