"""A bot's own Redis layout (the fleet file's publisher table), written after committed runs of the real pipeline
into real Redis and read back the way seed 004's bots restore their positions at start-up; and the publisher tables
the fleet file refuses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from redis import Redis

from models.database import Database
from reconciliation.errors import FixConfiguration
from reconciliation.plan import RunStatus
from reconciliation.values import InstrumentKey, Position
from tests.conftest import REDIS_URL, Clock, seed_example_books
from workers.fleet import load_fleet
from workers.publish import publish
from workers.redis_layout import KeySpec, Layout
from workers.results import RunResult
from workers.service import Service
from workers.settings import Settings

#: Seed 004's bots (``update_position_redis(symbol, size, side, avg_price)``): the size in a string key per
#: symbol, the details in a hash beside it, a closed position written flat (size 0, side "None", price 0).
SEED_PUBLISHER = """
[bots.lxalgo.accounts.paper.publisher]
closed = "{closed}"
sides = {{ long = "Buy", short = "Sell", flat = "None" }}

[bots.lxalgo.accounts.paper.publisher.keys.size]
key = "position:lxalgo_001:{{symbol}}"
type = "string"
value = "size"

[bots.lxalgo.accounts.paper.publisher.keys.details]
key = "position:lxalgo_001:{{symbol}}:details"
type = "hash"
fields = {{ size = "size", side = "side", avg_price = "avg_price", last_update = "updated_at" }}
"""
SOL = {"symbol": "SOLUSDT", "category": "linear", "side": "short", "qty": "10", "avg_price": "200", "mark_price": "199"}


def restore(redis: Redis, bot_id: str, symbols: list[str]) -> dict[str, dict[str, Any]]:
    """What seed 004's bot restores at start-up, symbol by symbol as its ``get_position_redis`` reads: no size key
    is no position, size 0 is flat; otherwise the side and average price from the details hash."""
    positions = {}
    for symbol in symbols:
        key = f"position:{bot_id}:{symbol}"
        size = cast(bytes | None, redis.get(key))
        if size is None or Decimal(size.decode()) == 0:
            continue
        stored = cast(dict[bytes, bytes], redis.hgetall(f"{key}:details"))
        details = {name.decode(): value.decode() for name, value in stored.items()}
        positions[symbol] = {
            "size": Decimal(size.decode()),
            "side": details.get("side", "None"),
            "avg_price": Decimal(details["avg_price"]),
            "last_update": details["last_update"],
        }
    return positions


class Bot:
    """lxalgo/paper of the example fleet, with its venue state, run through the service on real Redis."""

    def __init__(self, fleet: Path, postgres_url: str, redis: Redis, clock: Clock) -> None:
        self.fleet, self.redis, self.clock = fleet, redis, clock
        self.venue = fleet.parent / "venues" / "lxalgo_paper.json"
        self.database = Database(postgres_url)
        self.settings = Settings(database_url=postgres_url, fleet=str(fleet), redis_url=REDIS_URL)

    def venue_holds(self, *extra: dict[str, str], btc: bool = True) -> None:
        state = json.loads(self.venue.read_text())
        kept = [p for p in state["positions"] if btc and p["symbol"] == "BTCUSDT"]
        self.venue.write_text(json.dumps({**state, "positions": kept + list(extra)}))

    def run(self, **options: Any) -> str:
        """One request served as the workers serve it (lock, run, publish, follow-ups); the last run's status."""
        self.clock.advance(3600)
        config = load_fleet(self.fleet).account("lxalgo", "paper")
        served = Service(self.database, self.settings, self.redis, clock=self.clock).reconcile(config, "startup",
                                                                                                 **options)  # fmt: skip
        return str(served.results[-1].status)

    def keys(self) -> dict[str, Any]:
        """Every key of the test database with its contents, but the lock, the trigger counters and the metrics."""
        read: dict[str, Callable[[Any], Any]] = {"string": self.redis.get, "hash": self.redis.hgetall,
                                                   "set": self.redis.smembers, "stream": self.redis.xlen}  # fmt: skip
        contents: dict[str, Any] = {}
        for raw in cast(list[bytes], self.redis.keys("*")):
            key = raw.decode()
            if key.endswith((":lock", ":triggers", ":pending")) or key.startswith("recon:metrics:"):
                continue
            contents[key] = read[cast(bytes, self.redis.type(raw)).decode()](raw)
        return contents


