"""Learned music encoders from local folders (HuBERT/MERT, wav2vec2, CLAP), with tiny random models
made here by transformers itself and saved as a user's folder would be; nothing is downloaded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch

from musedance_core.audio.analysis import pool_to_frames
from musedance_core.audio.backbones.encoder import BackboneEncoder, load_backbone
from musedance_core.audio.backbones.folders import find_backbones, inspect_backbone
from musedance_core.audio.backbones.selection import (
    encoder_for_model,
    music_encoder,
    music_encoder_choices,
    register_backbones,
)
from musedance_core.audio.encoders import SpectralEncoder, get_music_encoder, music_encoder_names
from musedance_core.errors import MusicEncoderError
from musedance_core.types import num_video_frames

transformers = pytest.importorskip("transformers")

# The keys and value types of m-a-p/MERT-v1-95M's config.json, with tiny sizes (hidden 16, 2 layers).
MERT_CONFIG = {
    "_name_or_path": "m-a-p/MERT-v1-95M", "activation_dropout": 0.0, "apply_spec_augment": True,
    "architectures": ["MERTModel"], "attention_dropout": 0.1, "attention_relax": -1.0,
    "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
    "bos_token_id": 1, "classifier_proj_size": 256, "conv_bias": False, "conv_dim": [8] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2], "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False, "deepnorm": False, "do_stable_layer_norm": False, "eos_token_id": 2,
    "feat_extract_activation": "gelu", "feat_extract_norm": "group", "feat_proj_dropout": 0.1,
    "feat_proj_layer_norm": True, "feature_extractor_cqt": False, "feature_extractor_cqt_bins": 336,
    "final_dropout": 0.1, "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout": 0.1,
    "hidden_size": 16, "initializer_range": 0.02, "intermediate_size": 32, "layer_norm_eps": 1e-05,
    "layerdrop": 0.05, "mask_feature_length": 10, "mask_feature_prob": 0.0, "mask_time_length": 5,
    "mask_time_prob": 0.8, "model_type": "mert_model", "num_attention_heads": 2, "num_conv_pos_embedding_groups": 4,
    "num_conv_pos_embeddings": 16, "num_feat_extract_layers": 7, "num_hidden_layers": 2, "pad_token_id": 0,
    "sample_rate": 24000, "torch_dtype": "float32", "transformers_version": "4.25.1", "use_weighted_layer_sum": False,
    "vocab_size": 32,
}
MERT_PREPROCESSOR = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                     "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": 24000}
SPEECH_SIZES = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                    conv_dim=[8] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
RATE = 16_000


def _mert_hubert_config(**changes) -> "transformers.HubertConfig":
    drop = {"_name_or_path", "architectures", "auto_map", "model_type", "transformers_version", "torch_dtype",
            "feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax", "sample_rate"}
    return transformers.HubertConfig(**{k: v for k, v in (MERT_CONFIG | changes).items() if k not in drop})


def _sharpen(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights large enough that attention is not uniform and every layer matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and "pos_conv" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / math.sqrt(p.shape[-1])))
    return model.eval()


def make_mert(folder: Path, seed: int = 0, **changes) -> Path:
    """A folder like m-a-p/MERT-v1-95M: config.json with MERT's keys, pytorch_model.bin with HubertModel's
    tensors under legacy weight-norm names, the processor config, and MERT's remote code (never run)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(MERT_CONFIG | changes, indent=2))
    (folder / "preprocessor_config.json").write_text(json.dumps(MERT_PREPROCESSOR))
    (folder / "modeling_MERT.py").write_text("raise RuntimeError('MERT remote code was run')\n")
    (folder / "configuration_MERT.py").write_text("raise RuntimeError('MERT remote code was run')\n")
    torch.manual_seed(seed)
    state = _sharpen(transformers.HubertModel(_mert_hubert_config()), seed).state_dict()
    legacy = {k.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
    torch.save(legacy, folder / "pytorch_model.bin")
    return folder


def make_hubert(folder: Path, seed: int = 1) -> Path:
    torch.manual_seed(seed)
    cfg = transformers.HubertConfig(**SPEECH_SIZES)
    _sharpen(transformers.HubertModel(cfg), seed).save_pretrained(folder)
    return folder


def make_wav2vec2(folder: Path, seed: int = 2) -> Path:
    """Layer-norm conv encoder and pre-LN transformer, like wav2vec2-large (layer 0 is window-independent)."""
    torch.manual_seed(seed)
    cfg = transformers.Wav2Vec2Config(**SPEECH_SIZES, feat_extract_norm="layer", do_stable_layer_norm=True,
                                      conv_bias=True)
    _sharpen(transformers.Wav2Vec2Model(cfg), seed).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "sampling_rate": RATE, "do_normalize": True}))
    return folder


