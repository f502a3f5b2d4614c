-- Curated sets: immutable, versioned selections of pairs with training weights.
CREATE SEQUENCE curated_set_id_seq START 1;
CREATE TABLE curated_sets (
    curated_set_id   INTEGER PRIMARY KEY DEFAULT nextval('curated_set_id_seq'),
    name             VARCHAR NOT NULL,
    version          INTEGER NOT NULL,
    definition_hash  VARCHAR NOT NULL,  -- hash of predicate, rule, params, augmentation, seed, scoring run
    scoring_run_id   INTEGER,           -- NULL for sets that need no scores (e.g. vanilla over a split)
    dataset_id       INTEGER NOT NULL,
    predicate        VARCHAR NOT NULL,
    rule             VARCHAR NOT NULL,
    rule_params      JSON,
    augmentation     JSON,              -- e.g. {"kind": "rrm", "keep_fraction": 0.5, ...}
    seed             INTEGER NOT NULL,
    n_candidates     BIGINT,
    n_members        BIGINT,
    n_augmented      BIGINT,
    total_weight     DOUBLE,
    counts           JSON,
    flow_run_id      VARCHAR,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (name, version),
    UNIQUE (name, definition_hash)
);

CREATE TABLE curated_members (
    curated_set_id  INTEGER NOT NULL,
    pair_id         VARCHAR NOT NULL,
    weight          DOUBLE NOT NULL,
    PRIMARY KEY (curated_set_id, pair_id)
);

-- User-facing views: a stable API for SQL users (README has examples).
CREATE VIEW v_pairs AS
SELECT p.pair_id, d.name AS dataset, d.version AS dataset_version, p.dataset_id, p.split, p.label,
       pr.text AS prompt, c.text AS chosen, r.text AS rejected,
       p.prompt_id, p.chosen_id, p.rejected_id, length(c.text) AS chosen_chars, length(r.text) AS rejected_chars,
       p.augmentation, p.source_pair_id, p.source_row, p.provenance
FROM pairs p
JOIN datasets d USING (dataset_id)
JOIN prompts pr USING (prompt_id)
JOIN responses c ON c.response_id = p.chosen_id
JOIN responses r ON r.response_id = p.rejected_id;

CREATE VIEW v_pairs_scored AS
SELECT v.*, s.scoring_run_id, s.own_gap, s.free_gap, s.related_gap, s.ess, s.k, s.converged, s.iterations,
       sr.model_id, sr.criterion, sr.weights AS weights_method
FROM v_pairs v
JOIN pair_scores s USING (pair_id)
JOIN scoring_runs sr USING (scoring_run_id);

CREATE VIEW v_curated AS
SELECT cs.name AS set_name, cs.version AS set_version, cs.curated_set_id, m.weight, v.*
FROM curated_members m
JOIN curated_sets cs USING (curated_set_id)
JOIN v_pairs v USING (pair_id);

CREATE VIEW v_lineage AS
SELECT cs.curated_set_id, cs.name AS set_name, cs.version AS set_version, cs.rule, cs.rule_params, cs.predicate,
       cs.augmentation, d.name AS dataset, d.version AS dataset_version, d.content_hash AS dataset_hash,
       cs.scoring_run_id, sr.model_id, sr.revision AS model_revision, sr.criterion, sr.m, sr.seed AS scoring_seed
FROM curated_sets cs
JOIN datasets d USING (dataset_id)
LEFT JOIN scoring_runs sr USING (scoring_run_id);
