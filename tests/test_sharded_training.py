"""Sharded training (FSDP2, DeepSpeed ZeRO-2) through the accelerate configs in training/accelerate/,
as far as this machine (CPU only, no deepspeed, no bitsandbytes) allows.

What this machine can and cannot run, found out here:
- accelerate (1.16) engages FSDP and DeepSpeed only when its processes sit on GPUs (or other
  accelerators): launched on CPU processes, the FSDP config trains plain data-parallel over gloo,
  and train.py says so (test_the_fsdp_config_on_cpu_processes_trains_data_parallel_and_says_so).
- torch's FSDP2 itself runs on CPU processes over gloo. A start-up hook (FORCE_CPU_FSDP below) makes
  accelerate take its FSDP path on CPU processes exactly as it does on GPUs; everything after that
  (fully_shard, the optimizer's switch to sharded parameters, clipping, gathering, saving and
  loading the optimizer) is accelerate's and torch's own code. With it, 2 FSDP processes follow 1
  process with twice the batch, and a run resumes from its checkpoint on 2 or 1 processes.
- DeepSpeed is not installed: its configs are checked as files (what the README says they set),
  and launching them ends with the fix (accelerate's launcher, and train.py started otherwise).
- bitsandbytes is not installed: use_8bit_adam ends with one line naming the fix, before any work.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musedance_core.errors import TrainError
from safetensors.torch import load_file

from tests.test_distributed_training import fresh_vae_weights, relative_gap, run_from_checkpoint, run_weights

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "accelerate"
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", HF_HUB_OFFLINE="1")
for _name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED", "FORCE_CPU_FSDP"):
    ENV.pop(_name, None)
VAE = ["--config", "training/configs/tiny_vae.yaml", "--set", "ema_decay=0", "save_fp16=false", "log_every=1",
       "checkpoint_every=2", "data_workers=0"]
STAGE2 = ["--config", "training/configs/tiny_stage2.yaml", "--set", "ema_decay=0", "save_fp16=false", "log_every=1",
          "init=assets/demo/musedance-demo-tiny.safetensors", "num_frames=8", "validate_every=0", "data_workers=0"]
TOLERANCE = 0.01  # of the distance training moved the weights
SHARDED = "FSDP: weights, gradients and optimizer state sharded over 2 processes"

# What the README's table says each shipped config sets (accelerate's own loader reads them).
EXPECTED = {
    "ddp.yaml": {"distributed_type": "MULTI_GPU", "mixed_precision": "bf16", "num_machines": 1},
    "fsdp_shard_grad_op.yaml": {"distributed_type": "FSDP", "mixed_precision": "bf16", "num_machines": 1,
                                "fsdp_config": {"fsdp_version": 2, "fsdp_reshard_after_forward": False,
                                                "fsdp_auto_wrap_policy": "NO_WRAP", "fsdp_offload_params": False,
                                                "fsdp_state_dict_type": "FULL_STATE_DICT",
                                                "fsdp_activation_checkpointing": False}},
    "deepspeed_zero2.yaml": {"distributed_type": "DEEPSPEED", "mixed_precision": "bf16", "num_machines": 1,
                             "deepspeed_config": {"zero_stage": 2, "offload_optimizer_device": "none",
                                                  "offload_param_device": "none"}},
    "deepspeed_zero2_offload.yaml": {"distributed_type": "DEEPSPEED", "mixed_precision": "bf16", "num_machines": 1,
                                     "deepspeed_config": {"zero_stage": 2, "offload_optimizer_device": "cpu",
                                                          "offload_param_device": "none"}},
    "multi_node.yaml": {"distributed_type": "MULTI_GPU", "mixed_precision": "bf16", "num_machines": 2,
                        "num_processes": 16, "machine_rank": 0, "main_process_ip": "10.0.0.1",
                        "main_process_port": 29500},
}

# accelerate sets DistributedType.FSDP only for GPU-type processes (state.py: the FSDP branch sits
# under MULTI_GPU/MULTI_XPU/...); CPU processes stay MULTI_CPU, i.e. DDP. This hook, loaded at
# start-up through PYTHONPATH, makes the same switch for CPU processes with the plugin accelerate
# built from the launch's environment. It changes nothing else.
FORCE_CPU_FSDP = '''
import os
if os.environ.get("FORCE_CPU_FSDP") == "1":
    import accelerate.state as _state
    from accelerate.utils import DistributedType

    _init = _state.AcceleratorState.__init__

    def __init__(self, *args, fsdp_plugin=None, **kwargs):
        _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            if self._mixed_precision != "no":
                fsdp_plugin.set_mixed_precision(self._mixed_precision)
            self.fsdp_plugin = fsdp_plugin
            _state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    _state.AcceleratorState.__init__ = __init__
'''


def _launch(config_file: str, processes: int, script: list[str], env: dict) -> list[str]:
    return [*LAUNCH, "--config_file", str(CONFIGS / config_file), "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            "training/train.py", *script]


def _run(command: list[str], env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    return run


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sharded") / "data"
    _run([sys.executable, "training/synth_dance.py", "--out", str(out), "--clips", "8", "--size", "64",
          "--frames", "16", "--workers", "1"], ENV)
    return out


@pytest.fixture(scope="module")
def fsdp_env(tmp_path_factory) -> dict:
    hook = tmp_path_factory.mktemp("force_cpu_fsdp")
    (hook / "sitecustomize.py").write_text(FORCE_CPU_FSDP)
    return dict(ENV, FORCE_CPU_FSDP="1", PYTHONPATH=f"{hook}{os.pathsep}{ENV.get('PYTHONPATH', '')}")


@pytest.fixture(scope="module")
def vae_runs(data, fsdp_env, tmp_path_factory) -> dict:
    """one: 1 process, batch 4; fsdp: 2 FSDP2 processes, batch 2 each; 4 steps, checkpoints at 2 and 4."""
    base = tmp_path_factory.mktemp("vae")
    one, fsdp = base / "one", base / "fsdp"
    _run([sys.executable, "training/train.py", *VAE, f"data={data}", f"output_dir={one}", "max_steps=4",
          "batch_size=4"], ENV)
    run = _run(_launch("fsdp_shard_grad_op.yaml", 2, [*VAE, f"data={data}", f"output_dir={fsdp}", "max_steps=4",
                                                      "batch_size=2"], fsdp_env), fsdp_env)
    return {"one": one, "fsdp": fsdp, "log": run.stdout + run.stderr}


# --- the shipped config files ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_accelerate_config_parses_and_sets_what_the_readme_says(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = CONFIGS / name
    config = load_config_from_file(str(path)).to_dict()
    for key, value in EXPECTED[name].items():
        if isinstance(value, dict):
            for sub, expected in value.items():
                assert config[key][sub] == expected, (name, key, sub)
        else:
            assert config[key] == value, (name, key)
    header = path.read_text().split("\ncompute_environment:")[0]
    assert f"--config_file training/accelerate/{name}" in header and "training/train.py" in header
    assert "Needs:" in header


def test_no_other_accelerate_configs_are_shipped():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


def _launch_env(name: str, *extra: str) -> tuple[object, dict]:
    """The arguments and environment `accelerate launch --config_file <name>` gives the processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    argv = ["--config_file", str(CONFIGS / name), *extra, "training/train.py"]
    args, defaults, mp_from_config = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:  # as launch_command does before it calls the DeepSpeed launcher
        args.deepspeed_fields_from_accelerate_config = ",".join(
            list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else []))
        return args, prepare_deepspeed_cmd_env(args)[1]
    return args, prepare_multi_gpu_env(args)


