"""Evaluation: metric math (`metrics`), held-out evaluation rows (`evaluate`), the metric keys,
titles and directions the report shows (`specs`), RewardBench v1/v2 aggregation
(`rewardbench`), the audit report (`report`) and the ablation's defaults (`ablation`)."""
