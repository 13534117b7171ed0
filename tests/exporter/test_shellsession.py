"""The long-lived shell transport against a real OpenSSH server (Debian's sshd, account ``optilab``, /bin/sh).

As in tests/exporter/test_sshpool.py, each scenario runs in a fresh gevent-patched interpreter that builds an
:class:`SshPool` and prints JSON; it asks this test (its parent) for actions on the server side
(kill a process, revoke the key) on stdout. sshd's own log counts logins ("Accepted publickey") and
sessions ("Starting session"), so "one shell for many answers" is seen from the server's side.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from optilab.exporter.collectors import make_plan
from optilab.exporter.collectors import time as time_collector
from optilab.exporter.collectors.base import Collector
from optilab.exporter.command import BATCH_SCRIPT, build_script, command_names, split_sources
from optilab.exporter.shellsession import (
    CALLS,
    LIST_CALLS,
    SLOTS,
    Definitions,
    command_of,
    definition,
    setup_line,
    split_answer,
)
from optilab.exporter.ssherror import SshError
from tests.fixtures.sshd import USER, Sshd
from tests.support.driver import run_driver

DRIVER = r"""
from gevent import monkey; monkey.patch_all()
import json, sys, time
from pathlib import Path
import gevent
from optilab.exporter.command import BATCH_SCRIPT, DEFAULT_COMMANDS, split_sources
from optilab.exporter.config import PoolSettings, SessionSettings, SshSettings
from optilab.exporter.targets import Target
from optilab.exporter.ssherror import SshError
from optilab.exporter.metrics_session import session_families
from optilab.exporter.sshpool import SshPool

args = json.loads(sys.argv[1])
session = SessionSettings(mode=args["mode"], login_check_interval=args.get("login_check_interval", 300),
                          max_answer_bytes=args.get("max_answer_bytes", 8 << 20))
ssh = SshSettings(user=args["user"], key_file=Path(args["key_file"]), known_hosts=Path(args["known_hosts"]),
                  connect_timeout=5, command_timeout=10, session=session)
pool = SshPool(ssh, PoolSettings())
target = Target("127.0.0.1", args["port"])

def run(command="echo ok", timeout=10.0):
    try:
        return pool.run(target, command, time.monotonic() + timeout)
    except SshError as exc:
        return "error:" + exc.reason

def ask(action):
    print("ASK " + action, flush=True)
    sys.stdin.readline()

def families():
    return {f.name + json.dumps(dict(zip(f.labels, values)), sort_keys=True): value
            for f in session_families(pool, target) for values, value in f.samples}

out = {}
scenario = args["scenario"]
if scenario == "roundtrips":
    out["outputs"] = [run() for _ in range(20)]
    batch = [run(BATCH_SCRIPT) for _ in range(3)]
    out["batch"] = [sorted(split_sources(b, DEFAULT_COMMANDS)[0]) + [split_sources(b, DEFAULT_COMMANDS)[1]]
                    for b in batch]
    out["mixed"] = [run("echo one"), run("echo two"), run("printf 'no newline'"), run("true")]
    out["concurrent"] = [g.value for g in gevent.joinall([gevent.spawn(run, "sleep 0.2; echo c") for _ in range(3)])]
    out["families"] = families()
elif scenario == "hostile":
    out["outputs"] = [run("cat " + args["file"]) for _ in range(3)]
    out["nonces"] = [pool._connections[target].shell.nonce]
    pool._connections[target].drop_shell()
    out["after_reset"] = run("cat " + args["file"])
    out["nonces"].append(pool._connections[target].shell.nonce)
elif scenario == "hang":
    out["first"] = run()
    started = time.monotonic()
    out["hung"] = run("sleep 30", timeout=1.0)
    out["elapsed"] = time.monotonic() - started
    out["after"] = run()
elif scenario == "killed":
    pid = int(run("echo $$"))
    ask(f"kill {pid}")
    out["after"] = run()
    out["pid_after"] = int(run("echo $$"))
    out["pid_before"] = pid
elif scenario == "department":
    from optilab.exporter.config import HostEntry, Inventory
    inventory = Inventory({str(target): HostEntry(target, "exams")}, {"exams": "exec"})
    out["shell"] = run()
    pool.set_inventory(inventory)  # a reload gives the host's department exec mode
    out["exec"] = [run(), run()]
    out["families"] = families()
    pool.set_inventory(Inventory({}))  # the host left the inventory: its transport state goes too
    out["forgotten"] = families()