def make_clap(folder: Path, seed: int = 3) -> Path:
    """A ClapModel (text + audio towers) with a 1 s window and 16 mel bands."""
    torch.manual_seed(seed)
    audio = transformers.ClapAudioConfig(spec_size=64, num_mel_bins=16, patch_embeds_hidden_size=8, hidden_size=32,
                                         depths=[1, 1, 1], num_attention_heads=[1, 2, 4], window_size=4,
                                         projection_dim=16, enable_fusion=False)
    text = transformers.ClapTextConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=32, projection_dim=16, max_position_embeddings=40)
    model = transformers.ClapModel(transformers.ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(),
                                                           projection_dim=16))
    _sharpen(model, seed).save_pretrained(folder)
    extractor = transformers.ClapFeatureExtractor(feature_size=16, max_length_s=1, truncation="rand_trunc",
                                                  frequency_min=50, frequency_max=14000)
    (folder / "preprocessor_config.json").write_text(json.dumps(extractor.to_dict()))
    return folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A fake ComfyUI models/audio_encoders: four usable folders, broken ones, and a stray file."""
    root = tmp_path_factory.mktemp("audio_encoders")
    make_mert(root / "MERT-v1-tiny")
    make_hubert(root / "hubert-tiny")
    make_wav2vec2(root / "wav2vec2-tiny")
    make_clap(root / "clap-tiny")
    (root / "no-config").mkdir()
    transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=16).save_pretrained(root / "bert-text")
    (root / "no-weights").mkdir()
    (root / "no-weights" / "config.json").write_text(json.dumps(MERT_CONFIG))
    (root / "wav2vec2.safetensors").write_bytes(b"\0" * 16)  # ComfyUI's own single-file audio encoders
    return root


@pytest.fixture(scope="module")
def encoders(models_dir) -> dict[str, BackboneEncoder]:
    return {name: load_backbone(models_dir / name) for name in ("MERT-v1-tiny", "hubert-tiny", "wav2vec2-tiny",
                                                                 "clap-tiny")}


def _music(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Tones below 7 kHz with a pulse every 0.5 s, so the features move over time."""
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(seed)
    x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in zip((0.3, 0.2, 0.1), (220.0, 990.0, 3100.0),
                                                                    rng.uniform(0, 6, 3)))
    return (x * (0.5 + 0.5 * np.exp(-((t % 0.5) * 20)))).astype(np.float32)


@pytest.mark.parametrize("name, family, rate, dim, layer_id", [
    ("MERT-v1-tiny", "mert", 24_000, 16, "mert:MERT-v1-tiny:mean"),
    ("hubert-tiny", "hubert", 16_000, 16, "hubert:hubert-tiny:mean"),
    ("wav2vec2-tiny", "wav2vec2", 16_000, 16, "wav2vec2:wav2vec2-tiny:mean"),
    ("clap-tiny", "clap", 48_000, 32, "clap:clap-tiny:last"),
])
def test_family_rate_dim_and_id(models_dir, encoders, name, family, rate, dim, layer_id):
    spec = inspect_backbone(models_dir / name)
    assert (spec.family, spec.sample_rate) == (family, rate)
    enc = encoders[name]
    assert (enc.dim, enc.id) == (dim, layer_id)
    assert next(enc.model.parameters()).dtype == torch.float32 and not enc.model.training


def test_layer_choice_gives_stable_ids(models_dir):
    spec = inspect_backbone(models_dir / "MERT-v1-tiny")
    assert load_backbone(spec, layer=1).id == "mert:MERT-v1-tiny:1"
    assert load_backbone(spec, layer="last").id == load_backbone(spec, layer=-1).id == "mert:MERT-v1-tiny:2"
    for bad in (3, -4, "middle", 1.5):
        with pytest.raises(MusicEncoderError, match="layer for 'MERT-v1-tiny' must be"):
            load_backbone(spec, layer=bad)
    with pytest.raises(MusicEncoderError, match="must be 'last'"):
        load_backbone(models_dir / "clap-tiny", layer="mean")


@pytest.mark.parametrize("name", ["MERT-v1-tiny", "clap-tiny"])
@pytest.mark.parametrize("fps", [8.0, 12.0, 23.976, 30.0, 60.0])
def test_one_row_per_video_frame(encoders, name, fps):
    for seconds in (0.37, 1.0, 2.345):
        x = _music(seconds, 44_100)
        music = encoders[name].encode(x, 44_100, fps, start=1.5)
        assert music.features.shape == (num_video_frames(seconds, fps), encoders[name].dim)
        assert music.features.dtype == np.float32 and np.isfinite(music.features).all()
        assert (music.fps, music.start, music.source_sample_rate) == (fps, 1.5, 44_100)
        assert music.encoder == encoders[name].id
        assert np.ptp(music.features, axis=0).max() > 1e-3  # rows differ: time is not collapsed


