"""Stage logic: plain Python over `rmcore` and `warehouse`, one module per stage.

This package is the glue between models and the warehouse, and the only part of `rmcore` that
imports `warehouse`; nothing here imports Prefect. Each stage function takes references
(warehouse path, ids, names, paths) and returns a small summary, so the Prefect tasks in
`tasks/` stay thin wrappers (retries, tags, artifacts, logging) and a notebook can call the
same functions directly. See docs/ARCHITECTURE.md.
"""
