"""MuseDance Music Encoder and MuseDance Beat Extractor: AUDIO -> per-frame features."""

from __future__ import annotations

from comfy_api.latest import io

from .types import CATEGORY, MuseDanceBeats, MuseDanceMusic

FPS_TOOLTIP = "Video frame rate the features are made for; use the same value in every MuseDance node and CreateVideo."


def _mono(audio: dict):
    """ComfyUI AUDIO -> (mono samples [N] at the analysis rate, that rate)."""
    from ..musedance_core.audio.analysis import ANALYSIS_SAMPLE_RATE
    from ..musedance_core.audio.io import from_comfy_audio, resample, to_mono

    mono = resample(to_mono(from_comfy_audio(audio, name="audio")), ANALYSIS_SAMPLE_RATE)
    return mono.samples[0], mono.sample_rate


class MuseDanceMusicEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        from ..musedance_core.audio.backbones import music_encoder_choices
        from .host import audio_encoder_dirs

        return io.Schema(
            node_id="MuseDanceMusicEncoder",
            display_name="MuseDance Music Encoder",
            category=CATEGORY,
            description="Turns music into one feature row per video frame, for MuseDance Animate Image.",
            inputs=[
                io.Audio.Input("audio", tooltip="The music (e.g. from LoadAudio, trimmed with TrimAudioDuration)."),
                io.Float.Input("fps", default=12.0, min=1.0, max=120.0, step=0.5, tooltip=FPS_TOOLTIP),
                io.Combo.Input("encoder", options=music_encoder_choices(audio_encoder_dirs()), default="spectral",
                               tooltip="Music encoder; must be the one the model was trained with (the demo and "
                                       "tiny models use 'spectral', which needs no weights). The others are the "
                                       "MERT/HuBERT/wav2vec2/CLAP model folders in models/audio_encoders."),
            ],
            outputs=[MuseDanceMusic.Output(display_name="music")],
        )

    @classmethod
    def execute(cls, audio: dict, fps: float, encoder: str) -> io.NodeOutput:
        from ..musedance_core.audio.backbones import music_encoder
        from ..musedance_core.audio.io import from_comfy_audio, to_mono
        from .host import audio_encoder_dirs, empty_cache, torch_device

        mono = to_mono(from_comfy_audio(audio, name="audio"))  # at its own rate: each encoder resamples
        model = music_encoder(encoder, audio_encoder_dirs(), device=torch_device())
        features = model.encode(mono.samples[0], mono.sample_rate, fps)
        del model
        empty_cache()
        return io.NodeOutput(features)


class MuseDanceBeatExtractor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MuseDanceBeatExtractor",
            display_name="MuseDance Beat Extractor",
            category=CATEGORY,
            description="Finds beats and downbeats (following tempo changes) and makes per-frame beat features; "
                        "previews them as an image.",
            inputs=[
                io.Audio.Input("audio", tooltip="The music; use the same AUDIO as the Music Encoder."),
                io.Float.Input("fps", default=12.0, min=1.0, max=120.0, step=0.5, tooltip=FPS_TOOLTIP),
                io.Float.Input("min_bpm", default=0.0, min=0.0, max=300.0, step=1.0,
                               tooltip="Lowest tempo to consider; 0 = automatic (50). Raise it to avoid half tempo."),
                io.Float.Input("max_bpm", default=0.0, min=0.0, max=300.0, step=1.0,
                               tooltip="Highest tempo to consider; 0 = automatic (220). Lower it to avoid double tempo."),
                io.Int.Input("beats_per_bar", default=0, min=0, max=16,
                             tooltip="Meter for downbeats; 0 = estimate 2, 3 or 4 (6/8 counts 2 beats per bar)."),
                # optional and last, so workflows saved before it still load and run
                io.Float.Input("beat_offset_ms", default=0.0, min=-1000.0, max=1000.0, step=5.0, optional=True,
                               tooltip="Shift every beat by this many milliseconds (+ = later), to nudge the "
                                       "grid by hand."),
            ],
            outputs=[
                MuseDanceBeats.Output(display_name="beats"),
                io.Image.Output(display_name="beat_plot", tooltip="Waveform and onset curve with beats (blue) and downbeats (red)."),
                io.Float.Output(display_name="tempo", tooltip="Tempo in BPM (0 when no beat was found)."),
                io.Int.Output(display_name="frame_count", tooltip="Frames the music lasts at this fps."),
            ],
        )

    @classmethod
    def validate_inputs(cls, min_bpm: float = 0.0, max_bpm: float = 0.0, **kwargs) -> bool | str:
        if min_bpm and max_bpm and min_bpm >= max_bpm:
            return f"min_bpm ({min_bpm:g}) must be lower than max_bpm ({max_bpm:g}), or 0 for automatic."
        if min_bpm and min_bpm < 30:
            return f"min_bpm must be 0 (automatic) or at least 30; got {min_bpm:g}."
        return True

    @classmethod
    def execute(cls, audio: dict, fps: float, min_bpm: float, max_bpm: float, beats_per_bar: int,
                beat_offset_ms: float = 0.0) -> io.NodeOutput:
        import torch

        from ..musedance_core.audio.beats import track_beats
        from ..musedance_core.audio.plot import beat_plot

        samples, rate = _mono(audio)
        beats = track_beats(samples, rate, fps, min_bpm=min_bpm or None, max_bpm=max_bpm or None,
                            beats_per_bar=beats_per_bar or None, beat_offset_ms=beat_offset_ms or 0.0)
        plot = torch.from_numpy(beat_plot(samples, rate, beats)).float()[None] / 255.0  # (1, H, W, 3)
        return io.NodeOutput(beats, plot, float(beats.tempo), int(beats.num_frames))
