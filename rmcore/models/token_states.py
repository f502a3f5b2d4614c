"""Per-text token states of a frozen encoder: computed once, kept on disk, read by index.

The late-interaction backend reads every prompt and response as the bundled encoder's
last-layer token states. Those depend on the text alone, so scoring a response under 16
extra prompts needs no extra encoder pass: the states of every distinct text are computed
once and cached, keyed by encoder and text id.

On disk, one folder per encoder source under the data folder
(`<data>/token_states/<encoder key>/`):
- `states.f16`: every cached text's states back to back, (T, D) float16, memory-mapped;
- `index.parquet`: text_id, offset (first row in `states.f16`), length (rows kept) and
  n_tokens (the untruncated token count, so length survives truncation);
- `meta.json`: the encoder id (which carries the weights' revision), `max_length` and `D`.
A folder whose `meta.json` names another encoder id or length (the encoder's weights
changed) is emptied on open, so stale states are never read and old ones never pile up.

Cost: at most `max_length` x D x 2 bytes per text; with the default 128 tokens of MiniLM
(D = 384) that is 96 KiB, so 100k distinct texts take at most 9.2 GiB (measured means are in
docs/RESULTS.md section 10). Scoring reads only the rows it needs from the memory map.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

STATES_FILE = "states.f16"
INDEX_FILE = "index.parquet"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
_THREAD_LOCK = threading.Lock()


@dataclass
class TokenStates:
    """Variable-length per-text token states stored back to back.

    flat (T, F) holds row `i`'s tokens at `offsets[i] : offsets[i] + lengths[i]`;
    `n_tokens` (U,) is each text's untruncated token count.
    """

    flat: torch.Tensor
    offsets: torch.Tensor  # (U,) int64
    lengths: torch.Tensor  # (U,) int64
    n_tokens: torch.Tensor  # (U,) int64

    @classmethod
    def from_padded(
        cls, padded: torch.Tensor, lengths: torch.Tensor, n_tokens: torch.Tensor
    ) -> TokenStates:
        """From (U, L, F) right-padded rows and their (U,) kept lengths."""
        mask = torch.arange(padded.shape[1]) < lengths[:, None]  # (U, L)
        lengths = lengths.long()
        return cls(padded[mask], torch.cumsum(lengths, 0) - lengths, lengths, n_tokens.long())

    def __len__(self) -> int:
        return self.lengths.shape[0]

    def padded(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (B,) -> right-padded (B, L, F) states (zeros past the end) and (B, L) mask,
        L = the longest of these rows; one vectorized gather."""
        lengths = self.lengths[rows]  # (B,)
        pos = torch.arange(int(lengths.max()) if rows.numel() else 0)  # (L,)
        mask = pos[None, :] < lengths[:, None]  # (B, L)
        flat_idx = (self.offsets[rows][:, None] + pos[None, :]).masked_fill(~mask, 0)  # (B, L)
        return self.flat[flat_idx] * mask.unsqueeze(-1).to(self.flat.dtype), mask

    def subset(self, rows: torch.Tensor) -> TokenStates:
        """The rows (R,) as a new, compact TokenStates, in the given order."""
        lengths = self.lengths[rows]  # (R,)
        flat = self.flat[_segment_index(self.offsets[rows], lengths)]  # (T', F)
        return TokenStates(flat, torch.cumsum(lengths, 0) - lengths, lengths, self.n_tokens[rows])

    def map_tokens(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TokenStates:
        """The same layout with `fn` (a token-wise map (T, F) -> (T, F')) applied to every token."""
        return TokenStates(fn(self.flat), self.offsets, self.lengths, self.n_tokens)

    def mean_pooled(self) -> torch.Tensor:
        """(U, F) float32 L2-normalized mean of each row's tokens: the bundled encoder's
        sentence embedding (mean-pooled last layer, [CLS] and [SEP] included) up to float16
        rounding and the truncation to the cache's length, without another encoder pass."""
        row = torch.repeat_interleave(torch.arange(len(self)), self.lengths)  # (T,)
        sums = torch.zeros(len(self), self.flat.shape[1]).index_add_(0, row, self.flat.float())
        return F.normalize(sums / self.lengths.clamp_min(1)[:, None], dim=-1)

    @staticmethod
    def concat(parts: Sequence[TokenStates]) -> TokenStates:
        lengths = torch.cat([p.lengths for p in parts])
        return TokenStates(
            torch.cat([p.flat for p in parts]),
            torch.cumsum(lengths, 0) - lengths,
            lengths,
            torch.cat([p.n_tokens for p in parts]),
        )


def compute_token_states(
    encoder, texts: Sequence[str], *, max_length: int, batch_size: int = 64
) -> TokenStates:
    """States of `texts` (rows in input order) by a `SentenceEncoder`, rounded to float16
    exactly as the disk cache stores them, so fresh and cached scores agree."""
    padded, lengths = encoder.token_states(texts, max_length=max_length, batch_size=batch_size)
    return TokenStates.from_padded(padded, lengths, encoder.token_counts(texts))


def encoder_key(encoder_id: str) -> str:
    """Folder name of an encoder's cache: its source without the revision (`@...`), made
    file-name safe, so a changed encoder reuses (and empties) the folder of its old weights."""
    source = encoder_id.rpartition("@")[0] or encoder_id
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source)
    return safe.strip("_")[-120:] or "encoder"


