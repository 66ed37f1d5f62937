"""A local S3 endpoint on loopback (moto's server) that the real registry writes to.

Started on a free port, stopped by its process id; failure to start is an error
with the server's output, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.registry_server import free_port, launch, listening, stop_process

KEY, SECRET, REGION = "reginsight-test", "reginsight-test-secret", "us-east-1"


class S3StartError(RuntimeError):
    """moto_server is missing or did not come up."""


@dataclass
class S3Server:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> S3Server:
        binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        if not os.path.exists(binary):
            raise S3StartError("moto_server not found: run the README's test command, which "
                               "installs moto[server]")
        self.port = self.port or free_port(self.host)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = launch([binary, "-H", self.host, "-p", str(self.port)],
                              self.workdir / "moto.log")
        if listening(self.process, self.host, self.port, timeout):
            return self
        output = (self.workdir / "moto.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise S3StartError(f"moto_server did not start on {self.endpoint}:\n{output}")

    def stop(self) -> None:
        stop_process(self.process)

    def client(self) -> Any:
        """A boto3 client: the independent oracle of what the bucket holds."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET, region_name=REGION)

    def storage_options(self) -> dict[str, Any]:
        """What scan_storage hands to s3fs."""
        return {"key": KEY, "secret": SECRET,
                "client_kwargs": {"endpoint_url": self.endpoint, "region_name": REGION}}

    def registry_storage(self, bucket: str, root: str) -> dict[str, Any]:
        """The registry's ``storage:`` override for Distribution's s3 driver."""
        return {"filesystem": None, "s3": {
            "accesskey": KEY, "secretkey": SECRET, "region": REGION,
            "regionendpoint": self.endpoint, "bucket": bucket, "rootdirectory": root,
            "secure": False, "v4auth": True}}

    def objects(self, bucket: str, prefix: str) -> dict[str, int]:
        """Every object under ``prefix``, with its size."""
        client, found = self.client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            found.update((item["Key"], item["Size"]) for item in page.get("Contents", ()))
        return found

    def copy_prefix(self, bucket: str, source: str, target: str) -> None:
        client = self.client()
        for key in self.objects(bucket, source):
            client.copy_object(Bucket=bucket, Key=target + key[len(source):],
                               CopySource={"Bucket": bucket, "Key": key})