def test_the_configs_reach_the_processes_as_train_py_reads_them():
    _, env = _launch_env("fsdp_shard_grad_op.yaml", "--num_processes", "2")
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert (env["FSDP_VERSION"], env["FSDP_AUTO_WRAP_POLICY"], env["FSDP_RESHARD_AFTER_FORWARD"],
            env["FSDP_STATE_DICT_TYPE"], env["FSDP_ACTIVATION_CHECKPOINTING"]) == \
        ("2", "NO_WRAP", "false", "FULL_STATE_DICT", "false")
    for name, offload in (("deepspeed_zero2.yaml", "none"), ("deepspeed_zero2_offload.yaml", "cpu")):
        _, env = _launch_env(name, "--num_processes", "2")
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "2"
        assert env["ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"] == offload
    args, env = _launch_env("multi_node.yaml", "--machine_rank", "1")  # the second machine's command
    assert (args.nnodes, args.nproc_per_node, args.node_rank, args.rdzv_endpoint) == ("2", "8", 1, "10.0.0.1:29500")


# --- FSDP on this machine -----------------------------------------------------------------------

@pytest.mark.integration
def test_the_fsdp_config_on_cpu_processes_trains_data_parallel_and_says_so(data, vae_runs, tmp_path):
    out = tmp_path / "cpu"
    run = _run(_launch("fsdp_shard_grad_op.yaml", 2, [*VAE, f"data={data}", f"output_dir={out}", "max_steps=2",
                                                      "batch_size=2"], ENV), ENV)
    assert "accelerate runs on GPUs only" in run.stderr and "nothing sharded" in run.stderr
    assert "in total on 2" in run.stdout and SHARDED not in run.stdout
    checkpoint = out / "checkpoint-0000002"
    assert (checkpoint / "optimizer.pt").is_file()
    assert "sharding" not in json.loads((checkpoint / "state.json").read_text())
    assert relative_gap(run_weights(vae_runs["one"], 2), run_weights(out, 2), fresh_vae_weights()) < TOLERANCE