elif scenario == "dies_first":
    out["outputs"] = [run("kill -9 $$"), run("echo ok")]
    out["families"] = families()
elif scenario == "fallback":
    out["outputs"] = [run() for _ in range(3)]
    out["families"] = families()
elif scenario == "cap":
    out["small"] = run()
    out["big"] = [run("yes | head -c 20000"), run("yes | head -c 20000")]
    out["after"] = run()
elif scenario == "login":
    pool.enable_login_checks()
    out["first"] = run()
    out["after_dial"] = families()
    time.sleep(args["login_check_interval"] + 0.1)
    out["second"] = run()  # starts a check in the background; the scrape does not wait for it
    gevent.sleep(0)
    for _ in range(100):
        if not pool.login._running:
            break
        gevent.sleep(0.05)
    out["after_check"] = families()
    ask("revoke")
    time.sleep(args["login_check_interval"] + 0.1)
    out["third"] = run()  # the pooled session still works...
    for _ in range(100):
        gevent.sleep(0.05)
        if not pool.login._running:
            break
    out["after_revoke"] = families()  # ...but a fresh login does not
    out["reason"] = pool.login_result(target).reason
out["stats"] = {"dials": dict(pool.stats.dials), "errors": dict(pool.stats.errors),
                "shells": dict(pool.stats.shells), "cap_hits": pool.stats.answer_cap_hits,
                "closed": dict(pool.stats.closed)}
