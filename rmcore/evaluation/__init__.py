"""Evaluation: metric math (`metrics`), held-out evaluation rows (`evaluate`), RewardBench v1/v2
aggregation (`rewardbench`) and the audit report (`report`)."""
