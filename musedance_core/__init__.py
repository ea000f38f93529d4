"""MuseDance core library: music-driven image animation, independent of ComfyUI.

Importing this package is cheap; heavy dependencies (librosa, torch, diffusers) are imported by
the modules that need them, when they are first used.
"""

__version__ = "0.1.0"