pool.close()
print("RESULT " + json.dumps(out), flush=True)
"""


def drive(sshd: Sshd, scenario: str, mode: str = "shell", **extra: Any) -> dict[str, Any]:
    args = {
        "scenario": scenario,
        "mode": mode,
        "port": sshd.port,
        "user": sshd.user,
        "key_file": str(sshd.key_file),
        "known_hosts": str(sshd.trust()),
        **extra,
    }

    def answer(line: str) -> bool:
        if not line.startswith("ASK "):
            return False
        action = line.split()[1:]
        if action[0] == "kill":
            os.kill(int(action[1]), signal.SIGKILL)
        elif action[0] == "revoke":
            sshd.authorized_keys.write_text("")
        return True

    return run_driver(["-c", DRIVER, json.dumps(args)], answer)


def sessions(sshd: Sshd) -> int:
    """Sessions sshd started (one per exec channel, one per shell)."""
    return sum("Starting session" in line for line in sshd.log_path.read_text().splitlines())


# -- the framing, as pure functions ---------------------------------------------------------------


def test_an_answer_is_what_lies_between_begin_and_the_last_end_line() -> None:
    nonce = secrets.token_hex(16)
    data = b"@@optilab end\n" + secrets.token_hex(16).encode() + b" end 0\n\nlast line, no newline"
    framed = f"{nonce} begin\n".encode() + data + f"\n{nonce} end 0\n".encode()
    assert split_answer(framed, nonce) == (data, 0)
    assert split_answer(framed[:-3], nonce) is None  # incomplete: waits for more
    assert split_answer(f"{nonce} begin\n\n{nonce} end 3\n".encode(), nonce) == (b"", 3)
    with pytest.raises(SshError, match="begin line"):
        split_answer(b"Welcome!\n" + framed, nonce)
    with pytest.raises(SshError, match="after the shell answer"):
        split_answer(framed + b"trailing\n", nonce)


def test_the_request_is_constant_and_the_nonce_only_hex() -> None:
    held = Definitions()
    assert held.request(BATCH_SCRIPT) == definition(BATCH_SCRIPT, None, 0)[0] + CALLS[0]
    assert held.request(BATCH_SCRIPT) == CALLS[0]  # defined once, then only the constant call
    slow = build_script([Collector("slow", ("/proc/loadavg",), lambda sources, options: [])])
    assert held.request(slow) == definition(slow, None, 1)[0] + CALLS[1]  # the other slot
    assert held.request(BATCH_SCRIPT) == CALLS[0]  # still defined: not sent and parsed again
    assert held.request(slow) == CALLS[1]
    others = [f"echo {n}" for n in range(SLOTS - 2)]  # the slots left (a collect[] job's script)
    assert [held.request(other) for other in others] == [
        definition(o, None, 2 + n)[0] + CALLS[2 + n] for n, o in enumerate(others)
    ]
    assert held.request(BATCH_SCRIPT) == CALLS[0] and held.request(slow) == CALLS[1]  # all still defined
    assert held.request("uptime").endswith(CALLS[2] if others else CALLS[0])  # one more takes the least recent
    assert held.request(slow) == CALLS[1] and held.request(BATCH_SCRIPT) == CALLS[0]
    # the simulator's shell reads every definition back, with the listing part the slot holds
    plain, listed = definition("cat /proc/stat", None, 1)
    assert listed is None and command_of(plain, None, 1) == ("cat /proc/stat", None)
    assert command_of(plain, None, 0) is None  # another slot's definition
    batch, listed = definition(BATCH_SCRIPT)
    assert listed is not None and command_of(batch) == (BATCH_SCRIPT, listed)
    again, kept = definition(BATCH_SCRIPT, listed)  # after a command without a listing: the list is kept
    assert kept == listed and len(again) < len(batch) and command_of(again, listed) == (BATCH_SCRIPT, listed)
    assert command_of(again) is None  # it reads a list no definition gave the slot
    assert command_of("cat /proc/stat\n") is None
    with pytest.raises(ValueError):
        setup_line("abc; rm -rf /")


def test_a_command_cannot_change_the_session_and_an_exit_loses_only_its_own_answer() -> None:
    nonce = secrets.token_hex(16)
    exits, moves = "echo gone; exit 0", "cd /proc; optilab_n=forged; echo moved"
    held = Definitions()
    stdin = (
        setup_line(nonce) + held.request(exits) + held.request(moves) + held.request("pwd; echo $optilab_n") + "exit\n"
    )
    out = subprocess.run(["sh"], input=stdin, capture_output=True, text=True, timeout=30, cwd="/tmp", check=True).stdout
    answers = out.split(f"{nonce} ready\n", 1)[1].split(f"{nonce} begin\n")[1:]
    with pytest.raises(SshError, match="has no status"):
        split_answer(f"{nonce} begin\n{answers[0]}".encode(), nonce)
    assert split_answer(f"{nonce} begin\n{answers[1]}".encode(), nonce) == (b"moved\n", 0)
    assert split_answer(f"{nonce} begin\n{answers[2]}".encode(), nonce) == (f"/tmp\n{nonce}\n".encode(), 0)


def test_a_real_sh_prints_the_whole_answer_in_one_write_with_its_newlines_and_status() -> None:
    """The call collects the answer before printing it: sshd then gets it as one write, not dozens."""
    nonce = secrets.token_hex(16)
    command = "printf 'x1\\nlast x\\n\\n\\n'; cd /; n=1; (exit 3)"
    held = Definitions()
    stdin = setup_line(nonce) + held.request(command) + held.request(command) + "exit\n"
    strace = ["strace", "-f", "-qq", "-s", "4096", "-e", "trace=write", "-e", "signal=none", "sh"]
    trace = subprocess.run(strace, input=stdin, capture_output=True, text=True, timeout=30, check=True)
    ready, rest = trace.stdout.split("\n", 1)
    first, second = rest.split(f"{nonce} end 3\n")[:2]
    assert ready == f"{nonce} ready"
    for answer in (first, second):
        assert split_answer((answer + f"{nonce} end 3\n").encode(), nonce) == (b"x1\nlast x\n\n\n", 3)
    writes = [line for line in trace.stderr.splitlines() if f"{nonce} begin" in line]
    assert len(writes) == 2 and all(f"{nonce} end 3" in line for line in writes)  # begin to end: one write


class LocalShell:
    """A long-lived local ``sh`` spoken to in the session protocol, one answer at a time."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(16)
        self.process = subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/tmp")
        self.definitions = Definitions()
        self.written: list[str] = []  # each request's text
        self._write(setup_line(self.nonce))
        assert self.process.stdout is not None and self.process.stdout.readline() == f"{self.nonce} ready\n"

    def _write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def ask(self, command: str) -> str:
        self.written.append(self.definitions.request(command))
        self._write(self.written[-1])
        lines = []
        assert self.process.stdout is not None
        while not (line := self.process.stdout.readline()).startswith(f"{self.nonce} end "):
            assert line, "the shell exited"
            lines.append(line)
        answer = split_answer(("".join(lines) + line).encode(), self.nonce)
        assert answer is not None
        return answer[0].decode()

    def close(self) -> None:
        self.process.communicate("exit\n", timeout=10)


