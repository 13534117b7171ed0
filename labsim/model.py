"""Synthetic lab machines: a fixed profile per host plus counters that evolve with a (fast) clock.

Dashboards and benchmarks need a lab that behaves like one: busy afternoons, idle nights, disks that
fill, users logging in and out, counters that only grow until a reboot. Everything here is a pure
function of the simulated time and the host's seed, advanced lazily when the host is asked for its
state, so a simulated day costs nothing while nobody looks and renders the same whoever asks.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

USER_HZ = 100
KIB = 1024

#: (id, version_id, name, pretty_name, codename, id_like, kernel release, kernel version, busybox)
DISTROS: tuple[tuple[str, str, str, str, str, str, str, str, bool], ...] = (
    (
        "debian",
        "12",
        "Debian GNU/Linux",
        "Debian GNU/Linux 12 (bookworm)",
        "bookworm",
        "",
        "6.1.0-27-amd64",
        "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)",
        False,
    ),
    (
        "ubuntu",
        "24.04",
        "Ubuntu",
        "Ubuntu 24.04.1 LTS",
        "noble",
        "debian",
        "6.8.0-49-generic",
        "#49-Ubuntu SMP PREEMPT_DYNAMIC Mon Nov  4 02:06:24 UTC 2024",
        False,
    ),
    (
        "rocky",
        "9.4",
        "Rocky Linux",
        "Rocky Linux 9.4 (Blue Onyx)",
        "",
        "rhel centos fedora",
        "5.14.0-427.42.1.el9_4.x86_64",
        "#1 SMP PREEMPT_DYNAMIC Fri Nov 1 14:58:05 UTC 2024",
        False,
    ),
    (
        "alpine",
        "3.20.3",
        "Alpine Linux",
        "Alpine Linux v3.20",
        "",
        "",
        "6.6.58-0-lts",
        "#1-Alpine SMP PREEMPT_DYNAMIC Tue, 22 Oct 2024 11:24:54 +0000",
        True,
    ),
)
DEPARTMENT_NAMES = ("physics", "chemistry", "biology", "maths", "informatics", "geology", "music", "arts")
#: Demand per department relative to the others: physics is over-subscribed (a queue at the door in
#: the afternoon), biology underused; the rest follow ``busy_level`` as it is.
DEPARTMENT_DEMAND = {"physics": 1.45, "biology": 0.15}
#: Opening hours the simulated lab publishes in its inventory (UTC, like ``busy_level``).
OPENING_HOURS = {"timezone": "UTC", "mon-fri": "08:00-20:00", "sat": "10:00-16:00"}
#: Forced seat states (control API): a login, a lock, an idle session or nobody, until cleared.
SEAT_OVERRIDES = ("in_use", "idle", "locked", "free")
USER_NAMES = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
)


class SimClock:
    """Simulated wall clock: starts at ``start`` and runs ``speed`` times faster than ``real``.

    Injectable so tests and benchmarks can run a lab day in minutes (or step it by hand).
    """

    def __init__(self, start: float | None = None, speed: float = 1.0, real: Callable[[], float] = time.time) -> None:
        self.real = real
        self.speed = speed
        self.real0 = real()
        self.start = self.real0 if start is None else start

    def __call__(self) -> float:
        return self.start + (self.real() - self.real0) * self.speed


@dataclass(frozen=True)
class Disk:
    device: str
    fstype: str
    mountpoint: str
    size_kib: int
    inodes: int


@dataclass(frozen=True)
class HostProfile:
    """What does not change while a machine runs: identity, OS, hardware."""

    index: int
    ip: str
    hostname: str
    department: str
    distro: tuple[str, str, str, str, str, str, str, str, bool]
    cpus: int
    mem_kib: int
    disks: tuple[Disk, ...]
    nic: str
    seed: int
    disk_fill_per_day: float  # fraction of the root disk written per simulated day

    @property
    def busybox(self) -> bool:
        return self.distro[8]


def make_profiles(count: int, departments: int, base: str = "127.0.1.") -> list[HostProfile]:
    """``count`` hosts on ``base``1..``count``, spread over ``departments`` in contiguous blocks."""
    if not 1 <= count <= 254:
        raise ValueError(f"hosts must be 1..254, got {count}")
    if not 1 <= departments <= min(count, len(DEPARTMENT_NAMES)):
        raise ValueError(f"departments must be 1..{min(count, len(DEPARTMENT_NAMES))}, got {departments}")
    per_dept = -(-count // departments)
    profiles = []
    for index in range(count):
        rng = random.Random(index * 7919 + 17)
        department = DEPARTMENT_NAMES[index // per_dept]
        distro = DISTROS[index % len(DISTROS)] if index % 5 else DISTROS[0]
        root_gib = rng.choice((128, 256, 512, 1024))
        disks = [
            Disk(
                "/dev/nvme0n1p2", "ext4" if distro[0] != "rocky" else "xfs", "/", root_gib * KIB * KIB, root_gib * 65536
            )
        ]
        if index % 3 == 0:
            disks.append(Disk("/dev/sda1", "ext4", "/home", 2048 * KIB * KIB, 2048 * 65536))
        profiles.append(
            HostProfile(
                index=index,
                ip=f"{base}{index + 1}",
                department=department,
                hostname=f"{department[:4]}-pc-{index + 1:03d}",
                distro=distro,
                cpus=rng.choice((2, 4, 8, 8, 16)),
                mem_kib=rng.choice((8, 16, 16, 32)) * KIB * KIB,
                disks=tuple(disks),
                nic="eth0" if distro[8] else "enp0s31f6",
                seed=rng.getrandbits(32),
                disk_fill_per_day=0.08 if index % 10 == 7 else 0.004,
            )
        )
    return profiles


def _unit(seed: int, *parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for (seed, parts): the same slot always looks the same."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def busy_level(sim_time: float) -> float:
    """How busy the lab is at this hour (0..1): weekdays 8–20 h with a peak after lunch, quiet nights."""
    tm = time.gmtime(sim_time)
    hour = tm.tm_hour + tm.tm_min / 60
    weekend = tm.tm_wday >= 5
    if 8 <= hour < 20:
        level = 0.55 + 0.35 * (1 - abs(hour - 14) / 6)
    elif 7 <= hour < 8 or 20 <= hour < 23:
        level = 0.2
    else:
        level = 0.03
    return level * (0.3 if weekend else 1.0)


@dataclass
class Session:
    """One login. ``remote``: an SSH terminal from elsewhere; ``idle_since``: no input since then."""

    user: str
    tty: str
    login: float
    remote: bool = False
    locked: bool = False
    idle_since: float | None = None
    id: int = 0


@dataclass
class HostState:
    """Counters of one running machine since its last boot; ``advance`` integrates them up to ``now``."""

    profile: HostProfile
    boot_time: float
    last: float = 0.0
    # jiffies per cpu: user nice system idle iowait irq softirq steal
    cpu: list[list[float]] = field(default_factory=list)
    rx_bytes: float = 0.0
    tx_bytes: float = 0.0
    rx_packets: float = 0.0
    tx_packets: float = 0.0
    ctxt: float = 0.0
    processes: float = 0.0
    root_used_fraction: float = 0.0
    utilisation: float = 0.0
    mem_used_fraction: float = 0.2
    sessions: list[Session] = field(default_factory=list)
    seat_override: str | None = None

    @classmethod
    def boot(cls, profile: HostProfile, now: float, uptime: float | None = None) -> HostState:
        """A machine that booted ``uptime`` seconds ago (default: a few days, varying per host)."""
        if uptime is None:
            uptime = 86400 * (1 + 6 * _unit(profile.seed, "uptime"))
        state = cls(profile=profile, boot_time=now - uptime, last=now - uptime)
        state.cpu = [[0.0] * 8 for _ in range(profile.cpus)]
        state.root_used_fraction = 0.25 + 0.45 * _unit(profile.seed, "disk")
        state.advance(now, step=min(uptime, 3600.0))
        return state

    def reboot(self, now: float) -> None:
        """Uptime and every counter start again from zero; the disk keeps its data."""
        used = self.root_used_fraction
        fresh = HostState.boot(self.profile, now, uptime=0.0)
        self.__dict__.update(fresh.__dict__)
        self.root_used_fraction = used

    def occupied(self, now: float) -> bool:
        """Somebody sits at this machine in the current half-hour slot (stable within the slot)."""
        demand = DEPARTMENT_DEMAND.get(self.profile.department, 1.0)
        return _unit(self.profile.seed, "seat", int(now // 1800)) < min(0.97, busy_level(now) * 0.9 * demand)

    def advance(self, now: float, step: float = 300.0) -> None:
        """Integrate counters from ``last`` to ``now`` in slices of at most ``step`` simulated seconds."""
        if now <= self.last:
            return
        seed = self.profile.seed
        while self.last < now:
            dt = min(step, now - self.last)
            mid = self.last + dt / 2
            occupied = self.occupied(mid)
            base = 0.25 + 0.6 * _unit(seed, "load", int(mid // 600)) if occupied else 0.02
            if not occupied and _unit(seed, "batch", int(mid // 3600)) < 0.05:
                base = 0.95  # a nightly batch job pins the CPUs for an hour
            self.utilisation = min(0.99, base)
            for index, cpu in enumerate(self.cpu):
                share = min(1.0, self.utilisation * (0.6 + 0.8 * _unit(seed, "cpu", index, int(mid // 600))))
                jiffies = dt * USER_HZ
                cpu[0] += jiffies * share * 0.72
                cpu[2] += jiffies * share * 0.20
                cpu[4] += jiffies * share * 0.04
                cpu[6] += jiffies * share * 0.03
                cpu[3] += jiffies * (1 - share * 0.99)
                cpu[7] += jiffies * share * 0.01
            rate = 40_000 + 4_000_000 * self.utilisation
            self.rx_bytes += rate * dt
            self.tx_bytes += rate * 0.3 * dt
            self.rx_packets += rate * dt / 900
            self.tx_packets += rate * 0.3 * dt / 400
            self.ctxt += dt * (300 + 20_000 * self.utilisation) * self.profile.cpus
            self.processes += dt * (0.2 + 5 * self.utilisation)
            fill = self.profile.disk_fill_per_day * dt / 86400 * (0.3 + 1.4 * self.utilisation)
            self.root_used_fraction = min(0.995, self.root_used_fraction + fill)
            self.mem_used_fraction = 0.12 + 0.75 * self.utilisation * (0.7 + 0.3 * _unit(seed, "mem"))
            self.last += dt
        self.sessions = self._sessions(now)

    def _sessions(self, now: float) -> list[Session]:
        """Who is logged in: the seat's user of this slot (graphical login) and maybe a terminal.

        Within a slot the seat's user works, or leaves the session idle after 10 minutes (one slot in
        six) or locks the screen and walks away after 5 (one in ten); evenings bring the odd remote
        SSH login on a free machine. ``seat_override`` (control API) replaces all of that.
        """
        seed, slot = self.profile.seed, int(now // 1800)
        if self.seat_override is not None:
            return self._forced(now)
        if not self.occupied(now):
            if _unit(seed, "remote", slot) < 0.05:
                return [Session("rupert", "pts/3", max(slot * 1800.0, self.boot_time), remote=True, id=slot % 997 + 2)]
            return []
        user = USER_NAMES[int(_unit(seed, "user", slot) * len(USER_NAMES))]
        login = max(slot * 1800 + 60 * _unit(seed, "at", slot) * 20, self.boot_time)
        mood = _unit(seed, "mood", slot)
        locked = mood < 0.1 and now >= login + 300
        idle_since = login + 600 if 0.1 <= mood < 0.27 and now >= login + 600 else None
        if locked:
            idle_since = login + 300
        sessions = [Session(user, "tty7", login, locked=locked, idle_since=idle_since, id=slot % 997 + 2)]
        if _unit(seed, "term", slot) < 0.4:
            sessions.append(Session(user, "pts/0", login + 120, idle_since=idle_since, id=0))
        return sessions

    def force_seat(self, state: str | None, now: float) -> None:
        """Replace the day's sessions by ``state`` (one of SEAT_OVERRIDES) from now on; None undoes it."""
        if state is not None and state not in SEAT_OVERRIDES:
            raise ValueError(f"seat state must be one of {SEAT_OVERRIDES}, got {state!r}")
        self.seat_override = state
        self.sessions = self._sessions(max(now, self.last))

    def _forced(self, now: float) -> list[Session]:
        state = self.seat_override
        if state == "free":
            return []
        return [
            Session(
                "judy",
                "tty7",
                now - 60,
                locked=state == "locked",
                idle_since=now - 3600 if state in ("idle", "locked") else None,
                id=1,
            )
        ]

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.boot_time)
