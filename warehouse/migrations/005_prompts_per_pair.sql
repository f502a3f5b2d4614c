-- One name per concept: M, the prompts sampled per pair besides its own, is `prompts_per_pair`
-- everywhere (it was the column `m`). DuckDB renames the column but does not rebind views,
-- so v_lineage, which reads it, is recreated with the new name.
ALTER TABLE scoring_runs RENAME COLUMN m TO prompts_per_pair;

CREATE OR REPLACE VIEW v_lineage AS
SELECT cs.curated_set_id, cs.name AS set_name, cs.version AS set_version, cs.rule, cs.rule_params, cs.predicate,
       cs.augmentation, d.name AS dataset, d.version AS dataset_version, d.content_hash AS dataset_hash,
       cs.scoring_run_id, sr.model_id, sr.revision AS model_revision, sr.criterion, sr.prompts_per_pair,
       sr.seed AS scoring_seed
FROM curated_sets cs
JOIN datasets d USING (dataset_id)
LEFT JOIN scoring_runs sr USING (scoring_run_id);
