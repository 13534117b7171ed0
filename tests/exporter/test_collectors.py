"""The collection framework: script and framing, the renderer, collectors on a real capture, tiers.

``tests/data/sources/debian.txt`` is this machine's answer to the default script, captured with
``sh`` (Debian 12); the collectors are pure functions of such text.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from optilab.exporter import command
from optilab.exporter.collectors import by_name, default_enabled, make_plan, textfile
from optilab.exporter.collectors.base import Collector
from optilab.exporter.command import build_script, frame, split_sources
from optilab.exporter.config import HealthSettings, HostEntry
from optilab.exporter.family import Family, gauge, render, render_groups
from optilab.exporter.health import HealthBook
from optilab.exporter.probe import Prober
from optilab.exporter.ssherror import SshError
from optilab.exporter.targets import parse_target
from tests.support.captures import DATA, captured_sources, collect_all, sample_values

# --- the script and its framing -------------------------------------------------------------------


def collector(*paths: str, commands: tuple[tuple[str, str], ...] = ()) -> Collector:
    return Collector("probe_test", paths, lambda sources, options: [], commands)


def run(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=True).stdout


def test_one_process_reads_every_file_and_a_glob_that_matches_nothing_costs_nothing(tmp_path):
    plan = [
        collector(
            "/proc/loadavg",
            "/proc/sys/fs/file-nr",
            "/nonexistent/*/x",
            "/proc",
            commands=(("date", "date +%s"), ("nope", "no-such-command-here")),
        )
    ]
    script = build_script(plan)
    assert script.count("head ") == 1 and "$(" not in script.split("head ")[0]  # builtins before head
    sources, complete = split_sources(run(script), ["date", "nope"])
    assert complete
    assert set(sources) == {"/proc/loadavg", "/proc/sys/fs/file-nr", "cmd:date"}  # a directory does not stop head
    assert abs(float(sources["cmd:date"]) - time.time()) < 60


def test_glob_groups_are_expanded_only_when_their_directory_matches(tmp_path):
    """``dev/*/a`` and ``dev/*/b`` are listed under one ``dev/*`` test; a broken symlink first in the
    directory still counts as a match; a group whose directory has nothing costs no test per pattern."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "0-broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "dev" / "eth0").mkdir()
    (tmp_path / "dev" / "eth0" / "a").write_text("A\n")
    (tmp_path / "dev" / "eth0" / "b").write_text("B\n")
    (tmp_path / "none").mkdir()
    script = build_script(
        [
            collector(
                f"{tmp_path}/dev/*/a",
                f"{tmp_path}/dev/*/b",
                f"{tmp_path}/none/*/a",
                f"{tmp_path}/none/*/b",
                f"{tmp_path}/dev/eth0/a",
            )
        ]
    )
    assert script.count("for g in ") == 2
    traced = subprocess.run(["sh", "-x", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    sources, complete = split_sources(traced.stdout, [])
    assert complete and sources == {f"{tmp_path}/dev/eth0/a": "A\n", f"{tmp_path}/dev/eth0/b": "B\n"}
    tests = [line for line in traced.stderr.splitlines() if line.startswith("+ [ -r ")]
    assert tests and not [line for line in tests if "/none/" in line]


def test_last_component_globs_with_a_shared_prefix_are_one_directory_read_with_the_globs_meaning(tmp_path):
    """``d/b8:*`` and ``d/b9:*`` become one loop over ``d/b*`` with a ``case``; it lists what the globs
    would (nothing for a directory without matches) and the filter keeps the readable. ``in*`` and
    ``fan*`` share no prefix: every entry of the directory would cost a turn, so they stay globs."""
    (tmp_path / "d").mkdir()
    for name in ("b8:0", "b9:1", "b7:0", "c8:0", "bx", "in0_input", "fan1_input"):
        (tmp_path / "d" / name).write_text(f"{name}\n")
    (tmp_path / "empty").mkdir()
    paths = (
        f"{tmp_path}/d/b8:*",
        f"{tmp_path}/d/b9:*",
        f"{tmp_path}/empty/b8:*",
        f"{tmp_path}/empty/b9:*",
        f"{tmp_path}/d/in*",
        f"{tmp_path}/d/fan*",
    )
    script = build_script([collector(*paths)])
    assert script.count("for f in ") == 2 and f"{tmp_path}/d/b*;" in script and f"{tmp_path}/d/in*" in script
    sources, complete = split_sources(run(script), [])
    assert complete and sources == {
        f"{tmp_path}/d/{name}": f"{name}\n" for name in ("b8:0", "b9:1", "in0_input", "fan1_input")
    }


def test_a_piped_command_runs_as_heads_stdin_and_its_text_follows_its_commands_own(tmp_path):
    """The piped part is the left side of ``{ ...; } | head ... /dev/null -`` (it runs while head reads
    the files); its output is appended to its command's text, after what the command printed itself."""
    (tmp_path / "a").write_text("A\n")
    marker = tmp_path / "started"
    piped = Collector(
        "probe_test",
        (f"{tmp_path}/a",),
        lambda sources, options: [],
        (("mounts", "echo own"), ("date", "date +%s")),
        piped=(("mounts", f"touch {marker}; echo piped; cat {tmp_path}/a"),),
    )
    script = build_script([piped])
    assert script.count("head ") == 1 and ": optilab-piped mounts\n" in script
    sources, complete = split_sources(run(script), ["mounts", "date"], "mounts")
    assert complete and marker.exists()
    assert sources["cmd:mounts"] == "own\npiped\nA\n" and sources[f"{tmp_path}/a"] == "A\n"
    assert sources["cmd:date"].strip().isdigit()
    # framed by the simulator the same way (the piped text whole on stdin), and read back the same
    text = frame({"/a": "A\n", "cmd:mounts": "own\npiped\n", "cmd:date": "1\n"}, ["mounts", "date"], "mounts")
    assert "==> standard input <==\nown\npiped\n" in text
    assert split_sources(text, ["mounts", "date"], "mounts")[0]["cmd:mounts"] == "own\npiped\n"
    # an answer without the stdin section (an older script) still splits whole, with the command's own text
    older = frame({"/a": "A\n", "cmd:mounts": "own\n", "cmd:date": "1\n"}, ["mounts", "date"])
    assert split_sources(older, ["mounts", "date"], "mounts") == (
        {"/a": "A\n", "cmd:mounts": "own\n", "cmd:date": "1\n"},
        True,
    )


def test_a_file_cannot_forge_the_piped_commands_text():
    sources = {"/a": "one\n", "/b": "two\n", "cmd:mounts": "real\n"}
    honest = frame(sources, ["mounts"], "mounts")
    forged_tail = honest[honest.index("==> /dev/null <==") :].replace("real", "FAKE")
    forged = frame({**sources, "/a": "one\n\n" + forged_tail}, ["mounts"], "mounts")
    kept, complete = split_sources(forged, ["mounts"], "mounts")
    assert complete and kept["cmd:mounts"] == "real\n" and kept["/b"] == "two\n"


def test_piped_parts_are_checked():
    def with_piped(name: str, pipes: tuple[tuple[str, str], ...]) -> Collector:
        return Collector(name, (), lambda sources, options: [], (("mounts", "true"), ("date", "true")), piped=pipes)

    with pytest.raises(ValueError, match="not one of its commands"):
        build_script([with_piped("x", (("other", "true"),))])
    with pytest.raises(ValueError, match="at most one"):
        build_script([with_piped("x", (("mounts", "true"),)), with_piped("y", (("date", "true"),))])
    with pytest.raises(ValueError, match="twice with different text"):
        build_script([with_piped("x", (("mounts", "true"),)), with_piped("y", (("mounts", "false"),))])
    shared = build_script([with_piped("x", (("mounts", "true"),)), with_piped("y", (("mounts", "true"),))])
    assert shared.count(": optilab-piped mounts") == 1  # filesystem and lab share stat -f


def test_the_one_pass_split_finds_what_the_guarded_split_finds(monkeypatch):
    """An answer with every header and no ``==> `` in any text is split in one pass; any other answer
    takes the guarded path. Both must agree wherever the one pass answers: on this machine's real
    answer to the default script, and on framed answers with empty texts, a text without a final
    newline, a name that ends in `` <==``, a vanished file, a cut answer and copied headers."""
    plan = make_plan()
    real = run(plan.script)
    base = {"/a": "one\n", "/b": "two\n", "/c <==": "x <==\nno newline", "cmd:date": "1\n", "cmd:m": "own\n"}
    framed = frame({**base, "/empty": ""}, ["date", "m"], "m")  # an empty file is left out
    vanished = framed.replace("\n==> /b <==\ntwo\n", "", 1)  # listed, then gone before head opened it
    forged = frame({**base, "/a": "one ==> /b <==\n"}, ["date", "m"], "m")
    answers = [(real, plan.commands, plan.piped), (framed, ["date", "m"], "m"), (vanished, ["date", "m"], "m")]
    answers += [
        (framed[:-9], ["date", "m"], "m"),
        (forged, ["date", "m"], "m"),
        (frame(base, ["date", "m"]), ["date", "m"], None),
    ]
    one_pass = [split_sources(*answer) for answer in answers]
    monkeypatch.setattr(command, "_plain_sections", lambda *args: None)
    assert one_pass == [split_sources(*answer) for answer in answers]
    assert one_pass[0][1] and len(one_pass[0][0]) > 50 and one_pass[1] == (base, True)
    assert one_pass[2] == ({key: text for key, text in base.items() if key != "/b"}, True)
    assert not one_pass[3][1] and "/a" not in one_pass[4][0] and one_pass[4][0]["/c <=="] == base["/c <=="]


def test_paths_and_command_names_are_checked_constants():
    with pytest.raises(ValueError, match="unsafe path"):
        build_script([collector("/proc/$(reboot)")])
    with pytest.raises(ValueError, match="unsafe path"):
        build_script([collector("relative/path")])
    with pytest.raises(ValueError, match="bad command name"):
        build_script([collector(commands=(("a b", "true"),))])


def test_file_content_cannot_pass_for_another_file():
    sources = {
        "/a": "one\n",
        "/b": "two\n==> /d <==\nfake\n",
        "/c": "three\n",
        "/d": "no newline at the end",
        "cmd:date": "1796000000\n",
    }
    text = frame(sources, ["date"])
    assert split_sources(text, ["date"]) == (sources, True)  # a fake header of a later file is just text
    # /b fakes the *next* file's header: /b would be cut short and /c start inside it, so both are dropped
    forged = frame({**sources, "/b": "two\n\n==> /c <==\nfake\n"}, ["date"])
    kept, complete = split_sources(forged, ["date"])
    assert complete and set(kept) == {"/a", "/d", "cmd:date"} and kept["/a"] == "one\n"


def test_a_file_that_forges_the_later_files_and_the_end_line_passes_no_forged_value():
    sources = {"/a": "one\n", "/b": "two\n", "/c": "three\n", "cmd:date": "1796000000\n"}
    honest = frame(sources, ["date"])
    tail = honest[honest.index("==> /b <==") :]  # every later header and text, and the end line
    forged = tail.replace("two", "FAKE").replace("three", "FAKE").replace("1796000000", "0")
    kept, complete = split_sources(frame({**sources, "/a": "one\n\n" + forged}, ["date"]), ["date"])
    # /a copies /b's header: /a and /b cannot be told from a cut and are dropped; the rest is real
    assert complete and kept == {"/c": "three\n", "cmd:date": "1796000000\n"}
    for own in ("two\n==> /b <==\nFAKE\n", "two ==> /b <==\nFAKE\n"):  # /b copies its own header
        kept, complete = split_sources(frame({**sources, "/b": own}, ["date"]), ["date"])
        assert complete and kept == {"/c": "three\n", "cmd:date": "1796000000\n"}


def test_a_banner_before_the_answer_is_ignored_and_a_cut_answer_is_incomplete():
    text = frame({"/a": "one\n"}, ["date"])
    assert split_sources("Welcome to the lab!\n@@optilab is not this\n" + text, ["date"])[0]["/a"] == "one\n"
    assert split_sources(text[: text.index("==> cmd:date")], ["date"])[1] is False
    assert split_sources("not our answer\n", ["date"]) == ({}, False)


# --- the renderer ---------------------------------------------------------------------------------


def test_render_exact_bytes_escaping_and_extra_labels():
    family = Family("node_x_total", "counter", "Help with \\ and\nnewline.", ("device", "department"))
    family.add(('a"b\\c\nd', "physics"), 1.0)
    family.add(("e", "physics"), 1234567.0)
    text = render(
        [family, gauge("node_y", "Y.", 2.5), Family("node_empty", "gauge", "No samples.")],
        {"instance": "127.0.1.1:22", "department": "chemistry"},
    ).decode()
    assert text == (
        "# HELP node_x_total Help with \\\\ and\\nnewline.\n# TYPE node_x_total counter\n"
        'node_x_total{device="a\\"b\\\\c\\nd",department="physics",instance="127.0.1.1:22"} 1.0\n'
        'node_x_total{device="e",department="physics",instance="127.0.1.1:22"} 1.234567e+06\n'
        "# HELP node_y Y.\n# TYPE node_y gauge\n"
        'node_y{instance="127.0.1.1:22",department="chemistry"} 2.5\n'
    )
    [parsed, _] = text_string_to_metric_families(text)
    assert parsed.samples[0].labels["device"] == 'a"b\\c\nd'


def test_render_merges_hosts_under_one_header_and_rejects_wrong_label_counts():
    host = [gauge("node_load1", "1m load average.", 0.5)]
    text = render_groups([(host, {"instance": "a:22"}), (host, {"instance": "b:22"})]).decode()
    assert text.count("# TYPE node_load1 gauge") == 1 and text.count("node_load1{") == 2
    with pytest.raises(ValueError):
        Family("x", "gauge", "x", ("a",)).add(("1", "2"), 1.0)


def test_kept_label_openings_are_bounded_and_render_the_same_bytes(monkeypatch):
    from optilab.exporter import family as family_module

    openings = family_module._Openings(limit=3)
    monkeypatch.setattr(family_module, "_OPENINGS", openings)
    disks = Family("node_disk_reads_completed_total", "counter", "Reads.", ("device",))
    for index in range(5):
        disks.add((f'sd"{index}',), float(index))
    first = render([disks], {"instance": "a:22"})
    assert openings.count <= 3  # five label values, three kept at most: cleared whole at the limit
    again = render([disks], {"instance": "b:22"}).replace(b'"b:22"', b'"a:22"')
    assert first == again  # kept openings and fresh ones give the same bytes
    assert first.splitlines()[2] == b'node_disk_reads_completed_total{device="sd\\"0",instance="a:22"} 0.0'
    long = Family("node_filesystem_avail_bytes", "gauge", "Avail.", ("mountpoint",))
    long.add(("/" + "x" * 600,), 1.0)
    assert render([long]).startswith(b"# HELP") and openings.count <= 3  # too long to keep, still served
    assert not any(len(v) > openings.longest for kept in openings._by_shape.values() for v in kept.values())
    with pytest.raises(ValueError):  # a sample whose label count is wrong fails, kept opening or not
        broken = Family("node_disk_reads_completed_total", "counter", "Reads.", ("device",))
        broken.samples.append((("sda", "extra"), 1.0))
        render([broken])


# --- collectors on this machine's capture --------------------------------------------------------


def test_every_default_collector_reads_the_debian_capture():
    families, errors, complete = collect_all((DATA / "sources" / "debian.txt").read_text())
    assert complete and errors == {}
    sources = captured_sources("debian")
    total_kib = next(
        int(line.split()[1]) for line in sources["/proc/meminfo"].splitlines() if line.startswith("MemTotal:")
    )
    assert sample_values(families["node_memory_MemTotal_bytes"]) == {(): total_kib * 1024}
    [(labels, one)] = sample_values(families["node_uname_info"]).items()
    assert one == 1 and dict(labels)["domainname"] == "(none)" and dict(labels)["machine"] == "x86_64"
    assert {dict(k)["mountpoint"] for k in sample_values(families["node_filesystem_size_bytes"])} >= {"/"}
    assert all(v == 0 for v in sample_values(families["node_filesystem_device_error"]).values())
    vmstat = {name for name in families if name.startswith("node_vmstat_")}
    assert vmstat == {
        "node_vmstat_oom_kill",
        "node_vmstat_pgfault",
        "node_vmstat_pgmajfault",
        "node_vmstat_pgpgin",
        "node_vmstat_pgpgout",
        "node_vmstat_pswpin",
        "node_vmstat_pswpout",
    }
    assert "node_netstat_Tcp_RetransSegs" in families and "node_netstat_TcpExt_TW" not in families
    disks = {dict(k)["device"] for k in sample_values(families["node_disk_reads_completed_total"])}
    assert disks and not any(d.startswith("loop") for d in disks)  # upstream's default device-exclude


def test_flags_change_what_a_collector_keeps():
    sources = captured_sources("debian")
    vmstat = by_name()["vmstat"]
    assert len(vmstat.collect(sources, vmstat.options({"fields": "^nr_free_pages$"}))) == 1
    netdev = by_name()["netdev"]
    devices = {
        labels[0]
        for family in netdev.collect(sources, netdev.options({"device-exclude": "^lo$"}))
        for labels, _ in family.samples
    }
    assert devices and "lo" not in devices
    filesystem = by_name()["filesystem"]
    kept = filesystem.collect(sources, filesystem.options({"mount-points-exclude": "^/$"}))
    assert "/" not in {labels[2] for family in kept for labels, _ in family.samples}


def _nohandler(sources: dict[str, str], **options: str) -> dict[str, float]:
    netdev = by_name()["netdev"]
    families = {f.name: f for f in netdev.collect(sources, netdev.options(options))}
    assert "node_network_receive_bytes_total" in families  # the /proc/net/dev columns are all still there
    family = families.get("node_network_receive_nohandler_total")
    return {} if family is None else {labels[0]: value for labels, value in family.samples}


def test_netdev_takes_rx_nohandler_from_sysfs_as_netlink_has_it():
    sources = {
        **captured_sources("debian"),
        "/sys/class/net/eth0/statistics/rx_nohandler": "7\n",
        "/sys/class/net/lo/statistics/rx_nohandler": "0\n",
        "/sys/class/net/ifb0/statistics/rx_nohandler": "18446744073709551615\n",
    }
    # ifb1's file vanished between the reads: no series for it rather than a false 0 (a counter reset)
    assert _nohandler(sources) == {"eth0": 7.0, "lo": 0.0, "ifb0": float(2**64 - 1)}
    assert _nohandler(sources, **{"device-exclude": "^lo$"}) == {"eth0": 7.0, "ifb0": float(2**64 - 1)}
    assert _nohandler(sources, **{"device-include": "^eth"}) == {"eth0": 7.0}
    family = next(
        f
        for f in by_name()["netdev"].collect(sources, by_name()["netdev"].options())
        if f.name == "node_network_receive_nohandler_total"
    )
    assert (family.type, family.help) == ("counter", "Network device statistic receive_nohandler.")
    with pytest.raises(ValueError, match="rx_nohandler"):
        _nohandler({**sources, "/sys/class/net/eth0/statistics/rx_nohandler": "-1\n"})


def test_netdev_nohandler_on_a_kernel_without_the_counter_is_zero_as_netlinks_short_struct():
    sources = captured_sources("debian")  # a 6.18 capture made before the file was read: unknown, no series
    assert _nohandler(sources) == {}
    old = {**sources, "/proc/sys/kernel/osrelease": "4.4.0-210-generic\n"}  # before Linux 4.6
    assert _nohandler(old) == {"lo": 0.0, "ifb0": 0.0, "ifb1": 0.0, "eth0": 0.0}
    backported = {**old, "/sys/class/net/eth0/statistics/rx_nohandler": "3\n"}  # the file, where it exists, wins
    assert _nohandler(backported) == {"eth0": 3.0}
    assert _nohandler({**sources, "/proc/sys/kernel/osrelease": "4.6.0\n"}) == {}


def test_netdev_reads_one_file_per_device_for_it():
    paths = by_name()["netdev"].paths
    assert paths == ("/proc/net/dev", "/sys/class/net/*/statistics/rx_nohandler", "/proc/sys/kernel/osrelease")
    assert "/proc/sys/kernel/osrelease" in by_name()["uname"].paths  # read anyway: no extra file in a scrape


def test_a_mount_stat_could_not_read_is_a_device_error_with_no_other_series():
    sources = {**captured_sources("debian"), "cmd:statfs": ""}
    families = {f.name: f for f in by_name()["filesystem"].collect(sources, by_name()["filesystem"].options())}
    assert families["node_filesystem_device_error"].samples and all(
        value == 1 for _, value in families["node_filesystem_device_error"].samples
    )
    assert not families["node_filesystem_size_bytes"].samples and not families["node_filesystem_readonly"].samples


def test_a_mount_newer_than_the_kept_list_has_no_series_one_that_failed_is_an_error():
    """The shell stats the mount points of its kept list (``? `` lines name them): a mount of this
    scrape's /proc/1/mounts that the list does not have yet is left out until the next listing, not
    reported as a device error; one tried without an answer is an error; one that went away is not
    served."""
    mounts = "/dev/vda1 / ext4 rw 0 0\n/dev/sdb1 /media/usb ext4 rw 0 0\n/dev/sdc1 /mnt/stale nfs4 rw 0 0\n"
    statfs = "? /\n? /mnt/stale\n? /old\n100 40 30 4096 1000 900 /\n100 40 30 4096 1000 900 /old\n"
    filesystem = by_name()["filesystem"]
    sources = {"/proc/1/mounts": mounts, "cmd:statfs": statfs}
    families = {f.name: f for f in filesystem.collect(sources, filesystem.options())}
    errors = {labels[2]: value for labels, value in families["node_filesystem_device_error"].samples}
    assert errors == {"/": 0.0, "/mnt/stale": 1.0}
    assert [labels[2] for labels, _ in families["node_filesystem_size_bytes"].samples] == ["/"]


def test_textfile_serves_good_files_and_flags_broken_ones():
    directory = textfile.DIRECTORIES[0]
    sources = {
        "cmd:textfile": f"dir {directory}\n1796000000 {directory}/apt.prom\n1796000100 {directory}/broken.prom\n"
        f"1796000200 {directory}/stamped.prom\n1796000300 /var/lib/node_exporter/other.prom\n",
        f"{directory}/apt.prom": "# HELP apt_upgrades_pending Apt packages pending.\n"
        "# TYPE apt_upgrades_pending gauge\n"
        'apt_upgrades_pending{origin="Debian"} 3\n',
        f"{directory}/broken.prom": "this is { not exposition\n",
        f"{directory}/stamped.prom": "backup_ok 1 1796000000000\n",
        "/var/lib/node_exporter/other.prom": "other_dir 1\n",
    }
    families = {f.name: f for f in textfile.collect(sources, textfile.COLLECTOR.options())}
    assert sample_values(families["apt_upgrades_pending"]) == {(("origin", "Debian"),): 3.0}
    assert families["apt_upgrades_pending"].help == "Apt packages pending."
    mtimes = sample_values(families["node_textfile_mtime_seconds"])
    assert mtimes == {(("file", f"{directory}/apt.prom"),): 1796000000.0}
    assert sample_values(families["node_textfile_scrape_error"]) == {(): 1.0}
    assert "backup_ok" not in families and "other_dir" not in families
    missing = textfile.collect({"cmd:textfile": ""}, textfile.COLLECTOR.options())
    assert sample_values(missing[-1]) == {(): 1.0}  # the configured directory does not exist
    off = textfile.collect({}, textfile.COLLECTOR.options({"directory": ""}))
    assert sample_values(off[-1]) == {(): 0.0}


def test_every_default_collector_is_registered_once_with_upstream_names():
    names = [c.name for c in default_enabled()]
    assert len(names) == len(set(names))
    assert {
        "arp",
        "conntrack",
        "cpu",
        "diskstats",
        "entropy",
        "filefd",
        "filesystem",
        "loadavg",
        "meminfo",
        "netdev",
        "netstat",
        "os",
        "pressure",
        "schedstat",
        "sockstat",
        "softnet",
        "stat",
        "textfile",
        "time",
        "timex",
        "udp_queues",
        "uname",
        "vmstat",
    } <= set(names)


# --- the slow tier --------------------------------------------------------------------------------


class TieredRunner:
    """Answers the fast script from the Debian capture and the slow one (timex) with a fixed reading."""

    def __init__(self, plan) -> None:
        self.plan, self.slow_runs, self.fail_slow = plan, 0, False

    def run(self, target, command, deadline) -> str:
        if command == self.plan.slow.script:
            self.slow_runs += 1
            if self.fail_slow:
                raise SshError("timeout", "slow tier timed out")
            return frame(
                {"cmd:adjtimex": "0 0 200 0 16000 500 8193 7 1 32768000 1 2 10000 0 0 0 0 0 0 0 0 37\n"},
                self.plan.slow.commands,
            )
        return (DATA / "sources" / "debian.txt").read_text()


def test_slow_tier_runs_on_its_interval_and_is_served_from_cache_with_its_age():
    plan = make_plan()
    runner, now = TieredRunner(plan), itertools.count(0, 20)
    clock = [0.0]
    prober = Prober(
        runner, HealthBook(HealthSettings()), clock=lambda: clock[0], slow_interval=60, plans=lambda entry: plan
    )
    entry = HostEntry(parse_target("127.0.1.1", 22), "physics")

    def probe() -> dict[str, Family]:
        clock[0] = float(next(now))
        families = {f.name: f for f in prober.probe(entry, clock[0] + 10).families}
        gevent.sleep(0)  # a due refresh runs in its own greenlet (exporter/slowtier.py): let it run
        return families

    first = probe()
    assert runner.slow_runs == 1
    assert sample_values(first["node_timex_tai_offset_seconds"]) == {(): 37.0}
    assert sample_values(first["optilab_scrape_collector_cache_age_seconds"])[(("collector", "timex"),)] == 0.0
    second = probe()  # 20 s later: served from cache
    assert runner.slow_runs == 1 and "node_timex_offset_seconds" in second
    assert sample_values(second["optilab_scrape_collector_cache_age_seconds"])[(("collector", "timex"),)] == 20.0
    probe(), probe()  # 60 s: refreshed
    assert runner.slow_runs == 2
    runner.fail_slow = True
    clock_before = runner.slow_runs
    for _ in range(3):
        late = probe()
    assert runner.slow_runs > clock_before and "node_timex_offset_seconds" in late  # the last answer is kept
    assert sample_values(late["optilab_probe_success"]) == {(): 1.0}


def test_interrupts_are_off_by_default_and_parse_this_machines_file():
    from optilab.exporter.collectors import interrupts

    assert "interrupts" not in make_plan().names and "interrupts" in make_plan(["interrupts"]).names
    text = (
        "           CPU0       CPU1\n  0:         38          0   IO-APIC   2-edge      timer\n"
        "NMI:          0          0   Non-maskable interrupts\nERR:          0\n"
    )
    assert interrupts.parse_interrupts(text) == {
        "0": ("IO-APIC", "2-edge timer", ["38", "0"]),
        "NMI": ("Non-maskable interrupts", "", ["0", "0"]),
    }
    [family] = interrupts.collect({"/proc/interrupts": open("/proc/interrupts").read()}, interrupts.COLLECTOR.options())
    assert family.samples and {labels[0] for labels, _ in family.samples} == {
        str(cpu) for cpu in range(len(open("/proc/interrupts").readline().split()))
    }


def test_processes_is_off_by_default_and_counts_this_machines_tasks():
    from optilab.exporter.collectors import processes

    assert "processes" not in make_plan().names
    plan = make_plan(["processes"])

    def counted() -> tuple[int, int]:  # the kernel's count of tasks (loadavg's "running/all"), and processes
        with open("/proc/loadavg") as loadavg:
            return int(loadavg.read().split()[3].split("/")[1]), len(list(Path("/proc").glob("[0-9]*")))

    before = counted()
    sources, complete = plan.split(run(plan.script))
    after = counted()
    assert complete
    families = {family.name: family for family in processes.collect(sources, processes.COLLECTOR.options())}
    value = {name: family.samples[0][1] for name, family in families.items() if not family.labels}
    for index, name in enumerate(("node_processes_threads", "node_processes_pids")):
        # within what came and went meanwhile: the script's sh and grep, the tests beside this one
        assert min(before[index], after[index]) - 16 <= value[name] <= max(before[index], after[index]) + 16, name
    assert value["node_processes_max_threads"] == int(open("/proc/sys/kernel/threads-max").read())
    assert value["node_processes_max_processes"] == int(open("/proc/sys/kernel/pid_max").read())
    threads = dict((labels[0], v) for labels, v in families["node_processes_threads_state"].samples)
    assert set(threads) <= set("RSDZTtXxKWPI") and value["node_processes_threads"] > value["node_processes_pids"]


def test_processes_parser_reads_the_state_after_the_last_paren_and_comm_lines_that_continue():
    from optilab.exporter.collectors import processes

    # what grep -Ho '^.*) .' prints for: a comm that looks like more fields; a comm with a newline, whose
    # first line looks like a whole stat line; a thread
    text = "/proc/7/task/7/stat:7 (a) R (b) S\n/proc/9/task/9/stat:9 (x) R\n/proc/9/task/9/stat:y) D\n"
    text += "/proc/9/task/10/stat:10 (worker) S\n/proc/11/task/11/stat:11 (cut\n"  # the last: no state
    assert processes.parse_tasks(text) == {("7", "7"): "S", ("9", "9"): "D", ("9", "10"): "S"}
    limits = {"/proc/sys/kernel/threads-max": "100\n", "/proc/sys/kernel/pid_max": "4096\n"}
    families = processes.collect({"cmd:processes": text, **limits}, processes.COLLECTOR.options())
    assert {family.name: sample_values(family) for family in families} == {
        "node_processes_threads": {(): 3.0},
        "node_processes_max_threads": {(): 100.0},
        "node_processes_state": {(("state", "S"),): 1.0, (("state", "D"),): 1.0},
        "node_processes_threads_state": {(("thread_state", "S"),): 2.0, (("thread_state", "D"),): 1.0},
        "node_processes_pids": {(): 2.0},
        "node_processes_max_processes": {(): 4096.0},
    }
    real = subprocess.run(["sh", "-c", processes.TASKS], capture_output=True, text=True, timeout=30).stdout
    assert len(processes.parse_tasks(real)) == real.count("\n") > 10  # every line of this machine's a task


def test_tcpstat_is_off_by_default_and_counts_a_listening_socket_of_ours():
    import socket

    from optilab.exporter.collectors import tcpstat

    assert "tcpstat" not in make_plan().names

    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        port = f":{server.getsockname()[1]:04X} "
        sources = {path: open(path).read() for path in tcpstat.FILES}
        client.sendall(b"x" * 100)  # unread by the server: its receive queue holds it
        for _ in range(100):  # loopback delivers in a softirq, which a loaded machine may defer: 2 s at most
            header, *lines = open(tcpstat.FILES[0]).read().splitlines()
            # this machine's kernel's lines for our listener and our connection's two ends
            states, rx, _ = tcpstat.parse_tcp("\n".join([header, *(line for line in lines if port in line)]))
            if rx == 100 + 1:
                break
            time.sleep(0.02)
    [family] = tcpstat.collect(sources, tcpstat.COLLECTOR.options())
    assert dict((labels[0], v) for labels, v in family.samples)["listen"] >= 1
    # the receive queues: our 100 unread bytes, and the listener's one connection not accepted yet
    assert dict(states) == {"listen": 1, "established": 2} and rx == 100 + 1
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:0016 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1\n"
        "   1: 0100007F:0016 0100007F:9C40 01 00000024:00000010 02:00000020 00000000     0        0 2\n"
        "   2: 0100007F:0016 0100007F:9C41 0C 00000000:00000000 00:00000000 00000000     0        0 3\n"
    )
    states, rx, tx = tcpstat.parse_tcp(text)
    assert (dict(states), rx, tx) == ({"listen": 1, "established": 1, "unknown": 1}, 0x12, 0x24)
    with pytest.raises(ValueError, match="header"):
        tcpstat.parse_tcp("Inter-|   Receive\n")
