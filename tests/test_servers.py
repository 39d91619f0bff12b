"""The real servers of ``tests/servers.py`` are what they claim: MLflow writes land in PostgreSQL,
objects land in the S3 server, and a stopped server is gone."""

from __future__ import annotations

import uuid

from tests.servers import http_answers, s3_server


def test_an_mlflow_server_on_postgresql_stores_runs_in_postgresql(mlflow_server_postgres):
    import sqlalchemy
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server_postgres.uri)
    name = f"servers-{uuid.uuid4().hex[:8]}"
    run = client.create_run(client.create_experiment(name))
    client.log_metric(run.info.run_id, "accuracy", 0.5, step=6)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "accuracy")] == [6]
    engine = sqlalchemy.create_engine(mlflow_server_postgres.backend_uri)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(
                "SELECT m.value FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
                "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE e.name = :name"),
                {"name": name}).fetchall()
    finally:
        engine.dispose()
    assert [r[0] for r in rows] == [0.5]


def test_the_s3_server_holds_what_pyarrow_writes_and_is_gone_once_stopped(tmp_path, monkeypatch):
    from pyarrow import fs

    with s3_server(tmp_path) as server:
        bucket = server.bucket()
        for key, value in server.env.items():
            monkeypatch.setenv(key, value)
        store, path = fs.FileSystem.from_uri(f"s3://{bucket}/prefix")  # endpoint etc. from the environment
        with store.open_output_stream(f"{path}/x.txt") as out:
            out.write(b"hello")
        listed = server.filesystem().get_file_info(fs.FileSelector(bucket, recursive=True))
        assert [(i.path, i.size) for i in listed if i.type == fs.FileType.File] == [(f"{bucket}/prefix/x.txt", 5)]
        endpoint = server.endpoint
    assert not http_answers(f"{endpoint}/moto-api/")
