#!/usr/bin/python3
"""A FAKE `osbackup bacula-backend`: the plugin's own protocol test fixture.

It speaks docs/bacula-protocol.md (version 1) well enough to drive openstack-fd.so through a real
Bacula 9.6 File Daemon in bacula/test/plugin-protocol-test.sh. It is NOT the backend: the real one is
`osbackup bacula-backend` (Swift). It knows no OpenStack; it invents one server with two volumes and
deterministic data, and writes what it does to LOG/events.log so the test can check what the plugin
forwarded. Plugin string keys it reads: log=DIR (required), scenario=normal|slow|garbage|hang.
  normal   Full: .name, .conf and .bmp/.bmpsha/.bvmdk of two volumes, kind=full.
           Incremental: CHECK for volume 1, then its parts as kind=delta (Full if CHECK:none);
           volume 2 "fails": W + SEEN for its three files. Restore: OK for every part, logs its
           name, size, delta_seq and sha256.
  slow     sends one file, then K every 0.5 s for 120 s with a `sleep` child in its process group;
           on SIGTERM logs it, sends A "cancelled", exits 1.
  garbage  a packet with the status character 'X' after the session start.
  hang     nothing after the session start (with timeout=2 the plugin gives up).
"""
import hashlib, os, signal, subprocess, sys, time

inp, out = sys.stdin.buffer, sys.stdout.buffer
LOG = None


def log(line):
    with open(os.path.join(LOG, "events.log"), "a") as f:
        f.write(line + "\n")


def send(status, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    out.write(b"%c%06d\n" % (status, len(payload)) + payload)
    out.flush()


def recv():
    h = inp.read(8)
    if len(h) < 8:
        raise EOFError("plugin closed the pipe")
    assert h[7:8] == b"\n", h
    n = int(h[1:7])
    data = inp.read(n)
    return chr(h[0]), data


def recv_c(expected=None):
    s, d = recv()
    assert s == "C", (s, d)
    d = d.decode()
    if expected is not None:
        assert d == expected, (d, expected)
    return d


def recv_block():
    items = []
    while True:
        s, d = recv()
        if s == "F":
            return items
        assert s == "C", s
        items.append(d.decode())


def content(path, job, size):
    seed = hashlib.sha256(f"{path}|{job}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def send_file(path, data, kind, mtime):
    send(ord("C"), f"FNAME:{path}")
    send(ord("C"), f"STAT:{len(data)} {mtime} {kind}")
    send(ord("F"))
    for off in range(0, len(data), 65536):
        send(ord("D"), data[off:off + 65536])
    send(ord("F"))
    log(f"SENT {path} {len(data)} {kind} {hashlib.sha256(data).hexdigest()}")


def main():
    global LOG
    recv_c("Hello openstack-fd 1")
    send(ord("C"), "Hello osbackup 1")
    assert recv_c() == "Job"
    job = dict(x.split("=", 1) for x in recv_block())
    assert recv_c() == "Params"
    params = dict(x.split("=", 1) for x in recv_block())
    start = recv_c()
    LOG = params["log"]
    scenario = params.get("scenario", "normal")
    log(f"START {start} scenario={scenario} pid={os.getpid()} pgid={os.getpgid(0)} "
        f"JobId={job['JobId']} Level={job['Level']} Accurate={job['Accurate']} Where={job['Where']} "
        f"keys={','.join(sorted(params))}")
    if start in ("BackupStart", "EstimateStart") and job["Level"] in "ID" and job["Accurate"] != "1":
        send(ord("A"), "an Incremental needs Accurate = yes on the Job")
        return 1
    send(ord("C"), "OK")
    jobid, level = job["JobId"], job["Level"]
    now = int(time.time())
    base = "/@openstack/nova/server"
    if start == "RestoreStart":
        while True:
            cmd = recv_c()
            if cmd == "END":
                log("RESTORE-END")
                send(ord("C"), "OK")
                return 0
            name = cmd[len("FNAME:"):]
            size, seq = recv_c()[len("STAT:"):].split()
            assert recv()[0] == "F"
            send(ord("C"), "OK")
            h, n = hashlib.sha256(), 0
            while True:
                s, d = recv()
                if s == "F":
                    break
                assert s == "D", s
                h.update(d)
                n += len(d)
            log(f"RESTORED {name} size={size} seq={seq} got={n} sha={h.hexdigest()}")
            send(ord("C"), "OK")
    data = start == "BackupStart"

    def emit(path, size, kind):
        d = content(path, jobid, size)
        if data:
            send_file(path, d, kind, now)
        else:
            send(ord("C"), f"FNAME:{path}")
            send(ord("C"), f"STAT:{size} {now} {kind}")
            send(ord("F"))
            log(f"LISTED {path} {size} {kind}")

    if scenario == "garbage":
        out.write(b"X000001\nZ")
        out.flush()
        time.sleep(5)
        return 1
    if scenario == "hang":
        time.sleep(60)
        return 1
    if scenario == "slow":
        child = subprocess.Popen(["sleep", "300"])
        def on_term(signum, frame):
            log(f"SIGTERM child={child.pid}")
            try:
                send(ord("A"), "cancelled")
            except Exception:
                pass
            sys.exit(1)
        signal.signal(signal.SIGTERM, on_term)
        emit(f"{base}/2222_slow.name", 5, "full")
        log(f"SLOW pid={os.getpid()} child={child.pid}")
        for _ in range(240):
            send(ord("K"))
            time.sleep(0.5)
        send(ord("C"), "END")
        return 0
    send(ord("I"), f"fake backend: {start} level {level}")
    emit(f"{base}/1111_web1.name", 5, "full")
    emit(f"{base}/1111/1111.conf", 300, "full")
    incremental = level in "ID"
    for vol, failing in (("aaaa", False), ("bbbb", incremental)):
        parts = [f"{base}/1111/{vol}.bmp", f"{base}/1111/{vol}.bmpsha", f"{base}/1111/root_{vol}.bvmdk"]
        if failing:
            send(ord("W"), f"fake backend: volume {vol} failed; its earlier backup stays current")
            for p in parts:
                send(ord("C"), f"SEEN:{p}")
            log(f"SEEN {vol}")
            continue
        kind = "full"
        if incremental:
            send(ord("C"), f"CHECK:{parts[2]}")
            reply = recv_c()
            log(f"CHECK {parts[2]} {reply}")
            kind = "delta" if reply.startswith("CHECK:found ") else "full"
        sizes = (1000, 2000, 200000) if kind == "full" else (1000, 2000, 70000)
        for p, size in zip(parts, sizes):
            emit(p, size, kind)
    send(ord("C"), "END")
    end = recv_c()
    log(f"JOBEND {end}")
    send(ord("C"), "BYE")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (EOFError, BrokenPipeError) as e:
        if LOG:
            log(f"EOF {e}")
        sys.exit(2)
