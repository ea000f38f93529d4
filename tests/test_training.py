"""Smoke training on a micro SynthDance: every stage runs, losses fall, kill -9 + resume matches an
unbroken run, and the resulting bundle works in the pipeline and in ComfyUI's loader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file

from musedance_core.checkpoints.bundle import load_bundle
from musedance_core.errors import TrainError
from musedance_core.training.data import ClipSampler, first_batch, read_manifest
from musedance_core.training.config import LossSettings
from musedance_core.training.steps import diffusion_step_loss, vae_loss

ROOT = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
COMMON = ["batch_size=2", "log_every=1", "warmup_steps=1", "uncond_fraction=0.0"]


def _synth(out: Path) -> Path:
    run = subprocess.run([sys.executable, "training/synth_dance.py", "--out", str(out), "--clips", "16", "--size", "64",
                          "--frames", "16", "--val-fraction", "0.25", "--workers", "1", "--seed", "3"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return out


def _train(config: str, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "training/train.py", "--config", f"training/configs/{config}", "--set",
                          *COMMON, *overrides], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    if check:
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A micro data set and the three stages trained on it (a few steps each)."""
    base = tmp_path_factory.mktemp("train")
    data = _synth(base / "data")
    _train("tiny_vae.yaml", f"data={data}", f"output_dir={base / 'vae'}", "max_steps=30", "learning_rate=3e-3",
           "checkpoint_every=30")
    _train("tiny_stage1.yaml", f"data={data}", f"init={base / 'vae/model.safetensors'}", f"output_dir={base / 's1'}",
           "max_steps=12", "learning_rate=1e-3", "checkpoint_every=12")
    _train("tiny_stage2.yaml", f"data={data}", f"init={base / 's1/model.safetensors'}", f"output_dir={base / 's2'}",
           "max_steps=12", "num_frames=8", "learning_rate=1e-3", "checkpoint_every=6", "validate_every=12",
           "validation_clips=1", "validation_steps=1", "ema_decay=0.0")
    return base, data


def _fixed_loss(bundle: Path, data: Path, stage: str, schedule_of: Path | None = None) -> float:
    """Loss on one fixed batch with fixed noise: comparable before and after training (under the
    noise schedule and prediction type of ``schedule_of``, when the stage changed them)."""
    model = load_bundle(bundle).eval()
    if schedule_of is not None:
        model.config = model.config.with_changes(scheduler=load_bundle(schedule_of).config.scheduler)
    mode = {"vae": "image", "appearance": "frame", "motion": "clip"}[stage]
    sampler = ClipSampler(data, tuple(read_manifest(data, "train")), mode, num_frames=8, seed=99)
    batch = first_batch(sampler, 4)
    with torch.no_grad():
        if stage == "vae":
            return float(vae_loss(model, batch, seed=5))
        scheduler = DDPMScheduler(**model.config.scheduler)
        return float(diffusion_step_loss(model, scheduler, batch, stage, LossSettings(uncond_fraction=0.0), seed=5))


@pytest.mark.integration
def test_every_stage_writes_a_bundle_checkpoints_and_a_loss_plot(runs):
    base, _ = runs
    for stage in ("vae", "s1", "s2"):
        assert (base / stage / "model.safetensors").is_file()
        assert (base / stage / "loss.png").read_bytes()[:4] == b"\x89PNG"
        assert (base / stage / "latest").is_file()
        # the data's frame size and fps become the model's defaults (synth_dance --size 64, its fps)
        from musedance_core.checkpoints.bundle import read_metadata
        from musedance_core.models.config import MuseDanceConfig
        from musedance_core.training.data import read_manifest

        record = next(iter(read_manifest(base / "data", "train")))
        config = MuseDanceConfig.from_json(read_metadata(base / stage / "model.safetensors")["config"])
        assert config.frame_size == (64, 64) and config.fps == float(record["fps"])
    videos = list((base / "s2").glob("val-*/*.mp4"))
    assert videos, "stage 2 wrote no validation video"
    from musedance_core.video.reader import probe_video

    assert probe_video(videos[0]).has_audio


