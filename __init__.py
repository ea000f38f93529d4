"""ComfyUI entry point of MuseDance: registers the model folders and the nodes, and offers the
example workflows' demo picture and song to ComfyUI's input folder.

Nothing heavy is imported here (torch models, librosa and diffusers load when a node first
runs), so the pack adds next to nothing to ComfyUI's start-up.
"""

try:
    import folder_paths  # noqa: F401  (exists only inside ComfyUI)
except ImportError:  # imported outside ComfyUI, e.g. when pytest collects this folder
    folder_paths = None

if folder_paths is not None:
    from .nodes.host import offer_demo_inputs, register_model_folders

    register_model_folders()
    offer_demo_inputs()


WEB_DIRECTORY = "./web"  # musedance_notes.js: shows a node's notes on the node


async def comfy_entrypoint():
    from .nodes import MuseDanceExtension

    return MuseDanceExtension()
