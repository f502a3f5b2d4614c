"""The decomposition engine (METHOD.md): sample M prompts per pair (`sampling`), weight them
(`weights`), solve each pair's prompt-free gap (`solver`), and the glue from a score table to
per-pair results (`scoring`)."""