@pytest.mark.integration
def test_losses_fall(runs, tmp_path):
    base, data = runs
    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel

    torch.manual_seed(0)  # train.py builds the fresh model with seed 0 as well
    fresh = save_bundle(MuseDanceModel(tiny_config()), tmp_path / "fresh.safetensors")
    assert _fixed_loss(base / "vae/model.safetensors", data, "vae") < 0.8 * _fixed_loss(fresh, data, "vae")
    assert _fixed_loss(base / "s1/model.safetensors", data, "appearance") < _fixed_loss(
        base / "vae/model.safetensors", data, "appearance", schedule_of=base / "s1/model.safetensors")
    assert _fixed_loss(base / "s2/model.safetensors", data, "motion") < _fixed_loss(
        base / "s1/model.safetensors", data, "motion")


@pytest.mark.integration
def test_stage2_trains_only_its_parts(runs):
    base, _ = runs
    before = load_file(str(base / "s1/model.safetensors"))
    after = load_file(str(base / "s2/model.safetensors"))
    # stage 2 stores fp16 (save_fp16): compare at the stored precision
    added = set(after) - set(before)
    assert added == {"beat.film_text.weight", "beat.film_text.bias"}  # tiny_stage2.yaml: caption_film
    assert after["beat.film_text.weight"].abs().max() > 0  # the fresh (zero) layer trained
    changed = {k.split(".", 1)[0] for k in set(after) - added if not torch.equal(before[k].to(after[k].dtype), after[k])}
    assert changed == {"motion", "music", "beat", "text_encoder"}
    assert load_bundle(base / "s2/model.safetensors").config.caption_film


@pytest.mark.integration
def test_decoder_stage_changes_only_the_decoder(runs, tmp_path):
    base, data = runs
    _train("tiny_decoder.yaml", f"data={data}", f"init={base / 's2/model.safetensors'}",
           f"output_dir={tmp_path / 'dec'}", "max_steps=3", "checkpoint_every=3", "save_fp16=false")
    before = load_file(str(base / "s2/model.safetensors"))
    after = load_file(str(tmp_path / "dec/model.safetensors"))
    changed = {k for k in after if not torch.equal(before[k].float(), after[k].float())}
    assert changed and all(k.startswith(("vae.decoder.", "vae.post_quant_conv.")) for k in changed)
    scale = [load_bundle(base / "s2/model.safetensors"), load_bundle(tmp_path / "dec/model.safetensors")]
    assert scale[0].config.vae["scaling_factor"] == scale[1].config.vae["scaling_factor"]  # the UNets' latent space