@pytest.mark.integration
def test_two_fsdp_processes_follow_one_with_double_batch(vae_runs):
    assert SHARDED in vae_runs["log"]  # accelerate did shard: FSDP2 on 2 processes
    start = fresh_vae_weights()
    for step in (2, 4):
        gap = relative_gap(run_weights(vae_runs["one"], step), run_weights(vae_runs["fsdp"], step), start)
        assert gap < TOLERANCE, f"step {step}: FSDP ends {gap:.2%} of the training distance away"
    one = load_file(str(vae_runs["one"] / "model.safetensors"))
    fsdp = load_file(str(vae_runs["fsdp"] / "model.safetensors"))
    assert one.keys() == fsdp.keys()
    assert max(float((one[k].float() - fsdp[k].float()).abs().max()) for k in one) < 1e-3


@pytest.mark.integration
def test_an_fsdp_checkpoint_holds_the_full_tensors_and_the_gathered_optimizer_state(vae_runs):
    checkpoint = vae_runs["fsdp"] / "checkpoint-0000004"
    plain = run_weights(vae_runs["one"], 4)
    sharded = run_weights(vae_runs["fsdp"], 4)
    assert {k: (v.shape, v.dtype) for k, v in sharded.items()} == {k: (v.shape, v.dtype) for k, v in plain.items()}
    assert not (checkpoint / "optimizer.pt").exists()
    state = torch.load(checkpoint / "fsdp" / "optimizer.bin", weights_only=True)
    assert len(state["state"]) == len(plain)  # every trained tensor's Adam state, whole
    assert json.loads((checkpoint / "state.json").read_text())["sharding"] == "fsdp"
    assert sorted(p.name for p in vae_runs["fsdp"].iterdir() if p.name.startswith(".")) == []  # no partial folder left


