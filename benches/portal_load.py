"""The pickup portal under load. Prints figures; asserts only that each step worked.

  python3 benches/portal_load.py relay PORT RCPT N SIZE
      one session, N messages of SIZE bytes (with a BSN) to RCPT, one after another:
      end of DATA to the reply in ms -> "p50 p99 mean"
  python3 benches/portal_load.py web PORTAL_PORT DUMPS OUTBOX SESSIONS COOKIES
      every link in the notifications smtp-sink dumped in DUMPS, SESSIONS at a time, each as
      a browser would (its own connection, cookies): the link's page, the POST that sends the
      code, the code (read from the SMS outbox) checked, then the message page 10 times.
      Writes each session's cookies and CSRF token to COOKIES (for wrk), and a second visit
      per recipient that has asked for a code but not given it (for the code checks).
      -> "code p50 p99 | message p50 p99 | n"
Every socket read is bounded by a 30 s timeout.
"""
import glob
import http.client
import json
import re
import socket
import ssl
import sys
import threading
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(int(len(xs) * p) - 1, 0)] if p < 1 else xs[-1]


def relay(port, rcpt, n, size):
    line = b"Patient J. de Vries, BSN 123456782, geboren 12-03-1961, uitslag volgt.\r\n"
    body = b"From: Dr. Jansen <jansen@org.test>\r\nSubject: bench\r\n\r\n" + line * (size // len(line))
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")

    def reply():
        while True:
            r = f.readline()
            if r[3:4] != b"-":
                return r

    reply()
    s.sendall(b"EHLO bench.test\r\n")
    reply()
    times = []
    for _ in range(n):
        s.sendall(f"MAIL FROM:<jansen@org.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        for _ in range(3):
            r = reply()
        assert r.startswith(b"354"), r
        s.sendall(body)
        t0 = time.perf_counter()
        s.sendall(b".\r\n")
        r = reply()
        times.append((time.perf_counter() - t0) * 1000)
        assert r.startswith(b"250"), r
    s.sendall(b"QUIT\r\n")
    print(f"{pct(times, 0.5):.2f} {pct(times, 0.99):.2f} {sum(times) / len(times):.2f}")


class Browser:
    def __init__(self, port):
        ctx = ssl.create_default_context()
        # The bench portal's certificate is generated at its start: nothing to verify against.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        self.cookies = {}

    def request(self, method, path, form=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = "&".join(f"{k}={v}" for k, v in form.items())
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        ms = (time.perf_counter() - t0) * 1000
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, value = v.split(";")[0].partition("=")
                self.cookies[name] = value
        return r.status, r.getheader("location") or "", data.decode("utf-8", "replace"), ms


csrf_name = "__Host-sluis-csrf"


def cookie_line(cookies):
    """`Cookie` header value, a tab, the CSRF token (the form field)."""
    return "; ".join(f"{k}={v}" for k, v in cookies.items()) + "\t" + cookies[csrf_name]


def code_for(outbox, number, deadline):
    while time.time() < deadline:
        try:
            with open(outbox) as f:
                for line in f:
                    m = json.loads(line)
                    if m["to"] == number:
                        return re.search(r"\b\d{6,8}\b", m["text"]).group(0)
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"no SMS for {number}")


def web(port, dumps, outbox, sessions, cookies_out):
    links = []
    for path in glob.glob(f"{dumps}/*"):
        text = open(path, errors="replace").read()
        m = re.search(r"^To: <(pat\d+@patients\.test)>", text, re.M)
        link = re.search(r"https://[^/\s]+(/r/[A-Z0-9-]+/[A-Za-z0-9_-]{43})", text)
        if m and link:
            links.append((m.group(1), link.group(1)))
    links = sorted(set(links))
    number = {f"pat{i}@patients.test": f"+316{10000000 + i}" for i in range(10000)}
    queue, lock = list(links), threading.Lock()
    code_ms, page_ms, opened, waiting = [], [], [], []

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                rcpt, link = queue.pop()
            b = Browser(port)
            status, _, page, _ = b.request("GET", link)
            assert status == 200, (status, page[:200])
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            status, loc, _, _ = b.request("POST", link, {"csrf": csrf})
            assert loc == "/code?s=sent", (status, loc)
            code = code_for(outbox, number[rcpt], time.time() + 30)
            status, loc, _, ms = b.request("POST", "/code", {"csrf": csrf, "code": code})
            assert loc == "/message", (status, loc)
            mine = []
            for _ in range(10):
                status, _, page, t = b.request("GET", "/message")
                assert status == 200 and "123456782" in page, status
                mine.append(t)
            # A second visit that waits for its code: for the code checks under load.
            w = Browser(port)
            w.request("GET", link)
            w.cookies[csrf_name] = b.cookies[csrf_name]
            status, loc, _, _ = w.request("POST", link, {"csrf": csrf})
            assert loc.startswith("/code?s="), (status, loc)
            with lock:
                code_ms.append(ms)
                page_ms.extend(mine)
                opened.append(cookie_line(b.cookies))
                waiting.append(cookie_line(w.cookies))

    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(cookies_out, "w") as f:
        f.write("\n".join(opened) + "\n")
    with open(cookies_out + ".waiting", "w") as f:
        f.write("\n".join(waiting) + "\n")
    print(f"{pct(code_ms, 0.5):.1f} {pct(code_ms, 0.99):.1f} | "
          f"{pct(page_ms, 0.5):.1f} {pct(page_ms, 0.99):.1f} | {len(code_ms)}")


if sys.argv[1] == "relay":
    relay(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
else:
    web(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