def test_a_session_lists_the_files_once_every_few_calls_and_volatile_ones_at_every_call(tmp_path: Path) -> None:
    """The part of a script above its list line runs once every LIST_CALLS calls: a file that appears
    is read from the next listing on, one that goes away is skipped at once, a volatile collector's
    files (logins, textfiles) are listed at every call; another command in between (the slow tier's,
    with a listing part of its own) keeps the script defined and its list and count as they were, a
    new listing part lists again."""
    (tmp_path / "stable").mkdir()
    (tmp_path / "volatile").mkdir()
    stable = Collector("stable", (f"{tmp_path}/stable/*",), lambda sources, options: [])
    volatile = Collector("volatile", (f"{tmp_path}/volatile/*",), lambda sources, options: [], volatile=True)
    script = build_script([stable, volatile])
    commands = command_names([stable, volatile])
    for name in ("stable/a", "volatile/a"):
        (tmp_path / name).write_text(f"{name}\n")
    shell = LocalShell()
    try:

        def read() -> dict[str, str]:
            sources, complete = split_sources(shell.ask(script), commands)
            assert complete
            return {path[len(str(tmp_path)) + 1 :]: text for path, text in sources.items()}

        assert read() == {"stable/a": "stable/a\n", "volatile/a": "volatile/a\n"}
        (tmp_path / "stable/b").write_text("b\n")
        (tmp_path / "volatile/b").write_text("b\n")
        for _ in range(LIST_CALLS - 1):  # the rest of the first listing's calls
            assert sorted(read()) == ["stable/a", "volatile/a", "volatile/b"]
        assert sorted(read()) == ["stable/a", "stable/b", "volatile/a", "volatile/b"]  # listed again
        (tmp_path / "stable/a").unlink()
        assert sorted(read()) == ["stable/b", "volatile/a", "volatile/b"]  # gone: not read, nothing else lost
        (tmp_path / "stable/c").write_text("c\n")
        slow = build_script([Collector("slow", ("/proc/loadavg",), lambda sources, options: [])])
        assert "/proc/loadavg" in split_sources(shell.ask(slow), command_names([]))[0]  # the slow tier's
        assert sorted(read()) == ["stable/b", "volatile/a", "volatile/b"]  # the list and its count stayed
        assert shell.written[-1] in CALLS  # and the script was not sent again
        other = build_script([stable, volatile, Collector("more", ("/proc/loadavg",), lambda s, o: [])])
        shell.ask(other)  # a new listing part lists at once
        assert "stable/c" in {path[len(str(tmp_path)) + 1 :] for path in split_sources(shell.ask(other), commands)[0]}
    finally:
        shell.close()


def test_a_listing_is_kept_with_the_file_list_and_read_back_by_its_commands(tmp_path: Path) -> None:
    """A collector's listing (filesystem's mount points) runs with the file listing: a long-lived shell
    keeps its items for LIST_CALLS calls, an exec per scrape lists them every time; its command reads
    them from ``$listed_<name>``, and the files are read as without it."""
    items, data = tmp_path / "items", tmp_path / "data"
    items.write_text("/first\n/second item\n")
    data.write_text("data\n")
    listing = f'while read -r x; do l="$l$x\n"; done < {items}'
    echo = "set -f; IFS='\n'; set -- $listed_things; unset IFS; set +f; printf '<%s>\\n' \"$@\""
    lister = Collector("lister", (str(data),), lambda sources, options: [], commands=(("things", echo),))
    lister = replace(lister, listings=(("things", listing),))
    empty = replace(lister, name="empty", commands=(("nothing", "true"),), listings=(("none", ": nothing"),))
    script = build_script([lister, empty])
    commands = command_names([lister, empty])

    def things(answer: str) -> str:
        sources, complete = split_sources(answer, commands)
        assert complete and sources[str(data)] == "data\n"
        return sources["cmd:things"]

    shell = LocalShell()
    try:
        assert things(shell.ask(script)) == "</first>\n</second item>\n"
        items.write_text("/third\n")
        for _ in range(LIST_CALLS - 1):  # the rest of the first listing's calls: the kept items
            assert things(shell.ask(script)) == "</first>\n</second item>\n"
        assert things(shell.ask(script)) == "</third>\n"  # listed again
    finally:
        shell.close()
    exec_answer = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, check=True).stdout
    assert things(exec_answer) == "</third>\n"  # an exec per scrape lists every time


