"""A real S3 API server (moto) on 127.0.0.1 with a free port, and a canary corpus.

One moto server per test module; each test gets a bucket of its own and the
AWS SDK environment pointing at the server (endpoint and credentials come only
from that environment, as in production). Without moto the tests skip, naming
the install command.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from gantry.testing import Corpus, make_corpus
from gantry.testing._cloud import (
    CloudBucket,
    Emulator,
    azurite,
    azurite_missing,
    gcs_emulator,
    gcs_missing,
)
from gantry.testing._s3 import MotoServer, S3Bucket, moto_missing, moto_server, s3_env


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    reason = moto_missing()
    if reason:
        pytest.skip(reason)
    with moto_server() as server:
        yield server


@pytest.fixture
def s3(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket, and the SDK environment pointing at the server."""
    env = s3_env(moto.url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s = S3Bucket(moto, bucket, env)
    s.client().create_bucket(Bucket=bucket)
    return s


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("s3corpus")
    return make_corpus(
        root / "dicom",
        patients=2,
        studies_per_patient=1,
        series_per_study=2,
        instances_per_series=3,
        canaries=True,
    )


@pytest.fixture(scope="module")
def needles(corpus: Corpus) -> set[str]:
    """What no de-identified byte may hold: the canaries, and each patient's identity."""
    return corpus.identity_needles()


@pytest.fixture(scope="module")
def gcs_server() -> Iterator[Emulator]:
    reason = gcs_missing()
    if reason:
        pytest.skip(reason)
    with gcs_emulator() as server:
        yield server


@pytest.fixture(scope="module")
def azure_server() -> Iterator[Emulator]:
    reason = azurite_missing()
    if reason:
        pytest.skip(reason)
    with azurite() as server:
        yield server


@pytest.fixture(params=["gcs", "azure"])
def cloud(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> CloudBucket:
    server: Emulator = request.getfixturevalue(f"{request.param}_server")
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    server.make_bucket(bucket)
    return CloudBucket(server, bucket)