def test_row_count_matches_the_beat_tracker_at_any_rate(encoders):
    """Same frame count as the spectral/beat features of the same audio, even when n * 22050 / rate is not whole."""
    enc = encoders["hubert-tiny"]
    for n, rate, fps in ((48_013, 48_000, 29.97), (16_001, 16_000, 24.0), (44_100 * 2 + 7, 44_100, 12.0)):
        x = _music(n / rate, rate)[:n]
        assert enc.encode(x, rate, fps).num_frames == SpectralEncoder().encode(x, rate, fps).num_frames


def test_shorter_than_a_frame_gives_zero_rows(encoders):
    music = encoders["MERT-v1-tiny"].encode(np.full(220, 0.3, np.float32), 22050, 24.0)
    assert music.features.shape == (0, 16)
    one = encoders["wav2vec2-tiny"].encode(np.full(300, 0.3, np.float32), 16000, 60.0)  # < one conv row
    assert one.features.shape == (1, 16) and np.isfinite(one.features).all()


def test_stereo_44k_equals_mono_at_the_model_rate(encoders):
    """44.1 kHz stereo is mixed down and resampled to 16 kHz: same features as the same music made at 16 kHz."""
    enc = encoders["hubert-tiny"]
    seconds, fps = 3.0, 12.0
    left, right = _music(seconds, 44_100, seed=1), _music(seconds, 44_100, seed=2)
    native = 0.5 * (_music(seconds, RATE, seed=1) + _music(seconds, RATE, seed=2))
    a = enc.encode(np.stack([left, right]), 44_100, fps).features
    b = enc.encode(native, RATE, fps).features
    c = enc.encode(np.stack([left, right]), RATE, fps).features  # wrong rate claimed: must differ
    spread = np.abs(b).mean()
    assert np.abs(a - b).max() < 0.02 * spread
    assert np.abs(c[: len(b)] - b[: len(c)]).max() > 0.3 * spread


def test_layer0_of_a_layer_norm_encoder_does_not_depend_on_the_windows(models_dir):
    spec = inspect_backbone(models_dir / "wav2vec2-tiny")
    x = _music(7.3, RATE)
    whole = load_backbone(spec, layer=0, chunk_seconds=60).encode(x, RATE, 25.0).features
    chunked = load_backbone(spec, layer=0, chunk_seconds=1.0, context_seconds=0.3).encode(x, RATE, 25.0).features
    no_context = load_backbone(spec, layer=0, chunk_seconds=1.0, context_seconds=0.0).encode(x, RATE, 25.0).features
    assert np.abs(chunked - whole).max() < 1e-4
    assert np.abs(no_context - whole).max() > 1e-3  # the context margin is what makes them equal


def test_windowed_mean_of_layers_is_close_to_whole_track(models_dir):
    spec = inspect_backbone(models_dir / "MERT-v1-tiny")
    x = _music(9.0, 24_000)
    whole = load_backbone(spec, chunk_seconds=60).encode(x, 24_000, 12.0).features
    chunked = load_backbone(spec, chunk_seconds=2.0, context_seconds=1.0).encode(x, 24_000, 12.0).features
    bare = load_backbone(spec, chunk_seconds=2.0, context_seconds=0.0).encode(x, 24_000, 12.0).features
    shifted = np.roll(whole, 1, axis=0)  # a one-frame misalignment, for scale
    err = np.abs(chunked - whole).mean()
    assert err < 0.02 * np.abs(shifted - whole).mean()  # measured: 0.006x
    assert err < 0.5 * np.abs(bare - whole).mean()  # the context margin helps (measured: 0.22x)


