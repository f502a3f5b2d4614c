-- A dataset's quality verdict is always passed, failed or not checked (`warehouse.catalog`
-- derives it from `status`). `status` gains `not_checked`: the batch is stored but its
-- quality check could not run (unwritable reports folder, ...); `quality_note` says why, until
-- `rmcurate recheck` runs it again. `ingested` stays "stored, check not run yet", which a
-- re-ingest of the same content resumes.
-- status: ingesting | ingested | passed_quality | failed_quality | not_checked
ALTER TABLE datasets ADD COLUMN quality_note VARCHAR;
