"""Thin ComfyUI adapters over musedance_core (ComfyUI types in, core calls, ComfyUI types out)."""
