"""Progress and model loads on the terminal and off it: one line per model load (no
"Loading weights" bars), and off a terminal periodic log lines instead of a bar."""

from __future__ import annotations

import logging

import pytest

from rmcore import progress
from rmcore.progress import Progress


@pytest.fixture
def lines() -> list[str]:
    """The messages of the `rmcurate.progress` logger (the CLI prints them on stderr)."""
    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    handler = Keep()
    progress.log.addHandler(handler)
    level = progress.log.level
    progress.log.setLevel(logging.INFO)
    yield got
    progress.log.removeHandler(handler)
    progress.log.setLevel(level)


def test_off_a_terminal_a_line_every_interval_and_one_at_the_end(lines, monkeypatch):
    clock = iter(range(0, 1000, 4))  # every reading of the clock is 4 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with Progress(100, desc="embedding texts", unit="texts", terminal=False, every=10) as bar:
        for _ in range(10):
            bar.update(10)
    assert lines == [
        "embedding texts: 30/100 texts (30%) in 12.0 s",
        "embedding texts: 60/100 texts (60%) in 24.0 s",
        "embedding texts: 90/100 texts (90%) in 36.0 s",
        "embedding texts: done 100/100 texts (100%) in 44.0 s",
    ]


def test_on_a_terminal_a_bar_and_no_lines(lines, capsys):
    with Progress(3, desc="steps", unit="steps", terminal=True) as bar:
        bar.update(3, loss="0.5")
    assert lines == [] and "steps" in capsys.readouterr().err


def test_disabled_or_empty_work_is_silent(lines, capsys):
    for total, enabled in ((5, False), (0, True)):
        with Progress(total, desc="x", unit="rows", enabled=enabled, terminal=False, every=0) as b:
            b.update(total)
    assert lines == [] and capsys.readouterr().err == ""


def test_work_cut_short_has_no_done_line(lines):
    with pytest.raises(MemoryError), Progress(4, desc="x", unit="rows", terminal=False) as bar:
        bar.update(1)
        raise MemoryError
    assert lines == []


def test_model_load_is_one_line_without_bars_and_encoding_reports_off_a_terminal(lines, capfd):
    from transformers.utils import logging as hf_logging

    from rmcore.models.encoder import BUNDLED_ID, load_encoder

    bars_before = hf_logging.is_progress_bar_enabled()
    encoder = load_encoder()
    encoder.encode(["one", "two", "three"], progress=True)

    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled() == bars_before
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"loaded encoder {BUNDLED_ID} in ")
    assert lines[1].startswith("encode: done 3/3 rows (100%) in ")


def test_training_off_a_terminal_ends_with_a_line_holding_loss_and_accuracy(lines):
    import torch

    from rmcore.config import TrainConfig
    from rmcore.training.loop import fit

    torch.manual_seed(0)
    x_w, x_l = torch.randn(64, 4) + 1, torch.randn(64, 4)
    module = torch.nn.Linear(4, 1)

    def forward(idx):
        return module(x_w[idx]).squeeze(1), module(x_l[idx]).squeeze(1)

    config = TrainConfig(epochs=2, batch_size=16, progress=True, device="cpu")
    fit(module, forward, torch.ones(64), torch.ones(64), config, torch.device("cpu"))

    (last,) = lines
    assert last.startswith("train: done 8/8 steps (100%) in ")
    assert "; train_loss " in last and "train_accuracy " in last
