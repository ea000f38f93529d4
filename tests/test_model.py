"""The MuseDance model: shapes, branch semantics, reference attention, and the sd15 layout."""

from __future__ import annotations

import json

import pytest
import torch

from musedance_core.models.config import CONFIG_VERSION, MuseDanceConfig, sd15_config, tiny_config
from musedance_core.models.musedance import MuseDanceModel, motion_modules, transformer_blocks
from musedance_core.models.text import MAX_TOKENS, ByteTokenizer
from musedance_core.notes import collect_notes


@pytest.fixture(scope="module")
def model() -> MuseDanceModel:
    torch.manual_seed(0)
    return MuseDanceModel(tiny_config()).eval()


def _inputs(model: MuseDanceModel, frames: int = 6, videos: int = 2):
    g = torch.Generator().manual_seed(1)
    text = model.encode_prompt(["", "bounces on every beat"][:videos])
    latents = torch.randn(videos, 4, frames, 8, 8, generator=g)
    ref = torch.randn(1, 4, 8, 8, generator=g)
    music = torch.randn(1, frames, model.config.music_dim, generator=g)
    beats = torch.randn(1, frames, model.config.beat_dim, generator=g)
    return text, latents, ref, music, beats


def _randomise_branches(model: MuseDanceModel) -> dict:
    """Give the (zero-initialised) branch outputs weights, as training would; returns a backup."""
    backup = {k: v.clone() for k, v in list(model.music.state_dict().items()) + [("beat." + k, v) for k, v in model.beat.state_dict().items()]}
    g = torch.Generator().manual_seed(7)
    for branch in (model.music, model.beat):
        for p in list(branch.to_v.parameters()) + list(branch.film.parameters()):
            p.data = torch.randn(p.shape, generator=g) * 0.2
    return backup


def _restore(model: MuseDanceModel, backup: dict) -> None:
    model.music.load_state_dict({k: v for k, v in backup.items() if not k.startswith("beat.")})
    model.beat.load_state_dict({k[5:]: v for k, v in backup.items() if k.startswith("beat.")})


def test_tiny_is_small(model):
    counts = model.parameter_counts()
    assert counts["reference_unet"] < 5e6 and counts["denoising_unet"] < 5e6


def test_denoise_shapes_and_dtype(model):
    text, latents, ref, music, beats = _inputs(model)
    with torch.no_grad():
        bank = model.encode_reference(ref, text[1:])
        cond = model.frame_conditions(music, beats)
        out = model.denoise(latents, 500, text, reference=bank, conditions=cond, cond=slice(1, 2))
    assert out.shape == latents.shape and out.dtype == torch.float32
    assert cond.music_tokens.shape == (1, 6, model.config.token_window, model.config.cross_attention_dim)
    assert set(bank) == set(transformer_blocks(model.denoising_unet))


def test_fresh_branches_add_nothing(model):
    """Zero-initialised music/beat branches: strength 1 == strength 0 == no branches, exactly."""
    text, latents, ref, music, beats = _inputs(model)
    with torch.no_grad():
        bank = model.encode_reference(ref, text[1:])
        cond = model.frame_conditions(music, beats)
        on = model.denoise(latents, 300, text, reference=bank, conditions=cond, cond=slice(1, 2))
        off = model.denoise(latents, 300, text, reference=bank, cond=slice(1, 2))
    assert torch.equal(on, off)


def test_strength_zero_is_exactly_the_model_without_branches(model):
    backup = _randomise_branches(model)
    try:
        text, latents, ref, music, beats = _inputs(model)
        with torch.no_grad():
            bank = model.encode_reference(ref, text[1:])
            cond = model.frame_conditions(music, beats)
            without = model.denoise(latents, 300, text, reference=bank, cond=slice(1, 2))
            zero = model.denoise(latents, 300, text, reference=bank, conditions=cond, cond=slice(1, 2),
                                 music_scale=0.0, beat_scale=0.0)
            music_only = model.denoise(latents, 300, text, reference=bank, conditions=cond, cond=slice(1, 2),
                                       music_scale=1.0, beat_scale=0.0)
            both = model.denoise(latents, 300, text, reference=bank, conditions=cond, cond=slice(1, 2))
        assert torch.equal(zero, without)
        assert not torch.allclose(music_only, without) and not torch.allclose(both, music_only)
        # the unconditional video (row 0) never sees the branches or the reference
        assert torch.equal(both[0], without[0])
    finally:
        _restore(model, backup)