@pytest.fixture
def make_bot(example_fleet: Path, postgres_url: str, redis: Redis, clock: Clock) -> Iterator[Callable[[str], Bot]]:
    """The example fleet with ``extra`` appended to its fleet file, its books written; the bot of lxalgo/paper."""
    made: list[Bot] = []

    def make(extra: str) -> Bot:
        example_fleet.write_text(example_fleet.read_text() + extra)
        seed_example_books(postgres_url, example_fleet)
        made.append(Bot(example_fleet, postgres_url, redis, clock))
        return made[-1]

    yield make
    for bot in made:
        bot.database.dispose()


def test_a_bot_restores_long_and_short_positions_from_its_own_layout(make_bot: Callable[[str], Bot]) -> None:
    bot = make_bot(SEED_PUBLISHER.format(closed="flat"))
    bot.venue_holds(SOL)

    assert bot.run() == "resolved"

    stamp = bot.clock.now.isoformat()
    assert restore(bot.redis, "lxalgo_001", ["BTCUSDT", "ETHUSDT", "SOLUSDT"]) == {
        "BTCUSDT": {"size": Decimal(30), "side": "Buy", "avg_price": Decimal(51000), "last_update": stamp},
        "SOLUSDT": {"size": Decimal(10), "side": "Sell", "avg_price": Decimal(200), "last_update": stamp},
    }
    assert bot.redis.get("position:lxalgo_001:SOLUSDT") == b"10"  # a decimal string, as written, never a float
    our_own = cast(
        dict[bytes, bytes], bot.redis.hgetall("recon:lxalgo:paper:positions")
    )  # still there: BotClient.last_positions reads it
    assert json.loads(our_own[b"linear:SOLUSDT:0"]) == {"qty": "-10", "avg_entry": "200"}


@pytest.mark.parametrize("closed", ["flat", "delete"])
def test_a_position_closed_while_the_bot_was_down_is_not_restored(make_bot: Callable[[str], Bot], closed: str) -> None:
    bot = make_bot(SEED_PUBLISHER.format(closed=closed))
    bot.venue_holds(SOL)
    bot.run()
    bot.venue_holds(SOL, btc=False)  # BTCUSDT closed at the venue while the bot was down

    assert bot.run() == "resolved"

    assert set(restore(bot.redis, "lxalgo_001", ["BTCUSDT", "SOLUSDT"])) == {"SOLUSDT"}
    if closed == "flat":  # as the seed's bot writes a closed position itself
        assert bot.redis.get("position:lxalgo_001:BTCUSDT") == b"0"
        assert bot.redis.hgetall("position:lxalgo_001:BTCUSDT:details") == {
            b"size": b"0",
            b"side": b"None",
            b"avg_price": b"0",
            b"last_update": bot.clock.now.isoformat().encode(),
        }
    else:
        assert bot.redis.exists("position:lxalgo_001:BTCUSDT", "position:lxalgo_001:BTCUSDT:details") == 0
    assert bot.redis.smembers("recon:lxalgo:paper:published") == {b'["linear", "SOLUSDT", 0]'}


def test_a_failed_run_and_a_dry_run_write_nothing(make_bot: Callable[[str], Bot]) -> None:
    bot = make_bot(SEED_PUBLISHER.format(closed="flat"))
    bot.venue_holds(SOL)
    bot.run()
    before = bot.keys()

    bot.venue_holds(btc=False)
    assert bot.run(dry_run=True) == "resolved"
    content = bot.venue.read_text()
    bot.venue.write_text("{not json")
    assert bot.run() == "failed"
    bot.venue.write_text(content)

    assert bot.keys() == before
    assert set(restore(bot.redis, "lxalgo_001", ["BTCUSDT", "SOLUSDT"])) == {"BTCUSDT", "SOLUSDT"}


def test_without_a_publisher_table_only_our_own_layout_is_written_as_before(make_bot: Callable[[str], Bot]) -> None:
    bot = make_bot("")

    assert bot.run() == "resolved"

    keys = bot.keys()
    assert keys["recon:lxalgo:paper:positions"] == {b"linear:BTCUSDT:0": b'{"qty": "30", "avg_entry": "51000"}'}
    assert sorted(keys) == ["recon:events", "recon:lxalgo:paper:last_run", "recon:lxalgo:paper:positions"]