def test_mert_features_are_a_hubert_forward_of_the_folder_weights(models_dir, encoders):
    """By value: the encoder equals HubertModel with the saved tensors (weight_g/weight_v included), the
    whole track normalised as Wav2Vec2FeatureExtractor does, mean of all hidden states, pooled to frames."""
    x = _music(2.0, 24_000)
    ours = encoders["MERT-v1-tiny"].encode(x, 24_000, 15.0).features
    model = transformers.HubertModel(_mert_hubert_config()).eval()
    model.load_state_dict(torch.load(models_dir / "MERT-v1-tiny" / "pytorch_model.bin", weights_only=True))
    extractor = transformers.Wav2Vec2FeatureExtractor(**MERT_PREPROCESSOR)
    values = extractor(x, sampling_rate=24_000, return_tensors="pt")["input_values"]
    with torch.no_grad():
        states = model(values, output_hidden_states=True).hidden_states
    rows = torch.stack(states).mean(0)[0].numpy()
    expected = pool_to_frames(rows, 75.0, 15.0, 30)
    assert np.abs(ours - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())
    # the pos-conv weights (stored as weight_g/weight_v) were loaded: a fresh network's differ
    fresh = transformers.HubertModel(_mert_hubert_config()).eval()
    with torch.no_grad():
        other = torch.stack(fresh(values, output_hidden_states=True).hidden_states).mean(0)[0].numpy()
    assert np.abs(pool_to_frames(other, 75.0, 15.0, 30) - expected).max() > 1e-2


def test_changing_one_weight_changes_the_features(models_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "hubert-edit"
    folder.mkdir()
    for f in (models_dir / "hubert-tiny").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    x = _music(1.5, RATE)
    before = load_backbone(folder).encode(x, RATE, 10.0).features
    state = load_file(str(folder / "model.safetensors"))
    state["encoder.layers.1.final_layer_norm.bias"] += 0.5
    save_file(state, str(folder / "model.safetensors"))
    after = load_backbone(folder).encode(x, RATE, 10.0).features
    assert np.abs(after - before).mean() == pytest.approx(0.5 / 3, abs=1e-3)  # +0.5 on the last of 3 states


def test_clap_uses_the_audio_tower_of_the_folder(models_dir, encoders):
    x = _music(2.5, 48_000)
    ours = encoders["clap-tiny"].encode(x, 48_000, 6.4).features
    full = transformers.ClapModel.from_pretrained(models_dir / "clap-tiny", local_files_only=True).eval()
    extractor = transformers.ClapFeatureExtractor(feature_size=16, max_length_s=1, truncation="rand_trunc",
                                                  frequency_min=50, frequency_max=14000)
    rows = []
    for s0 in range(0, 3 * 48_000, 48_000):
        segment = np.pad(x[s0: s0 + 48_000], (0, max(0, s0 + 48_000 - x.size)))
        feats = extractor(segment, sampling_rate=48_000, return_tensors="pt")
        with torch.no_grad():
            grid = full.audio_model(**feats).last_hidden_state  # (1, C, F', T')
        rows.append(grid.mean(2)[0].T.numpy())
    per_second = rows[0].shape[0]
    expected = pool_to_frames(np.concatenate(rows), float(per_second), 6.4, 16)
    assert np.abs(ours - expected).max() < 1e-4 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("folder, message", [
    ("missing", "music encoder folder not found"),
    ("no-config", "has no config.json"),
    ("bert-text", "'bert-text' holds a 'bert' model .*supported config.json model_type: mert_model"),
    ("no-weights", "has config.json but no weights: put the model's model.safetensors"),
])
def test_unusable_folders_are_refused_by_name(models_dir, folder, message):
    with pytest.raises(MusicEncoderError, match=message):
        load_backbone(models_dir / folder)


@pytest.mark.parametrize("changes, message", [
    ({"feature_extractor_cqt": True}, "CQT feature extractor"),
    ({"deepnorm": True}, "deepnorm=true"),
])
def test_mert_variants_hubert_cannot_run_are_refused(tmp_path, changes, message):
    folder = tmp_path / "MERT-variant"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(MERT_CONFIG | changes))
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(MusicEncoderError, match=message):
        inspect_backbone(folder)


def test_weights_of_another_model_are_refused(tmp_path, models_dir):
    folder = make_mert(tmp_path / "mismatch")
    bigger = MERT_CONFIG | {"num_hidden_layers": 3}
    (folder / "config.json").write_text(json.dumps(bigger))
    with pytest.raises(MusicEncoderError, match=r"'mismatch' do not fit its config.json .*missing .*layers\.2\."):
        load_backbone(folder)
    (folder / "config.json").write_text(json.dumps(MERT_CONFIG | {"hidden_size": 32, "num_attention_heads": 4}))
    with pytest.raises(MusicEncoderError, match="shapes differ"):
        load_backbone(folder)


def test_damaged_or_pickled_weights_are_refused(tmp_path):
    import datetime

    folder = make_mert(tmp_path / "pickled")
    torch.save({"when": datetime.datetime(2024, 1, 1)}, folder / "pytorch_model.bin")
    with pytest.raises(MusicEncoderError, match="weights-only loading"):
        load_backbone(folder)
    (folder / "pytorch_model.bin").unlink()
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(MusicEncoderError, match="damaged or incomplete"):
        load_backbone(folder)


