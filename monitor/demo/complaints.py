"""The demo's public: a stream of posts written to a JSONL file, as a social-listening
tool would export them, that spikes a little after the simulated site starts failing.

Pantau reads it through its ``file`` source, like any other export. The posts are
invented for the demo (fake handles, no real accounts); the history of counts before
the demo is a calm, seeded baseline so the spike detector has something to compare with.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.social.sources import slot_of
from monitor.store import Store

#: What the public says while the site fails (invented for the demo).
COMPLAINTS = (
    "prakerja ga bisa login dari tadi, muter2 terus",
    "daftar prakerja error 503 mulu, gimana ini",
    "kode OTP prakerja gak masuk2 udh 10 menit",
    "web prakerja down ya? gabisa dibuka sama sekali",
    "login prakerja gagal terus, katanya server sibuk",
    "prakerja lemot bgt pas gelombang baru dibuka",
    "can't sign up on prakerja, the page keeps erroring",
    "halaman daftar prakerja blank, loading terus",
)
#: What it says on a calm day.
CALM = (
    "kapan gelombang berikutnya prakerja dibuka ya",
    "alhamdulillah insentif prakerja udah cair",
    "pelatihan prakerja yang bagus buat UMKM apa ya",
    "tips lolos prakerja: isi tes motivasi dengan jujur",
)


def seed_history(
    store: Store, *, now: datetime, bucket: timedelta, hours: float = 6.0, seed: int = 9
) -> None:
    """A calm baseline of complaint counts for the ``hours`` before ``now``."""
    rng = random.Random(seed)
    counts: dict[datetime, int] = {}
    start = slot_of(now - timedelta(hours=hours), bucket)
    moment = start
    while moment < slot_of(now, bucket):
        counts[moment] = rng.choice((0, 1, 1, 0, 2, 1, 0, 1, 3, 1))
        moment += bucket
    with store.tx() as tx, tx.session.no_autoflush:
        tx.add_counts("file", counts, replace=True)


async def stream_posts(
    path: Path,
    upset: asyncio.Event,
    stop: asyncio.Event,
    *,
    delay: float = 1.0,
    per_second: float = 4.0,
    burst: float = 8.0,
    seed: int = 9,
) -> None:
    """Append posts to ``path`` until ``stop``: calm ones now and then, and a burst of
    complaints starting ``delay`` seconds after ``upset`` is set (the demo sets it when
    the site's failure is seen, so the public trails the probes whatever the machine's
    speed)."""
    rng = random.Random(seed)
    failing_since: float | None = None
    counter = 0
    loop = asyncio.get_running_loop()
    with path.open("a", encoding="utf-8") as out:
        while not stop.is_set():
            now = loop.time()
            if failing_since is None and upset.is_set():
                failing_since = now
            bursting = failing_since is not None and delay <= now - failing_since < delay + burst
            if bursting:
                texts = [rng.choice(COMPLAINTS) for _ in range(int(per_second))]
            else:
                texts = [rng.choice(CALM)] if rng.random() < 0.2 else []
            for text in texts:
                counter += 1
                post = {
                    "id": f"demo-{counter}",
                    "text": text,
                    "created_at": datetime.now(UTC).isoformat(),
                    "lang": "en" if text.startswith("can't") else "id",
                    "author": f"warga{rng.randint(1000, 9999)}",
                }
                out.write(json.dumps(post, ensure_ascii=False) + "\n")
            out.flush()
            await asyncio.sleep(1.0)
