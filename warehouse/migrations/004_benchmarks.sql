-- Benchmark results: one row per (model, benchmark, subset, metric).
CREATE SEQUENCE benchmark_run_id_seq START 1;
CREATE TABLE benchmark_runs (
    benchmark_run_id  INTEGER PRIMARY KEY DEFAULT nextval('benchmark_run_id_seq'),
    name              VARCHAR NOT NULL,
    dataset_id        INTEGER,
    split             VARCHAR,
    params            JSON,
    report_path       VARCHAR,
    flow_run_id       VARCHAR,
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE benchmark_results (
    benchmark_run_id  INTEGER NOT NULL,
    model             VARCHAR NOT NULL,
    method            VARCHAR,
    seed              INTEGER,
    benchmark         VARCHAR NOT NULL,
    subset            VARCHAR NOT NULL,
    n                 BIGINT NOT NULL,
    metric            VARCHAR NOT NULL,
    value             DOUBLE,
    ci_low            DOUBLE,   -- 95% bootstrap interval over examples
    ci_high           DOUBLE
);

-- Per-pair test predictions, so every report number can be recomputed.
CREATE TABLE benchmark_predictions (
    benchmark_run_id  INTEGER NOT NULL,
    model             VARCHAR NOT NULL,
    method            VARCHAR,
    seed              INTEGER,
    pair_id           VARCHAR NOT NULL,
    gap               DOUBLE NOT NULL,
    label             DOUBLE NOT NULL
);
