#!/usr/bin/env python3
# Measures deltasync, Joplin's terminal client and rclone bisync side by side against one
# lighttpd WebDAV server on 127.0.0.1 (scripts/bench-peers runs it and puts the Markdown it
# prints into BENCHMARKS.md). Requests and bytes are counted from lighttpd's access log.
"""Side-by-side benchmark of deltasync and its peers on one lighttpd WebDAV server.

For each N and each peer: device A gets N synthetic tasks (the generator of examples/bench.rs)
and uploads them (initial upload); device B, a new device, bootstraps; A edits one entity and
syncs (push); B syncs (pull, checked) and syncs again (no-op); then both devices edit different
fields of the same entity and sync (A, B, A) and the outcome is read back from both.

Every request the server answers is one line of its access log: method, path, status, the
request's Content-Length, the response body's bytes and the bytes in and out with headers.
After each measured command a marker request is sent and the lines up to it are counted.

    bench_peers.py --sizes 1000,10000 --workdir DIR --deltasync BIN --joplin BIN --rclone BIN
        [--peers deltasync,joplin,rclone] > section-tables.md
"""

import argparse
import base64
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid

USER, PASSWORD = "bench", "bench-password"
MASK = (1 << 64) - 1


class Rng:
    """splitmix64, as in examples/bench.rs, so that the data is the same."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def pick(self, items):
        return items[self.next() % len(items)]


VERBS = ["Call", "Email", "Review", "Fix", "Plan", "Buy", "Book", "Write", "Clean", "Renew"]
THINGS = [
    "the plumber about the kitchen sink",
    "quarterly report draft",
    "dentist appointment for Tuesday",
    "groceries for the weekend",
    "flights to Lisbon",
    "insurance papers",
    "garage and the bike shed",
    "slides for the team meeting",
]
TAGS = ["home", "work", "errand", "urgent", "later", "family"]
NOTES = ["Ask about the invoice from last month.", "Check the shared folder first.", "",
         "Needs the new address."]


def task_id(i):
    return f"t{i:06}"


def task(i):
    """Synthetic task i, field for field the one of examples/bench.rs."""
    rng = Rng(i)
    created = 1_760_000_000_000 + i * 61_000
    tags = []
    for _ in range(1 + rng.next() % 3):
        tag = rng.pick(TAGS)
        if tag not in tags:
            tags.append(tag)
    value = {"id": task_id(i)}
    value["title"] = f"{rng.pick(VERBS)} {rng.pick(THINGS)}"
    value["done"] = rng.next() % 4 == 0
    value["priority"] = rng.next() % 4
    value["project"] = f"proj-{rng.next() % 40:03}"
    value["tags"] = tags
    month = 1 + rng.next() % 12
    day = 1 + rng.next() % 28
    value["due"] = f"2026-{month:02}-{day:02}"
    value["notes"] = rng.pick(NOTES)
    value["createdAt"] = created
    value["updatedAt"] = created + rng.next() % 86_400_000
    return value


def file_text(value):
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def write_tasks(folder, n, ext=".json", text=file_text):
    os.makedirs(folder, exist_ok=True)
    total = 0
    for i in range(n):
        body = text(task(i))
        with open(os.path.join(folder, task_id(i) + ext), "w") as f:
            f.write(body)
        total += len(body.encode())
    return total


def log(msg):
    print(f"bench-peers: {msg}", file=sys.stderr, flush=True)


class Server:
    """lighttpd with mod_webdav and an access log, on a free port of 127.0.0.1."""

    def __init__(self, lighttpd, folder):
        self.dir = folder
        self.data = os.path.join(folder, "data")
        os.makedirs(os.path.join(folder, "tmp"))
        os.makedirs(self.data)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        with open(os.path.join(folder, "users"), "w") as f:
            f.write(f"{USER}:{PASSWORD}\n")
        self.access = os.path.join(folder, "access.log")
        conf = os.path.join(folder, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(f"""server.modules = ("mod_auth", "mod_authn_file", "mod_webdav", "mod_accesslog")
