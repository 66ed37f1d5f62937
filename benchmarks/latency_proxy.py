"""A TCP proxy that delays every byte by a fixed time each way: ``--delay-ms`` is the
ONE-WAY delay, so 10 ms each way = +20 ms per request/response round trip.

There is no tc/netem here; this stands in for a server across a network.
    python -m benchmarks.latency_proxy --listen 127.0.0.1:PORT --target 127.0.0.1:PORT
                                       [--delay-ms 10] [--handshake]

Each direction of each connection is a reader and a writer: a chunk read at t is
written at t + delay, in order, so a response's first byte reaches the client one round
trip after the request's last byte left it, whatever the number of requests a
keep-alive connection carries or of connections open at once. ``--handshake`` also
holds each new connection's first bytes one more round trip, as TCP's handshake costs
a client that opens connections (a client that keeps them pays it once).

A connection closed or reset by either side closes the other; its tasks end with it.
SIGTERM/SIGINT stop the proxy quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

_CHUNK = 65536
_QUEUED = 256  # chunks in flight per direction: bounds memory when a side reads slowly


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float, hold: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk written ``delay`` seconds after it was
    read (the first one ``hold`` seconds more); end of stream passed on likewise."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(_QUEUED)

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    async def receive() -> None:
        extra = hold
        while True:
            data = await reader.read(_CHUNK)
            await queue.put((loop.time() + delay + extra, data))
            extra = 0.0
            if not data:
                return

    tasks = [asyncio.ensure_future(receive()), asyncio.ensure_future(send())]
    try:
        await asyncio.gather(*tasks)
    finally:  # one failed or this pump was cancelled: neither half outlives it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _connection(client_reader: asyncio.StreamReader,
                      client_writer: asyncio.StreamWriter, target: tuple[str, int],
                      delay: float, hold: float) -> None:
    writers = [client_writer]
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        writers.append(upstream_writer)
        pumps = [asyncio.ensure_future(_pump(client_reader, upstream_writer, delay, hold)),
                 asyncio.ensure_future(_pump(upstream_reader, client_writer, delay, 0.0))]
        try:
            # both directions ended normally, or one failed: then the other goes too
            await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await pump
    except (ConnectionError, OSError):
        pass  # a peer went away: nothing to report
    finally:
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


async def _serve(listen: tuple[str, int], target: tuple[str, int], delay: float,
                 hold: float) -> None:
    connections: set[asyncio.Task] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        connections.add(task)
        try:
            await _connection(reader, writer, target, delay, hold)
        except asyncio.CancelledError:
            pass  # stopping; ended here, as asyncio's server callback fails on a cancelled task
        finally:
            connections.discard(task)

    loop = asyncio.get_running_loop()
    stopping = loop.create_future()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, lambda: stopping.done() or stopping.set_result(None))
    server = await asyncio.start_server(handle, *listen, backlog=1024)
    async with server:
        await stopping
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


@contextlib.contextmanager
def latency_proxy(target_port: int, delay_ms: float, *, handshake: bool = False
                  ) -> Iterator[tuple[int, int]]:
    """This proxy in a child process in front of 127.0.0.1:``target_port``, adding
    ``delay_ms`` ONE WAY (twice that per round trip); yields the port it listens on and
    its process id, and stops it (by that id) on exit."""
    from tests.registry_server import free_port

    port = free_port()
    command = [sys.executable, "-m", "benchmarks.latency_proxy",
               "--listen", f"127.0.0.1:{port}", "--target", f"127.0.0.1:{target_port}",
               "--delay-ms", str(delay_ms)] + (["--handshake"] if handshake else [])
    proxy = subprocess.Popen(command)
    try:
        for _ in range(200):
            if proxy.poll() is not None:
                raise RuntimeError(f"latency proxy exited with {proxy.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("latency proxy did not start")
        yield port, proxy.pid
    finally:
        if proxy.poll() is None:
            proxy.terminate()
            try:
                proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay")
    parser.add_argument("--handshake", action="store_true",
                        help="a new connection's first bytes wait one more round trip")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    thost, tport = args.target.rsplit(":", 1)
    delay = args.delay_ms / 1000
    asyncio.run(_serve((host, int(port)), (thost, int(tport)), delay,
                       2 * delay if args.handshake else 0.0))


if __name__ == "__main__":
    main()
