"""Pure: the outbound dialer's brain: campaign state, pacing, abandonment accounting, retries, windows.

Nothing here does I/O or reads a clock: every method takes ``now`` (UNIX seconds). The shell
(``callcenter.outbound.service``) records attempts in PostgreSQL, sends the Originates and feeds the
outcomes back in.

The pieces, each usable alone:

- ``CallingWindow`` / ``window_open`` / ``next_open``: a contact is called only while the window
  (e.g. 09:00-20:00, Monday-Saturday) is open in *every* zone the contact may be in
  (``callcenter.phone.zones_for``), in local wall time, DST included (``zoneinfo``).
- ``AbandonmentLedger``: live-answered calls and abandons (a person answered and no agent was
  connected within 2 s of the greeting) over a rolling window (30 days by default), per campaign.
- ``HandleTimes`` and ``AnswerStats``: what was measured: handle times (talk + wrap-up, and each
  apart when the ACD tells them) and, per attempt, how long until it resolved and whether a person
  answered.
- ``pace(...)``: how many new calls to place now, with the reason (``PacingDecision``):

  * preview: never by itself; an agent asks for a contact (``Dialer.preview_next``) and dials it;
  * progressive: one line per free agent (lines in flight count): nobody is ever abandoned;
  * predictive: at checkpoints over the next answers (a quarter, half, three quarters, one and
    one and a half times the measured dial-to-person time), the people expected to have answered
    by then must fit the agents free by then plus the 2 s grace. Agents free by then: the idle
    ones plus, for each busy one, the chance its call ends in time given how long it has lasted
    (measured handle times; with ``AgentLoad.wrap_elapsed``, wrap-up and talk are foreseen apart:
    an agent in wrap-up ends by the measured wrap-up times, a talking one needs the rest of its
    talk and a whole wrap-up). People by then: each line in flight weighted by the measured chance
    that a line unresolved after that long reaches a person within the checkpoint, plus the new
    lines at the measured share of people reached that fast. The dialer places the most new lines
    for which the worst checkpoint's expected people without an agent, E[max(0, H - A)] (H
    binomial; A = idle + sure + Poisson: the busy agents' chances of coming free in time, p_i, as a
    sure count, the whole part of sum p_i - sum p_i(1 - p_i), plus a Poisson with the rest of the
    mean, so an agent deep in its wrap-up is not given a Poisson's spread; less the people already
    answered and waiting for an agent, who take the first agents free), over all the people
    expected, stays under the instantaneous target, and never more than ``max_lines_per_agent``
    lines per agent free now or soon. The target is the campaign limit less a margin (a third
    of 3 %: 2 %), scaled by a gain that a feedback loop on the observed abandonment rate moves down when
    abandons run above target and back up when they run below (the model leaves out how people who
    answer early miss agents who free late; the gain finds the factor, and starts low, from 0.15, to
    climb to it rather than overshoot early in a day into the guard). Its step shrinks with the live
    answers seen (0.01 down to 0.003 per answer): abandons are rare events, and a gain swinging with
    each one over-dials and under-dials in turn, which costs connects. People being connected hold
    an idle agent until the ACD has reserved one. Busy agents whose end is known exactly
    (``AgentLoad.free_in``) count as sure by their end. Early in a day the calls still running count
    as censored handle times (``HandleTimes.with_running``).
  * no agent working (none logged in, or every one paused or not ready): no line, whatever the
    mode; the reason says which.
  * fallback: predictive runs as progressive while the measurements are too few (warm-up) and
    whenever the rolling-window abandonment rate reaches the guard (the limit less half the margin),
    until it is back under the target.

- ``Dialer``: one campaign's contacts (a due-time heap), DNC check before every dial, max attempts,
  retry delay per outcome, pause/resume/stop, preview reservations, pacing state; it returns the
  ``Attempt`` objects the shell must record and then originate.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.errors import CampaignError
from callcenter.outbound.contacts import Contact, DncList

DAY: Final = 86_400.0
CONNECT_GRACE: Final = 2.0
"""Seconds after the greeting within which an agent must be on the line, else the call is abandoned."""


class Mode(StrEnum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


class Outcome(StrEnum):
    """How an attempt ended. ``FINAL_OUTCOMES`` end the contact; the others are retried."""

    CONNECTED = "connected"  # a person answered and was connected to an agent
    ABANDONED = "abandoned"  # a person answered, no agent within 2 s: identification message played
    MACHINE = "machine"  # AMD said machine; hung up, retried later
    MACHINE_MESSAGE = "machine_message"  # AMD said machine; the campaign's message was left
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"  # congestion, unallocated number, channel unavailable, Originate refused
    UNKNOWN = "unknown"  # the attempt's fate was lost (controller restarted mid-call)


FINAL_OUTCOMES: Final = frozenset({Outcome.CONNECTED, Outcome.MACHINE_MESSAGE})
LIVE_OUTCOMES: Final = frozenset({Outcome.CONNECTED, Outcome.ABANDONED})


class ContactStatus(StrEnum):
    PENDING = "pending"  # waiting for its due time (and window)
    DIALING = "dialing"  # an attempt is in flight
    PREVIEWING = "previewing"  # reserved by an agent in preview mode
    DONE = "done"  # reached (connected, or the machine message left)
    EXHAUSTED = "exhausted"  # max attempts made without reaching anyone
    DNC = "dnc"  # on the do-not-call list when its turn came
    NO_WINDOW = "no_window"  # its zones never share an open window


class CampaignState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


DEFAULT_RETRY_DELAYS: Final[Mapping[Outcome, float]] = {
    Outcome.BUSY: 600.0,
    Outcome.NO_ANSWER: 3600.0,
    Outcome.MACHINE: 7200.0,
    Outcome.FAILED: 1800.0,
    # Ofcom asks for no repeat call without a guaranteed agent for 72 h after an abandon.
    Outcome.ABANDONED: 72 * 3600.0,
    Outcome.UNKNOWN: 3600.0,
}


# ---------------------------------------------------------------------------------------------
# calling windows


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """Local wall-clock hours ``[start, end)`` on the given weekdays (Monday = 0)."""

    start: time = time(9, 0)
    end: time = time(20, 0)
    days: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise CampaignError(f"calling window start {self.start} must be before end {self.end}")
        if not self.days or not self.days <= frozenset(range(7)):
            raise CampaignError(f"calling window days must be a non-empty subset of 0-6, got {self.days}")


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _open_in(window: CallingWindow, zone: str, now: float) -> bool:
    local = datetime.fromtimestamp(now, _zone(zone))
    return local.weekday() in window.days and window.start <= local.time() < window.end


def window_open(window: CallingWindow, zones: Sequence[str], now: float) -> bool:
    """True if ``now`` falls inside ``window`` in every one of ``zones``."""
    return all(_open_in(window, zone, now) for zone in zones)


def next_open(window: CallingWindow, zones: Sequence[str], now: float) -> float | None:
    """The first instant >= ``now`` at which the window is open in all ``zones``, None if never.

    The intersection of the zones' windows opens at the start of one of them, so the candidates are
    each zone's local window starts over the next eight days (a start that falls in a DST gap is
    read with the offset before the change, i.e. it lands just after the gap)."""
    if window_open(window, zones, now):
        return now
    candidates: set[float] = set()
    for zone in zones:
        tz = _zone(zone)
        today: date = datetime.fromtimestamp(now, tz).date()
        for offset in range(9):
            day = today + timedelta(days=offset)
            if day.weekday() not in window.days:
                continue
            start = datetime.combine(day, window.start, tzinfo=tz).timestamp()
            if start > now:
                candidates.add(start)
    for candidate in sorted(candidates):
        if window_open(window, zones, candidate):
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# measurements


class AbandonmentLedger:
    """Live answers and abandons over a rolling window (seconds); ``rate`` = abandoned / live."""

    def __init__(self, window: float = 30 * DAY) -> None:
        if window <= 0:
            raise CampaignError(f"abandonment window must be > 0 s, got {window}")
        self.window = window
        self._events: deque[tuple[float, bool]] = deque()
        self._live = 0
        self._abandoned = 0

    def record(self, now: float, *, abandoned: bool) -> None:
        """One live-answered call at ``now``; ``abandoned`` if no agent reached it in time."""
        self._events.append((now, abandoned))
        self._live += 1
        self._abandoned += int(abandoned)

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._events and self._events[0][0] <= horizon:
            _, was_abandoned = self._events.popleft()
            self._live -= 1
            self._abandoned -= int(was_abandoned)

    def counts(self, now: float) -> tuple[int, int]:
        """(live answered, abandoned) within the window ending at ``now``."""
        self._expire(now)
        return self._live, self._abandoned

    def rate(self, now: float) -> float:
        live, abandoned = self.counts(now)
        return abandoned / live if live else 0.0


class HandleTimes:
    """Recent handle times (talk + wrap-up, seconds) and ``P(done within t | lasted e)``."""

    def __init__(self, *, prior_mean: float = 180.0, keep: int = 400, min_samples: int = 20) -> None:
        self.prior_mean = prior_mean
        self.min_samples = min_samples
        self._recent: deque[float] = deque(maxlen=keep)
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        if seconds < 0 or math.isnan(seconds):
            return
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append(seconds)
        bisect.insort(self._sorted, seconds)

    def __len__(self) -> int:
        return len(self._sorted)

    def samples(self) -> list[float]:
        """The recent handle times, sorted (do not modify)."""
        return self._sorted

    def mean(self) -> float:
        if len(self._sorted) < self.min_samples:
            return self.prior_mean
        return sum(self._sorted) / len(self._sorted)

    def quantiles(self, count: int) -> list[float]:
        """``count`` evenly spread quantiles of the recent samples (the prior mean if too few)."""
        samples = self._sorted
        if len(samples) < self.min_samples:
            return [self.prior_mean] * count
        return [samples[int((i + 0.5) / count * len(samples))] for i in range(count)]

    def p_done_within(self, elapsed: float, horizon: float) -> float:
        """Probability a call that has lasted ``elapsed`` s ends within the next ``horizon`` s."""
        samples = self._sorted
        n = len(samples)
        if n >= self.min_samples:
            survivors = n - bisect.bisect_right(samples, elapsed)
            if survivors > 0:
                ending = bisect.bisect_right(samples, elapsed + horizon) - bisect.bisect_right(
                    samples, elapsed
                )
                return ending / survivors
        return 1.0 - math.exp(-horizon / max(self.mean(), 1.0))

    def with_running(self, running: Sequence[float]) -> HandleTimes:
        """These measurements with the calls still running (``running``: seconds each has lasted)
        as censored observations, while every call measured since the start still fits in the
        window: early in a day the calls that have ended are the short ones, and taking them alone
        foresees long calls ending far too soon (Kaplan-Meier). Once the window is full it holds a
        steady sample of the recent calls, and the running ones (a different cohort) stay out."""
        if not running or len(self._recent) == self._recent.maxlen or len(self._sorted) < self.min_samples:
            return self
        return _WithRunning(self, running)


class _WithRunning(HandleTimes):
    """``HandleTimes`` whose ``p_done_within`` is the Kaplan-Meier estimate over the ended calls
    and the running ones (censored at the time each has lasted)."""

    def __init__(self, base: HandleTimes, running: Sequence[float]) -> None:
        self.prior_mean = base.prior_mean
        self.min_samples = base.min_samples
        self._recent = base._recent
        self._sorted = base._sorted
        samples, censored = self._sorted, sorted(running)
        at_risk = len(samples) + len(censored)
        self._times: list[float] = []
        self._survival: list[float] = []
        survival, i, j = 1.0, 0, 0
        while i < len(samples):
            t = samples[i]
            while j < len(censored) and censored[j] < t:
                at_risk -= 1
                j += 1
            ended = 0
            while i < len(samples) and samples[i] == t:
                ended += 1
                i += 1
            survival *= 1.0 - ended / at_risk
            at_risk -= ended
            self._times.append(t)
            self._survival.append(survival)

    def _survives(self, seconds: float) -> float:
        k = bisect.bisect_right(self._times, seconds)
        return self._survival[k - 1] if k else 1.0

    def p_done_within(self, elapsed: float, horizon: float) -> float:
        lasted = self._survives(elapsed)
        if lasted <= 0.0:
            return 1.0 - math.exp(-horizon / max(self.mean(), 1.0))
        return 1.0 - self._survives(elapsed + horizon) / lasted


class AnswerStats:
    """Per resolved attempt: seconds from dial to resolution and whether a person answered.

    Resolution is the moment a person is detected (AMD HUMAN) or the attempt's non-live end."""

    def __init__(
        self,
        *,
        prior_rate: float = 0.3,
        prior_weight: float = 20.0,
        keep: int = 1000,
        prior_time: float = 15.0,
    ) -> None:
        self.prior_rate = prior_rate
        self.prior_weight = prior_weight
        self.prior_time = prior_time
        self._recent: deque[tuple[float, bool]] = deque(maxlen=keep)
        self._all: list[float] = []
        self._human: list[float] = []

    def add(self, seconds: float, *, human: bool) -> None:
        if seconds < 0 or math.isnan(seconds):
            return
        if len(self._recent) == self._recent.maxlen:
            old, old_human = self._recent[0]
            del self._all[bisect.bisect_left(self._all, old)]
            if old_human:
                del self._human[bisect.bisect_left(self._human, old)]
        self._recent.append((seconds, human))
        bisect.insort(self._all, seconds)
        if human:
            bisect.insort(self._human, seconds)

    def __len__(self) -> int:
        return len(self._all)

    def samples(self) -> tuple[list[float], list[float]]:
        """(all resolution times, those that reached a person), each sorted (do not modify)."""
        return self._all, self._human

    def answer_rate(self) -> float:
        """Share of attempts reaching a person, smoothed by a prior worth ``prior_weight`` attempts."""
        return (len(self._human) + self.prior_rate * self.prior_weight) / (len(self._all) + self.prior_weight)

    def time_to_person(self) -> float:
        """Mean seconds from dial to a detected person."""
        if len(self._human) < 5:
            return self.prior_time
        return sum(self._human) / len(self._human)

    def p_person_within(self, elapsed: float, horizon: float) -> float:
        """Chance that a line unresolved after ``elapsed`` s reaches a person in the next ``horizon`` s."""
        alive = len(self._all) - bisect.bisect_right(self._all, elapsed)
        if alive < 5:
            return (
                self.p_person_given_unresolved(elapsed) if elapsed + horizon >= self.time_to_person() else 0.0
            )
        humans = bisect.bisect_right(self._human, elapsed + horizon) - bisect.bisect_right(
            self._human, elapsed
        )
        return humans / alive

    def p_person_by(self, horizon: float) -> float:
        """Chance that a line dialled now reaches a person within ``horizon`` s."""
        if len(self._human) < 5:
            return self.answer_rate() if horizon >= self.time_to_person() else 0.0
        return self.answer_rate() * bisect.bisect_right(self._human, horizon) / len(self._human)

    def p_person_given_unresolved(self, elapsed: float) -> float:
        """Chance that a line still unresolved after ``elapsed`` s ends with a person."""
        alive = len(self._all) - bisect.bisect_right(self._all, elapsed)
        if alive < 5:
            return self.answer_rate() if elapsed <= self.time_to_person() else 0.0
        humans = len(self._human) - bisect.bisect_right(self._human, elapsed)
        return humans / alive


