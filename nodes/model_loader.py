"""Load MuseDance Model."""

from __future__ import annotations

from comfy_api.latest import io

from . import host
from .types import CATEGORY, MuseDanceModel


class MuseDanceModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MuseDanceModelLoader",
            display_name="Load MuseDance Model",
            category=CATEGORY,
            description="Loads a MuseDance bundle (.safetensors) from models/musedance; the pack's demo model is "
                        "listed too. Nothing is downloaded.",
            inputs=[
                io.Combo.Input("bundle", options=host.model_files(host.MUSEDANCE_FOLDER),
                               tooltip="MuseDance bundle from models/musedance (or the pack's bundled demo model)."),
                io.Combo.Input("precision", options=["auto", "fp16", "bf16", "fp32"], default="auto",
                               tooltip="Weight precision. auto = fp16 (or bf16) on GPUs, fp32 on the CPU."),
            ],
            outputs=[MuseDanceModel.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, bundle: str, precision: str) -> io.NodeOutput:
        from ..musedance_core.checkpoints.bundle import load_bundle

        path = host.model_path(host.MUSEDANCE_FOLDER, bundle)
        dtype = host.choose_dtype(precision, host.torch_device())
        model = load_bundle(path, device="cpu")
        return io.NodeOutput(host.wrap_model(model, dtype, {"bundle": path}))
