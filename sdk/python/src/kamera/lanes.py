"""Per-camera lanes: frames of one camera are handled in order, at most ``concurrency`` at once,
and a slow camera never holds up another.

:class:`Lanes` is the pure scheduling core (no threads, no clock); :class:`LaneRunner` runs it
on a bounded, elastic set of threads. Neither knows about sockets or the frame protocol.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, Generic, Hashable, List, Optional, Tuple, TypeVar

log = logging.getLogger("kamera")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

#: How long a thread with nothing to do waits for work before it exits.
THREAD_IDLE_SECONDS = 10.0
#: Default bound on callbacks running at once across all cameras (see ``LaneRunner``).
DEFAULT_MAX_THREADS = 64
#: Replaced frames and waiting lanes are logged at most this often.
LOG_INTERVAL_SECONDS = 10.0


class _Lane(Generic[T]):
    __slots__ = ("pending", "running", "ready")

    def __init__(self) -> None:
        self.pending: Deque[T] = deque()
        self.running = 0
        self.ready = False  # in Lanes._ready


class Lanes(Generic[K, T]):
    """Which item may start next, per key (camera). Not thread-safe: the caller holds a lock.

    - Items of one key start in the order they were pushed, at most ``concurrency`` at once.
    - Bound, latest wins: a key holds at most ``concurrency`` waiting items (the worker's credits
      per camera); pushing one more replaces the oldest waiting item, which ``push`` returns so
      that the caller can acknowledge it unprocessed.
    - Keys take turns (round robin), so a busy key cannot starve the others.
    - A lane exists only while it has items waiting or running; it is removed the moment its
      last item is done.
    """

    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.concurrency = concurrency
        self._lanes: Dict[K, _Lane[T]] = {}
        self._ready: Deque[K] = deque()  # keys with an item that may start now, in turn order

    def push(self, key: K, item: T) -> Optional[T]:
        """Queues ``item``; returns the waiting item it replaced (latest wins), if any."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        replaced = lane.pending.popleft() if len(lane.pending) >= self.concurrency else None
        lane.pending.append(item)
        self._mark_ready(key, lane)
        return replaced

    def take(self) -> Optional[Tuple[K, T]]:
        """The next item that may start, now counted as running; None when none may."""
        while self._ready:
            key = self._ready.popleft()
            lane = self._lanes[key]
            lane.ready = False
            if not self._startable(lane):
                continue
            item = lane.pending.popleft()
            lane.running += 1
            self._mark_ready(key, lane)  # to the back of the turn order
            return key, item
        return None

    def done(self, key: K) -> None:
        """Marks one running item of ``key`` finished."""
        lane = self._lanes.get(key)
        if lane is None or lane.running < 1:
            raise ValueError(f"no item of {key!r} is running")
        lane.running -= 1
        if not lane.pending and not lane.running:
            del self._lanes[key]
        else:
            self._mark_ready(key, lane)

    def clear_pending(self) -> List[T]:
        """Removes every waiting item (running ones stay) and returns them."""
        dropped: List[T] = []
        for key in list(self._lanes):
            lane = self._lanes[key]
            dropped.extend(lane.pending)
            lane.pending.clear()
            lane.ready = False
            if not lane.running:
                del self._lanes[key]
        self._ready.clear()
        return dropped

    def startable(self) -> int:
        """How many items could start right now."""
        return sum(self._startable(self._lanes[key]) for key in self._ready)

    def running(self, key: K) -> int:
        lane = self._lanes.get(key)
        return lane.running if lane else 0

    def pending(self, key: K) -> List[T]:
        lane = self._lanes.get(key)
        return list(lane.pending) if lane else []

    def keys(self) -> List[K]:
        """Keys with a lane (items waiting or running)."""
        return list(self._lanes)

    def _startable(self, lane: _Lane[T]) -> int:
        return max(0, min(len(lane.pending), self.concurrency - lane.running))

    def _mark_ready(self, key: K, lane: _Lane[T]) -> None:
        if not lane.ready and self._startable(lane):
            lane.ready = True
            self._ready.append(key)


