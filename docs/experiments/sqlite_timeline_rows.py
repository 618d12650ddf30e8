#!/usr/bin/env python3
"""What one dispatched batch's writes cost on SQLite, statement by statement (#13).

Builds a database from Herald's SQLite migrations, puts N recipients of one outreach in
`sending`, then records them in batches of 1,000 the way `record_results` does: the results'
UPDATE, the timeline's `customers` upsert and its `messages` insert (joined to `customers` by
address), each batch one `BEGIN IMMEDIATE` transaction, in WAL mode with `synchronous=NORMAL`
and Herald's 256 KiB page cache. Foreign keys are off (the sender row is not created).

    python3 docs/experiments/sqlite_timeline_rows.py 200000 [seq|random] [variant,...]

`seq` keeps the addresses in file order as `herald-bench dispatch` writes them; `random`
shuffles them, as a real list's are. Variants: `noidx` drops `messages_timeline`, `nojoin`
gives the messages their customer id directly instead of joining `customers` by address,
`norowid` makes `messages` a WITHOUT ROWID table, `pid` gives every message a random provider
id (as Twilio's) and `opid` the ordered one Herald's SMTP transport gets (its own Message-ID);
without either, no provider id.
Python's own sqlite3 module is used, so the figures leave out sqlx; compare them with each
other, not with `herald-bench`.
"""
import glob
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid

MIGRATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "crates",
                          "herald-store", "migrations", "sqlite", "*.sql")
BODY = "Hello %s, your order ORD-12345678 has shipped and will arrive on Tuesday. Reply STOP to opt out."


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    order = sys.argv[2] if len(sys.argv) > 2 else "seq"
    variant = sys.argv[3].split(",") if len(sys.argv) > 3 else []
    batch = 1000
    path = os.path.join(tempfile.mkdtemp(), "t.db")
    c = sqlite3.connect(path, isolation_level=None)
    for f in sorted(glob.glob(MIGRATIONS)):
        c.executescript(open(f).read())
    c.execute("pragma foreign_keys=off")
    c.execute("pragma journal_mode=wal")
    c.execute("pragma synchronous=normal")
    c.execute("pragma cache_size=-256")
    if "norowid" in variant:
        # The same table WITHOUT ROWID, keyed by its id alone (no separate primary-key index).
        c.execute("drop index messages_timeline")
        c.execute("drop index messages_provider_id")
        sql = c.execute("select sql from sqlite_master where name = 'messages'").fetchone()[0]
        c.execute("alter table messages rename to messages_old")
        c.execute(sql.replace("STRICT", "STRICT, WITHOUT ROWID"))
        c.execute("CREATE INDEX messages_timeline ON messages "
                  "(customer_id, sender_id, created_at, id)")
        c.execute("CREATE UNIQUE INDEX messages_provider_id ON messages "
                  "(direction, provider_message_id) WHERE provider_message_id IS NOT NULL")
    if "noidx" in variant:
        c.execute("drop index messages_timeline")
    outreach, sender, campaign = uuid.uuid4().bytes, uuid.uuid4().bytes, uuid.uuid4().bytes
    names = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"]
    addrs = [f"{names[i % 8]}.{i}@example.com" for i in range(n)]
    if order == "random":
        random.Random(7).shuffle(addrs)
    c.execute("begin")
    c.executemany(
        "insert into recipients (outreach_id, line, address, variables, state, due_at, updated_at)"
        " values (?, ?, ?, '{\"name\":\"x\"}', 'sending', 0, 0)",
        ((outreach, i + 2, a) for i, a in enumerate(addrs)))
    c.execute("commit")
    ids = [r[0] for r in c.execute("select id from recipients order by id")]
    counter = [0]

    def v7():
        counter[0] += 1
        return int(time.time() * 1000).to_bytes(6, "big") + counter[0].to_bytes(10, "big")

    def provider_id(rid):
        if "pid" in variant:  # random, as a Twilio MessageSid
            return "SM" + uuid.uuid4().hex
        if "opid" in variant:  # Herald's own Message-ID, as the SMTP transport's
            return "<%s-%d@shop.example>" % (outreach.hex(), rid)
        return None

    spent = {"update": 0.0, "customers": 0.0, "messages": 0.0}
    for b in range(0, n, batch):
        chunk, to = ids[b:b + batch], addrs[b:b + batch]
        c.execute("begin immediate")
        t0 = time.perf_counter()
        c.execute("UPDATE recipients SET state = 'sent', sent_at = 1, lease_until = NULL, "
                  "updated_at = 1 WHERE id IN (%s)" % ",".join("?" * len(chunk)), chunk)
        t1 = time.perf_counter()
        customers = [v7() for _ in to]
        args = [x for pair in zip(customers, to) for x in pair]
        c.execute("INSERT INTO customers (id, address, created_at) SELECT column1, column2, 1 "
                  "FROM (VALUES %s) WHERE column1 IS NOT NULL ON CONFLICT (address) DO NOTHING"
                  % ",".join(["(?,?)"] * len(to)), args)
        t2 = time.perf_counter()
        rows = []
        for rid, a, cu in zip(chunk, to, customers):
            rows += [v7(), cu if "nojoin" in variant else a, a, BODY % a, rid, provider_id(rid)]
        customer = "v.column2" if "nojoin" in variant else "cu.id"
        join = "" if "nojoin" in variant else " JOIN customers cu ON cu.address = v.column2"
        c.execute(
            "INSERT INTO messages (id, customer_id, sender_id, direction, author, channel, "
            "from_address, to_address, subject, body, campaign_id, outreach_id, recipient_id, "
            "provider_message_id, status, created_at) SELECT v.column1, %s, ?, 'outbound', "
            "'outreach', 'email', 'news@shop.example', v.column3, 'Your order', v.column4, ?, ?, "
            "v.column5, v.column6, 'sent', 1 FROM (VALUES %s) AS v%s WHERE v.column1 IS NOT NULL "
            "ON CONFLICT DO NOTHING" % (customer, ",".join(["(?,?,?,?,?,?)"] * len(chunk)), join),
            [sender, campaign, outreach] + rows)
        t3 = time.perf_counter()
        c.execute("commit")
        spent["update"] += t1 - t0
        spent["customers"] += t2 - t1
        spent["messages"] += t3 - t2
    print(order, n, ",".join(variant) or "-", {k: round(v, 2) for k, v in spent.items()})


if __name__ == "__main__":
    main()
