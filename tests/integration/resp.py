#!/usr/bin/env python3
"""RESP2 helper of the quorumd integration tests (standard library only).

Subcommands (every socket operation is bounded by a timeout; ports are on 127.0.0.1):

  writer --ports P1,P2,.. --seconds S --prefix X --acked FILE [--errors FILE]
         [--stop-file F] [--pace S] [--request-timeout S]
      Writes unique keys (X:<n> = v<n>) round-robin through the ports, one request at a
      time, for S seconds or until F exists. Appends "key value unix_time" to FILE for every +OK, "unix_time
      error text" to the errors file for every error reply or connection failure.
  verify --port P --acked FILE [--batch N]
      MGETs every key of FILE through P; prints one line per missing or wrong key and a
      summary "checked N missing M wrong W"; exit status 1 if any key is missing or wrong.
  cmd --port P ARG...
      Sends one command and prints the reply as Python repr (for raw checks).
  send --port P (--hex HEX | --text TEXT | --random N) [--wait S]
      Sends bytes, then reads until the server closes or S seconds (default 2) pass;
      prints "closed" or "open" and the bytes received (repr).
  hold --port P --text TEXT --seconds S
      Sends TEXT and keeps the connection open; prints "closed after T" as soon as the server
      closes it, or "open" after S seconds.
  flood --port P --key K --count N --seconds S
      Pipelines N "GET K" without reading; then waits up to S seconds for the server to
      close the connection. Prints "closed" or "open".
  clients --port P --count N
      Opens N connections, sends PING on each, prints the first distinct replies seen and
      how many connections got each ("PONG 9", "ERR max number of clients reached 1").
"""
import argparse
import os
import random
import socket
import sys
import time


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode(errors="replace")
        if t == b"-":
            return RespError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.reply() for _ in range(n)]
        raise ValueError("bad reply line %r" % line)

    def call(self, *args):
        self.sock.sendall(encode(args))
        return self.reply()


class RespError(str):
    pass


def cmd_writer(a):
    ports = [int(p) for p in a.ports.split(",")]
    end = time.time() + a.seconds
    acked = open(a.acked, "a", buffering=1)
    errors = open(a.errors, "a", buffering=1) if a.errors else sys.stderr
    conns = {}
    n = 0
    ok = 0
    err = 0
    while time.time() < end:
        if a.stop_file and os.path.exists(a.stop_file):
            break
        port = ports[n % len(ports)]
        key = "%s:%d" % (a.prefix, n)
        val = "v%d" % n
        n += 1
        try:
            c = conns.get(port)
            if c is None:
                c = conns[port] = Conn(port, timeout=a.request_timeout)
            r = c.call("SET", key, val)
        except (OSError, ConnectionError, ValueError) as e:
            old = conns.pop(port, None)
            if old is not None:
                old.close()
            errors.write("%.3f conn %s port %d key %s\n" % (time.time(), e.__class__.__name__, port, key))
            err += 1
            time.sleep(0.05)
            continue
        if r == "OK":
            acked.write("%s %s %.3f\n" % (key, val, time.time()))
            ok += 1
        else:
            errors.write("%.3f reply %s port %d key %s\n" % (time.time(), r, port, key))
            err += 1
            if isinstance(r, RespError):
                time.sleep(0.02)
        if a.pace:
            time.sleep(a.pace)
    for c in conns.values():
        c.close()
    print("writer: sent %d ok %d errors %d" % (n, ok, err))


def cmd_verify(a):
    entries = []
    with open(a.acked) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                entries.append((parts[0], parts[1]))
    c = Conn(a.port, timeout=15)
    missing = wrong = 0
    for i in range(0, len(entries), a.batch):
        chunk = entries[i:i + a.batch]
        r = c.call("MGET", *[k for k, _ in chunk])
        if not isinstance(r, list):
            print("MGET failed: %r" % (r,))
            sys.exit(2)
        for (k, v), got in zip(chunk, r):
            if got is None:
                missing += 1
                if missing <= 10:
                    print("missing %s (expected %s)" % (k, v))
            elif got.decode(errors="replace") != v:
                wrong += 1
                if wrong <= 10:
                    print("wrong %s expected %s got %r" % (k, v, got))
    c.close()
    print("checked %d missing %d wrong %d" % (len(entries), missing, wrong))
    sys.exit(1 if missing or wrong else 0)