# ---------------------------------------------------------------------------------------------
# pacing


@dataclass(frozen=True, slots=True)
class AgentLoad:
    """The agents serving a campaign right now.

    ``logged_in``: those working (not paused or not ready); ``paused``: those logged in but paused
    or not ready; ``idle``: ready and not on a call; ``busy_elapsed``: for each agent on a call (or
    in wrap-up, when ``wrap_elapsed`` is not given), seconds since that call was connected; ``wrap_elapsed``:
    for each agent in wrap-up, seconds since the wrap-up began (the ACD knows when talk ends, and
    a wrap-up's end is far easier to foresee than a conversation's); ``free_in``: for each busy
    agent whose end is known (a fixed wrap-up already begun, say), seconds until it is free (such an
    agent is in neither of the other two)."""

    logged_in: int
    idle: int
    busy_elapsed: tuple[float, ...] = ()
    wrap_elapsed: tuple[float, ...] = ()
    free_in: tuple[float, ...] = ()
    paused: int = 0


@dataclass(frozen=True, slots=True)
class PacingSettings:
    abandon_limit: float = 0.03
    margin: float = 1 / 3
    """Share of the limit kept in reserve: the pacing aims at ``limit * (1 - margin)``."""
    max_lines_per_agent: float = 3.0
    """Predictive: at most this many lines in flight per agent free now or about to be."""
    warmup_attempts: int = 100
    """Resolved attempts needed before predictive pacing trusts its measurements."""
    gain_step: float = 0.01
    """The feedback's first step (log gain per live answer, at full error)."""
    gain_step_floor: float = 0.003
    gain_anneal: float = 200.0
    """The step shrinks as ``gain_step * gain_anneal / (gain_anneal + n)`` after ``n`` live answers,
    down to ``gain_step_floor``: quick to find the gain, then steady (abandons are rare events, and a
    gain that swings with each one over-dials and under-dials in turn, which costs connects)."""
    gain_initial: float = 0.15
    """The model leaves out how people who answer early miss agents who free late, so it predicts
    fewer abandons than happen; the feedback starts from a discounted target and finds the gain.
    It starts below where it settles on the simulator's people (0.15-0.2): climbing to the gain
    costs a little pace early in the day, overshooting it trips the guard while the day's live
    answers are still few (three abandons in the first hundred), and the guard costs far more."""
    gain_min: float = 0.01
    gain_max: float = 4.0
    ema_weight: float = 0.01
    checkpoints: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5)
    """Where the predictive model compares arrivals with capacity, as multiples of the mean
    dial-to-person time."""

    @property
    def target(self) -> float:
        return self.abandon_limit * (1.0 - self.margin)

    @property
    def guard(self) -> float:
        return self.abandon_limit * (1.0 - self.margin / 2.0)