@pytest.mark.integration
@pytest.mark.parametrize("processes", [2, 1])
def test_an_fsdp_run_resumes_from_its_checkpoint(data, vae_runs, fsdp_env, tmp_path, processes):
    out = run_from_checkpoint(vae_runs["fsdp"] / "checkpoint-0000002", tmp_path / "resumed")
    run = _run(_launch("fsdp_shard_grad_op.yaml", processes, [*VAE, f"data={data}", f"output_dir={out}",
                                                              "max_steps=4", f"batch_size={4 // processes}"],
                       fsdp_env), fsdp_env)
    assert "resumed from checkpoint-0000002 at step 2 (8 samples seen)" in run.stdout
    gap = relative_gap(run_weights(vae_runs["fsdp"], 4), run_weights(out, 4), fresh_vae_weights())
    assert gap < 1e-4, f"the resumed run ends {gap:.2%} of the training distance from the unbroken one"


@pytest.mark.integration
def test_a_plain_run_refuses_an_fsdp_checkpoint_with_the_fix(data, vae_runs, tmp_path):
    out = run_from_checkpoint(vae_runs["fsdp"] / "checkpoint-0000002", tmp_path / "plain")
    run = _run([sys.executable, "training/train.py", *VAE, f"data={data}", f"output_dir={out}", "max_steps=4",
                "batch_size=4"], ENV, ok=False)
    assert run.returncode != 0
    assert "written by an FSDP run" in run.stderr and "export_bundle.py" in run.stderr


@pytest.mark.integration
def test_fsdp_stage_2_follows_one_process_with_gradient_checkpointing(data, fsdp_env, tmp_path):
    """Stage 2 calls parts of the model directly (ReferenceNet's bank through the UNet's attention
    projections, the VAE's encoder): one FSDP unit over the whole model gathers them all."""
    from musedance_core.checkpoints.bundle import load_bundle
    from musedance_core.training.steps import named_trainable

    _run([sys.executable, "training/train.py", *STAGE2, f"data={data}", f"output_dir={tmp_path / 'one'}",
          "max_steps=2", "batch_size=4"], ENV)
    run = _run(_launch("fsdp_shard_grad_op.yaml", 2, [*STAGE2, f"data={data}", f"output_dir={tmp_path / 'fsdp'}",
                                                      "max_steps=2", "batch_size=2", "gradient_checkpointing=true"],
                       fsdp_env), fsdp_env)
    assert SHARDED in run.stdout
    model = load_bundle(ROOT / "assets/demo/musedance-demo-tiny.safetensors")
    model.enable_caption_film()
    start = {k: v.detach() for k, v in named_trainable(model, ["motion", "music", "beat", "text_encoder"]).items()}
    gap = relative_gap(run_weights(tmp_path / "one", 2), run_weights(tmp_path / "fsdp", 2), start)
    assert gap < TOLERANCE, f"FSDP ends {gap:.2%} of the training distance away"


# --- refusals before any work ------------------------------------------------------------------

def _cfg(*overrides: str):
    from musedance_core.training.config import load_train_config

    return load_train_config(ROOT / "training/configs/sd15_stage2.yaml", list(overrides))


def test_sharded_launches_refuse_what_they_cannot_run_with_the_fix(monkeypatch):
    from musedance_core.training.sharding import check_sharding_request

    monkeypatch.setenv("FSDP_VERSION", "2")
    with pytest.raises(TrainError, match="use_8bit_adam=false"):
        check_sharding_request(_cfg(), "fsdp")  # sd15_stage2.yaml asks for 8-bit Adam
    check_sharding_request(_cfg("use_8bit_adam=false"), "fsdp")
    with pytest.raises(TrainError, match="ema_decay=0"):
        check_sharding_request(_cfg("use_8bit_adam=false", "ema_decay=0.999"), "fsdp")
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP")
    with pytest.raises(TrainError, match="NO_WRAP"):
        check_sharding_request(_cfg("use_8bit_adam=false"), "fsdp")
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", "NO_WRAP")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(TrainError, match="fsdp_version: 2"):
        check_sharding_request(_cfg("use_8bit_adam=false"), "fsdp")
    check_sharding_request(_cfg(), None)  # DDP: 8-bit Adam is make_optimizer's business