def test_reference_changes_only_the_conditioned_video(model):
    text, latents, ref, music, beats = _inputs(model)
    with torch.no_grad():
        bank = model.encode_reference(ref, text[1:])
        plain = model.denoise(latents, 300, text)
        with_ref = model.denoise(latents, 300, text, reference=bank, cond=slice(1, 2))
    assert torch.equal(plain[0], with_ref[0])
    assert not torch.allclose(plain[1], with_ref[1])


def test_beat_film_reaches_the_motion_modules(model):
    backup = _randomise_branches(model)
    try:
        text, latents, ref, music, beats = _inputs(model, videos=1)
        with torch.no_grad():
            cond = model.frame_conditions(music, beats)
            base = model.denoise(latents, 300, text[:1], conditions=cond)
            # remove the beat cross-attention only: FiLM alone must still change the output
            for proj in model.beat.to_v.values():
                proj.weight.zero_()
            film_only = model.denoise(latents, 300, text[:1], conditions=cond, music_scale=0.0)
            none = model.denoise(latents, 300, text[:1], conditions=cond, music_scale=0.0, beat_scale=0.0)
        assert not torch.allclose(film_only, none)
        assert not torch.allclose(base, none)
    finally:
        _restore(model, backup)


def test_caption_film_adds_nothing_until_trained_then_the_caption_steers_the_motion_modules():
    torch.manual_seed(0)
    model = MuseDanceModel(tiny_config()).eval()
    _randomise_branches(model)
    text, latents, ref, music, beats = _inputs(model)
    other = text.clone()
    other[1] = model.encode_prompt(["sways left and right each bar"])[0]
    with torch.no_grad():
        cond = model.frame_conditions(music, beats)
        before = model.denoise(latents, 300, text, conditions=cond, cond=slice(1, 2))
        beats_off = model.denoise(latents, 300, text, conditions=cond, cond=slice(1, 2), beat_scale=0.0)
        model.enable_caption_film()
        assert model.config.caption_film
        fresh = model.denoise(latents, 300, text, conditions=cond, cond=slice(1, 2))
        torch.nn.init.normal_(model.beat.film_text.weight, std=0.5)
        trained = model.denoise(latents, 300, text, conditions=cond, cond=slice(1, 2))
        trained_off = model.denoise(latents, 300, text, conditions=cond, cond=slice(1, 2), beat_scale=0.0)
        pre = cond.film[0]
        film_a = model.beat.film_embedding(pre, text[1].mean(0).expand(len(pre), -1))
        film_b = model.beat.film_embedding(pre, other[1].mean(0).expand(len(pre), -1))
    assert torch.equal(before, fresh)  # zero-initialised: an old model's output is unchanged
    assert not torch.allclose(trained[1], fresh[1])
    assert torch.equal(trained[0], fresh[0])  # the unconditional video gets no FiLM
    assert not torch.allclose(film_a, film_b)  # another caption, another modulation of the same beats
    assert torch.equal(trained_off, beats_off)  # beat strength 0 turns the caption's FiLM off too
    with pytest.raises(ValueError, match="beat branch"):
        model.music.add_text_film(64)


def test_motion_switch_bypasses_temporal_layers(model):
    for module in motion_modules(model.denoising_unet).values():  # give motion modules an effect
        torch.nn.init.normal_(module.proj_out.weight, std=0.1)
    try:
        text, latents, *_ = _inputs(model, videos=1)
        with torch.no_grad():
            frames = [model.denoise(latents[:, :, i : i + 1], 300, text[:1], motion=False) for i in range(3)]
            together = model.denoise(latents[:, :, :3], 300, text[:1], motion=False)
            temporal = model.denoise(latents[:, :, :3], 300, text[:1], motion=True)
        assert torch.allclose(torch.cat(frames, dim=2), together, atol=1e-5)  # frames independent
        assert not torch.allclose(together, temporal)
    finally:
        for module in motion_modules(model.denoising_unet).values():
            torch.nn.init.zeros_(module.proj_out.weight)


def test_byte_tokenizer_and_long_prompt():
    tok = ByteTokenizer()
    ids, cut = tok(["Spin!", "a " * 100])
    assert ids.shape == (2, MAX_TOKENS)
    # "spin" and "!" are words; the last byte of each carries the word-end mark (+256)
    assert ids[0, :7].tolist() == [tok.bos_token_id, ord("s"), ord("p"), ord("i"), 256 + ord("n"), 256 + ord("!"),
                                   tok.eos_token_id]
    assert cut == [False, True]
    assert ids[1, -1] == tok.eos_token_id