@dataclass(frozen=True, slots=True)
class PacingDecision:
    """How many new lines to dial now, and why (shown by ``campaign status`` and the API)."""

    lines: int
    mode: Mode
    """The mode that decided (predictive falls back to progressive)."""
    reason: str
    answer_rate: float = 0.0
    expected_free: float = 0.0
    expected_people: float = 0.0
    expected_abandon_rate: float = 0.0
    target: float = 0.0

    def explain(self) -> str:
        return (
            f"{self.mode.value}: dial {self.lines} ({self.reason}; answer rate {self.answer_rate:.1%}, "
            f"agents free soon {self.expected_free:.1f}, people expected {self.expected_people:.1f}, "
            f"predicted abandonment {self.expected_abandon_rate:.2%} vs target {self.target:.2%})"
        )


def _binomial_tail_excess(n: int, p: float) -> list[float]:
    """``T[m] = E[max(0, H - m)]`` for ``H ~ Binomial(n, p)``, m = 0..n (T[n] = 0)."""
    if n <= 0:
        return [0.0]
    p = min(max(p, 0.0), 1.0)
    pmf = [0.0] * (n + 1)
    if p >= 1.0:
        pmf[n] = 1.0
    else:
        pmf[0] = (1.0 - p) ** n
        odds = p / (1.0 - p)
        for k in range(n):
            pmf[k + 1] = pmf[k] * (n - k) / (k + 1) * odds
    excess = [0.0] * (n + 1)
    survival = 0.0
    for m in range(n - 1, -1, -1):
        survival += pmf[m + 1]
        excess[m] = excess[m + 1] + survival
    return excess


