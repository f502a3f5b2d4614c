-- Out-of-sample free gaps (issue 10): a cross-fitted scoring run takes each pair's
-- decomposition from the fold model that never trained on it; `scoring_folds` records the
-- fold of every pair and which model (and which of its scoring runs) scored it.
-- `temperature` records the embedding weights' temperature (chosen for the ESS band).
ALTER TABLE scoring_runs ADD COLUMN cross_fit_folds INTEGER;  -- k, NULL for a one-model run
ALTER TABLE scoring_runs ADD COLUMN temperature DOUBLE;

CREATE TABLE scoring_folds (
    scoring_run_id         INTEGER NOT NULL,  -- the cross-fitted run
    pair_id                VARCHAR NOT NULL,
    fold                   INTEGER NOT NULL,  -- by prompt: all pairs of a prompt share a fold
    model_id               VARCHAR NOT NULL,  -- the fold's reference model (trained on the other folds)
    source_scoring_run_id  INTEGER NOT NULL,  -- that model's run the decomposition was copied from
    PRIMARY KEY (scoring_run_id, pair_id)
);
