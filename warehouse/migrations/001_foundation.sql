-- Foundation: sources, content-addressed texts, pairs, quarantine, data-quality runs.
CREATE SEQUENCE dataset_id_seq START 1;
CREATE TABLE datasets (
    dataset_id     INTEGER PRIMARY KEY DEFAULT nextval('dataset_id_seq'),
    name           VARCHAR NOT NULL,
    version        INTEGER NOT NULL,
    uri            VARCHAR NOT NULL,
    format         VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,
    n_input        BIGINT,
    n_rows_stored  BIGINT,
    n_pairs        BIGINT,
    n_quarantined  BIGINT,
    status         VARCHAR NOT NULL,  -- ingesting | ingested | passed_quality | failed_quality
    options        JSON,
    flow_run_id    VARCHAR,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (name, version)
);

CREATE TABLE prompts (
    prompt_id   VARCHAR PRIMARY KEY,  -- sha256 of the normalized text
    text        VARCHAR NOT NULL,
    n_chars     INTEGER NOT NULL
);

CREATE TABLE responses (
    response_id VARCHAR PRIMARY KEY,  -- sha256 of the normalized text
    text        VARCHAR NOT NULL,
    n_chars     INTEGER NOT NULL
);

CREATE TABLE pairs (
    pair_id        VARCHAR PRIMARY KEY,  -- sha256(dataset_id, prompt_id, chosen_id, rejected_id)
    dataset_id     INTEGER NOT NULL,
    prompt_id      VARCHAR NOT NULL,
    chosen_id      VARCHAR NOT NULL,
    rejected_id    VARCHAR NOT NULL,
    label          DOUBLE NOT NULL,      -- P(chosen preferred); 0.5 is a tie
    split          VARCHAR NOT NULL,
    source_row     BIGINT,               -- row number in the source (0-based); NULL for derived pairs
    provenance     JSON,                 -- source fields that the format does not use
    augmentation   VARCHAR,              -- NULL for source pairs; 'rrm' for RRM-augmented pairs
    source_pair_id VARCHAR,              -- the pair an augmented pair was derived from
    flow_run_id    VARCHAR
);
CREATE INDEX pairs_dataset ON pairs (dataset_id);

CREATE TABLE quarantine (
    dataset_id   INTEGER NOT NULL,
    source_row   BIGINT NOT NULL,
    reason       VARCHAR NOT NULL,  -- machine-readable reason code
    message      VARCHAR NOT NULL,
    raw          VARCHAR,           -- the raw record (JSON or the raw line, lossless as far as decodable)
    flow_run_id  VARCHAR
);

CREATE SEQUENCE dq_run_id_seq START 1;
CREATE TABLE dq_runs (
    dq_run_id       INTEGER PRIMARY KEY DEFAULT nextval('dq_run_id_seq'),
    dataset_id      INTEGER NOT NULL,
    suite           VARCHAR NOT NULL,
    success         BOOLEAN NOT NULL,
    n_expectations  INTEGER NOT NULL,
    n_evaluated     INTEGER NOT NULL,
    n_failed        INTEGER NOT NULL,
    failed          JSON,
    statistics      JSON,
    result          JSON,
    report_path     VARCHAR,
    flow_run_id     VARCHAR,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);