def expected_abandons(lines: int, p: float, idle: int, soon_free: float, waiting: int = 0) -> float:
    """``E[max(0, H + waiting - idle - B)]``: people answering beyond the agents there to take them.

    ``H ~ Binomial(lines, p)`` people answer; ``B ~ Poisson(soon_free)`` busy agents come free in time;
    ``waiting`` people already answered and not yet connected take the first agents free.
    (A binomial with the mean chance overstates the spread of a mixed-chance sum, so this errs high.)"""
    room = idle - waiting
    if lines <= room:
        return 0.0
    excess = _binomial_tail_excess(lines, p)
    total = 0.0
    pb = math.exp(-soon_free)
    b = 0
    mean = lines * p
    while room + b < lines:
        m = room + b
        total += pb * (excess[m] if m >= 0 else mean - m)
        b += 1
        pb *= soon_free / b
    return total


def expected_free_within(
    agents: AgentLoad,
    handle_times: HandleTimes,
    horizon: float,
    *,
    talk_times: HandleTimes | None = None,
    wrap_times: HandleTimes | None = None,
) -> float:
    """Expected agents free within ``horizon`` s: the idle ones plus, for each busy one, the
    measured chance its call ends in time given how long it has lasted (``_soon_free``)."""
    known = sum(1 for left in agents.free_in if left <= horizon)
    return agents.idle + known + _soon_free(agents, handle_times, talk_times, wrap_times, horizon)


def _soon_free(
    agents: AgentLoad,
    handle_times: HandleTimes,
    talk_times: HandleTimes | None,
    wrap_times: HandleTimes | None,
    horizon: float,
) -> float:
    """Expected busy agents free within ``horizon`` s, each from the conditional remaining time
    given its elapsed time (``HandleTimes.p_done_within``). With wrap-up known separately, an agent
    in wrap-up ends by the wrap-up times measured, and a talking agent needs the rest of its talk
    plus a whole wrap-up (averaged over wrap-up quantiles)."""
    return sum(_free_chances(agents, handle_times, talk_times, wrap_times, horizon))