def test_node_list_offers_spectral_and_every_usable_folder(models_dir, tmp_path):
    assert music_encoder_choices([models_dir, tmp_path / "absent"]) == [
        "spectral", "MERT-v1-tiny", "clap-tiny", "hubert-tiny", "wav2vec2-tiny"]
    found, broken = find_backbones([models_dir])
    assert set(broken) == {"no-config", "bert-text", "no-weights"}
    assert music_encoder_choices([]) == ["spectral"]


def test_registered_folders_work_through_the_registry(models_dir):
    names = register_backbones([models_dir])
    assert set(names) == {"MERT-v1-tiny", "clap-tiny", "hubert-tiny", "wav2vec2-tiny"}
    assert set(names) <= set(music_encoder_names()) and "spectral" in music_encoder_names()
    enc = get_music_encoder("hubert-tiny", layer=1)
    assert enc.id == "hubert:hubert-tiny:1"


def test_names_paths_and_trained_ids_resolve(models_dir):
    assert isinstance(music_encoder("spectral", [models_dir]), SpectralEncoder)
    assert music_encoder("clap-tiny", [models_dir]).id == "clap:clap-tiny:last"
    assert music_encoder(str(models_dir / "hubert-tiny")).id == "hubert:hubert-tiny:mean"
    with pytest.raises(MusicEncoderError, match="holds a 'bert' model"):
        music_encoder("bert-text", [models_dir])
    with pytest.raises(MusicEncoderError, match="unknown music encoder 'nope'.*Available: spectral, MERT-v1-tiny"):
        music_encoder("nope", [models_dir])
    # a model records the id; the encoder it names is found again, layer included
    assert isinstance(encoder_for_model("spectral-v1"), SpectralEncoder)
    assert encoder_for_model("mert:MERT-v1-tiny:1", None, [models_dir]).id == "mert:MERT-v1-tiny:1"
    assert encoder_for_model("mert:MERT-v1-tiny:1", str(models_dir / "MERT-v1-tiny")).id == "mert:MERT-v1-tiny:1"
    with pytest.raises(MusicEncoderError, match="folder 'MERT-v1-95M' .* not in no audio_encoders folder given"):
        encoder_for_model("mert:MERT-v1-95M:mean")


def test_runs_in_the_dtype_given(models_dir):
    enc = load_backbone(models_dir / "hubert-tiny", dtype=torch.bfloat16)
    x = _music(1.0, RATE)
    low = enc.encode(x, RATE, 10.0).features
    full = load_backbone(models_dir / "hubert-tiny").encode(x, RATE, 10.0).features
    assert low.dtype == np.float32 and next(enc.model.parameters()).dtype == torch.bfloat16
    assert np.corrcoef(low.ravel(), full.ravel())[0, 1] > 0.9  # bf16 rounding, amplified by the sharp weights


@pytest.mark.integration
def test_cli_animate_uses_the_encoder_the_model_was_trained_with(models_dir, tmp_path, capsys):
    """A model trained on 'hubert:hubert-tiny:mean' features finds that folder in --audio-encoders."""
    from dataclasses import replace

    from PIL import Image

    from musedance_core.audio.io import Audio, save_audio
    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.cli import main
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.video.reader import probe_video

    torch.manual_seed(0)
    bundle = tmp_path / "hubert-trained.safetensors"
    save_bundle(MuseDanceModel(replace(tiny_config(), music_encoder="hubert:hubert-tiny:mean", music_dim=16)), bundle)
    Image.new("RGB", (48, 60), (200, 40, 40)).save(tmp_path / "me.png")
    save_audio(tmp_path / "song.wav", Audio(np.stack([_music(1.0, 44_100)] * 2), 44_100, 44_100))
    common = ["animate", "--image", str(tmp_path / "me.png"), "--music", str(tmp_path / "song.wav"), "--model",
              str(bundle), "--fps", "8", "--frames", "4", "--width", "64", "--height", "64", "--steps", "1",
              "--context-length", "4", "--context-overlap", "1", "--device", "cpu"]
    assert main(common + ["--out", str(tmp_path / "a.mp4")]) == 2
    assert "folder 'hubert-tiny' (hubert:hubert-tiny:mean), which is not in" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "b.mp4"), "--audio-encoders", str(models_dir)]) == 0
    assert probe_video(tmp_path / "b.mp4").num_frames == 4
    assert main(common + ["--out", str(tmp_path / "c.mp4"), "--music-encoder", "spectral"]) == 2
    assert "music features have 74 values per frame but this model expects 16" in capsys.readouterr().err
