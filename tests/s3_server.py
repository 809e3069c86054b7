"""A local S3-compatible server with object lock and versioning, for tests: moto's server mode, in a
thread, on 127.0.0.1 and a free port. Nothing leaves the loopback interface."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Credentials the server accepts (moto checks none); tests look for them in every output.
ACCESS_KEY = "AKIATESTSOVSTACK0001"
SECRET_KEY = "planted-secret-9f1c0b7e2d4a"


@contextmanager
def moto_s3() -> Iterator[str]:
    """Start the server; yield its endpoint URL (http://127.0.0.1:PORT)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def client(endpoint: str, region: str = "us-east-1") -> Any:
    """An admin client of the test server (path-style, like sovstack's)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def unique_bucket(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:10]}"
