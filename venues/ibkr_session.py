"""One bounded connection to TWS or IB Gateway, run in a private event loop on a private thread.

ib_async is asyncio code, and eventkit under it asks the *thread's* loop policy for a loop. Our venues are called
synchronously from Celery prefork children, worker threads and the CLI, sometimes from a thread whose own loop
is running. ``run_private`` therefore runs each call on a new thread with a new loop, set as that thread's loop and
closed afterwards: nothing of one call (loop, socket, ib_async's state) outlives it or leaks into the caller.

``connected`` opens one API session for one venue call and closes it after: a socket held between calls would not
survive a fork into a prefork child, nor the gateway's nightly restart, and would need its own health checks.
Every wait is bounded: connecting by ``timeout``s (TCP, handshake, session start, positions sync), each request by
``timeout``, and each wait also ends at once when the gateway reports an error after which nothing it sends can be
trusted (``ibkr_errors.ends_session``), or when it closes the connection. The error watched for is recorded as the
session's failure, and the waiting call raises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ib_async import IB, Contract, RequestError, StartupFetchNONE

from reconciliation.errors import FixConfiguration, ReconError, VenueUnavailable
from venues.ibkr_errors import IbError, ends_session, is_notice, translated

T = TypeVar("T")
POLL_SECONDS = 0.02
#: Connecting waits for TCP, the handshake, the API session and the positions sync, each up to ``timeout``.
CONNECT_STEPS = 3


@dataclass(frozen=True)
class Target:
    """Where the gateway listens, who we are to it, which account we read, and how long we wait for each step."""

    host: str
    port: int
    client_id: int
    account: str | None
    timeout_seconds: float

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


def run_private(make: Callable[[], Coroutine[Any, Any, T]], name: str) -> T:
    """``make()`` run to completion in a new event loop on a new thread; its result, or its exception raised here."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # eventkit asks the thread's loop policy, not the running loop
        try:
            outcome.append((True, loop.run_until_complete(make())))
        except BaseException as error:  # handed to the caller's thread, which raises it
            outcome.append((False, error))
        finally:
            _close(loop)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def _close(loop: asyncio.AbstractEventLoop) -> None:
    try:
        leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class Session:
    """An API session with the gateway for one venue call, and what went wrong on it."""

    def __init__(self, ib: IB, target: Target, where: str) -> None:
        self.ib = ib
        self.target = target
        self.where = where
        self.account = ""
        self.errors: list[IbError] = []
        self._failure: asyncio.Future[ReconError] = asyncio.get_running_loop().create_future()
        self._answered = False  # the gateway sent bytes: it speaks the API
        self._ready = False  # nextValidId and managedAccounts arrived: the API session started
        self._told = False  # the failure is an error message of the gateway, not a closed socket

    # --- what the gateway tells us on the side ----------------------------------------------------------------

    def listen(self) -> None:
        """Watch the gateway's error messages and the socket, to stop waiting as soon as waiting is pointless."""
        self.ib.errorEvent += self._on_error
        self.ib.client.apiStart += self._on_ready
        self.ib.client.apiError += self._on_api_error
        self.ib.client.conn.hasData += self._on_data
        self.ib.client.conn.disconnected += self._on_disconnected

    def _on_error(self, req_id: int, code: int, text: str, contract: Contract | None) -> None:
        error = IbError(req_id, code, text)
        if is_notice(error):
            return
        self.errors.append(error)
        if ends_session(error):
            self._told = not self._failure.done()
            self._fail(translated(error, self.where))

    def _on_ready(self) -> None:
        self._ready = True

    def _on_data(self, data: bytes) -> None:
        self._answered = True

    def _on_api_error(self, message: str) -> None:
        if message.startswith("Peer closed connection") and not self._ready:
            self._fail(
                VenueUnavailable(
                    f"{self.where}: the gateway at {self.target.address} closed the connection before the API session "
                    f"started: it is not logged in, or client_id {self.target.client_id} is already in use"
                )
            )

    def _on_disconnected(self, message: str) -> None:
        phase = "during the API handshake" if not self._ready else "before answering"
        self._fail(
            VenueUnavailable(f"{self.where}: the gateway at {self.target.address} closed the connection {phase}")
        )

    def _fail(self, error: ReconError) -> None:
        if not self._failure.done():
            self._failure.set_result(error)

    def errors_for(self, req_id: int) -> list[IbError]:
        """The errors the gateway reported for one request or order id."""
        return [error for error in self.errors if error.req_id == req_id]

    def raise_failure(self) -> None:
        """Raise the session's failure, if one happened."""
        if self._failure.done():
            raise self._failure.result()

    # --- waiting ------------------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the API session and settle which account is read: the configured one, which must be among the
        login's managed accounts, else the only one."""
        target = self.target
        connecting = self.ib.connectAsync(
            target.host,
            target.port,
            target.client_id,
            timeout=target.timeout_seconds,
            readonly=True,  # no order sync at connect: each call asks for what it needs
            raiseSyncErrors=True,
            fetchFields=StartupFetchNONE,
        )
        await self.ask(connecting, "connect", target.timeout_seconds * CONNECT_STEPS + 1)
        accounts = [a for a in self.ib.managedAccounts() if a]
        if not accounts:
            raise VenueUnavailable(f"{self.where}: the gateway at {target.address} names no account: not logged in")
        if target.account:
            if target.account not in accounts:
                raise FixConfiguration(
                    f"{self.where}: account {target.account!r} is not managed by the login at {target.address} "
                    f"(it manages: {', '.join(accounts)})"
                )
            self.account = target.account
        elif len(accounts) == 1:
            self.account = accounts[0]
        else:
            raise FixConfiguration(
                f"{self.where}: the login at {target.address} manages several accounts ({', '.join(accounts)}); "
                "set account in the fleet file"
            )

    async def ask(self, request: Awaitable[T], what: str, timeout: float | None = None) -> T:
        """The answer to ``request``; raises our error when the gateway reports one, drops the connection, or does
        not answer within the timeout."""
        task = asyncio.ensure_future(request)
        limit = self.target.timeout_seconds if timeout is None else timeout
        waited: set[asyncio.Future[Any]] = {task, self._failure}
        done, _ = await asyncio.wait(waited, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            try:
                return task.result()
            except BaseException as error:
                raise self._translated(error, what) from error
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.raise_failure()
        raise self._silence(what, limit)

    async def until(
        self, ready: Callable[[], T | None], what: str, silence: Callable[[], ReconError] | None = None
    ) -> T:
        """Poll ``ready()`` until it returns something other than None, for at most the timeout; then raise
        ``silence()`` (by default: the gateway did not answer ``what``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.target.timeout_seconds
        while True:
            self.raise_failure()
            value = ready()
            if value is not None:
                return value
            if loop.time() >= deadline:
                raise silence() if silence is not None else self._silence(what, self.target.timeout_seconds)
            await asyncio.sleep(POLL_SECONDS)

    def _silence(self, what: str, limit: float) -> ReconError:
        last = f"; last error: {self.errors[-1]}" if self.errors else ""
        return VenueUnavailable(
            f"{self.where}: no answer to {what} within {limit:g} s from {self.target.address}{last}"
        )

    def _translated(self, error: BaseException, what: str) -> ReconError:
        """Our error for what ib_async raised while doing ``what``."""
        target = self.target
        if isinstance(error, ReconError):
            return error
        if isinstance(error, RequestError):
            return translated(IbError(error.reqId, error.code, error.message), f"{self.where} ({what})")
        timed_out = isinstance(error, TimeoutError | asyncio.TimeoutError)
        # the gateway said why before the request broke (a time-out closes the socket itself: its phase says more)
        if self._failure.done() and (self._told or not timed_out):
            return self._failure.result()
        if isinstance(error, ConnectionRefusedError):
            return VenueUnavailable(
                f"{self.where}: connection refused at {target.address}: TWS or IB Gateway is not running there, or "
                "its API port is another (Configure > API > Settings)"
            )
        if timed_out:
            if not self._answered:
                return VenueUnavailable(
                    f"{self.where}: no answer to the API handshake from {target.address} within "
                    f"{target.timeout_seconds:g} s (is it the API port of TWS or IB Gateway, with the API enabled?)"
                )
            if not self._ready:
                return VenueUnavailable(
                    f"{self.where}: the gateway at {target.address} answered but started no API session within "
                    f"{target.timeout_seconds:g} s: it is not logged in, or has no account"
                )
            return VenueUnavailable(f"{self.where}: no answer to {what} within {target.timeout_seconds:g} s")
        if isinstance(error, ConnectionError):  # ib_async's sync errors and "Socket disconnect"
            return VenueUnavailable(f"{self.where}: {what} failed: {error}")
        if isinstance(error, OSError):
            return VenueUnavailable(f"{self.where}: cannot reach {target.address}: {type(error).__name__}: {error}")
        return VenueUnavailable(f"{self.where}: {what} failed inside ib_async: {type(error).__name__}: {error}")


@asynccontextmanager
async def connected(target: Target, where: str) -> AsyncIterator[Session]:
    """An API session with the gateway, closed on the way out whatever happened."""
    ib = IB()
    ib.RaiseRequestErrors = True  # a request's own error fails its future instead of ending it empty
    session = Session(ib, target, where)
    session.listen()
    try:
        await session.connect()
        yield session
    finally:
        with contextlib.suppress(Exception):
            ib.disconnect()
