"""Chapter 7's optimisation pieces against PyTorch's own schedulers, clipping and AdamW."""

from __future__ import annotations

import pytest
import torch

from lmkit import grading
from lmkit.optim import AdamW, param_groups
from solutions.optim import adamw_step, clip_grad_norm_, cosine_lr


@pytest.mark.parametrize("warmup, total", [(10, 100), (1, 20), (5, 6)])
def test_cosine_lr_matches_torch_schedulers(warmup, total):
    max_lr, min_lr = 0.5, 0.05
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1)
            ),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr),
        ],
        milestones=[warmup],
    )
    for step in range(total + 1):
        want = opt.param_groups[0]["lr"]
        got = cosine_lr(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup, max_steps=total)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), step
        opt.step()
        sched.step()
    assert (
        cosine_lr(10 * total, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup, max_steps=total)
        == min_lr
    )


def test_cosine_lr_without_warmup_and_without_decay():
    assert cosine_lr(0, max_lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=10) == 1.0
    assert cosine_lr(3, max_lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=4) == 1.0
    assert cosine_lr(4, max_lr=1.0, min_lr=0.1, warmup_steps=4, max_steps=4) == 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scale, max_norm", [(3.0, 1.0), (0.01, 1.0), (1.0, 0.0)])
def test_clip_matches_torch(dtype, scale, max_norm):
    torch.manual_seed(0)
    shapes = [(7, 3), (3,), (2, 5)]
    mine = [torch.nn.Parameter(torch.randn(s, dtype=dtype)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in mine]
    for p, q in zip(mine, theirs, strict=True):
        p.grad = (torch.randn(p.shape) * scale).to(dtype)
        q.grad = p.grad.clone()
    mine.append(torch.nn.Parameter(torch.ones(2)))  # no grad: skipped
    got = clip_grad_norm_(mine, max_norm)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert torch.allclose(got.float(), want.float(), rtol=1e-3)
    for p, q in zip(mine, theirs, strict=False):
        assert torch.allclose(p.grad.float(), q.grad.float(), rtol=1e-2, atol=1e-3)


def test_adamw_class_matches_torch_over_a_training_run():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 2))
    twin.load_state_dict(model.state_dict())
    grading.use_reference("7.3")
    ours = AdamW(param_groups(model, 0.1), lr=3e-3, betas=(0.9, 0.95))
    torchs = torch.optim.AdamW(param_groups(twin, 0.1), lr=3e-3, betas=(0.9, 0.95))
    x, y = torch.randn(32, 6), torch.randn(32, 2)
    for _ in range(25):
        for m, opt in [(model, ours), (twin, torchs)]:
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)
    # Same state names as torch, so checkpoints are interchangeable.
    assert set(ours.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}


def test_adamw_step_first_update_is_lr_times_sign():
    # With bias correction the first Adam step moves each weight by ≈ lr·sign(g).
    p = torch.tensor([1.0, -2.0, 3.0])
    g = torch.tensor([0.5, -4.0, 1e-3])
    adamw_step([p], [g], [torch.zeros(3)], [torch.zeros(3)], 1, lr=0.1, weight_decay=0.0)
    assert torch.allclose(p, torch.tensor([0.9, -1.9, 2.9]), atol=1e-4)


def test_adamw_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="invalid AdamW"):
        AdamW([torch.nn.Parameter(torch.zeros(1))], lr=-1)


def test_param_groups_decay_matrices_only_and_count_tied_once():
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = torch.nn.ModuleDict(
        {"emb": emb, "norm": torch.nn.LayerNorm(4), "head": head, "fc": torch.nn.Linear(4, 4)}
    )
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {p.dim() for p in decay["params"]} == {2} and len(decay["params"]) == 2
    assert {p.dim() for p in no_decay["params"]} == {1} and len(no_decay["params"]) == 3


@pytest.mark.usefixtures("reference_solutions")
def test_set_cosine_lr_sets_every_group_to_chapter_7s_rate():
    from lmkit.optim import set_cosine_lr

    w = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    opt = torch.optim.SGD([{"params": w[:1]}, {"params": w[1:]}], lr=0.0)
    for step in (0, 4, 9, 50):
        rate = set_cosine_lr(opt, step, lr=1e-3, warmup_steps=5, max_steps=50)
        want = cosine_lr(step, max_lr=1e-3, min_lr=1e-4, warmup_steps=5, max_steps=50)
        assert rate == pytest.approx(want)
        assert [g["lr"] for g in opt.param_groups] == [rate, rate]
    set_cosine_lr(opt, 0, lr=1e-3, warmup_steps=100, max_steps=10)  # warmup capped
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