def test_deepspeed_offload_refuses_8bit_adam_with_the_fix(monkeypatch, tmp_path):
    import musedance_core.training.sharding as train

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # as if deepspeed were installed
                        lambda name, *a: object() if name == "deepspeed" else find_spec(name, *a))
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none")
    train.check_sharding_request(_cfg(), "deepspeed")  # ZeRO-2 steps the 8-bit Adam of the SD 1.5 configs
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "cpu")
    with pytest.raises(TrainError, match="use_8bit_adam=false"):
        train.check_sharding_request(_cfg(), "deepspeed")
    train.check_sharding_request(_cfg("use_8bit_adam=false"), "deepspeed")
    ds_json = tmp_path / "ds.json"  # a DeepSpeed JSON config (deepspeed_config_file) decides instead
    ds_json.write_text(json.dumps({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "none"}}}))
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(ds_json))
    assert not train.deepspeed_offloads_optimizer()


def test_a_checkpoint_resumes_only_under_the_kind_of_run_that_wrote_it():
    from musedance_core.training.sharding import check_checkpoint_sharding

    check_checkpoint_sharding(Path("c"), {"processes": 2}, None, 4)  # DDP: any number of processes
    check_checkpoint_sharding(Path("c"), {"processes": 2, "sharding": "fsdp"}, "fsdp", 8)  # full optimizer state
    with pytest.raises(TrainError, match="written by an FSDP run and this is a DDP or single-process run"):
        check_checkpoint_sharding(Path("c"), {"processes": 2, "sharding": "fsdp"}, None, 2)
    with pytest.raises(TrainError, match="written by a DDP or single-process run and this is a DeepSpeed run"):
        check_checkpoint_sharding(Path("c"), {"processes": 2}, "deepspeed", 2)
    with pytest.raises(TrainError, match="--num_processes 2"):  # DeepSpeed's shards are per process
        check_checkpoint_sharding(Path("c"), {"processes": 2, "sharding": "deepspeed"}, "deepspeed", 4)


@pytest.mark.integration
def test_a_deepspeed_launch_without_deepspeed_ends_with_the_fix(data, tmp_path):
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    out = tmp_path / "ds"
    # accelerate's launcher itself stops first
    run = _run([*LAUNCH, "--config_file", str(CONFIGS / "deepspeed_zero2.yaml"), "--num_processes", "2",
                "training/train.py", *VAE, f"data={data}", f"output_dir={out}"], ENV, ok=False)
    assert run.returncode != 0 and "pip3 install deepspeed" in run.stderr
    # train.py started another way (torchrun, a cluster's launcher) with accelerate's DeepSpeed environment
    env = dict(ENV, ACCELERATE_USE_DEEPSPEED="true", ACCELERATE_DEEPSPEED_ZERO_STAGE="2")
    run = _run([sys.executable, "training/train.py", *VAE, f"data={data}", f"output_dir={out}"], env, ok=False)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines()[-1].startswith("train.py: this run was launched with a DeepSpeed config")
    assert "pip install deepspeed" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


@pytest.mark.integration
def test_8bit_adam_without_bitsandbytes_ends_with_one_line_before_any_work(data, tmp_path):
    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    out = tmp_path / "bnb"
    run = _run([sys.executable, "training/train.py", *VAE, f"data={data}", f"output_dir={out}",
                "use_8bit_adam=true"], ENV, ok=False)
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == ["train.py: use_8bit_adam needs bitsandbytes: pip install bitsandbytes "
                                               "(CUDA only), or train with --set use_8bit_adam=false."]
    assert run.stdout == ""  # nothing built, nothing printed
    assert not out.exists()