server.document-root = "{self.data}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{folder}/error.log"
server.upload-dirs = ("{folder}/tmp")
server.max-worker = 0
mimetype.assign = (".json" => "application/json", "" => "application/octet-stream")
webdav.activate = "enable"
webdav.is-readonly = "disable"
webdav.sqlite-db-name = "{folder}/webdav.sqlite"
auth.backend = "plain"
auth.backend.plain.userfile = "{folder}/users"
auth.require = ("/" => ("method" => "basic", "realm" => "bench", "require" => "valid-user"))
accesslog.filename = "{self.access}"
accesslog.format = "%m\\t%U\\t%s\\t%{{Content-Length}}i\\t%b\\t%I\\t%O"
""")
        self.proc = subprocess.Popen([lighttpd, "-D", "-f", conf], stdout=subprocess.DEVNULL)
        self.lines_seen = 0
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("lighttpd did not start; see " + folder + "/error.log")
        self.url = f"http://127.0.0.1:{self.port}"

    def request(self, method, path):
        req = urllib.request.Request(self.url + path, method=method)
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def take(self):
        """The log lines since the last call (the marker request it sends excluded)."""
        mark = "/__mark__/" + uuid.uuid4().hex
        self.request("GET", mark)
        deadline = time.time() + 10
        while True:
            with open(self.access) as f:
                lines = f.read().splitlines()
            hit = [k for k, line in enumerate(lines) if mark in line]
            if hit:
                break
            if time.time() > deadline:
                raise SystemExit("the access log does not show the marker request")
            time.sleep(0.05)
        taken = lines[self.lines_seen:hit[0]]
        self.lines_seen = hit[0] + 1
        return taken

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Cost:
    """What one measured operation cost at the server, and its wall time."""

    def __init__(self, lines, wall):
        self.wall = wall
        self.requests = len(lines)
        self.up = self.down = self.wire_up = self.wire_down = 0
        self.methods = {}
        for line in lines:
            method, _path, _status, clen, body, wire_in, wire_out = line.split("\t")
            self.methods[method] = self.methods.get(method, 0) + 1
            self.up += int(clen) if clen.isdigit() else 0
            self.down += int(body) if body.isdigit() else 0
            self.wire_up += int(wire_in)
            self.wire_down += int(wire_out)

    def add(self, other):
        self.wall += other.wall
        self.requests += other.requests
        self.up += other.up
        self.down += other.down
        self.wire_up += other.wire_up
        self.wire_down += other.wire_down
        for m, c in other.methods.items():
            self.methods[m] = self.methods.get(m, 0) + c
        return self


class Runner:
    """Runs the peers' commands and counts what each cost."""

    def __init__(self, server):
        self.server = server

    def measure(self, cmds, env=None, cwd=None):
        self.server.take()
        cost = None
        for cmd in cmds:
            t0 = time.monotonic()
            run(cmd, env=env, cwd=cwd)
            wall = time.monotonic() - t0
            c = Cost(self.server.take(), wall)
            cost = c if cost is None else cost.add(c)
        return cost


