"""The bundle format: exact round trip and a clear error for every kind of wrong file."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from musedance_core.checkpoints.bundle import (
    BUNDLE_VERSION,
    BundleError,
    bundle_config,
    load_bundle,
    save_bundle,
)
from musedance_core.models.config import tiny_config
from musedance_core.models.musedance import MuseDanceModel


@pytest.fixture(scope="module")
def model() -> MuseDanceModel:
    torch.manual_seed(3)
    m = MuseDanceModel(tiny_config()).eval()
    for p in m.music.to_v.parameters():  # trained-looking branch weights
        p.data.normal_()
    return m


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, model):
    return save_bundle(model, tmp_path_factory.mktemp("bundle") / "tiny.safetensors", extra_metadata={"step": "12"})


def test_round_trip_is_bit_exact(model, bundle):
    loaded = load_bundle(bundle)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.config == model.config


def test_caption_film_round_trips_and_older_bundles_still_load(model, bundle, tmp_path):
    assert not load_bundle(bundle).config.caption_film  # a bundle from before the option
    torch.manual_seed(4)
    film = MuseDanceModel(tiny_config().with_changes(caption_film=True)).eval()
    film.beat.film_text.weight.data.normal_()
    loaded = load_bundle(save_bundle(film, tmp_path / "film.safetensors"))
    assert loaded.config.caption_film
    assert torch.equal(loaded.beat.film_text.weight, film.beat.film_text.weight)
    # assembled from a bundle without the music or the beat branch: fresh branches keep the caption FiLM
    from musedance_core.checkpoints.assemble import ModelSources, assemble
    from musedance_core.checkpoints.bundle import COMPONENTS

    for dropped in ("beat", "music"):
        path = save_bundle(film, tmp_path / f"no-{dropped}.safetensors", parts=tuple(c for c in COMPONENTS if c != dropped))
        assembled, _ = assemble(ModelSources(bundle=path))
        assert assembled.config.caption_film and assembled.beat.film_text is not None
        kept = assembled.beat if dropped == "music" else assembled.music
        source = film.beat if dropped == "music" else film.music
        assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), source.state_dict().values()))


def test_layout_prefixes_and_metadata(bundle):
    tensors = load_file(str(bundle))
    prefixes = {k.split(".", 1)[0] for k in tensors}
    assert prefixes == {"vae", "text_encoder", "reference_unet", "denoising_unet", "motion", "music", "beat"}
    assert all(".motion_modules." in k for k in tensors if k.startswith("motion."))
    assert not any(".motion_modules." in k for k in tensors if k.startswith("denoising_unet."))
    config, meta = bundle_config(bundle)
    assert meta["format"] == "musedance" and meta["format_version"] == str(BUNDLE_VERSION)
    assert meta["step"] == "12" and config.name == "tiny"


def test_fp16_storage_halves_the_file(model, tmp_path, bundle):
    half = save_bundle(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * bundle.stat().st_size
    assert load_bundle(half).config == model.config


def test_missing_file(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("payload", [b"", b"\x00" * 100, b"PK\x03\x04 a zip, maybe a .ckpt"])
def test_not_safetensors(tmp_path, payload):
    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    with pytest.raises(BundleError, match="not a readable .safetensors file"):
        load_bundle(path)


def test_pickle_checkpoint_is_refused_not_loaded(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"weight": torch.zeros(2)}, path)  # a pickle under a .safetensors name
    with pytest.raises(BundleError, match="not a readable .safetensors"):
        load_bundle(path)


def test_other_safetensors_is_named(tmp_path):
    path = tmp_path / "sd15.safetensors"
    save_file({"model.diffusion_model.conv_in.weight": torch.zeros(1)}, str(path))
    with pytest.raises(BundleError, match="not a MuseDance bundle.*models/checkpoints"):
        load_bundle(path)


def _rewrite(bundle, tmp_path, *, drop=None, reshape=None, meta=None):
    from safetensors import safe_open

    tensors = load_file(str(bundle))
    with safe_open(str(bundle), framework="pt") as f:
        metadata = dict(f.metadata())
    if drop:
        tensors = {k: v for k, v in tensors.items() if not k.startswith(drop)}
    if reshape:
        tensors[reshape] = torch.zeros(3, 3)
    metadata.update(meta or {})
    out = tmp_path / "edited.safetensors"
    save_file(tensors, str(out), metadata=metadata)
    return out


def test_newer_format_version(bundle, tmp_path):
    with pytest.raises(BundleError, match="format 99, newer"):
        load_bundle(_rewrite(bundle, tmp_path, meta={"format_version": "99"}))


def test_missing_tensors(bundle, tmp_path):
    with pytest.raises(BundleError, match="component 'music' does not match.*missing"):
        load_bundle(_rewrite(bundle, tmp_path, drop="music.to_k."))


def test_shape_mismatch(bundle, tmp_path):
    key = next(k for k in load_file(str(bundle)) if k.startswith("beat.encoder.inp.weight"))
    with pytest.raises(BundleError, match=r"has shape \(3, 3\)"):
        load_bundle(_rewrite(bundle, tmp_path, reshape=key))


def test_partial_bundle_names_its_base(model, tmp_path):
    path = save_bundle(model, tmp_path / "parts.safetensors", parts=("motion", "music", "beat"), base="v1-5-pruned.safetensors")
    with pytest.raises(BundleError, match="needs vae.*'v1-5-pruned.safetensors'"):
        load_bundle(path)


def test_corrupt_config(bundle, tmp_path):
    with pytest.raises(BundleError, match="no valid MuseDance config"):
        load_bundle(_rewrite(bundle, tmp_path, meta={"config": json.dumps({"name": "x"})}))


def test_failed_write_leaves_no_file(model, tmp_path, monkeypatch):
    import safetensors.torch

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        save_bundle(model, tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []
