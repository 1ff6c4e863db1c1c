"""End of DATA to the reply, in ms: SESSIONS sessions at once, N messages each, SIZE bytes.

Usage: python3 benches/latency.py PORT SESSIONS N SIZE  ->  prints "p50 p99"
Every session and every read is bounded by a 30 s socket timeout.
"""
import socket
import sys
import threading
import time

port, sessions, n, size = (int(a) for a in sys.argv[1:5])
body = b"Subject: bench\r\n\r\n" + (b"x" * 76 + b"\r\n") * (size // 78)
times, lock = [], threading.Lock()


def session():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    # A client's delayed segments are not the server's latency.
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line

    reply()
    s.sendall(b"EHLO bench.test\r\n")
    reply()
    mine = []
    for _ in range(n):
        s.sendall(b"MAIL FROM:<bench@org.test>\r\nRCPT TO:<p@partner.test>\r\nDATA\r\n")
        for _ in range(3):
            r = reply()
        assert r.startswith(b"354"), r
        s.sendall(body)
        t0 = time.perf_counter()
        s.sendall(b".\r\n")
        r = reply()
        t1 = time.perf_counter()
        assert r.startswith(b"250"), r
        mine.append((t1 - t0) * 1000)
    s.sendall(b"QUIT\r\n")
    with lock:
        times.extend(mine)


threads = [threading.Thread(target=session) for _ in range(sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
times.sort()
print(f"{times[len(times) // 2]:.2f} {times[max(int(len(times) * 0.99) - 1, 0)]:.2f}")
