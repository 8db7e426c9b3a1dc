"""Chapter 10 — fine-tuning: a classifier on top of a pre-trained encoder, frozen features,
and low-rank adaptation (LoRA); training stopped early on a validation set
(:func:`fine_tune`, :func:`train_lm`), and the bag-of-words logistic regression that every
neural classifier is compared with (:class:`BagOfWords`, :func:`fit_logistic_regression`).

Exercises 10.1–10.3 live here: :func:`mean_pool`, :meth:`LoRALinear.forward` and
:func:`add_lora`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lmkit.grading import exercise

__all__ = [
    "BagOfWords",
    "LoRALinear",
    "SequenceClassifier",
    "add_lora",
    "count_trainable",
    "encode_sentences",
    "fine_tune",
    "fit_logistic_regression",
    "load_reviews_gpt",
    "mean_pool",
    "predict",
    "sentence_lm_loss",
    "standard_error",
    "train_lm",
]


@exercise("10.1")
def mean_pool(hidden: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the vectors of the *real* tokens of each sequence.

    Args:
        hidden: ``(B, T, C)`` vectors, e.g. an encoder's output.
        padding_mask: ``(B, T)`` bool (or 0/1), True for real tokens, False for padding.

    Returns:
        ``(B, C)``: for each sequence, the sum of ``hidden[b, t]`` over its real tokens
        divided by their number. Padding vectors must not count in the sum *or* in the
        number. A sequence with no real token gives a vector of zeros (not NaN).
        ``ValueError`` if the shapes do not fit together.
    """
    raise NotImplementedError(
        "Exercise 10.1: zero the padding vectors, sum over T, divide by the number of real "
        "tokens (at least 1)"
    )


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (Hu et al., 2021).

    ``y = base(x) + (alpha / r) · B A x``, with ``A`` of shape ``(r, in_features)`` and
    ``B`` of shape ``(out_features, r)``. ``A`` starts random and ``B`` at zero, so at first
    the layer computes exactly what ``base`` does; training moves only ``A`` and ``B``:
    ``r · (in + out)`` numbers instead of ``in · out``.

    Args:
        base: the pre-trained layer; its parameters are frozen (``requires_grad=False``).
        r: the rank of the update.
        alpha: the update is scaled by ``alpha / r``, so that changing ``r`` does not
            change the size of the initial steps (the paper's convention).
        dropout: dropout on the input of the low-rank branch (training only).
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if r < 1:
            raise ValueError(f"the rank r must be ≥ 1, got {r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.A = nn.Parameter(torch.empty(r, base.in_features, **like))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # as nn.Linear initialises weights
        self.dropout = nn.Dropout(dropout)

    @exercise("10.2")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self.base(x) + self.scaling · (self.dropout(x) @ A.T) @ B.T``.

        Args:
            x: ``(..., in_features)``.

        Returns:
            ``(..., out_features)``. Multiply by ``A.T`` first, then by ``B.T``: the
            ``(out, in)`` matrix ``B @ A`` is never formed, which is the point of a
            low-rank update (``r · (in + out)`` multiply-adds per token instead of
            ``in · out``).
        """
        raise NotImplementedError(
            "Exercise 10.2: base(x) plus scaling times dropout(x) through A.T, then B.T"
        )

    def merged(self) -> nn.Linear:
        """An ``nn.Linear`` with ``W + scaling · B A``: the same function, no extra cost."""
        base = self.base
        out = nn.Linear(
            base.in_features,
            base.out_features,
            bias=base.bias is not None,
            device=base.weight.device,
            dtype=base.weight.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(base.weight + self.scaling * self.B @ self.A)
            if base.bias is not None:
                out.bias.copy_(base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


@exercise("10.3")
def add_lora(
    model: nn.Module,
    targets: tuple[str, ...],
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze ``model`` and put a :class:`LoRALinear` around some of its linear layers.

    1. Freeze every parameter of ``model`` (``requires_grad_(False)``).
    2. For every submodule that is an ``nn.Linear`` and whose name (as in
       ``model.named_modules()``, e.g. ``"blocks.0.attn.qkv"``) ends with one of
       ``targets`` (e.g. ``("attn.qkv", "attn.proj")``), replace it in its parent module by
       ``LoRALinear(that_linear, r=r, alpha=alpha, dropout=dropout)``. Its ``A`` and ``B``
       are then the only trainable parameters.

    Args:
        model: any module (the encoder of a classifier, a GPT…); changed in place.
        targets: name endings that select the layers to adapt.

    Returns:
        The names of the replaced layers, in ``named_modules()`` order.

    Raises:
        ValueError: if no ``nn.Linear`` matches ``targets`` (a typo would otherwise silently
            train nothing).
    """
    raise NotImplementedError(
        "Exercise 10.3: freeze all parameters, then swap each matching nn.Linear for a "
        "LoRALinear in its parent (model.get_submodule + setattr)"
    )


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


class SequenceClassifier(nn.Module):
    """A pre-trained model with a classification head: ``(B, T) ids → (B, n_classes)``.

    The body is a :class:`~lmkit.model.GPT` or a :class:`~lmkit.bert.BERT`; the head is
    dropout and one linear layer on a *pooled* vector of the sequence:

    - ``"mean"``: the mean of the vectors of the real tokens (:func:`mean_pool`);
    - ``"last"``: the vector of the last real token — in a GPT the only one that has read
      the whole sequence (GPT-1's choice);
    - ``"cls"``: BERT's pooled ``[CLS]`` vector (``body.pool``).

    The head starts with small weights, so training starts from near-uniform predictions.
    """

    def __init__(
        self, body: nn.Module, n_classes: int, *, pooling: str = "mean", dropout: float = 0.1
    ) -> None:
        super().__init__()
        from lmkit.model import GPT

        if pooling not in ("mean", "last", "cls"):
            raise ValueError(f"pooling must be 'mean', 'last' or 'cls', got {pooling!r}")
        if pooling == "cls" and isinstance(body, GPT):
            raise ValueError("a GPT has no [CLS] token: use pooling='mean' or 'last'")
        self.body, self.pooling, self.causal = body, pooling, isinstance(body, GPT)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(body.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled vector ``(B, C)`` of each sequence; padding only at the end."""
        if padding_mask is None:
            padding_mask = torch.ones_like(idx, dtype=torch.bool)
        if self.causal:  # padding after the text is never attended to: no mask needed
            h = self.body.encode(idx)
        else:
            h = self.body.encode(idx, None, padding_mask)
        if self.pooling == "mean":
            return mean_pool(h, padding_mask)
        if self.pooling == "last":
            last = padding_mask.long().sum(1).clamp(min=1) - 1  # (B,) index of the last token
            return h[torch.arange(len(idx), device=idx.device), last]
        return self.body.pool(h)

    def forward(self, idx: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.features(idx, padding_mask)))


ASSETS = Path(__file__).parent / "assets"


def load_reviews_gpt(folder: str | Path = ASSETS):
    """The small GPT pre-trained on IMDB reviews for chapter 10, and its tokenizer.

    Made by ``scripts/pretrain_reviews.py`` and shipped with the course (3.7 MB): no
    download. Returns ``(model, tokenizer)``; the model is in ``eval()`` mode.
    """
    from lmkit.model import GPT, GPTConfig
    from lmkit.tokenizers import BPETokenizer

    folder = Path(folder)
    state = torch.load(folder / "reviews_gpt.pt", map_location="cpu", weights_only=True)
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), BPETokenizer.load(folder / "reviews_bpe.json")


# --- Training and evaluation on labelled sentences (chapter 10 and scripts/finetune_baselines.py)


def encode_sentences(
    tokenizer, rows: Sequence[tuple[str, int]], block_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(text, label)`` rows → ``(idx (N, T), padding_mask (N, T), labels (N,))``.

    Each text is written as the pre-training corpus was (:func:`lmkit.data.normalise_review`),
    encoded, cut to ``block_size`` tokens and padded at the end with the tokenizer's
    ``<|pad|>``; ``padding_mask`` is True on the real tokens.
    """
    from lmkit.data import normalise_review

    pad = tokenizer.special_tokens["<|pad|>"]
    idx = torch.full((len(rows), block_size), pad)
    mask = torch.zeros((len(rows), block_size), dtype=torch.bool)
    for b, (text, _) in enumerate(rows):
        ids = tokenizer.encode(normalise_review(text))[:block_size]
        idx[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[b, : len(ids)] = True
    return idx, mask, torch.tensor([label for _, label in rows])


def _chunks(mask: torch.Tensor, batch_size: int):
    """Row slices of ``batch_size`` and, for each, the columns up to its longest sequence
    (trailing padding changes nothing in a causal model or in a masked mean, and costs time)."""
    for start in range(0, len(mask), batch_size):
        rows = slice(start, start + batch_size)
        yield rows, max(int(mask[rows].sum(1).max()), 1)


@torch.no_grad()
def sentence_lm_loss(
    model: nn.Module, idx: torch.Tensor, padding_mask: torch.Tensor, batch_size: int = 250
) -> float:
    """A GPT's mean next-token loss (nats per token) over the real tokens of the sentences:
    each real token after the first is predicted from those before it."""
    model.eval()
    total, count = 0.0, 0
    for rows, n in _chunks(padding_mask, batch_size):
        x, m = idx[rows, :n], padding_mask[rows, :n]
        logits = model(x[:, :-1])[0]
        targets = x[:, 1:].masked_fill(~m[:, 1:], -100)  # no loss on padding
        total += torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction="sum"
        ).item()
        count += int(m[:, 1:].sum())
    return total / count


@torch.no_grad()
def predict(
    classifier: nn.Module, idx: torch.Tensor, padding_mask: torch.Tensor, batch_size: int = 250
) -> torch.Tensor:
    """The classifier's logits ``(N, n_classes)``, in eval mode, a batch at a time."""
    classifier.eval()
    out = [
        classifier(idx[rows, :n], padding_mask[rows, :n])
        for rows, n in _chunks(padding_mask, batch_size)
    ]
    return torch.cat(out)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fine_tune(
    classifier: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    lr: float,
    max_steps: int = 300,
    batch_size: int = 32,
    eval_every: int = 20,
    patience: int = 3,
    warmup_steps: int = 10,
    weight_decay: float = 0.01,
    seed: int = 2,
) -> dict:
    """Train ``classifier``'s trainable parameters on ``train`` and stop on ``val``.

    AdamW on mini-batches of ``batch_size`` sentences drawn with a generator seeded by
    ``seed``, linear warmup then cosine decay over ``max_steps``. Every ``eval_every`` steps
    the validation loss and accuracy are measured; :class:`lmkit.train.EarlyStopping`
    stops after ``patience`` evaluations without a lower validation loss, and the weights
    of the best evaluation are put back. ``train`` and ``val`` are
    ``(idx, padding_mask, labels)`` as :func:`encode_sentences` gives them. The test set is
    not an argument: nothing here may look at it.

    Returns:
        ``{"best_step", "val_loss", "val_accuracy", "steps_run", "history"}``, where
        ``history`` lists ``[step, val_loss, val_accuracy]`` per evaluation.
    """
    from lmkit.optim import AdamW, set_cosine_lr
    from lmkit.train import EarlyStopping

    x, m, y = train
    trainable = [p for p in classifier.parameters() if p.requires_grad]
    opt = AdamW(trainable, lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    stopper = EarlyStopping(patience)
    history, best, best_state, step = [], None, _snapshot(classifier), 0
    for step in range(1, max_steps + 1):
        classifier.train()
        set_cosine_lr(opt, step - 1, lr=lr, warmup_steps=warmup_steps, max_steps=max_steps)
        b = torch.randint(len(y), (batch_size,), generator=g)
        n = max(int(m[b].sum(1).max()), 1)
        loss = nn.functional.cross_entropy(classifier(x[b, :n], m[b, :n]), y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == max_steps:
            logits = predict(classifier, val[0], val[1])
            val_loss = nn.functional.cross_entropy(logits, val[2]).item()
            val_acc = (logits.argmax(-1) == val[2]).float().mean().item()
            history.append([step, val_loss, val_acc])
            stop = stopper.step(val_loss)
            if stopper.improved:
                best, best_state = history[-1], _snapshot(classifier)
            if stop:
                break
    classifier.load_state_dict(best_state)
    classifier.eval()
    if best is None:  # not one finite evaluation: report the last one
        best = history[-1]
    return {
        "best_step": best[0],
        "val_loss": best[1],
        "val_accuracy": best[2],
        "steps_run": step,
        "history": history,
    }


def train_lm(
    model: nn.Module,
    ids: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    lr: float,
    max_steps: int,
    batch_size: int = 32,
    eval_every: int = 50,
    patience: int = 4,
    min_delta: float = 0.0,
    warmup_steps: int = 20,
    weight_decay: float = 0.1,
    seed: int = 1,
) -> dict:
    """Train a GPT as a language model of the token stream ``ids``; stop on ``val``.

    Windows of the model's ``block_size`` drawn with :func:`lmkit.batching.get_batch`
    (generator seeded by ``seed``), AdamW with decay on matrices only, warmup then cosine
    decay over ``max_steps``, clipping at 1.0 — chapter 7's recipe. Every ``eval_every``
    steps :func:`sentence_lm_loss` on ``val = (idx, padding_mask)``;
    :class:`lmkit.train.EarlyStopping` with ``patience`` and ``min_delta`` (the smallest
    decrease that counts as an improvement) stops it, and the best weights are put back. ``max_steps`` is the budget offered; ``steps_run`` says how much was used.

    Returns:
        ``{"best_step", "val_loss", "steps_run", "history"}`` with ``history`` a list of
        ``[step, val_loss]``; step 0 is the model before training.
    """
    from lmkit.batching import get_batch
    from lmkit.optim import AdamW, clip_grad_norm_, param_groups, set_cosine_lr
    from lmkit.train import EarlyStopping

    opt = AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    stopper = EarlyStopping(patience, min_delta)
    history = [[0, sentence_lm_loss(model, *val)]]
    stopper.step(history[0][1])
    best, best_state, step = history[0], _snapshot(model), 0
    for step in range(1, max_steps + 1):
        model.train()
        set_cosine_lr(opt, step - 1, lr=lr, warmup_steps=warmup_steps, max_steps=max_steps)
        x, y = get_batch(ids, model.config.block_size, batch_size, g)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % eval_every == 0 or step == max_steps:
            history.append([step, sentence_lm_loss(model, *val)])
            stop = stopper.step(history[-1][1])
            if stopper.improved:
                best, best_state = history[-1], _snapshot(model)
            if stop:
                break
    model.load_state_dict(best_state)
    model.eval()
    return {"best_step": best[0], "val_loss": best[1], "steps_run": step, "history": history}


# --- The non-neural yardstick: bag-of-words logistic regression


class BagOfWords:
    """Binary bag-of-words features: which words of a vocabulary a text contains.

    The vocabulary is built from ``texts`` (the *training* split only: words seen only in
    validation or test sentences must not exist for the model), keeping the words that
    occur in at least ``min_count`` of them, in sorted order. Texts are split into words
    after :func:`lmkit.data.normalise_review`; unknown words are ignored.
    """

    def __init__(self, texts: Sequence[str], min_count: int = 1) -> None:
        from lmkit.data import normalise_review

        self._normalise = normalise_review
        counts = Counter(w for t in texts for w in set(normalise_review(t).split()))
        words = sorted(w for w, c in counts.items() if c >= min_count)
        self.vocab = {w: i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """``(N, V)`` float32: 1 where text ``n`` contains word ``v``, else 0."""
        x = torch.zeros(len(texts), len(self.vocab))
        for n, text in enumerate(texts):
            cols = [self.vocab[w] for w in self._normalise(text).split() if w in self.vocab]
            x[n, cols] = 1.0
        return x


def fit_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, *, weight_decay: float, n_classes: int = 2
) -> nn.Linear:
    """Multinomial logistic regression fitted to convergence: a linear layer minimising
    ``mean cross-entropy + weight_decay / 2 · ||W||²`` (the bias is not penalised).

    The objective is convex, so full-batch L-BFGS finds its minimum whatever the start: the
    result depends on ``weight_decay`` only, which is chosen on a validation set.
    """
    x, y = x.float(), y.long()
    layer = nn.Linear(x.shape[1], n_classes)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    opt = torch.optim.LBFGS(
        layer.parameters(),
        lr=1.0,
        max_iter=500,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(layer(x), y)
        loss = loss + weight_decay / 2 * layer.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return layer.requires_grad_(False)


def standard_error(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` independent examples,
    ``sqrt(p (1 - p) / n)``: the spread of the measurement from one test set to another."""
    if n < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"need 0 ≤ accuracy ≤ 1 and n ≥ 1, got {accuracy} and {n}")
    return math.sqrt(accuracy * (1.0 - accuracy) / n)