def cmd_cmd(a):
    c = Conn(a.port, timeout=a.timeout)
    print(repr(c.call(*a.args)))
    c.close()


def read_until_close(s, seconds):
    s.settimeout(0.2)
    got = b""
    end = time.time() + seconds
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True, got
        if not d:
            return True, got
        got += d
    return False, got


def cmd_send(a):
    if a.hex is not None:
        data = bytes.fromhex(a.hex)
    elif a.text is not None:
        data = a.text.encode().decode("unicode_escape").encode("latin-1")
    else:
        data = os.urandom(a.random)
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    try:
        s.sendall(data)
    except OSError as e:
        print("closed (during send: %s)" % e.__class__.__name__)
        return
    closed, got = read_until_close(s, a.wait)
    s.close()
    print("closed" if closed else "open")
    print(repr(got[:300]))


def cmd_hold(a):
    data = a.text.encode().decode("unicode_escape").encode("latin-1")
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(data)
    start = time.time()
    closed, got = read_until_close(s, a.seconds)
    s.close()
    if closed:
        print("closed after %.1f" % (time.time() - start))
    else:
        print("open")
    sys.stdout.flush()


def cmd_flood(a):
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.settimeout(0.5)
    req = encode(["GET", a.key]) * 100
    sent = 0
    closed = False
    end = time.time() + a.seconds
    while sent < a.count and time.time() < end:
        try:
            s.sendall(req)
            sent += 100
        except socket.timeout:
            # our send buffer is full: the server stopped reading (fine) — keep waiting
            continue
        except OSError:
            closed = True
            break
    if not closed:
        # do not read; wait for the server to close (a reset or FIN shows up on recv)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        while time.time() < end:
            try:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                time.sleep(0.1)
            except socket.timeout:
                time.sleep(0.1)
            except OSError:
                closed = True
                break
    s.close()
    print("closed" if closed else "open", "after", sent, "requests")


def cmd_clients(a):
    socks = []
    counts = {}
    for _ in range(a.count):
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        except OSError as e:
            counts["connect failed " + e.__class__.__name__] = counts.get("connect failed " + e.__class__.__name__, 0) + 1
            continue
        socks.append(s)
    for s in socks:
        try:
            s.sendall(encode(["PING"]))
        except OSError:
            pass
    for s in socks:
        c = Conn.__new__(Conn)
        c.sock = s
        c.buf = b""
        try:
            r = c.reply()
            key = str(r)
        except (OSError, ConnectionError, ValueError) as e:
            key = "no reply " + e.__class__.__name__
        counts[key] = counts.get(key, 0) + 1
    for k in sorted(counts):
        print("%s|%d" % (k, counts[k]))
    for s in socks:
        s.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="sub", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--ports", required=True)
    w.add_argument("--seconds", type=float, required=True)
    w.add_argument("--prefix", required=True)
    w.add_argument("--acked", required=True)
    w.add_argument("--errors")
    w.add_argument("--pace", type=float, default=0.0)
    w.add_argument("--stop-file", help="stop early as soon as this file exists")
    w.add_argument("--request-timeout", type=float, default=12.0)
    v = sub.add_parser("verify")
    v.add_argument("--port", type=int, required=True)
    v.add_argument("--acked", required=True)
    v.add_argument("--batch", type=int, default=200)
    c = sub.add_parser("cmd")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--timeout", type=float, default=10)
    c.add_argument("args", nargs="+")
    s = sub.add_parser("send")
    s.add_argument("--port", type=int, required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--hex")
    g.add_argument("--text")
    g.add_argument("--random", type=int)
    s.add_argument("--wait", type=float, default=2.0)
    h = sub.add_parser("hold")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--text", required=True)
    h.add_argument("--seconds", type=float, required=True)
    f = sub.add_parser("flood")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--key", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--seconds", type=float, default=10)
    m = sub.add_parser("clients")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    random.seed()
    {"writer": cmd_writer, "verify": cmd_verify, "cmd": cmd_cmd, "send": cmd_send,
     "hold": cmd_hold, "flood": cmd_flood, "clients": cmd_clients}[a.sub](a)


if __name__ == "__main__":
    main()
