"""Data-parallel training through accelerate, as a user launches it: real processes meeting over
gloo on the CPU (``accelerate launch --multi_gpu --num_processes 2`` on a machine without GPUs).

What must hold (README: Training on several GPUs or machines):
- 2 processes with batch b follow 1 process with batch 2b: the final weights agree within 1 % of
  the distance training moved them (VAE stage from scratch, stage 2 from the demo model);
- only the main process writes files (every write is recorded by an audit hook in each process);
- a 2-process run killed with -9 resumes and ends where the unbroken run ends;
- a checkpoint written by 2 processes resumes on 1;
- two "machines" (two launchers with machine ranks 0 and 1, meeting at 127.0.0.1) train as one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TWO_PROCESSES = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                 "--dynamo_backend", "no", "--main_process_port", "0"]
VAE = ["--config", "training/configs/tiny_vae.yaml", "--set", "ema_decay=0", "save_fp16=false", "log_every=1",
       "checkpoint_every=2", "data_workers=0"]
STAGE2 = ["--config", "training/configs/tiny_stage2.yaml", "--set", "ema_decay=0", "save_fp16=false", "log_every=1",
          "init=assets/demo/musedance-demo-tiny.safetensors", "num_frames=8", "validate_every=0", "data_workers=0"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", HF_HUB_OFFLINE="1")
TOLERANCE = 0.01  # of the distance training moved the weights


def _command(config: list[str], processes: int, *overrides: str) -> list[str]:
    script = ["training/train.py", *config, *overrides]
    return [*ACCELERATE, *TWO_PROCESSES, *script] if processes == 2 else [sys.executable, *script]


def _run(config: list[str], processes: int, *overrides: str, env: dict | None = None) -> str:
    run = subprocess.run(_command(config, processes, *overrides), cwd=ROOT, env=env or ENV, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    return run.stdout + run.stderr


def run_from_checkpoint(checkpoint: Path, out: Path) -> Path:
    """A new run folder whose latest checkpoint is a copy of ``checkpoint`` (to resume it elsewhere)."""
    out.mkdir()
    shutil.copytree(checkpoint, out / checkpoint.name)
    (out / "latest").write_text(checkpoint.name)
    return out


def run_weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / f"checkpoint-{step:07d}" / "trainable.safetensors"))


def relative_gap(a: dict, b: dict, start: dict) -> float:
    """|a - b| / |a - start| over all trained tensors."""
    assert a.keys() == b.keys() == start.keys()
    moved = torch.sqrt(sum(((a[k] - start[k]) ** 2).sum() for k in a))
    gap = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a))
    assert moved > 0
    return float(gap / moved)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist") / "data"
    run = subprocess.run([sys.executable, "training/synth_dance.py", "--out", str(out), "--clips", "16", "--size", "64",
                          "--frames", "16", "--val-fraction", "0.25", "--workers", "1", "--seed", "3"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture(scope="module")
def vae_runs(data, tmp_path_factory) -> dict[str, Path]:
    """one: 1 process, batch 4; two: 2 processes, batch 2 each, every write recorded; 4 steps each."""
    base = tmp_path_factory.mktemp("vae")
    one, two, audit = base / "one", base / "two", base / "audit"
    audit.mkdir()
    _run(VAE, 1, f"data={data}", f"output_dir={one}", "max_steps=4", "batch_size=4")
    env = dict(ENV, PYTHONPATH=f"{ROOT / 'tests' / 'support'}{os.pathsep}{ENV.get('PYTHONPATH', '')}",
               WRITE_AUDIT_DIR=str(audit), WRITE_AUDIT_WATCH=str(two))
    log = _run(VAE, 2, f"data={data}", f"output_dir={two}", "max_steps=4", "batch_size=2", env=env)
    return {"one": one, "two": two, "audit": audit, "log": log}


def fresh_vae_weights() -> dict[str, torch.Tensor]:
    """The VAE weights train.py starts from (the tiny preset, seed 0)."""
    from musedance_core.models.config import preset
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.training.steps import named_trainable

    torch.manual_seed(0)
    model = MuseDanceModel(preset("tiny").with_changes(music_dim=74))
    return {k: v.detach().clone() for k, v in named_trainable(model, ["vae"]).items()}


def test_two_processes_follow_one_with_double_batch_on_the_vae_stage(vae_runs):
    assert "in total on 2" in vae_runs["log"]  # two processes did meet
    start = fresh_vae_weights()
    for step in (2, 4):
        gap = relative_gap(run_weights(vae_runs["one"], step), run_weights(vae_runs["two"], step), start)
        assert gap < TOLERANCE, f"step {step}: 2 processes end {gap:.2%} of the training distance away"


def test_only_the_main_process_writes(vae_runs):
    main = (vae_runs["audit"] / "writes-0.txt").read_text().splitlines()
    other = (vae_runs["audit"] / "writes-1.txt").read_text().splitlines()
    assert other == [], other[:5]
    written = " ".join(main)
    for name in ("loss.csv", "loss.png", "checkpoint-0000004", "model.safetensors", "latest"):
        assert name in written, name


def test_a_killed_two_process_run_resumes_where_the_unbroken_one_ends(data, vae_runs, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen(_command(VAE, 2, f"data={data}", f"output_dir={out}", "max_steps=1000",
                                        "batch_size=2"), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        for line in process.stdout:  # the main process prints "step 3/..." after checkpoint 2 is written
            if line.startswith("step 3/") or time.monotonic() > deadline:
                break
    finally:  # kill -9 every process of the run at once, as a crash or the OOM killer would
        import psutil

        tree = [process.pid] + [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(30)
        psutil.wait_procs([psutil.Process(pid) for pid in tree if psutil.pid_exists(pid)], timeout=30)
    assert (out / "latest").read_text().strip() == "checkpoint-0000002"
    log = _run(VAE, 2, f"data={data}", f"output_dir={out}", "max_steps=4", "batch_size=2")
    assert "resumed from checkpoint-0000002 at step 2" in log
    gap = relative_gap(run_weights(out, 4), run_weights(vae_runs["two"], 4), fresh_vae_weights())
    assert gap < 1e-4, f"the resumed run ends {gap:.2%} of the training distance from the unbroken one"


def test_a_checkpoint_of_two_processes_resumes_on_one(data, vae_runs, tmp_path):
    out = run_from_checkpoint(vae_runs["two"] / "checkpoint-0000002", tmp_path / "moved")
    log = _run(VAE, 1, f"data={data}", f"output_dir={out}", "max_steps=4", "batch_size=4")
    assert "resumed from checkpoint-0000002 at step 2 (8 samples seen)" in log
    gap = relative_gap(run_weights(vae_runs["one"], 4), run_weights(out, 4), fresh_vae_weights())
    assert gap < TOLERANCE


def test_two_processes_follow_one_with_double_batch_on_stage_2(data, tmp_path):
    from musedance_core.checkpoints.bundle import load_bundle
    from musedance_core.training.steps import named_trainable

    _run(STAGE2, 1, f"data={data}", f"output_dir={tmp_path / 'one'}", "max_steps=2", "batch_size=4")
    log = _run(STAGE2, 2, f"data={data}", f"output_dir={tmp_path / 'two'}", "max_steps=2", "batch_size=2",
               "data_workers=1")  # worker processes load the batches: the same samples
    assert "in total on 2" in log
    model = load_bundle(ROOT / "assets/demo/musedance-demo-tiny.safetensors")
    model.enable_caption_film()
    start = {k: v.detach() for k, v in named_trainable(model, ["motion", "music", "beat", "text_encoder"]).items()}
    gap = relative_gap(run_weights(tmp_path / "one", 2), run_weights(tmp_path / "two", 2), start)
    assert gap < TOLERANCE, f"2 processes end {gap:.2%} of the training distance away"


def test_two_machines_train_as_one(data, vae_runs, tmp_path):
    """What the README's 2-machine command does, with both machines on this one (1 process each)."""
    from tests.comfy_host import free_port

    out, port = tmp_path / "nodes", str(free_port())
    launchers = []
    for rank in (0, 1):
        command = [*ACCELERATE, "--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank",
                   str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port, "--mixed_precision",
                   "no", "--dynamo_backend", "no", "training/train.py", *VAE, f"data={data}", f"output_dir={out}",
                   "max_steps=4", "batch_size=2"]
        launchers.append(subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True))
    logs = [launcher.communicate(timeout=600)[0] for launcher in launchers]
    assert all(launcher.returncode == 0 for launcher in launchers), logs[0][-3000:] + logs[1][-3000:]
    assert "in total on 2" in logs[0]
    gap = relative_gap(run_weights(vae_runs["one"], 4), run_weights(out, 4), fresh_vae_weights())
    assert gap < TOLERANCE


def test_gradient_checkpointing_gives_the_same_weights_and_runs_with_bf16_on_two_processes(data, tmp_path):
    """Checkpointed blocks recompute with their forward pass's context (motion FiLM hooks): the
    same weights as without; with bf16 autocast under DDP it runs to the end."""
    common = (f"data={data}", "max_steps=2", "batch_size=2")
    _run(STAGE2, 1, *common, f"output_dir={tmp_path / 'plain'}")
    _run(STAGE2, 1, *common, f"output_dir={tmp_path / 'ckpt'}", "gradient_checkpointing=true")
    plain, ckpt = run_weights(tmp_path / "plain", 2), run_weights(tmp_path / "ckpt", 2)
    assert all(torch.equal(plain[k], ckpt[k]) for k in plain)
    log = _run(STAGE2, 2, *common, f"output_dir={tmp_path / 'bf16'}", "gradient_checkpointing=true",
               "mixed_precision=bf16")
    assert "in total on 2" in log and (tmp_path / "bf16" / "model.safetensors").is_file()
