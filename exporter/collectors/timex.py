"""node_exporter's timex collector: the kernel clock discipline that adjtimex(2) reports.

No file carries it, so this is the one collector that needs a program: perl (Essential on Debian,
standard on RHEL and SUSE) calls adjtimex with modes 0 (read only, no privilege needed) and prints
the struct's fields; the syscall number and layout are those of x86_64 and aarch64. A host without
perl, or of another architecture, has no timex series (and no collector error: like a host without
PSI). Perl's start costs the target ~4-7 ms of CPU, more than
the whole rest of a scrape, so timex runs in the slow tier: its own interval, served from cache in
between (the alerts on it look at 5-10 minute windows). Same names, units and HELP as node_exporter.
"""

from __future__ import annotations

from optilab.exporter.collectors.base import Collector, CollectorOptions, Sources
from optilab.exporter.family import Family

TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
STA_NANO = 0x2000
PPM16 = 1_000_000.0 * 65536.0
ADJTIMEX = (
    "perl -e 'use Config; my %n = (x86_64 => 159, aarch64 => 171); my ($a) = $Config{archname} =~ /^([^-]+)/;"
    ' my $s = $n{$a} or exit 3; my $b = "\\0" x 208; my $r = syscall($s, $b); exit 4 if $r < 0;'
    ' print join(" ", $r, unpack("L x4 q q q q l x4 q q q q q q q q l x4 q q q q q l", $b)), "\\n"\''
)
_FIELDS = (
    "rc",
    "modes",
    "offset",
    "freq",
    "maxerror",
    "esterror",
    "status",
    "constant",
    "precision",
    "tolerance",
    "sec",
    "usec",
    "tick",
    "ppsfreq",
    "jitter",
    "shift",
    "stabil",
    "jitcnt",
    "calcnt",
    "errcnt",
    "stbcnt",
    "tai",
)


def parse_adjtimex(text: str) -> dict[str, int]:
    values = text.split()
    if len(values) != len(_FIELDS):
        raise ValueError(f"expected {len(_FIELDS)} adjtimex fields, got {len(values)}")
    return dict(zip(_FIELDS, (int(value) for value in values), strict=True))


def _family(name: str, kind: str, help_text: str, value: float) -> Family:
    family = Family(f"node_timex_{name}", kind, help_text)
    family.samples.append(((), float(value)))
    return family


def collect(sources: Sources, options: CollectorOptions) -> list[Family]:
    text = sources.get("cmd:adjtimex", "")
    if not text.strip():
        return []  # no perl on this host (busybox systems), or an architecture the script does not know
    t = parse_adjtimex(text)
    divisor = 1e9 if t["status"] & STA_NANO else 1e6
    return [
        _family(
            "sync_status",
            "gauge",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            0 if t["rc"] == TIME_ERROR else 1,
        ),
        _family(
            "offset_seconds", "gauge", "Time offset in between local system and reference clock.", t["offset"] / divisor
        ),
        _family("frequency_adjustment_ratio", "gauge", "Local clock frequency adjustment.", 1 + t["freq"] / PPM16),
        _family("maxerror_seconds", "gauge", "Maximum error in seconds.", t["maxerror"] / 1e6),
        _family("estimated_error_seconds", "gauge", "Estimated error in seconds.", t["esterror"] / 1e6),
        _family("status", "gauge", "Value of the status array bits.", t["status"]),
        _family("loop_time_constant", "gauge", "Phase-locked loop time constant.", t["constant"]),
        _family("tick_seconds", "gauge", "Seconds between clock ticks.", t["tick"] / 1e6),
        _family("pps_frequency_hertz", "gauge", "Pulse per second frequency.", t["ppsfreq"] / PPM16),
        _family("pps_jitter_seconds", "gauge", "Pulse per second jitter.", t["jitter"] / divisor),
        _family("pps_shift_seconds", "gauge", "Pulse per second interval duration.", t["shift"]),
        _family(
            "pps_stability_hertz",
            "gauge",
            "Pulse per second stability, average of recent frequency changes.",
            t["stabil"] / PPM16,
        ),
        _family("pps_jitter_total", "counter", "Pulse per second count of jitter limit exceeded events.", t["jitcnt"]),
        _family("pps_calibration_total", "counter", "Pulse per second count of calibration intervals.", t["calcnt"]),
        _family("pps_error_total", "counter", "Pulse per second count of calibration errors.", t["errcnt"]),
        _family(
            "pps_stability_exceeded_total",
            "counter",
            "Pulse per second count of stability limit exceeded events.",
            t["stbcnt"],
        ),
        _family("tai_offset_seconds", "gauge", "International Atomic Time (TAI) offset.", t["tai"]),
    ]


COLLECTOR = Collector(name="timex", paths=(), commands=(("adjtimex", ADJTIMEX),), collect=collect, tier="slow")