def run(cmd, env=None, cwd=None, capture=False):
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run(cmd, env=full_env, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p.stdout


def edit_json(path, field, value):
    with open(path) as f:
        v = json.load(f)
    v[field] = value
    with open(path, "w") as f:
        f.write(file_text(v))


def read_json(path):
    with open(path) as f:
        return json.load(f)


# Entities the operations touch: the pushed one and the one both devices edit.
PUSHED, BOTH = 7, 11
NEW_TITLE, NEW_DONE = "Edited on device A", "edited on device B"


def bench_deltasync(r, n, work, binary):
    url = f"{r.server.url}/deltasync-{n}"
    env = {"DELTASYNC_PASSWORD": PASSWORD}
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    write_tasks(os.path.join(a, "tasks"), n)
    os.makedirs(os.path.join(b, "tasks"))
    r.server.request("MKCOL", f"/deltasync-{n}")

    def ds(ws, *args):
        return [binary, "-C", ws, *args]

    def init(ws, device):
        return ds(ws, "init", "--remote", url, "--user", USER, "--device", device,
                  "--collection", "tasks=dir:tasks")

    out = {}
    out["init"] = r.measure([init(a, "a")], env)
    out["initial upload"] = r.measure([ds(a, "sync")], env)
    out["bootstrap"] = r.measure([init(b, "b"), ds(b, "sync")], env)
    count = len(os.listdir(os.path.join(b, "tasks")))
    assert count == n, f"deltasync bootstrap: {count} files, not {n}"
    pa = os.path.join(a, "tasks", task_id(PUSHED) + ".json")
    pb = os.path.join(b, "tasks", task_id(PUSHED) + ".json")
    edit_json(pa, "title", NEW_TITLE)
    out["push one change"] = r.measure([ds(a, "sync")], env)
    out["pull it"] = r.measure([ds(b, "sync")], env)
    assert read_json(pb)["title"] == NEW_TITLE, "deltasync pull: B lacks the edit"
    out["no-op"] = r.measure([ds(b, "sync")], env)
    out["start-up"] = r.measure([[binary, "--version"]], env)

    fa = os.path.join(a, "tasks", task_id(BOTH) + ".json")
    fb = os.path.join(b, "tasks", task_id(BOTH) + ".json")
    edit_json(fa, "title", NEW_TITLE)
    edit_json(fb, "notes", NEW_DONE)
    for ws in (a, b, a):
        run(ds(ws, "sync"), env)
    va, vb = read_json(fa), read_json(fb)
    conflicts = run(ds(b, "conflicts"), env).strip()
    extra = (len(os.listdir(os.path.join(a, "tasks"))) - n, len(os.listdir(os.path.join(b, "tasks"))) - n)
    out["concurrent"] = outcome(
        va["title"] == NEW_TITLE and va["notes"] == NEW_DONE,
        vb["title"] == NEW_TITLE and vb["notes"] == NEW_DONE,
        f"extra files A/B: {extra[0]}/{extra[1]}; `deltasync conflicts` on B: "
        + (conflicts.splitlines()[0] if conflicts else "(nothing)"))
    return out


def outcome(kept_a, kept_b, detail):
    both = kept_a and kept_b
    return {"text": ("**both edits kept** on both devices" if both else
                     f"**not merged**: the entity has both edits on A: {yesno(kept_a)}, "
                     f"on B: {yesno(kept_b)}")
            + "; " + detail}


def joplin_db(profile):
    return sqlite3.connect(os.path.join(profile, "database.sqlite"))


def joplin_note(profile, title):
    with joplin_db(profile) as db:
        return db.execute("select id, title, body from notes where title = ? and is_conflict = 0",
                          (title,)).fetchone()


def bench_joplin(r, n, work, binary):
    url = f"{r.server.url}/joplin-{n}"
    r.server.request("MKCOL", f"/joplin-{n}")
    a, b = os.path.join(work, "profile-a"), os.path.join(work, "profile-b")
    md = os.path.join(work, "tasks")
    # A note per task: the file name (the task's id) is the title, the JSON the body.
    write_tasks(md, n, ext=".md", text=lambda v: json.dumps(v, indent=2) + "\n")

    def jp(profile, *args):
        return [binary, "--profile", profile, *args]

    def configure(profile):
        os.makedirs(profile, exist_ok=True)
        batch = os.path.join(work, "config.txt")
        with open(batch, "w") as f:
            f.write(f"config sync.target 6\nconfig sync.6.path {url}\n"
                    f"config sync.6.username {USER}\nconfig sync.6.password {PASSWORD}\n")
        run(jp(profile, "batch", batch))

    out = {}
    configure(a)
    t0 = time.monotonic()
    run(jp(a, "import", md, "--format", "md", "--force"))
    out["setup"] = time.monotonic() - t0
    with joplin_db(a) as db:
        count = db.execute("select count(*) from notes").fetchone()[0]
    assert count == n, f"joplin import: {count} notes, not {n}"
    out["initial upload"] = r.measure([jp(a, "sync")])
    configure(b)
    out["bootstrap"] = r.measure([jp(b, "sync")])
    with joplin_db(b) as db:
        count = db.execute("select count(*) from notes").fetchone()[0]
    assert count == n, f"joplin bootstrap: {count} notes, not {n}"

    note_id, _, body = joplin_note(a, task_id(PUSHED))
    v = json.loads(body)
    v["title"] = NEW_TITLE
    run(jp(a, "set", note_id, "body", json.dumps(v, indent=2) + "\n"))
    out["push one change"] = r.measure([jp(a, "sync")])
    out["pull it"] = r.measure([jp(b, "sync")])
    assert NEW_TITLE in joplin_note(b, task_id(PUSHED))[2], "joplin pull: B lacks the edit"
    out["no-op"] = r.measure([jp(b, "sync")])
    out["start-up"] = r.measure([jp(b, "version")])

    # Different fields of one note: A its body (the task's title inside), B its title.
    note_id, _, body = joplin_note(a, task_id(BOTH))
    v = json.loads(body)
    v["title"] = NEW_TITLE
    run(jp(a, "set", note_id, "body", json.dumps(v, indent=2) + "\n"))
    new_note_title = task_id(BOTH) + " " + NEW_DONE
    run(jp(b, "set", note_id, "title", new_note_title))
    for p in (a, b, a):
        run(jp(p, "sync"))

    def state(profile):
        with joplin_db(profile) as db:
            title, body = db.execute("select title, body from notes where id = ?", (note_id,)).fetchone()
            conflicts = db.execute("select count(*) from notes where is_conflict = 1").fetchone()[0]
        return title == new_note_title and NEW_TITLE in body, conflicts, title, NEW_TITLE in body

    ka, ca, ta, ba = state(a)
    kb, cb, tb, bb = state(b)
    out["concurrent"] = outcome(
        ka, kb,
        f"conflict copies A/B: {ca}/{cb}; the note's title has B's edit: A {yesno(ta == new_note_title)}, "
        f"B {yesno(tb == new_note_title)}; its body has A's: A {yesno(ba)}, B {yesno(bb)}")
    return out


def yesno(b):
    return "yes" if b else "no"


def bench_rclone(r, n, work, binary):
    remote = f"peer:rclone-{n}"
    r.server.request("MKCOL", f"/rclone-{n}")
    conf = os.path.join(work, "rclone.conf")
    obscured = run([binary, "obscure", PASSWORD]).strip()
    with open(conf, "w") as f:
        f.write(f"[peer]\ntype = webdav\nurl = {r.server.url}\nvendor = nextcloud\n"
                f"user = {USER}\npass = {obscured}\n")
    a, b = os.path.join(work, "a"), os.path.join(work, "b")
    write_tasks(a, n)
    os.makedirs(b)
    env = {"RCLONE_CONFIG": conf}

    def bisync(path, device, *extra):
        return [binary, "bisync", path, remote, "--workdir", os.path.join(work, "bisync-" + device),
                "--webdav-headers", "Content-Type,application/xml", *extra]

    out = {}
    out["initial upload"] = r.measure([bisync(a, "a", "--resync")], env)
    out["bootstrap"] = r.measure([bisync(b, "b", "--resync")], env)
    assert len(os.listdir(b)) == n, f"rclone bootstrap: {len(os.listdir(b))} files"
    edit_json(os.path.join(a, task_id(PUSHED) + ".json"), "title", NEW_TITLE)
    out["push one change"] = r.measure([bisync(a, "a")], env)
    out["pull it"] = r.measure([bisync(b, "b")], env)
    assert read_json(os.path.join(b, task_id(PUSHED) + ".json"))["title"] == NEW_TITLE, \
        "rclone pull: B lacks the edit"
    out["no-op"] = r.measure([bisync(b, "b")], env)
    out["start-up"] = r.measure([[binary, "version"]], env)

    name = task_id(BOTH) + ".json"
    edit_json(os.path.join(a, name), "title", NEW_TITLE)
    edit_json(os.path.join(b, name), "notes", NEW_DONE)
    for path, device in ((a, "a"), (b, "b"), (a, "a")):
        run(bisync(path, device), env)

    def state(folder):
        path = os.path.join(folder, name)
        v = read_json(path) if os.path.exists(path) else {}
        copies = sorted(f for f in os.listdir(folder) if f.startswith(task_id(BOTH)) and f != name)
        return v.get("title") == NEW_TITLE and v.get("notes") == NEW_DONE, copies

    ka, ca = state(a)
    kb, cb = state(b)
    out["concurrent"] = outcome(ka, kb, f"files beside {name}: A {', '.join(ca) or 'none'}; "
                                        f"B {', '.join(cb) or 'none'}")
    return out


OPS = ["initial upload", "bootstrap", "push one change", "pull it", "no-op", "start-up"]


def size_label(n):
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--peers", default="deltasync,joplin,rclone")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--lighttpd", default="lighttpd")
    ap.add_argument("--deltasync", required=True)
    ap.add_argument("--joplin", required=True)
    ap.add_argument("--rclone", default="rclone")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    peers = args.peers.split(",")
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    server = Server(args.lighttpd, os.path.join(args.workdir, "server"))
    runner = Runner(server)
    bench = {"deltasync": (bench_deltasync, args.deltasync),
             "joplin": (bench_joplin, args.joplin),
             "rclone": (bench_rclone, args.rclone)}
    results, failures = {}, {}
    try:
        for n in sizes:
            for peer in peers:
                fn, binary = bench[peer]
                work = os.path.join(args.workdir, f"{peer}-{n}")
                os.makedirs(work)
                log(f"{peer}, N = {n}")
                t0 = time.monotonic()
                try:
                    results[(peer, n)] = fn(runner, n, work, binary)
                except (RuntimeError, AssertionError) as e:
                    log(f"{peer} at N = {n} failed: {e}")
                    failures[(peer, n)] = str(e).strip().splitlines()[0][:300]
                log(f"{peer}, N = {n}: {time.monotonic() - t0:.0f} s")
                shutil.rmtree(work, ignore_errors=True)
    finally:
        server.stop()
    print_tables(sizes, peers, results, failures)