class _Throttle:
    """Counts events and says when to log them: at most once per interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.count = 0
        self._last = float("-inf")

    def hit(self, now: float) -> int:
        """Counts one event; returns how many to report now (0 = stay quiet)."""
        self.count += 1
        if now - self._last < self.interval:
            return 0
        self._last, reported, self.count = now, self.count, 0
        return reported


class LaneRunner(Generic[K, T]):
    """Runs ``handle(item)`` for submitted items in per-key lanes (see :class:`Lanes`).

    Threads are started when an item may start and no thread is free, up to ``max_threads``
    (the bound on callbacks running at once across all keys; beyond it, lanes wait their turn),
    and exit after ``idle_timeout`` seconds without work. An exception from ``handle`` or
    ``on_replaced`` is logged and the lane carries on.
    """

    def __init__(
        self,
        handle: Callable[[T], None],
        concurrency: int,
        *,
        on_replaced: Callable[[T], None] = lambda item: None,
        max_threads: int = DEFAULT_MAX_THREADS,
        idle_timeout: float = THREAD_IDLE_SECONDS,
        name: str = "kamera",
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        self._handle = handle
        self._on_replaced = on_replaced
        self._max_threads = max_threads
        self._idle_timeout = idle_timeout
        self._name = name
        self._cond = threading.Condition()
        self._lanes: Lanes[K, T] = Lanes(concurrency)
        self._threads = 0
        self._idle = 0  # threads not running an item (waiting, or about to take one)
        self._serial = 0
        self._closed = False
        self._replaced_log = _Throttle(LOG_INTERVAL_SECONDS)
        self._saturated_log = _Throttle(LOG_INTERVAL_SECONDS)
        #: Items replaced by newer ones before they could start (latest wins), since the start.
        self.replaced = 0

    def submit(self, key: K, item: T) -> None:
        report = 0
        with self._cond:
            if self._closed:
                raise RuntimeError("the lane runner is closed")
            replaced = self._lanes.push(key, item)
            if replaced is not None:
                self.replaced += 1
                report = self._replaced_log.hit(time.monotonic())
            self._start_work()
        if replaced is not None:
            if report:
                log.warning("camera %s: %d frame(s) replaced by newer ones before the callback was free "
                            "(latest wins)", key, report)
            self._call(self._on_replaced, replaced)

    def discard_pending(self) -> List[T]:
        """Drops every waiting item (e.g. its connection is gone); running ones finish."""
        with self._cond:
            return self._lanes.clear_pending()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Drops waiting items and waits for running ones; True when every thread has exited."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._lanes.clear_pending()
            self._cond.notify_all()
            while self._threads:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    @property
    def threads(self) -> int:
        """Threads alive now (running an item or waiting for one)."""
        with self._cond:
            return self._threads

    def lanes(self) -> List[K]:
        """Keys with items waiting or running."""
        with self._cond:
            return self._lanes.keys()

    def _start_work(self) -> None:
        """With the lock held: wakes or starts enough threads for the items that may start."""
        work = self._lanes.startable()
        while work > self._idle and self._threads < self._max_threads:
            self._serial += 1
            thread = threading.Thread(target=self._run, name=f"{self._name}-{self._serial}", daemon=True)
            try:
                thread.start()
            except RuntimeError as e:  # the process is out of threads: the running ones take turns
                log.warning("cannot start a callback thread (%s); %d running", e, self._threads)
                break
            self._threads += 1
            self._idle += 1
        if work > self._idle:
            report = self._saturated_log.hit(time.monotonic())
            if report:
                log.warning("all %d callback threads are busy: %d frame(s) wait for a free one "
                            "(raise max_threads?)", self._threads, work - self._idle)
        self._cond.notify(work)

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self._idle_timeout
                while True:
                    got = None if self._closed else self._lanes.take()
                    if got is not None:
                        self._idle -= 1
                        break
                    remaining = deadline - time.monotonic()
                    if self._closed or remaining <= 0:
                        self._idle -= 1
                        self._threads -= 1
                        self._cond.notify_all()  # close() waits for the count to reach 0
                        return
                    self._cond.wait(remaining)
            key, item = got
            try:
                self._call(self._handle, item)
            finally:
                with self._cond:
                    self._lanes.done(key)
                    self._idle += 1

    @staticmethod
    def _call(fn: Callable[[T], None], item: T) -> None:
        try:
            fn(item)
        except BaseException:  # the lane and its thread count must outlive a broken handler
            log.exception("frame handler raised")
