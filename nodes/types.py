"""The pack's custom ComfyUI types (ids prefixed MUSEDANCE_, never renamed once shipped)."""

from comfy_api.latest import io

MuseDanceModel = io.Custom("MUSEDANCE_MODEL")  # nodes.host.LoadedModel
MuseDanceMusic = io.Custom("MUSEDANCE_MUSIC")  # musedance_core.types.MusicFeatures
MuseDanceBeats = io.Custom("MUSEDANCE_BEATS")  # musedance_core.types.BeatTrack
MuseDanceMusicEncoderModel = io.Custom("MUSEDANCE_MUSIC_ENCODER")  # nodes.host.LoadedEncoder

CATEGORY = "MuseDance"
