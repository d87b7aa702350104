#!/usr/bin/python3
"""A Konnectivity peer on gRPC C-core (python3-grpcio), independent of our TypeScript code.

Messages are raw bytes: the Packet protobuf is encoded and decoded here by hand (no protoc needed).

  peer.py agent    TARGET AGENT_ID         serve /AgentService/Connect: dial TCP for each DIAL_REQ, relay DATA
  peer.py frontend TARGET ADDRESS BYTES    one /ProxyService/Proxy call: dial ADDRESS, send BYTES of pattern,
                                           read the echo, close; prints one JSON line with both sha256 sums

TARGET is host:port or unix:/path. The agent prints `{"serverid": ..., "servercount": ...}` once the response
headers arrive, then serves until stdin closes.
"""
import hashlib
import json
import queue
import random
import socket
import sys
import threading

import grpc

DIAL_REQ, DIAL_RSP, CLOSE_REQ, CLOSE_RSP, DATA, DIAL_CLS, DRAIN = range(7)
CHUNK = 32 * 1024


# ---- protobuf, by hand ------------------------------------------------------------------------------------------

def varint(v):
    v &= (1 << 64) - 1  # int64 as protobuf encodes it (two's complement)
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(n, v):
    return varint(n << 3) + varint(v) if v else b""


def field_bytes(n, b):
    return varint((n << 3) | 2) + varint(len(b)) + b if b else b""


def packet(ptype, member, body):
    # A payload message is always present, even when empty (as Go emits it).
    return field_varint(1, ptype) + varint((member << 3) | 2) + varint(len(body)) + body


def read_varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """Yield (number, value) pairs; value is an int or bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        wt = tag & 7
        if wt == 0:
            v, pos = read_varint(buf, pos)
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            v = bytes(buf[pos:pos + n])
            pos += n
        elif wt == 1:
            v = bytes(buf[pos:pos + 8]); pos += 8
        elif wt == 5:
            v = bytes(buf[pos:pos + 4]); pos += 4
        else:
            raise ValueError("bad wire type %d" % wt)
        yield tag >> 3, v


def int64(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def decode(buf):
    """Returns (type, {field: value}) of the payload message."""
    ptype, body = 0, b""
    for n, v in fields(buf):
        if n == 1:
            ptype = v
        elif 2 <= n <= 8:
            body = v
    return ptype, dict(fields(body))


# ---- agent --------------------------------------------------------------------------------------------------------

class Agent:
    def __init__(self):
        self.out = queue.Queue()
        self.conns = {}
        self.next_id = 0
        self.lock = threading.Lock()

    def requests(self):
        while True:
            item = self.out.get()
            if item is None:
                return
            yield item

    def send(self, data):
        self.out.put(data)

    def on_packet(self, ptype, m):
        if ptype == DIAL_REQ:
            threading.Thread(target=self.dial, args=(m.get(2, b"").decode(), int64(m.get(3, 0))), daemon=True).start()
        elif ptype == DATA:
            conn = self.conns.get(int64(m.get(1, 0)))
            if conn is not None:
                conn.sendall(m.get(3, b""))
        elif ptype == CLOSE_REQ:
            cid = int64(m.get(1, 0))
            self.close_conn(cid)

    def close_conn(self, cid):
        with self.lock:
            conn = self.conns.pop(cid, None)
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
            self.send(packet(CLOSE_RSP, 6, field_varint(2, cid)))

    def dial(self, address, rnd):
        with self.lock:
            self.next_id += 1
            cid = self.next_id
        host, port = address.rsplit(":", 1)
        try:
            conn = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            conn.settimeout(None)
        except OSError as e:
            self.send(packet(DIAL_RSP, 3, field_bytes(1, ("dial tcp %s: %s" % (address, e)).encode()) + field_varint(3, rnd)))
            return
        with self.lock:
            self.conns[cid] = conn
        self.send(packet(DIAL_RSP, 3, field_varint(2, cid) + field_varint(3, rnd)))
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                break
            self.send(packet(DATA, 4, field_varint(1, cid) + field_bytes(3, data)))
        self.close_conn(cid)


def run_agent(channel, agent_id):
    agent = Agent()
    call = channel.stream_stream("/AgentService/Connect")(
        agent.requests(), metadata=[("agentid", agent_id), ("agentidentifiers", "host=python-peer")])
    md = dict(call.initial_metadata())
    print(json.dumps({"serverid": md.get("serverid"), "servercount": md.get("servercount")}), flush=True)

    def stop_on_stdin_eof():
        sys.stdin.read()
        agent.send(None)
        call.cancel()
    threading.Thread(target=stop_on_stdin_eof, daemon=True).start()
    try:
        for msg in call:
            agent.on_packet(*decode(msg))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            print(json.dumps({"error": str(e.code()), "details": e.details()}), flush=True)


# ---- frontend -----------------------------------------------------------------------------------------------------

def pattern(n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:n])


def run_frontend(channel, address, total):
    out = queue.Queue()

    def requests():
        while True:
            item = out.get()
            if item is None:
                return
            yield item
    rnd = random.getrandbits(63)
    call = channel.stream_stream("/ProxyService/Proxy")(requests())
    out.put(packet(DIAL_REQ, 2, field_bytes(1, b"tcp") + field_bytes(2, address.encode()) + field_varint(3, rnd)))
    it = iter(call)
    ptype, m = decode(next(it))
    if ptype != DIAL_RSP or int64(m.get(3, 0)) != rnd:
        raise SystemExit("unexpected answer to DIAL_REQ: type %d" % ptype)
    if m.get(1):
        print(json.dumps({"dialError": m[1].decode()}), flush=True)
        out.put(None)
        return
    cid = int64(m.get(2, 0))
    data = pattern(total)
    sent = hashlib.sha256(data).hexdigest()

    def writer():
        for i in range(0, total, CHUNK):
            out.put(packet(DATA, 4, field_varint(1, cid) + field_bytes(3, data[i:i + CHUNK])))
    threading.Thread(target=writer, daemon=True).start()
    h = hashlib.sha256()
    got = 0
    for msg in it:
        ptype, m = decode(msg)
        if ptype == DATA:
            chunk = m.get(3, b"")
            h.update(chunk)
            got += len(chunk)
            if got >= total:
                break
        elif ptype == CLOSE_RSP:
            break
    out.put(packet(CLOSE_REQ, 5, field_varint(1, cid)))
    closed = False
    for msg in it:
        if decode(msg)[0] == CLOSE_RSP:
            closed = True
            break
    out.put(None)
    print(json.dumps({"sent": sent, "received": h.hexdigest(), "bytes": got, "closeRsp": closed}), flush=True)


def main():
    mode, target = sys.argv[1], sys.argv[2]
    # grpc-python sends up to 4 MiB messages by default; our DATA stays at 32 KiB.
    with grpc.insecure_channel(target) as channel:
        if mode == "agent":
            run_agent(channel, sys.argv[3])
        else:
            run_frontend(channel, sys.argv[3], int(sys.argv[4]))


if __name__ == "__main__":
    main()
