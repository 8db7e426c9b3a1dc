"""The Trainer: exact resumption, atomic checkpoints, non-finite losses, data parallelism,
and the command line's errors. Small synthetic data; the reference exercises."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmkit import grading
from lmkit.model import GPTConfig
from lmkit.train import EarlyStopping, TrainConfig, Trainer, main

ROOT = Path(__file__).resolve().parents[1]


# The model runs on the reference exercises here (the fixture is in tests/conftest.py).
pytestmark = pytest.mark.usefixtures("reference_solutions")


def _data(n=5000, vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    # A learnable stream: mostly "next = previous + 1", with some noise.
    ids = torch.randint(vocab, (n,), generator=g)
    ids[1::2] = (ids[0::2] + 1) % vocab
    return ids[: int(0.9 * n)], ids[int(0.9 * n) :]


def _config(tmp_path, **kw) -> TrainConfig:
    model = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1)
    base = TrainConfig(
        model=model,
        batch_size=4,
        max_steps=12,
        warmup_steps=2,
        max_lr=3e-3,
        min_lr=3e-4,
        eval_interval=6,
        eval_iters=2,
        device="cpu",
        dtype="fp32",
        out_dir=str(tmp_path / "run"),
        seed=3,
    )
    return dataclasses.replace(base, **kw)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    train, val = _data()
    straight = Trainer(_config(tmp_path / "a"), train, val, progress=False)
    straight.fit()

    first = Trainer(
        _config(tmp_path / "b", max_steps=12, checkpoint_interval=5), train, val, progress=False
    )
    for _ in range(5):
        first.train_step()
    first.save_checkpoint(first.ckpt_path)
    resumed = Trainer(_config(tmp_path / "b"), train, val, resume=True, progress=False)
    assert resumed.step == 5
    resumed.fit()
    assert resumed.history["loss"] == straight.history["loss"]  # bit-for-bit, dropout too
    for p, q in zip(resumed.model.parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_checkpoints_are_atomic_and_load_with_weights_only(tmp_path):
    train, val = _data()
    trainer = Trainer(_config(tmp_path), train, val, progress=False)
    trainer.fit()
    folder = Path(trainer.config.out_dir)
    assert (folder / "ckpt.pt").exists()
    assert not list(folder.glob("*.part")), "no temporary files left behind"
    state = torch.load(folder / "ckpt.pt", weights_only=True)
    assert state["step"] == 12 and set(state["model"]) == set(trainer.model.state_dict())

    class Boom(RuntimeError):
        pass

    def explode(*args, **kwargs):
        raise Boom

    before = (folder / "ckpt.pt").read_bytes()
    original = torch.save
    torch.save = explode
    try:
        with pytest.raises(Boom):
            trainer.save_checkpoint(folder / "ckpt.pt")
    finally:
        torch.save = original
    assert (folder / "ckpt.pt").read_bytes() == before, "a failed save must not touch the file"
    assert not list(folder.glob("*.part"))


def test_resume_refuses_another_model(tmp_path):
    train, val = _data()
    Trainer(_config(tmp_path), train, val, progress=False).fit()
    other = _config(tmp_path)
    other = dataclasses.replace(other, model=dataclasses.replace(other.model, n_embd=64))
    with pytest.raises(ValueError, match="different model"):
        Trainer(other, train, val, resume=True, progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(_config(tmp_path / "empty"), train, val, resume=True, progress=False)


def test_non_finite_loss_stops_with_the_step(tmp_path):
    train, val = _data()
    trainer = Trainer(_config(tmp_path), train, val, progress=False)
    trainer.train_step()
    with torch.no_grad():
        trainer.model.ln_f.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="at step 1"):
        trainer.train_step()


def test_gradient_accumulation_matches_a_bigger_batch(tmp_path):
    train, val = _data()
    cfg = _config(tmp_path, max_steps=4)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.0))
    big = Trainer(dataclasses.replace(cfg, batch_size=8), train, val, progress=False)
    acc = Trainer(dataclasses.replace(cfg, batch_size=4, grad_accum=2), train, val, progress=False)
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randint(20, (8, 16), generator=g), torch.randint(20, (8, 16), generator=g))
        for _ in range(3)
    ]
    halves = iter([(x[i : i + 4], y[i : i + 4]) for x, y in batches for i in (0, 4)])
    whole = iter(batches)
    big._micro_batch = lambda: next(whole)
    acc._micro_batch = lambda: next(halves)
    for _ in range(3):
        assert big.train_step() == pytest.approx(acc.train_step(), rel=1e-5)
    assert big.history["grad_norm"] == pytest.approx(acc.history["grad_norm"], rel=1e-4)
    # Adam divides by √v: a gradient entry near zero turns float rounding into visible
    # (but tiny, ≪ lr) differences, hence the absolute tolerance.
    for p, q in zip(big.model.parameters(), acc.model.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-4)


def test_early_stopping(tmp_path):
    train, val = _data()
    cfg = _config(tmp_path, max_steps=400, eval_interval=2, patience=1, max_lr=0.3, warmup_steps=0)
    trainer = Trainer(cfg, train, val, progress=False)
    trainer.fit()
    assert trainer.step < 400
    assert (Path(cfg.out_dir) / "best.pt").exists()


DDP_SCRIPT = """
import json, os, sys, torch
from lmkit.model import GPTConfig
from lmkit.train import TrainConfig, Trainer
g = torch.Generator().manual_seed(0)
ids = torch.randint(20, (4000,), generator=g)
model = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=32)
world = int(os.environ.get("WORLD_SIZE", "1"))
cfg = TrainConfig(model=model, batch_size=8 // world, max_steps=5, warmup_steps=1,
                  eval_interval=100, eval_iters=1, device="cpu", dtype="fp32",
                  out_dir=sys.argv[1], seed=5)