@pytest.mark.integration
def test_kill_9_then_resume_matches_an_unbroken_run(runs, tmp_path):
    base, data = runs
    args = [f"data={data}", f"init={base / 's1/model.safetensors'}", "max_steps=6", "num_frames=8",
            "checkpoint_every=2", "validate_every=0", "ema_decay=0.99"]
    _train("tiny_stage2.yaml", *args, f"output_dir={tmp_path / 'unbroken'}")

    out = tmp_path / "broken"
    cmd = [sys.executable, "training/train.py", "--config", "training/configs/tiny_stage2.yaml", "--set", *COMMON,
           *args, f"output_dir={out}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint-0000002").is_dir() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists()
    resumed = _train("tiny_stage2.yaml", *args, f"output_dir={out}")
    assert "resumed from checkpoint-" in resumed.stdout + resumed.stderr

    a = load_file(str(tmp_path / "unbroken/model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)

    # this run keeps an EMA: --no-ema exports the raw trained weights of the checkpoint instead
    raw = tmp_path / "raw.safetensors"
    export = subprocess.run([sys.executable, "training/export_bundle.py", "--config", "training/configs/tiny_stage2.yaml",
                             "--set", *args, f"output_dir={out}", "--no-ema", "--out", str(raw)],
                            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-3000:]
    assert "raw weights" in export.stdout
    weights = load_file(str(out / "checkpoint-0000006/trainable.safetensors"))
    exported = load_file(str(raw))
    assert all(torch.equal(exported[k], v.to(exported[k].dtype)) for k, v in weights.items())
    assert not all(torch.equal(exported[k], b[k]) for k in weights)  # the EMA bundle differs


@pytest.mark.integration
def test_trained_bundle_animates_in_the_pipeline(runs):
    import numpy as np

    from musedance_core.pipeline import AnimateSettings, MuseDancePipeline
    from musedance_core.training.data import clip_conditions

    base, data = runs
    model = load_bundle(base / "s2/model.safetensors").eval()
    record = read_manifest(data, "val")[0]
    with np.load(data / record["clip"]) as arrays:
        music, beats = clip_conditions(arrays, record, model.config.music_encoder)
        first = arrays["frames"][0]
    result = MuseDancePipeline(model)(first, music, beats, record["caption"],
                                      settings=AnimateSettings(width=64, height=64, steps=2, num_frames=8))
    assert result.frames.shape == (8, 64, 64, 3) and torch.isfinite(result.frames).all()


@pytest.mark.integration
def test_trained_bundle_loads_in_the_comfyui_loader(runs, tmp_path):
    from tests.comfy_host import ComfyHost, require_comfy

    base, _ = runs
    comfy = require_comfy()
    models = tmp_path / "models" / "musedance"
    models.mkdir(parents=True)
    (models / "trained.safetensors").write_bytes((base / "s2/model.safetensors").read_bytes())
    with ComfyHost(comfy, tmp_path) as host:
        (host.input_dir / "music.mp3").write_bytes((ROOT / "assets/demo/groove.mp3").read_bytes())
        prompt = {
            "1": {"class_type": "MuseDanceModelLoader", "inputs": {"bundle": "trained.safetensors", "precision": "auto"}},
            "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x3366CC}},
            "3": {"class_type": "LoadAudio", "inputs": {"audio": "music.mp3"}},
            "4": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["3", 0], "start_index": 0.0, "duration": 1.0}},
            "5": {"class_type": "MuseDanceMusicEncoder", "inputs": {"audio": ["4", 0], "fps": 12.0, "encoder": "spectral"}},
            "6": {"class_type": "MuseDanceBeatExtractor", "inputs": {"audio": ["4", 0], "fps": 12.0, "min_bpm": 0.0,
                                                                    "max_bpm": 0.0, "beats_per_bar": 0}},
            "7": {"class_type": "MuseDanceAnimateImage", "inputs": {
                "model": ["1", 0], "image": ["2", 0], "music": ["5", 0], "beats": ["6", 0], "audio": ["4", 0],
                "prompt": "a blue square bounces on every beat", "negative_prompt": "", "seed": 1, "steps": 1,
                "cfg": 2.0, "music_strength": 1.0, "beat_strength": 1.0, "width": 64, "height": 64, "frames": 0,
                "context_length": 16, "context_overlap": 4, "scheduler": "ddim", "keep_model_loaded": False}},
            "8": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["7", 0], "filename_prefix": "trained",
                                                               "fps": 12.0, "lossless": False, "quality": 80,
                                                               "method": "default"}},
        }
        entry = host.run(prompt, timeout=300)
        assert any(p.suffix == ".webp" for p in host.output_files(entry))


