#!/usr/bin/env python3
"""asyncio: many concurrent execs on one sandbox, driven by the event loop.

    MATCHLOCK_BIN=build/matchlock-local python3 examples/python/async_many.py
"""

import asyncio
import time

from matchlock_native import AsyncClient, Sandbox


async def main() -> None:
    async with AsyncClient() as client:
        await client.create(Sandbox("alpine:latest"))
        t = time.perf_counter()
        results = await asyncio.gather(*(client.exec(f"echo job {i}") for i in range(20)))
        print(f"{len(results)} execs in {time.perf_counter() - t:.2f}s:",
              ", ".join(r.stdout.strip() for r in results[:3]), "...")
        try:
            await client.exec("sleep 10", timeout=0.5)
        except TimeoutError as e:
            print(f"timed out as asked: {e}")


if __name__ == "__main__":
    asyncio.run(main())
