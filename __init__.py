"""ComfyUI entry point of MuseDance: registers the model folders and the nodes, nothing else.

Nothing heavy is imported here (torch models, librosa and diffusers load when a node first
runs), so the pack adds next to nothing to ComfyUI's start-up.
"""

from .nodes.host import register_model_folders

register_model_folders()


async def comfy_entrypoint():
    from .nodes import MuseDanceExtension

    return MuseDanceExtension()