def test_instruments_the_layout_cannot_tell_apart_leave_it_as_it_was_and_the_rest_is_published(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    legs = tuple(Position(InstrumentKey("linear", "BTCUSDT", leg), Decimal(qty), Decimal(100)) for leg, qty in
                 ((1, "2"), (2, "-1")))  # fmt: skip
    result = RunResult(9, "lxalgo", "paper", RunStatus.RESOLVED, positions=legs)
    no_leg = Layout((KeySpec("position:lxalgo_001:{symbol}", "string", value="qty"),))

    with caplog.at_level(logging.ERROR, logger="workers.publish"):  # whatever level earlier tests left the root at
        publish(redis, result, Settings(), no_leg)

    assert redis.exists("position:lxalgo_001:BTCUSDT") == 0
    assert sorted(cast(list[bytes], redis.hkeys("recon:lxalgo:paper:positions"))) == [
        b"linear:BTCUSDT:1",
        b"linear:BTCUSDT:2",
    ]
    assert redis.xlen("recon:events") == 1
    assert "linear:BTCUSDT:1 and linear:BTCUSDT:2 would both be written to 'position:lxalgo_001:BTCUSDT'" in caplog.text


# --- publisher tables the fleet file refuses ----------------------------------------------------------------------

PAPER = """
[bots.lxalgo.accounts.paper]
venue = "sim"
state_file = "venues/lxalgo_paper.json"
"""
TABLE = "[bots.lxalgo.accounts.paper.publisher.keys.k]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "string"\nvalue = "size"\ncolour = 1\n',
                     "table [bots.lxalgo.accounts.paper.publisher.keys.k]: unknown key 'colour'", id="unknown-key"),
        pytest.param(PAPER + '[bots.lxalgo.publisher]\nclosed = "zero"\n' + TABLE.replace(".accounts.paper", "")
                     + 'key = "p:{symbol}"\ntype = "string"\nvalue = "size"\n',
                     "table [bots.lxalgo.publisher]: key 'closed': Input should be 'delete' or 'flat'",
                     id="closed"),
        pytest.param(PAPER + TABLE + 'key = "p:{sym}"\ntype = "string"\nvalue = "size"\n',
                     "table [bots.lxalgo.accounts.paper.publisher.keys.k]: key 'key': unknown placeholder {sym} "
                     "(known: {account}, {bot}, {category}, {leg}, {symbol})", id="unknown-placeholder"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol:>8}"\ntype = "string"\nvalue = "size"\n',
                     "key 'key': not a pattern: placeholder {symbol} takes no format or conversion", id="format"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol"\ntype = "string"\nvalue = "size"\n',
                     "key 'key': not a pattern: ", id="unbalanced"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "string"\nvalue = "price"\n',
                     "table [bots.lxalgo.accounts.paper.publisher.keys.k]: key 'value': Input should be 'symbol', ",
                     id="unknown-value"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "hash"\nfields = { side = "sign" }\n',
                     "table [bots.lxalgo.accounts.paper.publisher.keys.k.fields]: key 'side': Input should be",
                     id="unknown-field-value"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "hash"\nvalue = "size"\n',
                     "key 'value': a key per instrument of type hash takes exactly one of 'fields'", id="hash-value"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "string"\n',
                     "key 'value': a key per instrument of type string takes exactly one of 'value' or 'json'",
                     id="no-value"),
        pytest.param(PAPER + TABLE + 'key = "p:{category}"\ntype = "string"\nvalue = "size"\n',
                     "key 'key': a key per instrument needs {symbol}", id="no-symbol"),
        pytest.param(PAPER + TABLE + 'key = "p:{bot}"\ntype = "string"\nvalue = "size"\n',
                     "key 'type': a key without {symbol} holds every instrument: make it a hash with a 'field' "
                     "pattern naming {symbol}", id="account-string"),
        pytest.param(PAPER + TABLE + 'key = "p:{bot}"\ntype = "hash"\nfield = "{leg}"\nvalue = "size"\n',
                     "key 'field': the field pattern needs {symbol}", id="field-without-symbol"),
        pytest.param(PAPER + TABLE + 'key = "recon:{bot}:{symbol}"\ntype = "string"\nvalue = "size"\n',
                     "key 'key': keys starting 'recon:' are this service's own", id="our-namespace"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "string"\nvalue = "size"\n'
                     '[bots.lxalgo.accounts.paper.publisher.sides]\nlong = "Buy"\nshort = "Buy"\n',
                     "table [bots.lxalgo.accounts.paper.publisher.sides]: key 'flat': long, short and flat need "
                     "three different words", id="sides"),
        pytest.param(PAPER + TABLE + 'key = "p:{symbol}"\ntype = "string"\nvalue = "size"\n'
                     + TABLE.replace(".k]", ".j]") + 'key = "p:{symbol}"\ntype = "string"\nvalue = "qty"\n',
                     "table [bots.lxalgo.accounts.paper.publisher.keys.j]: key 'key': the same pattern as [keys.k]",
                     id="same-pattern-twice"),
        pytest.param(PAPER + "[bots.lxalgo.accounts.paper.publisher]\nclosed = \"flat\"\n",
                     "table [bots.lxalgo.accounts.paper.publisher]: missing key 'keys'", id="no-keys"),
        pytest.param(PAPER + PAPER.replace("paper", "live") + '[bots.lxalgo.publisher.keys.k]\n'
                     'key = "position:lxalgo_001:{symbol}"\ntype = "string"\nvalue = "size"\n',
                     "table [bots.lxalgo.publisher]: lxalgo/paper and lxalgo/live would both write "
                     "'position:lxalgo_001:{symbol}': put {account} in the key, or give each account its own "
                     "publisher table", id="two-accounts-one-key"),
    ],
)  # fmt: skip
def test_a_bad_publisher_table_is_refused_in_one_line_naming_file_table_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text)

    with pytest.raises(FixConfiguration) as caught:
        load_fleet(path)

    message = str(caught.value)
    assert message.startswith(f"fleet file {path}: ") and "\n" not in message
    assert expected in message


