"""Maintenance scripts: the ComfyUI test host, the example workflows' formats and pictures, the
demo song. Run each from the repository root as a module, e.g.
``.venv/bin/python -m scripts.comfyui_host install``.
"""