def test_the_clock_is_read_with_each_listing_and_carried_on_by_the_uptime() -> None:
    """``date`` runs once per listing; the calls in between print its kept line and /proc/uptime (no
    process), and the time they give follows the wall clock."""
    plan = make_plan()
    shell = LocalShell()
    try:
        answers = []
        for _ in range(3):
            answers.append(plan.split(shell.ask(plan.script))[0]["cmd:date"])
            asked = time.time()
            time.sleep(0.3)
        first, second, third = (answer.splitlines() for answer in answers)
        assert first[0] == second[0] == third[0]  # one date, kept
        assert float(first[1]) < float(third[1])  # the uptime moves on
        assert abs(time_collector.parse_clock(answers[-1])[0] - asked) < 1.0  # the clock is right
    finally:
        shell.close()
    exec_answer = subprocess.run(["sh", "-c", plan.script], capture_output=True, text=True, timeout=30, check=True)
    assert plan.split(exec_answer.stdout)[0]["cmd:date"].splitlines()[0] != first[0]


# -- against a real sshd ------------------------------------------------------------------------------


def test_one_shell_serves_many_answers_and_reports_its_mode(sshd: Sshd) -> None:
    result = drive(sshd, "roundtrips")
    assert result["outputs"] == ["ok\n"] * 20
    assert all(sections[-1] is True and "/proc/stat" in sections for sections in result["batch"])
    assert result["mixed"] == ["one\n", "two\n", "no newline", ""]
    assert result["concurrent"] == ["c\n"] * 3  # one on the shell, the others by exec, none interleaved
    assert result["stats"]["shells"]["started"] == 1
    assert result["stats"]["shells"]["busy"] == 2
    assert result["stats"]["dials"] == {"success": 1}
    assert sessions(sshd) == 1 + 2  # the shell, plus the two concurrent execs — not 29 sessions
    assert result["families"]['optilab_session_mode{"mode": "shell"}'] == 1.0
    assert result["families"]['optilab_session_mode{"mode": "exec"}'] == 0.0


def test_exec_mode_opens_one_session_per_answer(sshd: Sshd) -> None:
    result = drive(sshd, "roundtrips", mode="exec")
    assert result["outputs"] == ["ok\n"] * 20
    assert result["mixed"] == ["one\n", "two\n", "no newline", ""]
    assert "started" not in result["stats"]["shells"]
    assert sessions(sshd) == 20 + 3 + 4 + 3
    assert result["families"]['optilab_session_mode{"mode": "exec"}'] == 1.0


def test_marker_and_nonce_like_text_in_a_file_on_the_target_is_just_data(sshd: Sshd) -> None:
    hostile = (
        f"@@optilab end\n{secrets.token_hex(16)} end 0\n{secrets.token_hex(16)} begin\n"
        f"{secrets.token_hex(16)} ready\n\n\n$(echo injected) `id` ;exit 0\nno final newline"
    )
    with tempfile.TemporaryDirectory(prefix="optilab-hostile-") as folder:  # pytest's tmp is root-only
        Path(folder).chmod(0o755)
        path = Path(folder) / "hostile.txt"
        path.write_text(hostile)
        path.chmod(0o644)
        result = drive(sshd, "hostile", file=str(path))
    assert result["outputs"] == [hostile] * 3
    assert result["after_reset"] == hostile
    assert result["nonces"][0] != result["nonces"][1]  # every session has its own


def test_a_hung_command_is_cut_at_the_deadline_and_the_next_scrape_gets_a_new_shell(sshd: Sshd) -> None:
    result = drive(sshd, "hang")
    assert result["first"] == "ok\n"
    assert result["hung"] == "error:timeout"
    assert result["elapsed"] < 3
    assert result["after"] == "ok\n"
    assert result["stats"]["shells"]["started"] == 2
    assert result["stats"]["dials"] == {"success": 2}  # the hung connection is not reused


