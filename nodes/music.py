"""MuseDance Music Encoder Loader, Music Encoder and Beat Extractor: AUDIO -> per-frame features."""

from __future__ import annotations

from comfy_api.latest import io

from . import host
from .types import CATEGORY, MuseDanceBeats, MuseDanceMusic, MuseDanceMusicEncoderModel

FPS_TOOLTIP = ("Video frame rate the features are made for. Connect the model loader's fps here and in the other "
               "MuseDance node, so the whole graph has one fps.")
MAX_BPM = 300.0
SCHEDULE_MASK_SIZE = 64  # px; core mask nodes resize masks to the image they apply to


def _mono(audio: dict):
    """ComfyUI AUDIO -> (mono samples [N] at the analysis rate, that rate)."""
    from ..musedance_core.audio.analysis import ANALYSIS_SAMPLE_RATE
    from ..musedance_core.audio.io import MAX_AUDIO_SECONDS, from_comfy_audio, resample, to_mono

    mono = resample(to_mono(from_comfy_audio(audio, name="audio", max_seconds=MAX_AUDIO_SECONDS)), ANALYSIS_SAMPLE_RATE)
    return mono.samples[0], mono.sample_rate


def _encoder_choices() -> list[str]:
    from ..musedance_core.audio.backbones.selection import music_encoder_choices

    return music_encoder_choices(host.music_encoder_dirs())


ENCODER_TOOLTIP = ("Music encoder; must be the one the model was trained with (the demo and tiny models use "
                   "'spectral', which needs no weights). The others are the MERT/HuBERT/wav2vec2/CLAP model folders "
                   f"in models/{host.MUSIC_ENCODERS_FOLDER} (or models/{host.AUDIO_ENCODERS_FOLDER}).")


class MuseDanceMusicEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MuseDanceMusicEncoderLoader",
            display_name="Load MuseDance Music Encoder",
            category=CATEGORY,
            description="Loads a learned music encoder (MERT, HuBERT, wav2vec2, CLAP) once and keeps it between "
                        "runs; connect it to the Music Encoder's encoder_model.",
            inputs=[io.Combo.Input("encoder", options=_encoder_choices(), default="spectral", tooltip=ENCODER_TOOLTIP)],
            outputs=[MuseDanceMusicEncoderModel.Output(display_name="encoder_model")],
        )

    @classmethod
    def execute(cls, encoder: str) -> io.NodeOutput:
        return io.NodeOutput(host.load_music_encoder(encoder))


class MuseDanceMusicEncoder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MuseDanceMusicEncoder",
            display_name="MuseDance Music Encoder",
            category=CATEGORY,
            description="Turns music into one feature row per video frame, for MuseDance Animate Image.",
            inputs=[
                io.Audio.Input("audio", tooltip="The music (e.g. from LoadAudio, trimmed with TrimAudioDuration)."),
                io.Float.Input("fps", default=12.0, min=1.0, max=120.0, step=0.5, tooltip=FPS_TOOLTIP),
                io.Combo.Input("encoder", options=_encoder_choices(), default="spectral",
                               tooltip=ENCODER_TOOLTIP + " A learned encoder chosen here is loaded for each run and "
                                       "freed after; use Load MuseDance Music Encoder to keep it loaded."),
                # optional and last, so workflows saved before it still load and run
                MuseDanceMusicEncoderModel.Input("encoder_model", optional=True,
                                                 tooltip="From Load MuseDance Music Encoder; when connected it is "
                                                         "used instead of the encoder chosen above."),
            ],
            outputs=[MuseDanceMusic.Output(display_name="music")],
        )

    @classmethod
    def execute(cls, audio: dict, fps: float, encoder: str, encoder_model: host.LoadedEncoder | None = None
                ) -> io.NodeOutput:
        from ..musedance_core.audio.io import MAX_AUDIO_SECONDS, from_comfy_audio, to_mono

        # at its own rate (each encoder resamples); too long a song is refused before any analysis
        mono = to_mono(from_comfy_audio(audio, name="audio", max_seconds=MAX_AUDIO_SECONDS))
        with host.collect_notes("MuseDance Music Encoder") as notes:
            if encoder_model is not None:  # kept loaded by the loader node's cached output
                host.encoder_to_device(encoder_model)
                features = encoder_model.encoder.encode(mono.samples[0], mono.sample_rate, fps)
            else:
                loaded = host.load_music_encoder(encoder)
                host.encoder_to_device(loaded)
                features = loaded.encoder.encode(mono.samples[0], mono.sample_rate, fps)
                if loaded.patcher is not None:
                    loaded.patcher.detach()
                del loaded
                host.empty_cache()
        return io.NodeOutput(features, ui=host.notes_ui(notes))


