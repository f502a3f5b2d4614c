"""With `PREFECT_API_URL` set, the CLI runs its flows on that server: the run and its
artifacts are there for the UI, and the data-quality artifact carries the audit table (not a
`file://` link a browser would refuse to open from an http page)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import duckdb
from processes import child_env, rmcurate


def _post(url: str, body: dict) -> list[dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_cli_ingest_run_and_artifacts_land_on_the_server_of_prefect_api_url(
    tmp_path: Path, prefect_server, write_jsonl
):
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(9)]
    source = write_jsonl(tmp_path / "api.jsonl", rows)
    warehouse = tmp_path / "wh.duckdb"
    env = child_env(RMCURATE_WAREHOUSE=str(warehouse), PREFECT_API_URL=api_url)

    done = rmcurate(
        "ingest", str(source), "--reports", str(tmp_path / "reports"), cwd=tmp_path, env=env
    )

    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(warehouse), read_only=True) as con:
        [(flow_run_id, report)] = con.execute(
            "SELECT flow_run_id, report_path FROM dq_runs"
        ).fetchall()
    assert f"data-quality report: {report}" in " ".join(done.stdout.split())
    runs = _post(f"{api_url}/flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    assert [r["state_type"] for r in runs] == ["COMPLETED"]
    artifacts = _post(
        f"{api_url}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}}
    )
    by_key = {a["key"]: a for a in artifacts}
    audit = by_key["dq-api-v1"]
    assert audit["type"] == "markdown" and "file://" not in audit["data"]
    assert audit["data"].startswith("**PASSED**") and f"`{report}`" in audit["data"]
    assert "| PASS | expect_column_values_to_be_unique[pair_id] |" in audit["data"]
    assert "ingest-summary" in by_key
    assert not (tmp_path / "data" / "prefect").exists()  # no local Prefect home was made