def fmt_int(x):
    return f"{x:,}"


def print_tables(sizes, peers, results, failures):
    names = {"deltasync": "deltasync", "joplin": "Joplin CLI", "rclone": "rclone bisync"}
    print("### Requests / body bytes up / body bytes down / wall time\n")
    print("| N | operation | " + " | ".join(names[p] for p in peers) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in peers) + " |")
    for n in sizes:
        for op in OPS:
            cells = []
            for p in peers:
                res = results.get((p, n))
                if res is None:
                    cells.append("failed")
                    continue
                c = res[op]
                cells.append(f"{fmt_int(c.requests)} / {fmt_int(c.up)} / {fmt_int(c.down)} / {c.wall:.2f} s")
            print(f"| {size_label(n)} | {op} | " + " | ".join(cells) + " |")
    print("\n### Requests by method, and bytes on the wire (headers included, up / down)\n")
    print("| N | operation | " + " | ".join(names[p] for p in peers) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in peers) + " |")
    for n in sizes:
        for op in OPS:
            cells = []
            for p in peers:
                res = results.get((p, n))
                if res is None:
                    cells.append("failed")
                    continue
                c = res[op]
                methods = " ".join(f"{m} {k}" for m, k in sorted(c.methods.items()))
                cells.append(f"{methods}; {fmt_int(c.wire_up)} / {fmt_int(c.wire_down)}")
            print(f"| {size_label(n)} | {op} | " + " | ".join(cells) + " |")
    print("\n### Concurrent edits of different fields of one entity (A syncs, B syncs, A syncs)\n")
    print("| N | peer | outcome |")
    print("| --- | --- | --- |")
    for n in sizes:
        for p in peers:
            res = results.get((p, n))
            text = res["concurrent"]["text"] if res else "failed"
            print(f"| {size_label(n)} | {names[p]} | {text} |")
    setup = [(n, results[("joplin", n)]["setup"]) for n in sizes if ("joplin", n) in results]
    if setup:
        print("\nJoplin's `import --format md` of the N notes (local, before the measured upload): "
              + ", ".join(f"{t:.0f} s at {size_label(n)}" for n, t in setup) + ".")
    inits = [(n, results[("deltasync", n)]["init"]) for n in sizes if ("deltasync", n) in results]
    if inits:
        print("\ndeltasync's `init` on device A (before the initial upload above; its server probe "
              "writes, reads and deletes test files): "
              + ", ".join(f"{fmt_int(c.requests)} requests / {fmt_int(c.up)} / {fmt_int(c.down)} bytes / "
                          f"{c.wall:.2f} s at {size_label(n)}" for n, c in inits) + ".")
    for (p, n), why in failures.items():
        print(f"\n**{names[p]} at N = {size_label(n)} failed:** `{why}`")


if __name__ == "__main__":
    main()
