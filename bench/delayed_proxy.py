"""A TCP forwarder that delays every chunk it passes on, one way, by a fixed time: a database on another host
of the network, seen from this one (BENCHMARKS.md, "PostgreSQL on another host"). Run by hand, beside
bench.run pointed at it:

    python -m bench.delayed_proxy --listen 6432 --to 5432 --delay-ms 0.25 &
    USM_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:6432/usm_bench python -m bench.run ...

Loopback only. The delay is added per direction, so a round trip costs twice --delay-ms more; a chunk's
order is kept. The forwarder uses CPU of its own (one process, asyncio), so compare latency with it, not
throughput against runs without it.
"""
from __future__ import annotations

import argparse
import asyncio


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(65536):
            # Each chunk leaves `delay` after it arrived, not after the one before it left: a link's latency.
            loop.call_at(loop.time() + delay, writer.write, data)
        await asyncio.sleep(delay)
    finally:
        writer.close()


async def _serve(listen: int, to: int, delay: float) -> None:
    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", to)
        await asyncio.gather(_pipe(client_reader, server_writer, delay), _pipe(server_reader, client_writer, delay))

    server = await asyncio.start_server(forward, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on, on 127.0.0.1")
    parser.add_argument("--to", type=int, required=True, help="port to forward to, on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, required=True, help="added to every chunk, each way")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.listen, args.to, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