def test_a_bot_table_with_the_account_in_its_keys_serves_every_account_and_an_account_table_replaces_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(PAPER + PAPER.replace("paper", "live") + PAPER.replace("lxalgo", "momentum")
                    + '[bots.lxalgo.publisher.keys.k]\nkey = "pos:{bot}:{account}:{symbol}"\ntype = "string"\n'
                    'value = "qty"\n[bots.lxalgo.accounts.live.publisher.keys.k]\nkey = "lx:{symbol}"\n'
                    'type = "string"\nvalue = "size"\n')  # fmt: skip

    fleet = load_fleet(path)

    keys = {c.label: [s.key for s in c.publisher.keys] if c.publisher else None for c in fleet.accounts}
    assert keys == {"lxalgo/paper": ["pos:{bot}:{account}:{symbol}"], "lxalgo/live": ["lx:{symbol}"],
                    "momentum/paper": None}  # fmt: skip


def test_the_seed_layout_documented_in_the_configuration_guide_is_the_one_tested_here(tmp_path: Path) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = guide[guide.index("## A bot's own Redis layout") :]
    documented = section[
        section.index("```toml\n") + len("```toml\n") : section.index("```\n", section.index("```toml"))
    ]
    path = tmp_path / "fleet.toml"
    path.write_text(PAPER.replace("paper", "live") + documented)
    tested = tmp_path / "tested.toml"
    tested.write_text(PAPER + SEED_PUBLISHER.format(closed="flat"))

    assert load_fleet(path).accounts[0].publisher == load_fleet(tested).accounts[0].publisher is not None


@pytest.fixture
def bots_database(redis: Redis) -> Iterator[Redis]:
    """Another database of the test Redis, as seed 004's bot reads (``redis_db=1``): the one below the test's own,
    emptied of the seed's keys before and after."""
    own = int(redis.connection_pool.connection_kwargs.get("db", 0))
    other = Redis(connection_pool=redis.connection_pool.__class__(**{**redis.connection_pool.connection_kwargs,
                                                                     "db": (own - 1) % 16}))  # fmt: skip

    def clear() -> None:
        for key in [*cast(list[bytes], other.keys("position:lxalgo_001:*")), b"recon:lxalgo:paper:published"]:
            other.delete(key)

    clear()
    yield other
    clear()


def test_a_publisher_naming_the_bots_database_writes_its_layout_there_and_ours_where_it_was(
    make_bot: Callable[[str], Bot], bots_database: Redis
) -> None:
    db = int(bots_database.connection_pool.connection_kwargs["db"])
    bot = make_bot(SEED_PUBLISHER.format(closed="flat").replace('closed = "flat"', f'closed = "flat"\ndb = {db}'))
    bot.venue_holds(SOL)

    assert bot.run() == "resolved"

    assert set(restore(bots_database, "lxalgo_001", ["BTCUSDT", "SOLUSDT"])) == {"BTCUSDT", "SOLUSDT"}
    assert restore(bot.redis, "lxalgo_001", ["BTCUSDT", "SOLUSDT"]) == {}
    assert bot.redis.hexists("recon:lxalgo:paper:positions", "linear:SOLUSDT:0")
    bot.venue_holds()  # BTC only: SOL closed while the bot was down
    assert bot.run() == "resolved"
    assert set(restore(bots_database, "lxalgo_001", ["BTCUSDT", "SOLUSDT"])) == {"BTCUSDT"}
    assert bots_database.get("position:lxalgo_001:SOLUSDT") == b"0"
