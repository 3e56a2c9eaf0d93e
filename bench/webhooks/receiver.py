"""A webhook receiver for the benchmark: answers every POST 200 at once, keep-alive,
and counts what it got. python3 receiver.py PORT_FILE COUNT_FILE (loopback, any port)."""
import asyncio
import sys

count = 0


async def handle(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            count += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    while True:
        await asyncio.sleep(0.2)
        with open(sys.argv[2], "w") as f:
            f.write(str(count))


asyncio.run(main())
