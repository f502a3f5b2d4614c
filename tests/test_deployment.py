"""The `ingest-watched-folder` deployment of prefect.yaml, end to end on a real local stack.

A private Prefect server (its own PREFECT_HOME and SQLite database, loopback only, no UI,
no scheduler so the hourly cron never fires a run on the project's default folder) gets
the `process` work pool and `prefect deploy` from the project root, exactly as the recipe
in prefect.yaml says; a `--run-once` worker then executes one flow run created with
`prefect deployment run`. Everything goes through subprocesses with their own environment,
so no setting of the session's in-process test server leaks in or out. Takes 50-75 s here
(server start 15-25 s, four CLI start-ups, one flow run with a quality check).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "local-process"  # the work pool named in prefect.yaml
DEPLOYMENT = "ingest-folder/ingest-watched-folder"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SERVER_START_S = 180
RUN_S = 240
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, api_url: str) -> dict[str, str]:
    """The process environment minus every PREFECT_* variable of this session, plus a private
    home and the test server's URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_CLI_PROMPT": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
    }


def _prefect(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_healthy(api_url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited:\n{log.read_text()}"
        try:
            _get(f"{api_url}/health")
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after {SERVER_START_S} s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (server and worker fork children), SIGKILL if it lingers."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def test_ingest_deployment_runs_on_process_worker(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]
    (folder / "batch.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    warehouse = tmp_path / "wh.duckdb"

    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path / "prefect-home", api_url)
    log = tmp_path / "server.log"
    procs: list[subprocess.Popen] = []
    try:
        with log.open("w") as out:
            server = subprocess.Popen(
                [
                    PREFECT,
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-ui",
                    "--no-scheduler",
                    "--analytics-off",
                ],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(server)
        _wait_healthy(api_url, server, log)

        _prefect(env, "work-pool", "create", POOL, "--type", "process")
        _prefect(env, "deploy", "--name", "ingest-watched-folder", "--no-prompt")
        params = {
            "folder": str(folder),
            "warehouse": str(warehouse),
            "reports_dir": str(tmp_path / "reports"),
        }
        out = _prefect(
            env,
            "deployment",
            "run",
            DEPLOYMENT,
            *(a for k, v in params.items() for a in ("--param", f"{k}={json.dumps(v)}")),
        )
        flow_run_id = UUID.findall(out)[-1]

        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", POOL, "--run-once"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its flow-run child dies with the group in `finally`
        )
        procs.append(worker)
        worker_log, _ = worker.communicate(timeout=RUN_S)
        run = _wait_terminal(api_url, flow_run_id)
        assert run["state_type"] == "COMPLETED", (
            f"flow run {flow_run_id} ended {run['state_type']}:\n{worker_log}"
        )
        deployment = _get(f"{api_url}/deployments/name/{DEPLOYMENT}")
        stored = _stored(warehouse)
        stamped = _get(f"{api_url}/flow_runs/{stored['flow_run_id']}")
        parent = _get(f"{api_url}/task_runs/{stamped['parent_task_run_id']}")
        flow = _get(f"{api_url}/flows/{stamped['flow_id']}")
    finally:
        for proc in procs:
            _stop(proc)

    # `prefect deploy` recorded the project root as the run's working directory (prefect.yaml).
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    assert stored["datasets"] == [("batch", len(rows), "passed_quality")]
    assert stored["pairs"] == [(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    # Rows carry the id of the per-file `ingest` subflow run, whose parent is the deployment run.
    assert (flow["name"], stamped["name"]) == ("ingest", "ingest-batch")
    assert parent["flow_run_id"] == flow_run_id
    assert stored["pair_run_ids"] == [stored["flow_run_id"]]


def _wait_terminal(api_url: str, flow_run_id: str) -> dict:
    """The run's final record; the `--run-once` worker normally returns after it ends."""
    deadline = time.monotonic() + 30
    while True:
        run = _get(f"{api_url}/flow_runs/{flow_run_id}")
        if run["state_type"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def _stored(warehouse: Path) -> dict:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        [(flow_run_id,)] = con.execute("SELECT flow_run_id FROM datasets").fetchall()
        pair_runs = con.execute("SELECT DISTINCT flow_run_id FROM pairs").fetchall()
        return {
            "flow_run_id": flow_run_id,
            "pair_run_ids": [r for (r,) in pair_runs],
            "datasets": con.execute("SELECT name, n_pairs, status FROM datasets").fetchall(),
            "pairs": con.execute(
                "SELECT pr.text, c.text, r.text FROM pairs p JOIN prompts pr USING (prompt_id)"
                " JOIN responses c ON c.response_id = p.chosen_id"
                " JOIN responses r ON r.response_id = p.rejected_id ORDER BY p.source_row"
            ).fetchall(),
        }
    finally:
        con.close()


def test_the_readme_recipe_creates_every_pool_and_limit_prefect_yaml_needs():
    """`prefect deploy --all` fails on a pool nobody created: the README's recipe must create
    every work pool prefect.yaml names (and the `gpu` concurrency limit the GPU shards take)."""
    import yaml

    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    pools = {d["work_pool"]["name"] for d in deployments}
    readme = (ROOT / "README.md").read_text()
    created = set(re.findall(r"^prefect work-pool create (\S+)", readme, flags=re.M))
    assert pools and pools <= created, f"README creates {created}, prefect.yaml needs {pools}"
    assert re.search(r"^prefect gcl create gpu ", readme, flags=re.M)
