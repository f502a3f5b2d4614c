-- Scoring: caches keyed by content ids, scoring runs, per-pair decompositions, models.
CREATE TABLE embeddings (
    encoder_id  VARCHAR NOT NULL,
    text_id     VARCHAR NOT NULL,   -- prompt_id or response_id (sha256 of the normalized text)
    embedding   FLOAT[] NOT NULL,
    PRIMARY KEY (encoder_id, text_id)
);

CREATE TABLE rm_scores (
    model_id     VARCHAR NOT NULL,
    revision     VARCHAR NOT NULL,
    prompt_id    VARCHAR NOT NULL,
    response_id  VARCHAR NOT NULL,
    score        DOUBLE NOT NULL,
    PRIMARY KEY (model_id, revision, prompt_id, response_id)
);

CREATE TABLE lm_logliks (
    lm_id        VARCHAR NOT NULL,
    revision     VARCHAR NOT NULL,
    prompt_id    VARCHAR NOT NULL,
    response_id  VARCHAR NOT NULL,
    loglik       DOUBLE NOT NULL,   -- mean log-likelihood per response token
    PRIMARY KEY (lm_id, revision, prompt_id, response_id)
);

CREATE SEQUENCE scoring_run_id_seq START 1;
CREATE TABLE scoring_runs (
    scoring_run_id   INTEGER PRIMARY KEY DEFAULT nextval('scoring_run_id_seq'),
    run_key          VARCHAR NOT NULL UNIQUE,  -- hash of every parameter below: same key, same run
    dataset_id       INTEGER NOT NULL,
    pool_dataset_id  INTEGER NOT NULL,
    model_id         VARCHAR NOT NULL,
    revision         VARCHAR NOT NULL,
    backend          VARCHAR NOT NULL,
    criterion        VARCHAR NOT NULL,
    m                INTEGER NOT NULL,
    seed             INTEGER NOT NULL,
    weights          VARCHAR NOT NULL,
    beta             DOUBLE,
    lm_id            VARCHAR,
    shard_size       INTEGER NOT NULL,
    n_pairs          BIGINT,
    n_shards         INTEGER,
    n_combos         BIGINT,            -- distinct (prompt, response) scores the run needed
    n_cache_hits     BIGINT,            -- of those, already in rm_scores
    status           VARCHAR NOT NULL,  -- running | complete
    timings          JSON,
    run_dir          VARCHAR,
    flow_run_id      VARCHAR,
    started_at       TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at      TIMESTAMP
);

CREATE TABLE pair_scores (
    scoring_run_id  INTEGER NOT NULL,
    pair_id         VARCHAR NOT NULL,
    own_gap         DOUBLE NOT NULL,   -- r(x_i, chosen) - r(x_i, rejected)
    free_gap        DOUBLE NOT NULL,   -- prompt-free part (METHOD.md)
    related_gap     DOUBLE NOT NULL,   -- own_gap - free_gap
    ess             DOUBLE NOT NULL,   -- effective sample size of the prompt weights
    k               INTEGER NOT NULL,  -- prompts used (own + sampled)
    iterations      INTEGER NOT NULL,
    converged       BOOLEAN NOT NULL,
    PRIMARY KEY (scoring_run_id, pair_id)
);

CREATE SEQUENCE model_id_seq START 1;
CREATE TABLE models (
    model_pk        INTEGER PRIMARY KEY DEFAULT nextval('model_id_seq'),
    name            VARCHAR NOT NULL UNIQUE,
    path            VARCHAR NOT NULL,
    backend         VARCHAR NOT NULL,
    revision        VARCHAR,
    curated_set_id  INTEGER,           -- NULL when trained on a whole dataset split
    dataset_id      INTEGER,
    method          VARCHAR,           -- vanilla | rrm | prompt-free-priority | ...
    config          JSON,
    metrics         JSON,
    flow_run_id     VARCHAR,
    created_at      TIMESTAMP NOT NULL DEFAULT current_timestamp
);