def test_long_prompt_gets_a_note(model):
    with collect_notes() as notes:
        emb = model.encode_prompt(["spins and jumps " * 20])
    assert len(notes) == 1 and "longer than 77 tokens" in notes[0]
    assert emb.shape == (1, 77, model.config.cross_attention_dim)


def test_config_json_round_trip_and_version_guard():
    cfg = tiny_config()
    assert MuseDanceConfig.from_json(cfg.to_json()) == cfg
    newer = cfg.to_json().replace(f'"version": {CONFIG_VERSION}', '"version": 99')
    with pytest.raises(ValueError, match="newer than this MuseDance"):
        MuseDanceConfig.from_json(newer)
    older = json.loads(cfg.to_json())  # a version-1 config: no caption_film
    del older["caption_film"]
    older["version"] = 1
    upgraded = MuseDanceConfig.from_json(json.dumps(older))
    assert upgraded == cfg and upgraded.version == CONFIG_VERSION  # re-saved in this version's form


def test_a_config_from_before_the_pair_phases_reads_the_legacy_beat_columns():
    from musedance_core.types import BEAT_FEATURE_NAMES, LEGACY_BEAT_FEATURE_NAMES

    cfg = tiny_config()
    assert cfg.beat_features == BEAT_FEATURE_NAMES and cfg.beat_dim == len(BEAT_FEATURE_NAMES)
    older = json.loads(cfg.to_json())  # a version-2 config: beat_dim 7, no names
    del older["beat_features"]
    older.update(beat_dim=7, version=2)
    upgraded = MuseDanceConfig.from_json(json.dumps(older))
    assert upgraded.beat_features == LEGACY_BEAT_FEATURE_NAMES and upgraded.beat_dim == 7
    assert MuseDanceConfig.from_json(upgraded.to_json()) == upgraded
    with pytest.raises(ValueError, match="does not compute; update the MuseDance node pack"):
        cfg.with_changes(beat_features=("beat_pulse", "future_feature"))


def test_rebuilt_beat_branch_reads_the_new_columns_and_adds_nothing_yet():
    from musedance_core.types import BEAT_FEATURE_NAMES, LEGACY_BEAT_FEATURE_NAMES

    torch.manual_seed(0)
    model = MuseDanceModel(tiny_config().with_changes(beat_features=LEGACY_BEAT_FEATURE_NAMES, caption_film=True)).eval()
    g = torch.Generator().manual_seed(1)
    latents, text = torch.randn(1, 4, 4, 8, 8, generator=g), torch.randn(1, 77, 64, generator=g)
    music = torch.randn(1, 4, model.config.music_dim, generator=g)
    before = model.denoise(latents, 500, text, conditions=model.frame_conditions(music, torch.randn(1, 4, 7, generator=g)),
                           music_scale=0.0, beat_scale=0.0)
    model.rebuild_beat_branch(BEAT_FEATURE_NAMES)
    assert model.config.beat_dim == len(BEAT_FEATURE_NAMES) and model.beat.film_text is not None
    after = model.denoise(latents, 500, text, conditions=model.frame_conditions(music, torch.randn(1, 4, 11, generator=g)))
    assert torch.allclose(before, after, atol=1e-6)  # fresh: zero-initialised outputs


def test_sd15_layout_matches_diffusers_sd15_and_animatediff_v2():
    """Parameter names and shapes equal diffusers' own SD 1.5 UNet + MotionAdapter (built on 'meta')."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from musedance_core.models.config import SD15_UNET

    with torch.device("meta"):
        ours = MuseDanceModel(sd15_config())
        unet = UNet2DConditionModel(**SD15_UNET)
        adapter = MotionAdapter()  # diffusers' defaults are AnimateDiff v2's
        reference = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)

    def shapes(module):
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}

    assert shapes(ours.denoising_unet) == shapes(reference)
    assert shapes(ours.reference_unet) == shapes(unet)
    motion_keys = {k for k in shapes(ours.denoising_unet) if ".motion_modules." in k}
    assert motion_keys == set(shapes(adapter)) - {k for k in shapes(adapter) if ".motion_modules." not in k}
    assert len(transformer_blocks(ours.denoising_unet)) == 16  # all SD 1.5 transformer blocks get reference attention
    assert ours.config.cross_attention_dim == 768