t = Trainer(cfg, ids[:3600], ids[3600:], progress=False)
for _ in range(5):
    t.train_step()
if t.rank == 0:
    json.dump(t.history["loss"], open(sys.argv[2], "w"))
if world > 1:
    torch.distributed.destroy_process_group()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="gloo over torchrun on Linux/macOS")
def test_two_processes_follow_the_one_process_trajectory(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, grading.ENV_VAR: "all", "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "r1"), str(tmp_path / "one.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path / "r2"),
            str(tmp_path / "two.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    import json

    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert a == pytest.approx(b, rel=1e-5)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "huge"], "unknown preset"),
        (["--preset", "ci", "--device", "tpu"], "unknown device"),
        (["--preset", "ci", "n_layers=3"], "unknown setting 'n_layers'"),
        (["--preset", "ci", "max_steps=many"], "max_steps='many'"),
        (["--preset", "ci", "max_steps"], "key=value"),
        (["--preset", "ci", "max_steps=10"], "warmup_steps (30) must be between 0 and"),
        (["--preset", "ci", "min_lr=1"], "min_lr"),
        (["--preset", "ci", "dtype=fp8"], "dtype"),
    ],
)
def test_cli_rejects_bad_input(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cuda_request_without_cuda_is_a_clear_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        main(["--preset", "ci", "--device", "cuda"])
    assert "not available" in capsys.readouterr().err


def test_mixed_precision_is_refused_on_cpu(tmp_path):
    train, val = _data()
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(_config(tmp_path, dtype="bf16"), train, val, progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_training_on_cuda(tmp_path):
    train, val = _data()
    trainer = Trainer(_config(tmp_path, device="cuda", dtype="auto"), train, val, progress=False)
    trainer.fit()
    assert trainer.dtype in (torch.bfloat16, torch.float16)
    assert trainer.history["val_loss"][-1] < trainer.history["val_loss"][0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_code_path_on_cpu(tmp_path, monkeypatch, dtype):
    """CI has no GPU, but CPU autocast runs the same code: autocast in training and
    evaluation, and for fp16 the GradScaler (scale, unscale before clipping, skipped steps,
    its state in the checkpoint and back on resume)."""
    monkeypatch.setattr(Trainer, "_resolve_dtype", lambda self, name: dtype)
    train, val = _data()
    cfg = _config(tmp_path, max_steps=8, eval_interval=4)
    trainer = Trainer(cfg, train, val, progress=False)
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)
    trainer.fit()
    assert all(math.isfinite(x) for x in trainer.history["loss"])
    assert trainer.history["val_loss"][-1] < trainer.history["val_loss"][0]
    # The gradient norm is measured after unscaling: it must not carry the 2^16 scale.
    assert max(trainer.history["grad_norm"]) < 100
    resumed = Trainer(dataclasses.replace(cfg, max_steps=10), train, val, resume=True)
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()
    resumed.progress = False
    resumed.fit()
    assert resumed.step == 10


def test_target_loss_stops_the_run_and_times_it(tmp_path):
    train, val = _data()
    probe = Trainer(_config(tmp_path / "probe", eval_interval=2), train, val, progress=False)
    probe.fit()
    target = probe.history["val_loss"][2]  # what the run reaches at step 6
    cfg = _config(tmp_path, eval_interval=2, target_loss=target)
    trainer = Trainer(cfg, train, val, progress=False)
    trainer.fit()
    assert trainer.reached_target == trainer.step == 6
    seconds = trainer.history["train_seconds"]
    assert len(seconds) == 3 and 0 < seconds[0] < seconds[1] < seconds[2]
    state = torch.load(Path(cfg.out_dir) / "ckpt.pt", weights_only=True)
    assert state["train_seconds"] == trainer.train_seconds


# Early stopping, on its own.


def test_early_stopping_waits_for_patience_and_keeps_the_best():
    stopper = EarlyStopping(patience=2)
    losses = [3.0, 2.0, 2.5, 1.5, 1.6, 1.7]
    stops = [stopper.step(x) for x in losses]
    assert stops == [False, False, False, False, False, True]
    assert stopper.best == 1.5 and stopper.best_step == 3
    assert not stopper.improved


def test_min_delta_and_non_finite():
    stopper = EarlyStopping(patience=1, min_delta=0.1)
    assert not stopper.step(1.0)
    assert stopper.step(0.95)  # not better by more than 0.1
    assert EarlyStopping().step(math.nan)


@pytest.mark.parametrize("kw", [dict(patience=0), dict(min_delta=-1)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        EarlyStopping(**kw)
