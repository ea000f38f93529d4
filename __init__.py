"""ComfyUI entry point of MuseDance: registers the model folders and the nodes, nothing else.

Nothing heavy is imported here (torch models, librosa and diffusers load when a node first
runs), so the pack adds next to nothing to ComfyUI's start-up.
"""

try:
    import folder_paths  # noqa: F401  (exists only inside ComfyUI)
except ImportError:  # imported outside ComfyUI, e.g. when pytest collects this folder
    folder_paths = None

if folder_paths is not None:
    from .nodes.host import register_model_folders

    register_model_folders()


async def comfy_entrypoint():
    from .nodes import MuseDanceExtension

    return MuseDanceExtension()