class TokenStateCache:
    """The on-disk cache of one encoder's token states (module docstring: layout, cost)."""

    def __init__(self, root: str | Path, encoder_id: str, *, max_length: int, dim: int) -> None:
        self.folder = Path(root) / encoder_key(encoder_id)
        self.meta = {"encoder_id": encoder_id, "max_length": max_length, "dim": dim}
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            meta_path = self.folder / META_FILE
            if not meta_path.exists() or json.loads(meta_path.read_text()) != self.meta:
                self._reset()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: threads of this process, then other processes (flock)."""
        with _THREAD_LOCK, (self.folder / LOCK_FILE).open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _reset(self) -> None:
        """Drop every entry (another encoder revision or length wrote them)."""
        for name in (STATES_FILE, INDEX_FILE, META_FILE):
            (self.folder / name).unlink(missing_ok=True)
        shutil.rmtree(self.folder / "tmp", ignore_errors=True)
        (self.folder / STATES_FILE).touch()
        self._write_index(_empty_index())
        (self.folder / META_FILE).write_text(json.dumps(self.meta))

    def _write_index(self, index: pl.DataFrame) -> None:
        tmp = self.folder / (INDEX_FILE + ".tmp")
        index.write_parquet(tmp)
        tmp.rename(self.folder / INDEX_FILE)  # atomic: readers see the old or the new index

    def index(self) -> pl.DataFrame:
        return pl.read_parquet(self.folder / INDEX_FILE)

    def missing(self, ids: pl.Series) -> pl.Series:
        """The distinct ids among `ids` with no cached states, sorted."""
        distinct = ids.unique()
        return distinct.filter(~distinct.is_in(self.index()["text_id"])).sort()

    def add(self, ids: Sequence[str], states: TokenStates) -> None:
        """Append the states of new texts (ids already cached are skipped)."""
        with self._locked():
            index = self.index()
            new = ~pl.Series(list(ids), dtype=pl.String).is_in(index["text_id"]).to_numpy()
            if not new.any():
                return
            part = states.subset(torch.from_numpy(np.flatnonzero(new)))
            end = int((index["offset"] + index["length"]).max() or 0) if index.height else 0
            row_bytes = 2 * self.meta["dim"]
            with (self.folder / STATES_FILE).open("r+b") as f:
                f.truncate(end * row_bytes)  # drop rows a killed writer left unindexed
                f.seek(end * row_bytes)
                f.write(part.flat.to(torch.float16).contiguous().numpy().tobytes())
            added = pl.DataFrame(
                {
                    "text_id": [t for t, keep in zip(ids, new, strict=True) if keep],
                    "offset": (part.offsets + end).numpy(),
                    "length": part.lengths.numpy(),
                    "n_tokens": part.n_tokens.numpy(),
                },
                schema=_empty_index().schema,
            )
            self._write_index(pl.concat([index, added]))

    def load(self, ids: pl.Series) -> tuple[dict[str, int], TokenStates]:
        """(text id -> row, states) of the cached texts among `ids`; reads only their rows."""
        wanted = self.index().filter(pl.col("text_id").is_in(ids.unique()))
        dim = self.meta["dim"]
        path = self.folder / STATES_FILE
        offsets, lengths, n_tokens = (
            torch.from_numpy(wanted[c].to_numpy().astype(np.int64))
            for c in ("offset", "length", "n_tokens")
        )
        flat = torch.empty(0, dim, dtype=torch.float16)
        if int(lengths.sum()):
            rows = path.stat().st_size // (2 * dim)
            memmap = np.memmap(path, dtype=np.float16, mode="r", shape=(rows, dim))
            flat = torch.from_numpy(np.asarray(memmap[_segment_index(offsets, lengths).numpy()]))
        states = TokenStates(flat, torch.cumsum(lengths, 0) - lengths, lengths, n_tokens)
        return {t: i for i, t in enumerate(wanted["text_id"].to_list())}, states

    def nbytes(self) -> int:
        """Bytes of cached states on disk."""
        return (self.folder / STATES_FILE).stat().st_size


def _segment_index(offsets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(T,) flat row numbers of the segments offsets[i] : offsets[i] + lengths[i], in order."""
    starts = torch.cumsum(lengths, 0) - lengths
    within = torch.arange(int(lengths.sum())) - torch.repeat_interleave(starts, lengths)
    return torch.repeat_interleave(offsets, lengths) + within


def _empty_index() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"text_id": pl.String, "offset": pl.Int64, "length": pl.Int64, "n_tokens": pl.Int64}
    )