@pytest.mark.integration
def test_data_of_another_music_encoder_sizes_a_new_model_and_refuses_an_old_one(runs, tmp_path):
    """Features from a learned encoder (here 12 values per frame under another id) give a fresh
    model a music branch of that width; a bundle trained on spectral features is refused."""
    import json
    import shutil

    import numpy as np

    _, data = runs
    other = tmp_path / "data"
    shutil.copytree(data, other)
    lines = []
    for line in (other / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["music_encoder"] = "hubert:hubert-tiny:mean"
        path = other / record["clip"]
        with np.load(path) as arrays:
            content = dict(arrays)
        content["music"] = content["music"][:, :12]
        np.savez(path, **content)
        lines.append(json.dumps(record))
    (other / "manifest.jsonl").write_text("\n".join(lines) + "\n")

    _train("tiny_vae.yaml", f"data={other}", f"output_dir={tmp_path / 'fresh'}", "stage=motion",
           "train=[motion,music,beat]", "max_steps=1", "num_frames=8", "checkpoint_every=1")
    fresh = load_bundle(tmp_path / "fresh" / "model.safetensors")
    assert (fresh.config.music_encoder, fresh.config.music_dim) == ("hubert:hubert-tiny:mean", 12)

    base, _ = runs
    refused = _train("tiny_stage2.yaml", f"data={other}", f"init={base / 's1/model.safetensors'}",
                     f"output_dir={tmp_path / 'old'}", "max_steps=1", check=False)
    assert refused.returncode != 0
    assert "come from 'hubert:hubert-tiny:mean' (12 values per frame)" in refused.stderr


@pytest.mark.integration
def test_export_bundle_from_a_checkpoint_equals_the_run_s_bundle(runs, tmp_path):
    base, data = runs
    common = ["training/export_bundle.py", "--config", "training/configs/tiny_stage2.yaml", "--set", f"data={data}",
              f"init={base / 's1/model.safetensors'}", f"output_dir={base / 's2'}"]

    def export(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *common, *extra], cwd=ROOT, env=ENV, capture_output=True, text=True,
                              timeout=300)

    run = export("--out", str(tmp_path / "last.safetensors"))  # the latest checkpoint: step 12, the run's end
    assert run.returncode == 0, run.stderr[-3000:]
    final, exported = load_file(str(base / "s2/model.safetensors")), load_file(str(tmp_path / "last.safetensors"))
    assert final.keys() == exported.keys() and all(torch.equal(final[k], exported[k]) for k in final)
    run = export("--checkpoint", str(base / "s2/checkpoint-0000006"), "--out", str(tmp_path / "mid.safetensors"))
    assert run.returncode == 0, run.stderr[-3000:]
    mid = load_file(str(tmp_path / "mid.safetensors"))
    assert not all(torch.equal(final[k], mid[k]) for k in final if k.startswith("motion."))
    assert load_bundle(tmp_path / "mid.safetensors").config == load_bundle(base / "s2/model.safetensors").config
    wrong = subprocess.run([sys.executable, "training/export_bundle.py", "--config", "training/configs/tiny_stage1.yaml",
                            "--set", f"data={data}", f"init={base / 'vae/model.safetensors'}",
                            "--checkpoint", str(base / "s2/checkpoint-0000006"), "--out", str(tmp_path / "x.safetensors")],
                           cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert wrong.returncode != 0 and "does not hold the parts" in wrong.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_a_checkpoint_from_before_caption_film_is_refused_with_the_fix():
    from musedance_core.training.checkpoint import check_checkpoint_parts

    trainable = {"beat.film_in.weight": 0, "beat.film_text.weight": 0, "beat.film_text.bias": 0}
    check_checkpoint_parts(Path("ckpt"), dict(trainable), trainable)  # same parts: accepted
    with pytest.raises(TrainError, match="--set caption_film=false"):
        check_checkpoint_parts(Path("ckpt"), {"beat.film_in.weight": 0}, trainable)
    with pytest.raises(TrainError, match="config .* of the run that wrote it"):
        check_checkpoint_parts(Path("ckpt"), {"motion.x": 0}, trainable)


def test_timestep_shift_moves_training_towards_high_noise():
    from musedance_core.training.losses import sample_timesteps

    plain = sample_timesteps(4000, 1000, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(plain, torch.randint(0, 1000, (4000,), generator=torch.Generator().manual_seed(0)))
    shifted = sample_timesteps(4000, 1000, 3.0, torch.Generator().manual_seed(0))
    assert shifted.dtype == torch.long and int(shifted.min()) >= 0 and int(shifted.max()) <= 999
    # s*u / (1 + (s-1)*u) > 1/2 for u > 1/(s+1): three quarters of the draws at s = 3
    assert abs(float((shifted >= 500).float().mean()) - 0.75) < 0.03
    assert abs(float((plain >= 500).float().mean()) - 0.5) < 0.03


@pytest.mark.parametrize("shift", [0.0, -1.0])
def test_timestep_shift_must_be_positive(shift):
    from musedance_core.errors import InputError
    from musedance_core.training.config import TrainConfig

    with pytest.raises(InputError, match="timestep_shift must be above 0"):
        TrainConfig(stage="motion", data="d", output_dir="o", train=["motion"], timestep_shift=shift)


def test_caption_dropout_empties_only_captions_of_conditioned_samples():
    from musedance_core.training.steps import condition_dropout, sample_generators

    b = 400
    batch = {"caption": [f"clip {i} bounces" for i in range(b)], "pixels": torch.arange(b)}
    plain, n_plain, _ = condition_dropout(batch, 0.1, sample_generators(1, range(b)))
    out, n, _ = condition_dropout(batch, 0.1, sample_generators(1, range(b)), caption_dropout=0.25)
    assert n == n_plain and torch.equal(out["pixels"], plain["pixels"])  # same dropped samples, same order
    assert out["caption"][:n] == [""] * n
    emptied = [i for i in range(n, b) if out["caption"][i] == ""]
    assert 0.15 * (b - n) < len(emptied) < 0.35 * (b - n)
    for i in range(n, b):  # the others keep their own caption, aligned with their pixels
        assert out["caption"][i] in ("", f"clip {int(out['pixels'][i])} bounces")
    again, _, _ = condition_dropout(batch, 0.1, sample_generators(1, range(b)), caption_dropout=0.0)
    assert again["caption"] == plain["caption"]  # off: the random stream of earlier runs is unchanged


def test_each_sample_draws_the_same_dropout_wherever_it_lands():
    """Per-sample generators: a sample's draws depend on its number, not on its batch or place."""
    from musedance_core.training.steps import condition_dropout, sample_generators

    numbers = list(range(100, 140))
    batch = {"caption": [f"clip {k}" for k in numbers], "sample": torch.tensor(numbers)}
    whole, n, _ = condition_dropout(batch, 0.3, sample_generators(7, numbers), caption_dropout=0.3)
    halves = []
    for part in (numbers[:20], numbers[20:][::-1]):  # other batches, another order
        sub = {"caption": [f"clip {k}" for k in part], "sample": torch.tensor(part)}
        out, _, _ = condition_dropout(sub, 0.3, sample_generators(7, part), caption_dropout=0.3)
        halves += list(zip(out["sample"].tolist(), out["caption"]))
    assert sorted(halves) == sorted(zip(whole["sample"].tolist(), whole["caption"]))
    assert 0 < n < len(numbers)


@pytest.mark.parametrize("key, value", [("caption_dropout", 1.0), ("uncond_fraction", -0.1)])
def test_dropout_fractions_are_checked(key, value):
    from musedance_core.errors import InputError
    from musedance_core.training.config import load_train_config

    with pytest.raises(InputError, match=f"{key} must be at least 0 and below 1"):
        load_train_config(ROOT / "training/configs/tiny_stage2.yaml", [f"{key}={value}"])


def test_stage2_from_a_model_with_other_beat_columns_gets_a_fresh_beat_branch(tmp_path):
    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.training.config import load_train_config
    from musedance_core.types import BEAT_FEATURE_NAMES, LEGACY_BEAT_FEATURE_NAMES
    from musedance_core.training.model_setup import build_model

    torch.manual_seed(0)
    old = MuseDanceModel(tiny_config().with_changes(beat_features=LEGACY_BEAT_FEATURE_NAMES))
    save_bundle(old, tmp_path / "stage1.safetensors")
    music = (old.config.music_encoder, old.config.music_dim)
    cfg = load_train_config(ROOT / "training/configs/tiny_stage2.yaml", [f"init={tmp_path / 'stage1.safetensors'}"])
    model = build_model(cfg, music, BEAT_FEATURE_NAMES)
    assert model.config.beat_features == BEAT_FEATURE_NAMES and model.beat.film_text is not None
    model.frame_conditions(torch.zeros(1, 4, music[1]), torch.zeros(1, 4, len(BEAT_FEATURE_NAMES)))  # reads 11 columns
    same = build_model(cfg, music, LEGACY_BEAT_FEATURE_NAMES)  # data of the model's own columns: kept
    assert same.config.beat_features == LEGACY_BEAT_FEATURE_NAMES
    frozen = load_train_config(ROOT / "training/configs/tiny_stage2.yaml",
                               [f"init={tmp_path / 'stage1.safetensors'}", "train=[motion, music]"])
    with pytest.raises(TrainError, match="train the beat part too"):
        build_model(frozen, music, BEAT_FEATURE_NAMES)


@pytest.mark.parametrize("script", ["train", "export_bundle"])
def test_repeated_set_options_add_up(script):
    import importlib

    parse_args = importlib.import_module(f"training.{script}").parse_args
    extra = ["--out", "b.safetensors"] if script == "export_bundle" else []
    args = parse_args(["--config", "c.yaml", *extra, "--set", "timestep_shift=3.0", "--set", "output_dir=o", "max_steps=5"])
    assert args.set == ["timestep_shift=3.0", "output_dir=o", "max_steps=5"]


def _saved_tiny(path: Path) -> Path:
    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel

    torch.manual_seed(0)
    model = MuseDanceModel(tiny_config())
    with torch.no_grad():  # trained-looking outputs, so that a re-initialisation shows
        for p in model.parameters():
            p.add_(0.01)
    save_bundle(model, path)
    return path


def test_zero_terminal_snr_gives_the_model_a_v_schedule_that_ends_in_pure_noise(tmp_path):
    from musedance_core.schedulers import make_scheduler
    from musedance_core.training.config import load_train_config
    from musedance_core.training.model_setup import build_model

    init = _saved_tiny(tmp_path / "s1.safetensors")
    music = ("spectral-v1", load_bundle(init).config.music_dim)
    cfg = load_train_config(ROOT / "training/configs/tiny_stage1.yaml",
                            [f"init={init}", "prediction_type=v_prediction", "zero_terminal_snr=true"])
    model = build_model(cfg, music)
    assert model.config.scheduler["prediction_type"] == "v_prediction"
    train = DDPMScheduler(**model.config.scheduler)
    assert float(train.alphas_cumprod[-1]) == 0.0  # the last training timestep holds no trace of the clip
    sampler = make_scheduler("ddim", model.config.scheduler)
    sampler.set_timesteps(15)
    assert int(sampler.timesteps[0]) == 999  # and sampling starts there (trailing steps), not at 925
    plain = build_model(load_train_config(ROOT / "training/configs/tiny_stage2.yaml", [f"init={init}"]), music)
    assert plain.config.scheduler == load_bundle(init).config.scheduler  # nothing asked, nothing changed


@pytest.mark.parametrize("overrides, message", [
    (["prediction_type=v_prediction"], "needs the spatial layers trained"),  # stage 2 freezes them
    (["zero_terminal_snr=true", "train=[spatial]"], "needs prediction_type: v_prediction"),
])
def test_a_schedule_change_the_model_cannot_learn_is_refused(tmp_path, overrides, message):
    from musedance_core.training.config import load_train_config
    from musedance_core.training.model_setup import build_model

    init = _saved_tiny(tmp_path / "s1.safetensors")
    cfg = load_train_config(ROOT / "training/configs/tiny_stage2.yaml", [f"init={init}", *overrides])
    with pytest.raises(TrainError, match=message):
        build_model(cfg, ("spectral-v1", load_bundle(init).config.music_dim))


def test_min_snr_weights_of_v_prediction_keep_the_pure_noise_step():
    from musedance_core.training.losses import min_snr_weights

    t = torch.tensor([0, 500, 999])
    for zero_snr in (False, True):
        v = DDPMScheduler(prediction_type="v_prediction", rescale_betas_zero_snr=zero_snr, beta_schedule="scaled_linear",
                          beta_start=0.00085, beta_end=0.012)
        w = min_snr_weights(v, t, 5.0)
        assert float(w[0]) < 0.01 and abs(float(w[2]) - 1.0) < 1e-6  # clean steps damped, the noisiest kept whole
    eps = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    a = eps.alphas_cumprod[t]
    assert torch.allclose(min_snr_weights(eps, t, 5.0), (a / (1 - a)).clamp(max=5.0) / (a / (1 - a)))
    assert torch.equal(min_snr_weights(v, t, 0.0), torch.ones(3))


def test_reinit_starts_the_named_parts_afresh_and_keeps_the_others(tmp_path):
    from musedance_core.training.config import load_train_config
    from musedance_core.training.steps import named_trainable
    from musedance_core.training.model_setup import build_model

    init = _saved_tiny(tmp_path / "s1.safetensors")
    old = load_bundle(init)
    cfg = load_train_config(ROOT / "training/configs/tiny_stage1.yaml", [f"init={init}", "reinit=[spatial, motion]"])
    model = build_model(cfg, ("spectral-v1", old.config.music_dim))
    kept = named_trainable(old, ["vae", "reference_unet"])
    for name, p in named_trainable(model, ["vae", "reference_unet"]).items():
        assert torch.equal(p, kept[name]), name
    motion = named_trainable(model, ["motion"])
    assert all(float(p.detach().abs().max()) == 0.0 for n, p in motion.items() if ".proj_out." in n)  # zero, as a new model's
    spatial, before = named_trainable(model, ["spatial"]), named_trainable(old, ["spatial"])
    assert all(not torch.equal(p, before[n]) for n, p in spatial.items())


def test_spatial_resnets_leave_the_spatial_attention_blocks_frozen(tmp_path):
    """The paper's stage 2 freezes the spatial attention blocks; ``spatial_resnets`` trains the rest
    of the denoising UNet's spatial layers (ResNet blocks, samplers, conv in/out, time embedding)."""
    from musedance_core.training.steps import named_trainable, set_trainable

    model = load_bundle(_saved_tiny(tmp_path / "m.safetensors"))
    spatial, resnets = named_trainable(model, ["spatial"]), named_trainable(model, ["spatial_resnets"])
    assert set(resnets) < set(spatial)
    assert set(spatial) - set(resnets) == {n for n in spatial if ".attentions." in n}
    assert any(".resnets." in n for n in resnets) and "denoising_unet.conv_in.weight" in resnets
    trainable = set_trainable(model, ["spatial_resnets", "motion"])
    for name, p in model.denoising_unet.named_parameters():
        assert p.requires_grad == (".attentions." not in name or ".motion_modules." in name), name
    assert set(trainable) == set(resnets) | set(named_trainable(model, ["motion"]))


def test_repeat_by_style_lists_the_named_styles_more_often_in_place():
    from musedance_core.errors import InputError
    from musedance_core.training.data import repeat_by_style

    records = [{"id": "a", "style": "tilt"}, {"id": "b", "style": "bounce"}, {"id": "c", "style": "spin"}, {"id": "d"}]
    shown = repeat_by_style(records, {"tilt": 3, "spin": 2})
    assert [r["id"] for r in shown] == ["a", "a", "a", "b", "c", "c", "d"]
    assert repeat_by_style(records, {}) == tuple(records)
    with pytest.raises(InputError, match=r"names \['tlit'\], which no training clip has.*'bounce', 'spin', 'tilt'"):
        repeat_by_style(records, {"tlit": 2})


@pytest.mark.integration
@pytest.mark.parametrize("override, message", [
    ("repeat_by_style={tlit: 2}", "repeat_by_style names ['tlit'], which no training clip has"),
    ("repeat_by_style={tilt: 0.5}", "'tilt' must repeat a whole number of times (1 or more); got 0.5"),
])
def test_train_py_reports_a_style_mistake_as_one_line_not_a_traceback(runs, tmp_path, override, message):
    _, data = runs
    run = _train("tiny_stage2.yaml", f"data={data}", f"output_dir={tmp_path / 'out'}", override, check=False)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: ") and message in last, run.stderr[-1000:]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written: no empty run folder


@pytest.mark.integration
def test_resume_with_another_repeat_by_style_is_refused(runs, tmp_path):
    """The saved data position indexes the epoch list repeat_by_style makes: a changed setting would
    silently skip or repeat clips, so train.py names both settings and stops."""
    base, data = runs
    style = next(r["style"] for r in read_manifest(data, "train"))
    args = [f"data={data}", f"init={base / 's1/model.safetensors'}", "num_frames=8", "validate_every=0",
            "checkpoint_every=2", f"output_dir={tmp_path / 'out'}"]
    _train("tiny_stage2.yaml", *args, "max_steps=2", f"repeat_by_style={{{style}: 2}}")
    run = _train("tiny_stage2.yaml", *args, "max_steps=4", check=False)
    assert run.returncode == 1
    assert f"was written with repeat_by_style={{'{style}': 2}}, this run asks for {{}}" in run.stderr, run.stderr[-1500:]
    assert not (tmp_path / "out/checkpoint-0000004").exists()
    resumed = _train("tiny_stage2.yaml", *args, "max_steps=4", f"repeat_by_style={{{style}: 2}}")
    assert "resumed from checkpoint-0000002" in resumed.stdout + resumed.stderr


def test_the_demo_recipe_s_stages_chain_each_from_the_one_before():
    """scripts/train_demo.sh runs tiny_<stage>.yaml in order; each stage must start from the model the
    stage before it writes, or a fresh machine would train a stage on nothing (or on a stale run)."""
    import re

    from musedance_core.training.config import load_train_config

    script = (ROOT / "scripts/train_demo.sh").read_text()
    stages = re.search(r"for stage in ([\w ]+); do", script).group(1).split()
    assert stages[0] == "vae" and stages[-1] == "stage2_resnets"
    assert "cp runs/tiny/stage2_resnets/model.safetensors assets/demo/" in script
    configs = [load_train_config(ROOT / f"training/configs/tiny_{stage}.yaml") for stage in stages]
    for stage, cfg in zip(stages, configs):
        assert Path(cfg.output_dir) == ROOT / "runs/tiny" / stage  # where the script looks for the stage's model
        assert Path(cfg.data) == ROOT / "data/synthdance"  # where the script makes the data
    for before, cfg in zip(configs, configs[1:]):
        assert Path(cfg.init) == Path(before.output_dir) / "model.safetensors"
    assert "spatial_resnets" in configs[-1].train and "spatial" not in configs[-1].train  # attention stays frozen


def test_a_config_that_extends_another_replaces_only_its_own_keys(tmp_path):
    from musedance_core.errors import InputError
    from musedance_core.training.config import load_train_config

    (tmp_path / "base.yaml").write_text("stage: motion\ndata: /d\noutput_dir: /o\ntrain: [motion]\nmax_steps: 7\n"
                                        "mask_weight: 3.0\n")
    (tmp_path / "variant.yaml").write_text("extends: base.yaml\ntrain: [spatial_resnets, motion]\nmax_steps: 9\n")
    cfg = load_train_config(tmp_path / "variant.yaml", ["max_steps=11"])
    assert (cfg.stage, cfg.mask_weight, cfg.train, cfg.max_steps) == ("motion", 3.0, ["spatial_resnets", "motion"], 11)
    assert load_train_config(tmp_path / "base.yaml").train == ["motion"]  # the base itself is unchanged

    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(InputError, match=r"extend each other in a loop: a.yaml -> b.yaml -> a.yaml"):
        load_train_config(tmp_path / "a.yaml")
    (tmp_path / "far.yaml").write_text("extends: ../elsewhere/base.yaml\n")
    with pytest.raises(InputError, match="must name a config file beside it"):
        load_train_config(tmp_path / "far.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: gone.yaml\n")
    with pytest.raises(InputError, match=r"gone.yaml' not found \(named by 'extends' in orphan.yaml\)"):
        load_train_config(tmp_path / "orphan.yaml")


def test_part_maps_give_every_visible_body_part_the_same_share_of_the_subject_weight():
    import numpy as np

    from musedance_core.training.data import part_balanced_focus

    mask = np.zeros((1, 20, 20), np.float32)
    mask[0, 2:18, 5:15] = 1  # 160 subject pixels
    parts = np.zeros((1, 20, 20), np.uint8)
    parts[0, 2:5, 5:15] = 1  # a 30-pixel head
    parts[0, 5:18, 5:15] = 2  # a 130-pixel torso
    focus = part_balanced_focus(mask, parts, 1.0)[0]
    assert focus[mask[0] > 0].mean() == pytest.approx(1.0)  # mask_weight keeps its meaning
    assert focus[parts[0] == 1].sum() == pytest.approx(focus[parts[0] == 2].sum())  # equal shares
    assert focus[mask[0] == 0].max() == 0.0
    half = part_balanced_focus(mask, parts, 0.5)[0]
    assert half[3, 7] == pytest.approx(0.5 + 0.5 * focus[3, 7])
    np.testing.assert_array_equal(part_balanced_focus(mask, np.zeros_like(parts), 1.0), mask)  # no parts seen


def test_part_focus_must_be_between_0_and_1():
    from musedance_core.errors import InputError
    from musedance_core.training.config import load_train_config

    with pytest.raises(InputError, match="part_focus"):
        load_train_config(ROOT / "training/configs/tiny_stage1.yaml", ["part_focus=2"])