class MuseDanceBeatExtractor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MuseDanceBeatExtractor",
            display_name="MuseDance Beat Extractor",
            category=CATEGORY,
            description="Finds beats and downbeats (following tempo changes) and makes per-frame beat features; "
                        "previews them as an image. The beat schedules (a FLOAT list or a MASK batch per frame) "
                        "can drive other nodes: mask compositing, IP-Adapter weights, prompt schedules.",
            inputs=[
                io.Audio.Input("audio", tooltip="The music; use the same AUDIO as the Music Encoder."),
                io.Float.Input("fps", default=12.0, min=1.0, max=120.0, step=0.5, tooltip=FPS_TOOLTIP),
                io.Float.Input("min_bpm", default=0.0, min=0.0, max=MAX_BPM, step=1.0,
                               tooltip="Lowest tempo to consider; 0 = automatic (50). Raise it to avoid half tempo."),
                io.Float.Input("max_bpm", default=0.0, min=0.0, max=MAX_BPM, step=1.0,
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
                # new outputs go last, so links of saved workflows keep their slots
                io.Float.Output(display_name="beat_schedule",
                                tooltip="One value per frame (a list of FLOATs): 1.0 on a beat, falling to 0 "
                                        "between beats. For nodes that take per-frame weights."),
                io.Float.Output(display_name="downbeat_schedule",
                                tooltip="One value per frame (a list of FLOATs): 1.0 on the first beat of a bar."),
                io.Mask.Output(display_name="beat_mask",
                               tooltip=f"The beat schedule as a MASK batch, one {SCHEDULE_MASK_SIZE}x"
                                       f"{SCHEDULE_MASK_SIZE} mask per frame filled with that frame's value (mask "
                                       "nodes scale it to the image)."),
                io.Mask.Output(display_name="downbeat_mask", tooltip="The downbeat schedule as a MASK batch."),
            ],
        )

    @classmethod
    def validate_inputs(cls, min_bpm: float | None = None, max_bpm: float | None = None) -> bool | str:
        # only the inputs named here skip ComfyUI's own checks (execution.validate_inputs), so their
        # ranges are checked here; a linked (not yet computed) value is None and checked at run time
        for label, value in (("min_bpm", min_bpm), ("max_bpm", max_bpm)):
            if value is not None and not 0.0 <= value <= MAX_BPM:
                return f"{label} must be 0 (automatic) or up to {MAX_BPM:g}; got {value:g}."
        min_bpm, max_bpm = min_bpm or 0.0, max_bpm or 0.0
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
        with host.collect_notes("MuseDance Beat Extractor") as notes:
            beats = track_beats(samples, rate, fps, min_bpm=min_bpm or None, max_bpm=max_bpm or None,
                                beats_per_bar=beats_per_bar or None, beat_offset_ms=beat_offset_ms or 0.0)
        plot = torch.from_numpy(beat_plot(samples, rate, beats)).float()[None] / 255.0  # (1, H, W, 3)
        beat, downbeat = beats.feature("beat_pulse"), beats.feature("downbeat")
        return io.NodeOutput(beats, plot, float(beats.tempo), int(beats.num_frames),
                             [float(v) for v in beat], [float(v) for v in downbeat],
                             _schedule_mask(beat), _schedule_mask(downbeat), ui=host.notes_ui(notes))


def _schedule_mask(values):
    """[T] values -> MASK batch [T, S, S] with each frame's mask filled with its value."""
    import torch

    column = torch.as_tensor(values, dtype=torch.float32).clamp(0.0, 1.0)
    return column[:, None, None].expand(-1, SCHEDULE_MASK_SIZE, SCHEDULE_MASK_SIZE).contiguous()
