"""The learned beat tracker's parts: weights file, decoder, training script (resume), beat offset.

How well the shipped weights track music is tested in test_beats.py (numpy-synthesised grooves the
net never trained on) and measured in benchmarks/beat_benchmark.py (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from mir_eval.beat import f_measure

from musedance_core.audio.beat_decode import decode_beats
from musedance_core.audio.beat_net import (FRAME_RATE, SHIPPED_WEIGHTS, BeatNet, BeatNetConfig, BeatWeightsError,
                                           load_beat_net, log_mel, save_beat_net)
from musedance_core.audio.beats import track_beats
from musedance_core.audio.synth import Groove, render_groove
from musedance_core.errors import InputError


def _activations(beat_times, downbeat_times, seconds, peak=0.9, floor=0.02):
    n = int(seconds * FRAME_RATE)
    act = np.full((n, 2), floor)
    for col, times in enumerate((beat_times, downbeat_times)):
        for t in times:
            k = int(round(t * FRAME_RATE))
            for off, v in ((-1, 0.45 * peak), (0, peak), (1, 0.45 * peak)):
                if 0 <= k + off < n:
                    act[k + off, col] = max(act[k + off, col], v)
    return act


def test_shipped_weights_load_with_their_config():
    net = load_beat_net()
    assert isinstance(net, BeatNet) and not net.training
    assert SHIPPED_WEIGHTS.stat().st_size < 5_000_000  # a few MB at most, committed with the code
    with torch.inference_mode():
        out = net(log_mel(np.zeros(22050, np.float32))[None])
    assert out.shape == (1, 51, 2)


def test_weights_round_trip_and_bad_files_are_named(tmp_path):
    net = BeatNet(BeatNetConfig(channels=8, dilations=(1, 2)))
    path = tmp_path / "net.safetensors"
    save_beat_net(net, path, {"note": "test"})
    loaded = load_beat_net(path)
    assert loaded.config == net.config
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    with pytest.raises(BeatWeightsError, match="not found"):
        load_beat_net(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(BeatWeightsError, match="cannot be read"):
        load_beat_net(corrupt)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(BeatWeightsError, match="not a MuseDance beat tracker"):
        load_beat_net(other)


def test_decoder_follows_tempo_and_bar():
    beats = np.arange(0.5, 30.0, 60 / 123.0)
    act = _activations(beats, beats[1::4], 31.0)
    act[np.round((beats + 30 / 123.0) * FRAME_RATE).astype(int), 0] = 0.3  # weaker off-beats
    out = decode_beats(act, FRAME_RATE, 50, 220)
    est = out.beats / FRAME_RATE
    assert f_measure(beats, est) == 1.0
    assert out.beats_per_bar == 4
    assert f_measure(beats[1::4], est[out.positions == 0]) == 1.0
    assert np.abs(est - beats[: len(est)]).max() < 0.012  # sub-frame refinement


def test_decoder_tempo_range_picks_the_octave_and_meter_can_be_given():
    beats = np.arange(0.5, 20.0, 60 / 172.0)
    act = _activations(beats, beats[::4], 21.0)
    half = decode_beats(act, FRAME_RATE, 60, 100)
    assert 60 / np.median(np.diff(half.beats / FRAME_RATE)) == pytest.approx(86, rel=0.03)
    three = decode_beats(act, FRAME_RATE, 50, 220, meters=(3,))
    assert three.beats_per_bar == 3 and set(three.positions) == {0, 1, 2}


def test_decoder_follows_a_sudden_tempo_change():
    first = np.arange(0.5, 15.0, 0.6)
    second = first[-1] + np.arange(1, 30) * 0.45
    beats = np.concatenate([first, second])
    out = decode_beats(_activations(beats, beats[::4], beats[-1] + 1), FRAME_RATE, 50, 220)
    assert f_measure(beats, out.beats / FRAME_RATE) >= 0.97


def test_decoder_on_no_activation_has_no_confidence():
    out = decode_beats(np.full((500, 2), 0.01), FRAME_RATE, 50, 220)
    assert out.salience < 0.05


def test_beat_offset_shifts_the_grid(groove_120):
    base = track_beats(groove_120.samples, groove_120.sample_rate, 24)
    late = track_beats(groove_120.samples, groove_120.sample_rate, 24, beat_offset_ms=40)
    common = min(len(base.beat_times), len(late.beat_times)) - 1
    np.testing.assert_allclose(late.beat_times[:common] - base.beat_times[:common], 0.04, atol=1e-9)
    for bad in (5000, float("nan")):
        with pytest.raises(InputError, match="beat_offset_ms must be between"):
            track_beats(groove_120.samples, groove_120.sample_rate, 24, beat_offset_ms=bad)


def _tiny_beat_set(folder, count=4):
    import soundfile as sf

    folder.mkdir()
    for i in range(count):
        groove = Groove(bpm=96.0 + 12 * i, beats_per_bar=3 if i % 2 else 4, seconds=6.0)
        song = render_groove(groove, seed=i)
        sf.write(folder / f"piece_{i:05d}.flac", song.samples, song.sample_rate)
        (folder / f"piece_{i:05d}.json").write_text(json.dumps({
            "beats": song.beat_times.tolist(), "downbeats": song.downbeat_times.tolist(),
            "beats_per_bar": groove.beats_per_bar, "category": "synth"}))


@pytest.mark.integration
def test_training_runs_and_resumes_bit_identically(tmp_path):
    import shutil

    from training.train_beat_tracker import main

    data = tmp_path / "data"
    _tiny_beat_set(data)
    common = ["--data", str(data), "--steps", "4", "--batch-size", "2", "--crop-seconds", "3",
              "--channels", "8", "--checkpoint-every", "2", "--threads", "1"]
    assert main(common + ["--out", str(tmp_path / "whole"), "--val-data", str(data)]) == 0
    report = json.loads((tmp_path / "whole" / "validation.json").read_text())
    assert report["summary"]["all"]["pieces"] == 4
    # an interrupted run: only the step-2 checkpoint of that run survives; the same command resumes
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-0000002", broken / "checkpoint-0000002")
    (broken / "latest").write_text("checkpoint-0000002")
    assert main(common + ["--out", str(broken)]) == 0
    a = load_beat_net(tmp_path / "whole" / "beat_tracker.safetensors").state_dict()
    b = load_beat_net(broken / "beat_tracker.safetensors").state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_refuses_a_missing_folder(tmp_path, capsys):
    from training.train_beat_tracker import main

    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    assert "make_beat_data.py" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_silence_and_noise_get_no_beats():
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for audio in (np.zeros(22050 * 5, np.float32), (rng.standard_normal(22050 * 12) * 0.1).astype(np.float32)):
            assert len(track_beats(audio, 22050, 24).beat_times) == 0


def test_long_audio_runs_in_chunks_with_the_same_result(monkeypatch):
    import musedance_core.audio.beat_net as beat_net

    torch.manual_seed(0)
    net = BeatNet(BeatNetConfig(channels=8, dilations=(1, 2, 4))).eval()
    audio = (np.random.default_rng(0).standard_normal(22050 * 20) * 0.1).astype(np.float32)
    whole = beat_net.beat_activations(audio, net)
    monkeypatch.setattr(beat_net, "CHUNK_FRAMES", 128)  # 8 chunks instead of 1
    np.testing.assert_allclose(beat_net.beat_activations(audio, net), whole, atol=1e-6)


@pytest.mark.integration
def test_decoder_tuning_scores_every_combination(tmp_path):
    from musedance_core.training.beat_tracker.tuning import GRID
    from training.tune_beat_decoder import main

    data = tmp_path / "data"
    _tiny_beat_set(data)
    out = tmp_path / "tuning.json"
    assert main(["--data", str(data), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["results"]) == np.prod([len(v) for v in GRID.values()])
    assert report["best"]["score"] == max(r["score"] for r in report["results"])
    assert report["best"]["beat_f"] > 0.9  # numpy-synth grooves, unseen in training
