"""What every reward backend shares: the scorer protocol, device choice, batching, identity.

The scoring engine calls `score` on aligned lists of (prompt, response) many times over
(each pair under its own prompt plus sampled ones), caches the results keyed by
(`model_id`, `revision`), and checks `n_forward` to prove a cached re-run touched no model.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rmcore.progress import Progress, quiet_load

DEFAULT_MAX_LENGTH = 4096  # when neither tokenizer nor config states a usable limit


@runtime_checkable
class RewardScorer(Protocol):
    """A reward model r(x, y) as the scoring engine sees it."""

    model_id: str  # folder path, hub id or a content-derived name
    revision: str  # changes whenever the weights change, so cached scores never go stale
    backend: str  # "embed-head", "joint", ...
    n_forward: int  # model forward calls so far (batches through a transformer or a head)

    def score(
        self, prompts: Sequence[str], responses: Sequence[str], *, progress: bool = False
    ) -> torch.Tensor:
        """(N,) float32 rewards on CPU, aligned with the inputs."""
        ...


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """An explicit device wins; otherwise CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores), nothing on CPU where bf16 is slow and lossy."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def length_grouped_batches(
    lengths: torch.Tensor, *, max_batch: int, max_tokens: int | None = None
) -> list[torch.Tensor]:
    """Row indices cut into batches of similar length, longest first.

    Sorting by length makes dynamic padding nearly free; longest first makes an
    out-of-memory error surface on the first batch rather than after an hour. A batch
    holds at most `max_batch` rows and, when `max_tokens` is set, at most `max_tokens`
    padded tokens (never fewer than one row).
    """
    order = torch.argsort(lengths, descending=True, stable=True)  # (N,)
    sorted_len = lengths[order].tolist()
    batches, start = [], 0
    while start < len(sorted_len):  # one iteration per batch, not per row
        n = max_batch
        if max_tokens is not None:
            n = min(n, max(1, max_tokens // max(1, sorted_len[start])))
        batches.append(order[start : start + n])
        start += n
    return batches


def pad_right(
    rows: Sequence[Sequence[int]], pad_value: int, length: int | None = None
) -> torch.Tensor:
    """(B, L) int64, right-padded to the longest row, or to `length` when given.

    Right padding keeps position ids equal to the unpadded ones, so a batched forward
    matches the one-at-a-time forward for both encoders and causal models. `length`
    emulates naive padding (every batch as long as the longest input) in benchmarks.
    """
    batch = torch.nn.utils.rnn.pad_sequence(
        [torch.as_tensor(r, dtype=torch.long) for r in rows],
        batch_first=True,
        padding_value=pad_value,
    )
    if length is None:
        return batch
    return torch.nn.functional.pad(batch, (0, length - batch.shape[1]), value=pad_value)


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) bool attention mask of right-padded rows with the given lengths (B,)."""
    return torch.arange(width) < lengths[:, None]


@dataclass
class BatchBudget:
    """Rows and padded tokens per forward call; shrinks itself after a CUDA out-of-memory."""

    max_batch: int = 64
    max_tokens: int | None = None

    def batches(
        self, lengths: torch.Tensor, todo: torch.Tensor, *, grouped: bool
    ) -> list[torch.Tensor]:
        """Index batches over the rows `todo`; `grouped=False` keeps input order and sizes
        every batch for the longest row overall (the naive baseline)."""
        if grouped:
            sub = length_grouped_batches(
                lengths[todo], max_batch=self.max_batch, max_tokens=self.max_tokens
            )
            return [todo[b] for b in sub]
        n = self.max_batch
        if self.max_tokens is not None:
            n = min(n, max(1, self.max_tokens // max(1, int(lengths.max()))))
        return list(todo.split(n))

    def shrink(self, failed_rows: int) -> None:
        """Halve both limits below the batch that did not fit."""
        if failed_rows <= 1:
            raise RuntimeError("a single row does not fit in memory")
        self.max_batch = max(1, failed_rows // 2)
        if self.max_tokens is not None:
            self.max_tokens = max(1, self.max_tokens // 2)


def map_batches(
    lengths: torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    *,
    budget: BatchBudget,
    grouped: bool = True,
    progress: bool = False,
    desc: str = "batches",
) -> torch.Tensor:
    """Run `forward(idx) -> (B, ...)` over all rows and reassemble outputs in input order.

    On CUDA out-of-memory the budget is halved and only the unfinished rows are redone,
    so one long outlier does not force a tiny batch size on the whole run.
    """
    n = lengths.shape[0]
    out: torch.Tensor | None = None
    done = torch.zeros(n, dtype=torch.bool)  # (N,)
    while not done.all():
        todo = (~done).nonzero().squeeze(1)
        failed_rows = 0
        try:
            with Progress(todo.numel(), desc=desc, unit="rows", enabled=progress) as bar:
                for idx in budget.batches(lengths, todo, grouped=grouped):
                    vals = forward(idx)  # (B, ...)
                    if out is None:
                        out = torch.empty((n, *vals.shape[1:]), dtype=vals.dtype)
                    out[idx] = vals
                    done[idx] = True
                    bar.update(idx.numel())
        except torch.OutOfMemoryError:
            failed_rows = idx.numel()
        if failed_rows:  # outside the handler: its traceback no longer pins the activations
            torch.cuda.empty_cache()
            budget.shrink(failed_rows)
    if out is None:
        raise ValueError("map_batches needs at least one row")
    return out


def files_sha256(paths: Sequence[Path]) -> str:
    """sha256 over the bytes of several files, in sorted-name order, streamed."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda p: p.name):
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint files that define a model's weights (safetensors preferred)."""
    files = sorted(folder.glob("*.safetensors"))
    return files or sorted(folder.glob("*.bin"))


def short_hash(hexdigest: str) -> str:
    """12 hex digits: short enough for ids, long enough never to collide in practice."""
    return hexdigest[:12]


def model_revision(name_or_path: str, config: object, *, revision: str | None = None) -> str:
    """The hub commit a model came from, else a short hash of its weight files.

    transformers 5 no longer keeps `config._commit_hash`, so for hub ids the commit is
    read from the snapshot path of the cached config; local folders have no commit and
    are identified by their content, so a retrained checkpoint saved over the same
    folder gets a new revision.
    """
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return str(commit)
    folder = Path(name_or_path)
    if not folder.is_dir():
        from transformers.utils.hub import cached_file, extract_commit_hash

        resolved = cached_file(name_or_path, "config.json", revision=revision or "main")
        commit = extract_commit_hash(resolved, None)
        if commit:
            return commit
        folder = Path(resolved).parent
    files = weight_files(folder)
    if not files:
        raise FileNotFoundError(f"no weight files in {folder}")
    return short_hash(files_sha256(files))


def ensure_pad_token(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """GPT-2 style models ship without a pad token; batching needs one (eos stands in)."""
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ValueError("tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def usable_max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The smaller of the tokenizer's and the position embeddings' limits."""
    limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits, default=DEFAULT_MAX_LENGTH)


def load_pretrained(
    auto_class: type,
    name_or_path: str | Path,
    *,
    dtype: torch.dtype | None,
    trust_remote_code: bool,
    use_safetensors: bool,
    revision: str | None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str, str]:
    """(model, tokenizer, model_id, revision) through `auto_class.from_pretrained`, safe by
    default: safetensors only, no remote code unless asked. dtype None keeps float32 weights
    (bf16 autocast on CUDA)."""
    from transformers import AutoTokenizer

    source = str(Path(name_or_path).resolve()) if Path(name_or_path).is_dir() else str(name_or_path)
    with quiet_load(f"model {source}"):
        model = auto_class.from_pretrained(
            source,
            revision=revision or "main",
            use_safetensors=use_safetensors,
            trust_remote_code=trust_remote_code,
            dtype=dtype or torch.float32,
        )
    tokenizer = AutoTokenizer.from_pretrained(
        source, revision=revision or "main", trust_remote_code=trust_remote_code
    )
    return model, tokenizer, source, model_revision(source, model.config, revision=revision)
