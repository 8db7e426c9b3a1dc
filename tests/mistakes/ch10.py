"""Plausible wrong answers to chapter 10's exercises (mean_pool, LoRALinear.forward,
add_lora), and the hint each check must give.

They are built from plain torch and ``lmkit.finetune.LoRALinear``'s constructor (never its
forward, the Exercise 10.2 stub), so each one is wrong in exactly one way.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.finetune import LoRALinear
from solutions.finetune import mean_pool as ref_mean_pool

# ---------------------------------------------------------------------- 10.1 mean_pool


def _shapes(hidden, padding_mask):
    if hidden.dim() != 3 or padding_mask.shape != hidden.shape[:2]:
        raise ValueError("expected hidden (B, T, C) and padding_mask (B, T)")


def _plain_mean(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    return hidden.mean(dim=1)


def _divide_by_t(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / hidden.shape[1]


def _padding_in_sum(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    count = padding_mask.to(hidden.dtype).sum(1, keepdim=True).clamp(min=1)
    return hidden.sum(1) / count


def _nan_on_empty(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum(1)


def _where_after_dividing(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    count = w.sum(1)
    return torch.where(count > 0, (hidden * w).sum(1) / count, torch.zeros_like(count))


def _count_plus_one(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / (w.sum(1) + 1)


def _inverted(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    return ref_mean_pool(hidden, ~padding_mask.bool())


def _no_unsqueeze(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype)
    return (hidden * w).sum(1) / w.sum(1, keepdim=True).clamp(min=1)  # (B,T,C) * (B,T)


def _mask_as_index(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    rows = []
    for b in range(hidden.shape[0]):
        real = hidden[b][padding_mask[b]]  # an index, unless the mask is bool
        rows.append(real.mean(0) if len(real) else hidden.new_zeros(hidden.shape[-1]))
    return torch.stack(rows)


def _zero_in_place(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    keep = padding_mask.bool()
    hidden[~keep] = 0.0
    return hidden.sum(1) / keep.sum(1, keepdim=True).clamp(min=1)


def _no_shape_check(hidden, padding_mask):
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(-2) / w.sum(-2).clamp(min=1)


# ------------------------------------------------------------ 10.2 LoRALinear.forward


def _update(self, x):
    return (self.dropout(x) @ self.A.T) @ self.B.T


def _scale_by_alpha(self, x):
    return self.base(x) + self.alpha * _update(self, x)


def _no_scaling(self, x):
    return self.base(x) + _update(self, x)


def _no_bias(self, x):
    return x @ self.base.weight.T + self.scaling * _update(self, x)


def _update_only(self, x):
    return self.scaling * _update(self, x)


def _b_then_a(self, x):
    return self.base(x) + self.scaling * (self.dropout(x) @ self.B) @ self.A


def _dropout_on_base_too(self, x):
    x = self.dropout(x)
    return self.base(x) + self.scaling * (x @ self.A.T) @ self.B.T


def _no_dropout(self, x):
    return self.base(x) + self.scaling * (x @ self.A.T) @ self.B.T


def _dropout_always_on(self, x):
    d = F.dropout(x, self.dropout.p, training=True)
    return self.base(x) + self.scaling * (d @ self.A.T) @ self.B.T


def _dropout_on_update(self, x):
    return self.base(x) + self.scaling * self.dropout((x @ self.A.T) @ self.B.T)


def _dense_update(self, x):
    delta = self.scaling * self.B @ self.A  # (out, in): the matrix LoRA avoids
    return self.base(x) + self.dropout(x) @ delta.T


def _detached(self, x):
    return self.base(x) + self.scaling * (self.dropout(x) @ self.A.data.T) @ self.B.data.T


def _flattened(self, x):
    x2 = x.reshape(-1, x.shape[-1])
    return self.base(x2) + self.scaling * (self.dropout(x2) @ self.A.T) @ self.B.T


# ----------------------------------------------------------------------- 10.3 add_lora


def _replace(model, name, new):
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, new)


def _add_lora(
    model,
    targets,
    *,
    r=8,
    alpha=16.0,
    dropout=0.0,
    freeze="first",
    match="suffix",
    wrap="original",
    order="modules",
    where="parent",
    raise_empty=True,
    linear_only=True,
    settings=True,
):
    """The reference procedure with one of the usual mistakes switched on."""
    if freeze == "first":
        model.requires_grad_(False)
    tests = {
        "suffix": lambda n, t: n.endswith(t),
        "contains": lambda n, t: t in n,
        "last": lambda n, t: n.split(".")[-1] == t,
    }[match]
    modules = list(model.named_modules())

    def ok(m):
        return isinstance(m, nn.Linear) or not linear_only

    if order == "modules":
        chosen = [n for n, m in modules if ok(m) and any(tests(n, t) for t in targets)]
    else:  # one pass per target
        chosen = [n for t in targets for n, m in modules if ok(m) and tests(n, t)]
    if not chosen and raise_empty:
        raise ValueError(f"nothing matches {targets}")
    kw = dict(r=r, alpha=alpha, dropout=dropout) if settings else {}
    for name in chosen:
        old = model.get_submodule(name)
        if wrap == "new":
            old = nn.Linear(old.in_features, old.out_features, bias=old.bias is not None)
        elif wrap == "copy":
            old = copy.deepcopy(old)
        new = LoRALinear(old, **kw)
        if where == "parent":
            _replace(model, name, new)
        elif where == "model":
            setattr(model, name, new)
        else:  # rsplit, which fails for a direct child of the model
            parent, child = name.rsplit(".", 1)
            setattr(model.get_submodule(parent), child, new)
    if freeze == "last":
        model.requires_grad_(False)
    return chosen


def _lora_variant(**flags):
    def impl(model, targets, *, r=8, alpha=16.0, dropout=0.0):
        return _add_lora(model, targets, r=r, alpha=alpha, dropout=dropout, **flags)

    return impl


def _returns_nothing(model, targets, *, r=8, alpha=16.0, dropout=0.0):
    _add_lora(model, targets, r=r, alpha=alpha, dropout=dropout)


MISTAKES = {
    "10.1": [
        ("plain mean over T", _plain_mean, "must not enter the sum nor the count"),
        ("divides by T", _divide_by_t, "not by T"),
        ("padding vectors in the sum", _padding_in_sum, "must not enter the sum: multiply"),
        ("NaN for an all-padding row", _nan_on_empty, "not NaN"),
        ("torch.where after dividing by 0", _where_after_dividing, "still lets the 0/0"),
        ("count + 1", _count_plus_one, "do not add 1"),
        ("mask inverted", _inverted, "True for the real tokens"),
        ("mask without unsqueeze(-1)", _no_unsqueeze, "unsqueeze(-1), so that it broadcasts"),
        ("0/1 mask used as an index", _mask_as_index, "0/1 integer tensor used as an index"),
        ("zeroes padding in hidden in place", _zero_in_place, "modified its inputs in place"),
        ("no shape check", _no_shape_check, "raise a ValueError"),
    ],
    "10.2": [
        ("scaled by alpha", _scale_by_alpha, "alpha / r (self.scaling), not alpha"),
        ("no scaling", _no_scaling, "yours has no factor"),
        ("x @ W.T without the bias", _no_bias, "(and its bias)"),
        ("update only, no base output", _update_only, "does not replace it"),
        ("B before A", _b_then_a, "multiply by A.T first, then B.T"),
        ("dropout on the base input too", _dropout_on_base_too, "low-rank branch only"),
        ("no dropout", _no_dropout, "nothing was dropped"),
        ("dropout on in eval mode", _dropout_always_on, "dropout is on in eval mode"),
        ("dropout on the update", _dropout_on_update, "not to an intermediate or to its output"),
        ("dense B @ A", _dense_update, "never form the (out, in) matrix"),
        ("A and B through .data", _detached, "keep the update in autograd"),
        ("flattens x to 2-D", _flattened, "any leading dimensions"),
    ],
    "10.3": [
        ("does not freeze the model", _lora_variant(freeze="none"), "freeze every parameter"),
        ("freezes after replacing", _lora_variant(freeze="last"), "before inserting"),
        ("matches with `target in name`", _lora_variant(match="contains"), "by their ending"),
        ("matches the last part only", _lora_variant(match="last"), "by their ending"),
        ("wraps a new nn.Linear", _lora_variant(wrap="new"), "wrap the original layer"),
        ("wraps a copy", _lora_variant(wrap="copy"), "a copy with the same weights"),
        ("one pass per target", _lora_variant(order="targets"), "named_modules() order"),
        ("setattr on the model with a dotted name", _lora_variant(where="model"),
         "replace the layer in its parent module"),
        ("rsplit fails for a direct child", _lora_variant(where="rsplit"), "direct child"),
        ("no ValueError", _lora_variant(raise_empty=False), "raise ValueError when nothing"),
        ("no nn.Linear test", _lora_variant(linear_only=False), "only nn.Linear layers"),
        ("r, alpha, dropout not passed on", _lora_variant(settings=False), "pass r, alpha"),
        ("returns nothing", _returns_nothing, "return the list"),
    ],
}  # fmt: skip
