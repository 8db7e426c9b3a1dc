"""Plausible wrong answers to chapter 10's exercises (mean_pool, LoRALinear.forward,
add_lora), and the hint each check must give.

They are built from plain torch and ``lmkit.finetune.LoRALinear``'s constructor (never its
forward, the Exercise 10.2 stub), so each one is wrong in exactly one way.
"""

from __future__ import annotations

import copy

import numpy as np
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


def _sum_only(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    return (hidden * padding_mask.to(hidden.dtype).unsqueeze(-1)).sum(1)


def _keepdim(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1)  # (B, 1, C)


def _in_float64(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.double().unsqueeze(-1)  # "for accuracy": the result is float64 too
    return (hidden * w).sum(1) / w.sum(1).clamp(min=1)


def _through_numpy(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    h, m = hidden.detach().numpy(), padding_mask.bool().numpy()
    rows = [
        h[b][m[b]].mean(0) if m[b].any() else np.zeros(h.shape[-1], h.dtype) for b in range(len(h))
    ]
    return torch.from_numpy(np.stack(rows))


def _batch_count(hidden, padding_mask):
    _shapes(hidden, padding_mask)
    w = padding_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * w).sum(1) / w.sum().clamp(min=1)  # the whole batch's count, not each row's


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


def _r_over_alpha(self, x):
    return self.base(x) + (self.r / self.alpha) * _update(self, x)


def _base_only(self, x):
    return self.base(x)


def _scales_everything(self, x):
    return self.scaling * (self.base(x) + _update(self, x))


def _aliased_scaling(self, x):
    h = x  # not a copy: the in-place product below changes the caller's x
    h *= self.scaling
    return self.base(x) + (self.dropout(h) @ self.A.T) @ self.B.T


@torch.no_grad()  # "the base is frozen anyway"
def _under_no_grad(self, x):
    return self.base(x) + self.scaling * _update(self, x)


def _detaches_x(self, x):
    x = x.detach()  # "nothing below needs it"
    return self.base(x) + self.scaling * _update(self, x)


def _detaches_x_in_branch(self, x):
    return self.base(x) + self.scaling * (self.dropout(x.detach()) @ self.A.T) @ self.B.T


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
    first_per_target=False,
    random_b=False,
    returns="names",
    reset_linears=False,
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

    if first_per_target:  # a `break` after the first match of each target
        chosen = []
        for t in targets:
            for n, m in modules:
                if ok(m) and tests(n, t):
                    chosen.append(n)
                    break
        chosen = [n for n, _ in modules if n in chosen]
    elif order == "modules":
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
        if random_b:  # "so that the adapter starts learning at once"
            nn.init.normal_(new.B, std=0.02)
        if where == "parent":
            _replace(model, name, new)
        elif where == "rebuild":  # a new nn.Sequential in place of the old one
            parent, _, child = name.rpartition(".")
            holder = model.get_submodule(parent)
            if isinstance(holder, nn.Sequential):
                kids = [new if k == child else m for k, m in holder.named_children()]
                _replace(model, parent, nn.Sequential(*kids))
            else:
                _replace(model, name, new)
        elif where == "model":
            setattr(model, name, new)
        else:  # rsplit, which fails for a direct child of the model
            parent, child = name.rsplit(".", 1)
            setattr(model.get_submodule(parent), child, new)
    if freeze == "last":
        model.requires_grad_(False)
    if reset_linears:  # "initialise the new layers": resets every nn.Linear, pre-trained ones too
        model.apply(lambda m: m.reset_parameters() if isinstance(m, nn.Linear) else None)
    return list(targets) if returns == "targets" else chosen


def _lora_variant(**flags):
    def impl(model, targets, *, r=8, alpha=16.0, dropout=0.0):
        return _add_lora(model, targets, r=r, alpha=alpha, dropout=dropout, **flags)

    return impl


def _returns_nothing(model, targets, *, r=8, alpha=16.0, dropout=0.0):
    _add_lora(model, targets, r=r, alpha=alpha, dropout=dropout)


MISTAKES = {
    "10.1": [
        ("plain mean over T", _plain_mean, "must not enter the sum nor the count"),
        ("divides by T", _divide_by_t, "divide by the number of real tokens, not by T"),
        ("padding vectors in the sum", _padding_in_sum, "must not enter the sum: multiply"),
        ("NaN for an all-padding row", _nan_on_empty, "an all-padding row must give zeros, not NaN"),
        ("torch.where after dividing by 0", _where_after_dividing, "still lets the 0/0"),
        ("count + 1", _count_plus_one, "do not add 1"),
        ("mask inverted", _inverted, "True for the real tokens"),
        ("mask without unsqueeze(-1)", _no_unsqueeze, "unsqueeze(-1), so that it broadcasts"),
        ("0/1 mask used as an index", _mask_as_index, "0/1 integer tensor used as an index"),
        ("zeroes padding in hidden in place", _zero_in_place, "hidden was modified in place"),
        ("no shape check", _no_shape_check, "a (T,) mask would silently broadcast"),
        ("the sum, not the mean", _sum_only, "that is their sum, not their mean"),
        ("keepdim=True", _keepdim, "one vector per sequence: sum and count over the time"),
        ("in float64", _in_float64, "turn the mask into weights of hidden's dtype"),
        ("through numpy", _through_numpy, "no .item(), numpy or .detach()"),
        ("one count for the whole batch", _batch_count, "sum hidden over the real tokens"),
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
        ("A and B through .data", _detached, "self.A itself (no .data"),
        ("flattens x to 2-D", _flattened, "any leading dimensions"),
        ("scaled by r / alpha", _r_over_alpha, "not r / alpha"),
        ("the base layer only", _base_only, "the low-rank update is missing"),
        ("scales the base output too", _scales_everything, "self.base(x) + self.scaling * (self.dropout(x)"),
        ("scales x in place through an alias", _aliased_scaling, "(no in-place ops on x)"),
        ("forward under torch.no_grad()", _under_no_grad, "the output does not require a gradient"),
        ("detaches x", _detaches_x, "the gradient must flow back to x through both branches"),
        ("detaches x in the low-rank branch", _detaches_x_in_branch, "do not detach x in the low-rank"),
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
        ("only the first match of each target", _lora_variant(first_per_target=True),
         "every nn.Linear whose name ends with one of the targets is replaced"),
        ("rebuilds the nn.Sequential", _lora_variant(where="rebuild"), "change the model in place"),
        ("random B", _lora_variant(random_b=True), "B starts at zero"),
        ("resets every nn.Linear", _lora_variant(reset_linears=True), "the pre-trained"),
        ("returns the targets", _lora_variant(returns="targets"), "return the full names"),
    ],
}  # fmt: skip