def _free_chances(
    agents: AgentLoad,
    handle_times: HandleTimes,
    talk_times: HandleTimes | None,
    wrap_times: HandleTimes | None,
    horizon: float,
) -> list[float]:
    """Each busy agent's chance to be free within ``horizon`` s (see ``_soon_free``)."""
    if not agents.wrap_elapsed or talk_times is None or wrap_times is None or len(talk_times) < 20:
        return [handle_times.p_done_within(e, horizon) for e in agents.busy_elapsed + agents.wrap_elapsed]
    chances = [wrap_times.p_done_within(w, horizon) for w in agents.wrap_elapsed]
    wraps = [w for w in wrap_times.quantiles(5) if w < horizon]
    if wraps:
        for e in agents.busy_elapsed:
            chances.append(sum(talk_times.p_done_within(e, horizon - w) for w in wraps) / 5)
    return chances


def _sure_and_spread(chances: Sequence[float]) -> tuple[int, float]:
    """Agents coming free, as a sure count plus a Poisson part with the same mean: the sure count
    is the whole part of mean - variance, so that near-certain ends (an agent deep in its wrap-up)
    do not get a Poisson's spread (the sum of the chances has variance sum p(1-p), not sum p)."""
    mean = sum(chances)
    variance = sum(q * (1.0 - q) for q in chances)
    sure = max(0, math.floor(mean - variance))
    return sure, max(0.0, mean - sure)


def progressive_lines(agents: AgentLoad, in_flight: int) -> int:
    """One line per idle agent, lines already in flight (and people waiting for an agent) counted."""
    return max(0, agents.idle - in_flight)


def pace(
    mode: Mode,
    agents: AgentLoad,
    in_flight_elapsed: Sequence[float],
    answers: AnswerStats,
    handle_times: HandleTimes,
    settings: PacingSettings,
    *,
    gain: float = 1.0,
    fallback: bool = False,
    talk_times: HandleTimes | None = None,
    wrap_times: HandleTimes | None = None,
    waiting: int = 0,
) -> PacingDecision:
    """How many new calls to place now (see the module docstring for the model)."""
    in_flight = len(in_flight_elapsed)
    if mode is Mode.PREVIEW:
        return PacingDecision(0, Mode.PREVIEW, "preview: agents choose and dial")
    if agents.logged_in <= 0:
        if agents.paused > 0:
            return PacingDecision(0, mode, f"all {agents.paused} agent(s) paused or not ready")
        return PacingDecision(0, mode, "no agent logged in")
    # People answered and being connected hold an idle agent each until the ACD has reserved one.
    progressive = progressive_lines(agents, in_flight + waiting)
    if mode is Mode.PROGRESSIVE:
        return PacingDecision(progressive, Mode.PROGRESSIVE, "one line per free agent")
    if len(answers) < settings.warmup_attempts:
        return PacingDecision(
            progressive,
            Mode.PROGRESSIVE,
            f"warming up: {len(answers)}/{settings.warmup_attempts} attempts measured",
            answer_rate=answers.answer_rate(),
        )
    if fallback:
        return PacingDecision(
            progressive,
            Mode.PROGRESSIVE,
            "abandonment at the guard: progressive until back under target",
            answer_rate=answers.answer_rate(),
        )
    # Early in a day the calls still running tell how long calls last as much as the ended ones.
    handle_times = handle_times.with_running(agents.busy_elapsed + agents.wrap_elapsed)
    if talk_times is not None:
        talk_times = talk_times.with_running(agents.busy_elapsed)
    if wrap_times is not None:
        wrap_times = wrap_times.with_running(agents.wrap_elapsed)
    p = answers.answer_rate()
    ttp = answers.time_to_person()
    # Checkpoints over the next answers: by each, the people expected to have answered must fit the
    # agents idle or freed by then plus the grace (cumulative arrivals against cumulative capacity).
    checkpoints = []
    for tau in (f * ttp for f in settings.checkpoints):
        chances = _free_chances(agents, handle_times, talk_times, wrap_times, tau + CONNECT_GRACE)
        sure, soon = _sure_and_spread(chances)
        known = agents.idle + sure + sum(1 for left in agents.free_in if left <= tau + CONNECT_GRACE)
        flight = sum(answers.p_person_within(e, tau) for e in in_flight_elapsed)
        checkpoints.append((known, soon, flight, answers.p_person_by(tau)))
    soon_free = max(c[0] - agents.idle + c[1] for c in checkpoints)
    in_flight_people = sum(answers.p_person_given_unresolved(e) for e in in_flight_elapsed)
    target = settings.target * gain
    # VICIdial's "dial level": lines per agent free now or about to be.
    cap = max(0, math.ceil(settings.max_lines_per_agent * max(1.0, agents.idle + soon_free)) - in_flight)
    lines = min(progressive, cap)
    best_rate = 0.0
    while lines < cap:
        trial = lines + 1
        people = in_flight_people + trial * p
        total_lines = in_flight + trial
        if people <= 0:
            break
        worst = 0.0
        for known, soon, flight, new_share in checkpoints:
            by_then = flight + trial * new_share
            if by_then > 0:
                worst = max(
                    worst, expected_abandons(total_lines, by_then / total_lines, known, soon, waiting)
                )
        rate = worst / (people + waiting)
        if rate > target:
            break
        lines, best_rate = trial, rate
    people = in_flight_people + lines * p + waiting
    return PacingDecision(
        lines,
        Mode.PREDICTIVE,
        "most lines keeping predicted abandonment under target" if lines < cap else "at the line cap",
        answer_rate=p,
        expected_free=agents.idle + soon_free,
        expected_people=people,
        expected_abandon_rate=best_rate,
        target=target,
    )


# ---------------------------------------------------------------------------------------------
# the campaign