def test_a_killed_shell_is_replaced_on_the_same_connection(sshd: Sshd) -> None:
    result = drive(sshd, "killed")
    assert result["after"] == "ok\n"
    assert result["pid_after"] != result["pid_before"]
    assert result["stats"]["shells"] == {"started": 2, "died": 1}
    assert result["stats"]["dials"] == {"success": 1}
    assert result["stats"]["errors"] == {}


def test_a_shell_that_dies_before_its_first_answer_is_not_kept_in_auto_mode(sshd: Sshd) -> None:
    result = drive(sshd, "dies_first", mode="auto")
    assert result["outputs"] == ["", "ok\n"]  # `kill -9 $$` then ran by exec (and killed only its own sh)
    assert result["stats"]["shells"] == {"started": 1, "refused": 1}
    assert result["families"]['optilab_session_mode{"mode": "exec"}'] == 1.0
    assert result["stats"]["dials"] == {"success": 1}


def test_a_department_session_mode_overrides_the_global_one(sshd: Sshd) -> None:
    result = drive(sshd, "department", mode="shell")
    assert [result["shell"], *result["exec"]] == ["ok\n"] * 3
    assert result["families"]['optilab_session_mode{"mode": "exec"}'] == 1.0
    assert result["stats"]["shells"] == {"started": 1}
    assert sessions(sshd) == 1 + 2  # the shell (closed when the mode changed), then one session per exec
    assert result["forgotten"] == {}


def _force_command(sshd: Sshd, command: str) -> None:
    key = sshd.authorized_keys.read_text().strip()
    sshd.authorized_keys.write_text(f'command="{command}" {key}\n')


def test_a_forced_command_makes_auto_fall_back_to_exec(sshd: Sshd) -> None:
    _force_command(sshd, "echo forced")
    result = drive(sshd, "fallback", mode="auto")
    assert result["outputs"] == ["forced\n"] * 3  # what the admin's forced command answers, by exec
    assert result["stats"]["shells"] == {"refused": 1}
    assert result["families"]['optilab_session_mode{"mode": "exec"}'] == 1.0


def test_a_forced_command_is_an_error_when_the_mode_insists_on_a_shell(sshd: Sshd) -> None:
    _force_command(sshd, "echo forced")
    result = drive(sshd, "fallback", mode="shell")
    assert result["outputs"] == ["error:protocol"] * 3
    assert result["stats"]["shells"] == {"refused": 3}


@pytest.mark.parametrize("mode", ["shell", "exec"])
def test_an_answer_over_the_byte_cap_is_refused_counted_and_the_session_reset(sshd: Sshd, mode: str) -> None:
    result = drive(sshd, "cap", mode=mode, max_answer_bytes=4096)
    assert result["small"] == "ok\n"
    assert result["big"] == ["error:protocol"] * 2
    assert result["after"] == "ok\n"
    assert result["stats"]["cap_hits"] == 2
    assert result["stats"]["dials"] == {"success": 1}  # the connection stays; only the session is reset
    if mode == "shell":
        assert result["stats"]["shells"] == {"started": 3, "reset": 2}


def test_the_fresh_login_check_runs_beside_scrapes_and_catches_a_revoked_key(sshd: Sshd) -> None:
    result = drive(sshd, "login", mode="auto", login_check_interval=0.5)
    assert [result["first"], result["second"], result["third"]] == ["ok\n"] * 3
    assert result["after_dial"]["optilab_login_check_success{}"] == 1.0  # the scrape's own new login
    assert result["after_dial"]["optilab_login_check_duration_seconds{}"] == 0.0
    assert result["after_check"]["optilab_login_check_success{}"] == 1.0
    assert result["after_check"]["optilab_login_check_duration_seconds{}"] > 0.0
    assert (
        result["after_check"]["optilab_login_check_timestamp_seconds{}"]
        > result["after_dial"]["optilab_login_check_timestamp_seconds{}"]
    )
    assert result["after_revoke"]["optilab_login_check_success{}"] == 0.0
    assert result["reason"] == "auth"
    assert result["stats"]["closed"].get("login_check") == 1  # the revoked dial never became a connection
    assert sshd.accepted_logins() == 2  # the scrapes' connection, and one check; the revoked one failed
    home = Path(f"~{USER}").expanduser()
    assert not (home / ".optilab-login-check").exists()  # the check cleans up after itself
