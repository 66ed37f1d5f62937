"""A TCP proxy that adds a fixed delay each way: 10 ms each way = 20 ms per round trip.

There is no tc/netem here; this stands in for a registry across a network.
    python -m benchmarks.latency_proxy --listen 127.0.0.1:PORT --target 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def receive() -> None:
        while True:
            data = await reader.read(65536)
            queue.put_nowait((loop.time() + delay, data or None))
            if not data:
                return

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    with contextlib.suppress(ConnectionError, OSError):
        await asyncio.gather(receive(), send())


async def _serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader,
                     client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, upstream_writer, delay),
                             _pump(upstream_reader, client_writer, delay))
        for w in (client_writer, upstream_writer):
            w.close()

    server = await asyncio.start_server(handle, *listen, backlog=512)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def latency_proxy(target_port: int, delay_ms: float) -> Iterator[tuple[int, int]]:
    """This proxy in a child process in front of 127.0.0.1:``target_port``; yields the
    port it listens on and its process id, and stops it on exit."""
    from tests.registry_server import free_port

    port = free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "benchmarks.latency_proxy",
                              "--listen", f"127.0.0.1:{port}",
                              "--target", f"127.0.0.1:{target_port}",
                              "--delay-ms", str(delay_ms)])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("latency proxy did not start")
        yield port, proxy.pid
    finally:
        proxy.kill()
        proxy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    thost, tport = args.target.rsplit(":", 1)
    asyncio.run(_serve((host, int(port)), (thost, int(tport)), args.delay_ms / 1000))


if __name__ == "__main__":
    main()