@dataclass(frozen=True, slots=True)
class CampaignSettings:
    name: str
    mode: Mode = Mode.PROGRESSIVE
    window: CallingWindow = field(default_factory=CallingWindow)
    max_attempts: int = 3
    retry_delays: Mapping[Outcome, float] = field(default_factory=lambda: dict(DEFAULT_RETRY_DELAYS))
    abandon_window: float = 30 * DAY
    pacing: PacingSettings = field(default_factory=PacingSettings)
    expected_answer_rate: float = 0.3
    expected_handle_time: float = 180.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise CampaignError("max_attempts must be >= 1", campaign=self.name)
        if not 0 < self.pacing.abandon_limit < 1:
            raise CampaignError("abandonment limit must be a fraction in (0, 1)", campaign=self.name)

    def retry_delay(self, outcome: Outcome) -> float:
        return self.retry_delays.get(outcome, DEFAULT_RETRY_DELAYS.get(outcome, 3600.0))


@dataclass(slots=True)
class ContactState:
    contact: Contact
    attempts: int = 0
    status: ContactStatus = ContactStatus.PENDING
    next_at: float = 0.0
    last_outcome: Outcome | None = None
    holder: str | None = None
    """The agent holding it in preview."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to place: the shell records it (``attempt_id``) BEFORE it sends the Originate."""

    attempt_id: str
    campaign: str
    contact: Contact
    number: int
    """1 for the first attempt on this contact, 2 for the second ..."""
    started_at: float
    agent_id: str | None = None
    """Preview: the agent who chose to dial."""


@dataclass(slots=True)
class _Live:
    attempt: Attempt
    person_at: float | None = None


class Dialer:
    """One campaign: contacts, pacing and outcomes. Pure; every method takes ``now``.

    The shell's loop: ``plan(agents, now)`` -> record each returned ``Attempt`` -> Originate it ->
    feed back ``on_person`` (AMD HUMAN), then ``on_connected`` / ``on_abandoned``, or
    ``on_outcome`` for every non-live end; ``on_handle_time`` when an agent's call and wrap-up end.
    """

    def __init__(
        self,
        settings: CampaignSettings,
        *,
        dnc: DncList | None = None,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self.dnc = dnc or DncList()
        self.state = CampaignState.RUNNING
        self.ledger = AbandonmentLedger(settings.abandon_window)
        self.answers = AnswerStats(prior_rate=settings.expected_answer_rate)
        self.handle_times = HandleTimes(prior_mean=settings.expected_handle_time)
        self.talk_times = HandleTimes(prior_mean=settings.expected_handle_time)
        self.wrap_times = HandleTimes(prior_mean=15.0)
        self.gain = settings.pacing.gain_initial
        self.abandon_ema = settings.pacing.target
        self.gain_updates = 0
        self.fallback = False
        self.last_decision: PacingDecision | None = None
        self.outcomes: dict[Outcome, int] = {o: 0 for o in Outcome}
        self._contacts: dict[str, ContactState] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._live: dict[str, _Live] = {}
        self._settled: list[ContactState] = []
        self._status_counts: tuple[float, dict[str, int]] | None = None
        counter = itertools.count(1)
        self._new_id = new_id or (lambda: f"{settings.name}-{next(counter)}")

    # ------------------------------------------------------------------ contacts
    def add_contacts(self, contacts: Iterable[Contact], *, now: float = 0.0) -> int:
        """Add new contacts (keys already present are ignored); returns how many were added."""
        added = 0
        for contact in contacts:
            if contact.key in self._contacts:
                continue
            self._contacts[contact.key] = ContactState(contact, next_at=now)
            self._push(contact.key, now)
            added += 1
        return added

    def restore_contact(
        self,
        contact: Contact,
        *,
        attempts: int,
        status: ContactStatus,
        next_at: float,
        last_outcome: Outcome | None = None,
        now: float,
    ) -> None:
        """Put back a contact as the database last saw it (after a restart).

        A contact found ``dialing`` had an attempt in flight when the controller stopped: that
        attempt counts, its fate is unknown, and the contact waits the ``unknown`` retry delay
        (never dialled again at once: the first call may still be ringing)."""
        if status is ContactStatus.DIALING:
            last_outcome = Outcome.UNKNOWN
            next_at = max(next_at, now + self.settings.retry_delay(Outcome.UNKNOWN))
            status = ContactStatus.PENDING
        elif status is ContactStatus.PREVIEWING:
            status = ContactStatus.PENDING
        if status is ContactStatus.PENDING and attempts >= self.settings.max_attempts:
            status = ContactStatus.EXHAUSTED
        state = ContactState(
            contact, attempts=attempts, status=status, next_at=next_at, last_outcome=last_outcome
        )
        self._contacts[contact.key] = state
        if status is ContactStatus.PENDING:
            self._push(contact.key, next_at)

    def contact(self, key: str) -> ContactState:
        try:
            return self._contacts[key]
        except KeyError:
            raise CampaignError(
                f"no contact {key!r}", campaign=self.settings.name, code="no_contact"
            ) from None

    def contacts(self) -> Iterable[ContactState]:
        return self._contacts.values()

    def take_settled(self) -> list[ContactState]:
        """Contacts closed while choosing whom to dial (DNC, exhausted, no window) since the last
        call: the shell stores their status."""
        settled, self._settled = self._settled, []
        return settled

    def update_dnc(self, dnc: DncList) -> None:
        self.dnc = dnc

    def _push(self, key: str, at: float) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), key))

    def _due(self, now: float) -> ContactState | None:
        """Pop the next contact that may be dialled now (DNC and window checked), or None."""
        while self._heap and self._heap[0][0] <= now:
            at, _, key = heapq.heappop(self._heap)
            state = self._contacts[key]
            if state.status is not ContactStatus.PENDING or state.next_at != at:
                continue  # stale heap entry
            if state.contact.phone in self.dnc:
                state.status = ContactStatus.DNC
                self._settled.append(state)
                continue
            if state.attempts >= self.settings.max_attempts:
                state.status = ContactStatus.EXHAUSTED
                self._settled.append(state)
                continue
            opens = next_open(self.settings.window, state.contact.zones, now)
            if opens is None:
                state.status = ContactStatus.NO_WINDOW
                self._settled.append(state)
                continue
            if opens > now:
                state.next_at = opens
                self._push(key, opens)
                continue
            return state
        return None

    def _start(self, state: ContactState, now: float, agent_id: str | None = None) -> Attempt:
        if state.attempts >= self.settings.max_attempts:  # guarded by _due; kept as an invariant
            raise CampaignError(
                f"contact {state.contact.key!r} already had {state.attempts} attempts",
                campaign=self.settings.name,
                code="max_attempts",
            )
        if state.contact.phone in self.dnc:
            raise CampaignError(
                f"contact {state.contact.key!r} is on the do-not-call list",
                campaign=self.settings.name,
                code="dnc",
            )
        state.attempts += 1
        state.status = ContactStatus.DIALING
        state.holder = None
        attempt = Attempt(self._new_id(), self.settings.name, state.contact, state.attempts, now, agent_id)
        self._live[attempt.attempt_id] = _Live(attempt)
        return attempt

    # ------------------------------------------------------------------ control
    def pause(self) -> None:
        if self.state is CampaignState.STOPPED:
            raise CampaignError("campaign is stopped", campaign=self.settings.name, code="campaign_stopped")
        self.state = CampaignState.PAUSED

    def resume(self) -> None:
        if self.state is CampaignState.STOPPED:
            raise CampaignError("campaign is stopped", campaign=self.settings.name, code="campaign_stopped")
        self.state = CampaignState.RUNNING

    def stop(self) -> None:
        self.state = CampaignState.STOPPED

    # ------------------------------------------------------------------ pacing
    def in_flight(self) -> list[Attempt]:
        """Attempts dialled and not yet resolved (no person detected, no end)."""
        return [live.attempt for live in self._live.values() if live.person_at is None]

    def plan(self, agents: AgentLoad, now: float) -> tuple[PacingDecision, list[Attempt]]:
        """Decide the pace and take the contacts to dial now. The shell must record each returned
        attempt before it sends the Originate (the attempt count is already spent)."""
        if self.state is not CampaignState.RUNNING:
            decision = PacingDecision(0, self.settings.mode, f"campaign {self.state.value}")
            self.last_decision = decision
            return decision, []
        elapsed = [now - live.attempt.started_at for live in self._live.values() if live.person_at is None]
        waiting = len(self._live) - len(elapsed)
        # People answered and not yet connected take the first agents idle or coming free: they are
        # demand the forecast must meet before any new line's person (not merely fewer idle agents).
        if not self.fallback:
            live, abandoned = self.ledger.counts(now)
            if live and abandoned / live >= self.settings.pacing.guard:
                self.fallback = True
        decision = pace(
            self.settings.mode,
            agents,
            elapsed,
            self.answers,
            self.handle_times,
            self.settings.pacing,
            gain=self.gain,
            fallback=self.fallback,
            talk_times=self.talk_times,
            wrap_times=self.wrap_times,
            waiting=waiting,
        )
        self.last_decision = decision
        attempts: list[Attempt] = []
        for _ in range(decision.lines):
            state = self._due(now)
            if state is None:
                break
            attempts.append(self._start(state, now))
        return decision, attempts

    # ------------------------------------------------------------------ preview
    def preview_next(self, agent_id: str, now: float) -> ContactState | None:
        """Reserve the next contact for ``agent_id`` to look at (preview mode)."""
        if self.state is not CampaignState.RUNNING:
            return None
        state = self._due(now)
        if state is None:
            return None
        state.status = ContactStatus.PREVIEWING
        state.holder = agent_id
        return state

    def preview_dial(self, key: str, agent_id: str, now: float) -> Attempt:
        state = self.contact(key)
        if state.status is not ContactStatus.PREVIEWING or state.holder != agent_id:
            raise CampaignError(
                f"contact {key!r} is not held by agent {agent_id!r}",
                campaign=self.settings.name,
                code="not_held",
            )
        return self._start(state, now, agent_id)

    def preview_skip(self, key: str, agent_id: str, now: float, *, delay: float = 0.0) -> None:
        state = self.contact(key)
        if state.status is not ContactStatus.PREVIEWING or state.holder != agent_id:
            raise CampaignError(
                f"contact {key!r} is not held by agent {agent_id!r}",
                campaign=self.settings.name,
                code="not_held",
            )
        state.status = ContactStatus.PENDING
        state.holder = None
        state.next_at = now + delay
        self._push(key, state.next_at)

    # ------------------------------------------------------------------ outcomes
    def _live_attempt(self, attempt_id: str) -> _Live:
        try:
            return self._live[attempt_id]
        except KeyError:
            raise CampaignError(
                f"no attempt {attempt_id!r} in flight", campaign=self.settings.name, code="no_attempt"
            ) from None

    def on_person(self, attempt_id: str, now: float) -> Attempt:
        """AMD heard a person: the 2 s to connect an agent start now."""
        live = self._live_attempt(attempt_id)
        if live.person_at is None:
            live.person_at = now
            self.answers.add(now - live.attempt.started_at, human=True)
        return live.attempt

    def on_connected(self, attempt_id: str, now: float) -> ContactState:
        return self._end(attempt_id, Outcome.CONNECTED, now)

    def on_abandoned(self, attempt_id: str, now: float) -> ContactState:
        return self._end(attempt_id, Outcome.ABANDONED, now)

    def on_outcome(self, attempt_id: str, outcome: Outcome, now: float) -> ContactState:
        """Any end of an attempt (live ones too: CONNECTED / ABANDONED)."""
        return self._end(attempt_id, outcome, now)

    def abort_attempt(self, attempt_id: str, now: float, *, retry_in: float = 60.0) -> ContactState:
        """The attempt was never placed (not recorded, or refused before anything was sent): it does
        not count; the contact is due again in ``retry_in`` seconds."""
        live = self._live.pop(attempt_id, None)
        if live is None:
            raise CampaignError(
                f"no attempt {attempt_id!r} in flight", campaign=self.settings.name, code="no_attempt"
            )
        state = self._contacts[live.attempt.contact.key]
        state.attempts = max(0, state.attempts - 1)
        state.status = ContactStatus.PENDING
        state.next_at = now + retry_in
        self._push(state.contact.key, state.next_at)
        return state

    def mark_dnc(self, key: str) -> None:
        """The contact's number is on a do-not-call list (found by the database check)."""
        state = self.contact(key)
        state.status = ContactStatus.DNC

    def record_live(self, now: float, *, abandoned: bool) -> None:
        """A live answer on an attempt this dialer no longer tracks (its fate was lost in a restart
        or a dropped AMI link): it still counts in the abandonment ledger."""
        self._record_live(now, abandoned=abandoned)

    def is_live(self, attempt_id: str) -> bool:
        return attempt_id in self._live

    def on_call_end(self, talk: float, wrap: float) -> None:
        """An agent finished a campaign call: ``talk`` s of conversation then ``wrap`` s of wrap-up."""
        self.talk_times.add(talk)
        self.wrap_times.add(wrap)
        self.handle_times.add(talk + wrap)

    def on_handle_time(self, seconds: float) -> None:
        """An agent finished a campaign call: talk + wrap-up lasted ``seconds``."""
        self.handle_times.add(seconds)

    def _end(self, attempt_id: str, outcome: Outcome, now: float) -> ContactState:
        live = self._live.pop(attempt_id, None)
        if live is None:
            raise CampaignError(
                f"no attempt {attempt_id!r} in flight", campaign=self.settings.name, code="no_attempt"
            )
        attempt = live.attempt
        if outcome in LIVE_OUTCOMES:
            if live.person_at is None:
                live.person_at = now
                self.answers.add(now - attempt.started_at, human=True)
            self._record_live(now, abandoned=outcome is Outcome.ABANDONED)
        elif live.person_at is None and outcome is not Outcome.UNKNOWN:
            self.answers.add(now - attempt.started_at, human=False)
        self.outcomes[outcome] += 1
        state = self._contacts[attempt.contact.key]
        state.last_outcome = outcome
        if outcome in FINAL_OUTCOMES:
            state.status = ContactStatus.DONE
        elif state.attempts >= self.settings.max_attempts:
            state.status = ContactStatus.EXHAUSTED
        else:
            state.status = ContactStatus.PENDING
            state.next_at = now + self.settings.retry_delay(outcome)
            self._push(attempt.contact.key, state.next_at)
        return state

    def _record_live(self, now: float, *, abandoned: bool) -> None:
        pacing = self.settings.pacing
        self.ledger.record(now, abandoned=abandoned)
        if self.settings.mode is not Mode.PREDICTIVE:
            return
        if self.fallback:  # progressive answers say nothing of the predictive pace: the gain waits
            live, dropped = self.ledger.counts(now)
            if live and dropped / live <= pacing.target:
                self.fallback = False
            return
        self.abandon_ema += pacing.ema_weight * (float(abandoned) - self.abandon_ema)
        error = (pacing.target - self.abandon_ema) / pacing.target
        step = max(
            pacing.gain_step_floor,
            pacing.gain_step * pacing.gain_anneal / (pacing.gain_anneal + self.gain_updates),
        )
        self.gain_updates += 1
        self.gain = min(pacing.gain_max, max(pacing.gain_min, self.gain * math.exp(step * error)))

    # ------------------------------------------------------------------ status
    @property
    def finished(self) -> bool:
        """No contact left to dial and nothing in flight."""
        return not self._live and all(
            s.status not in (ContactStatus.PENDING, ContactStatus.DIALING, ContactStatus.PREVIEWING)
            for s in self._contacts.values()
        )

    def summary(self, now: float) -> dict[str, object]:
        """The campaign at a glance (contacts by status are recounted at most once a second: a
        wallboard may ask often and a campaign may hold many thousands of contacts)."""
        live, abandoned = self.ledger.counts(now)
        cached = self._status_counts
        if cached is None or not 0 <= now - cached[0] < 1.0:
            counts: dict[str, int] = {s.value: 0 for s in ContactStatus}
            for state in self._contacts.values():
                counts[state.status.value] += 1
            cached = self._status_counts = (now, counts)
        by_status = dict(cached[1])
        return {
            "campaign": self.settings.name,
            "state": self.state.value,
            "mode": self.settings.mode.value,
            "contacts": by_status,
            "outcomes": {o.value: n for o, n in self.outcomes.items()},
            "in_flight": len(self.in_flight()),
            "live_in_window": live,
            "abandoned_in_window": abandoned,
            "abandonment_rate": abandoned / live if live else 0.0,
            "gain": self.gain,
            "fallback": self.fallback,
            "pacing": self.last_decision.explain() if self.last_decision else None,
        }
