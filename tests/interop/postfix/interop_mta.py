# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the real-MTA interop tests: a private Postfix instance, a
private Sendmail unpacked from Debian's packages, an smtp-sink that
captures what the MTA delivers, the filter processes, an SMTP client and
TAP output. Standard library only; run as root.

Everything started here is stopped by Resources.close(), which runs on
normal exit, on exceptions, on SIGTERM/SIGINT/SIGHUP and at exit."""

import atexit
import codecs
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback

LOOPBACK = "127.0.0.1"
POSTFIX_HOSTNAME = "mta.milter-interop.test"
SENDMAIL_HOSTNAME = "sm.milter-interop.test"
# A Received: from an earlier hop, and what the "headers" case changes it to.
CLIENT_RECEIVED = ("Received",
                   "from client.example.test by relay.example.test; Thu, 1 Jan 2026 00:00:00 +0000")
CHANGED_RECEIVED = "from changed.example.test by relay.example.test; Thu, 1 Jan 2026 00:00:00 +0000"
SINK_HOSTNAME = "sink.test"
DEFAULT_TIMEOUT = 30


class WaitTimeout(AssertionError):
    """A wait_for() that gave up: a failed check like any other."""


def wait_for(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns something true; fails after
    timeout seconds saying what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(interval)


def free_ports(n):
    """n distinct free TCP ports on the loopback address."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def can_connect(address):
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(address)
            return True
        except OSError:
            return False


# ---- TAP ------------------------------------------------------------------

class Tap:
    """TAP for meson: one line per case, the plan at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            print("# " + line, flush=True)

    def result(self, ok, name, details=None):
        self.n += 1
        if not ok:
            self.failed += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, name), flush=True)
        if details:
            self.diag(details)
        if not ok:
            # meson shows a failed test's stderr, not its TAP stream: CI
            # logs then say why without the test log file.
            print("FAILED: %s\n%s" % (name, details or ""), file=sys.stderr, flush=True)

    def skip(self, name, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, reason), flush=True)

    def run(self, name, function, *args):
        """Runs one case; any exception fails it, and the run goes on."""
        start = time.monotonic()
        try:
            function(*args)
        except SkipCase as skip:
            self.skip(name, str(skip))
            return
        except Exception:
            self.result(False, name, traceback.format_exc())
            return
        self.result(True, "%s (%.1fs)" % (name, time.monotonic() - start))

    def finish(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0


class SkipCase(Exception):
    pass


def shorten(value, limit=2000):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "... (%d more)" % (len(text) - limit)


def check(condition, message, *details):
    if not condition:
        raise AssertionError("\n".join([message] + [shorten(d) for d in details]))


def check_equal(actual, expected, what, *details):
    if actual != expected:
        raise AssertionError("\n".join(["%s: expected %s, got %s" % (what, shorten(repr(expected)),
                                                                    shorten(repr(actual)))]
                                        + [shorten(d) for d in details]))


# ---- cleanup ---------------------------------------------------------------

class Resources:
    """Stops what was started, newest first, exactly once, also when the
    test is killed with SIGTERM/SIGINT/SIGHUP (meson's timeout)."""

    def __init__(self):
        self.stack = contextlib.ExitStack()
        self.closed = False
        atexit.register(self.close)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        # Unwinds through every finally and then runs close().
        raise SystemExit("interrupted by signal %d" % signum)

    def callback(self, function, *args):
        self.stack.callback(function, *args)

    def close(self):
        if self.closed:
            return
        self.closed = True
        # A second signal must not interrupt the cleanup itself.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        try:
            self.stack.close()
        except Exception:
            traceback.print_exc()


def stop_process(process, name, timeout=10):
    """SIGTERM, then SIGKILL after timeout seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        print("# %s did not stop after SIGTERM; killing it" % name, file=sys.stderr)
        process.kill()
        process.wait(timeout)


def make_temp_root(resources, prefix):
    """A temporary directory the postfix user can traverse; removed at the
    end unless MILTER_INTEROP_KEEP=1 or a test failed (then its path is
    printed)."""
    root = tempfile.mkdtemp(prefix=prefix)
    os.chmod(root, 0o755)
    state = {"keep": os.environ.get("MILTER_INTEROP_KEEP") == "1"}

    def remove():
        if state["keep"]:
            print("# kept %s" % root, flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)

    resources.callback(remove)
    return root, state


# ---- the filter ------------------------------------------------------------

def unescape(field):
    """Undoes g_strescape(); returns str decoded as Latin-1, so every byte
    maps to one character and 8-bit data can be compared exactly."""
    return codecs.escape_decode(field)[0].decode("latin-1")


class FilterSession:
    def __init__(self, number, events):
        self.number = number
        self.events = events  # lists: [name, argument, ...]

    def named(self, name):
        return [e for e in self.events if e[0] == name]

    def names(self):
        return [e[0] for e in self.events]

    def first(self, name):
        found = self.named(name)
        check(found, "the filter saw no %s event" % name, self.events)
        return found[0]

    def __repr__(self):
        return "FilterSession(%d, %r)" % (self.number, self.events)


class Filter:
    """A filter process; its sessions are read back from its events file."""

    def __init__(self, resources, name, argv, events_path, stderr_path, env=None,
                 sockets=()):
        self.name = name
        self.events_path = events_path
        self.stderr_path = stderr_path
        self.seen = 0
        with open(stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                            stdout=stderr, stderr=stderr, env=env)
        resources.callback(stop_process, self.process, name)
        for address in sockets:
            wait_for(lambda: self._ready(address), DEFAULT_TIMEOUT,
                     "%s to listen on %r" % (name, address))

    def _ready(self, address):
        if self.process.poll() is not None:
            raise AssertionError("%s exited with %s:\n%s" % (self.name, self.process.returncode,
                                                            self.stderr()))
        return can_connect(address)

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def sessions(self):
        """The complete session blocks written so far."""
        if not os.path.exists(self.events_path):
            return []
        with open(self.events_path, "rb") as f:
            data = f.read()
        sessions = []
        for match in re.finditer(rb"^session (\d+)\n(.*?)^end \1\n", data, re.M | re.S):
            events = [[unescape(field) for field in line.split(b"\t")]
                      for line in match.group(2).split(b"\n") if line]
            sessions.append(FilterSession(int(match.group(1)), events))
        return sessions

    def mark(self):
        """Later calls of wait_session() only see sessions after now."""
        self.seen = len(self.sessions())

    def wait_session(self, predicate=lambda s: True, timeout=DEFAULT_TIMEOUT):
        def find():
            for session in self.sessions()[self.seen:]:
                if predicate(session):
                    return session
            return None
        return wait_for(find, timeout, "a session record from %s" % self.name)


# ---- smtp-sink -------------------------------------------------------------

class DeliveredMessage:
    """One message as smtp-sink dumped it: the envelope Postfix used, then
    the message."""

    def __init__(self, path, data):
        self.path = path
        self.raw = data
        lines = data.split(b"\n")
        self.envelope = {}
        self.rcpt_args = []
        index = 0
        while index < len(lines) and lines[index].startswith(b"X-"):
            name, _, value = lines[index].partition(b": ")
            if name == b"X-Rcpt-Args":
                self.rcpt_args.append(value.decode("latin-1"))
            else:
                self.envelope[name.decode()] = value.decode("latin-1")
            index += 1
        # smtp-sink's own Received: (three lines) ends its additions.
        check(lines[index].startswith(b"Received: "), "no smtp-sink Received in %s" % path)
        index += 1
        while lines[index][:1] in (b" ", b"\t"):
            index += 1
        message = lines[index:]
        # The dump ends with an empty line after the message.
        if message and message[-1] == b"":
            message = message[:-1]
        if message and message[-1] == b"":
            message = message[:-1]
        blank = message.index(b"")
        self.header_lines = message[:blank]
        self.body_lines = message[blank + 1:]
        self.headers = []  # (name, value) as str (Latin-1), folds kept as "\n"
        for line in self.header_lines:
            text = line.decode("latin-1")
            if text[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + "\n" + text)
            else:
                name, _, value = text.partition(":")
                self.headers.append((name, value[1:] if value.startswith(" ") else value))
        self.mail_from = self.envelope.get("X-Mail-Args", "").split(" ")[0]
        self.recipients = [arg.split(" ")[0] for arg in self.rcpt_args]
        # The MTA's queue ID, from its Received: (Postfix or Sendmail).
        match = re.search(r"\((?:Postfix|8\.[0-9.]+/[0-9.]+)\) with E?SMTPS? id (\w+)",
                          " ".join(v for n, v in self.headers if n.lower() == "received"))
        self.queue_id = match.group(1) if match else None

    def header_values(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        values = self.header_values(name)
        check(len(values) == 1, "expected one %s header" % name, self.headers)
        return values[0]

    @property
    def body(self):
        """The body with CRLF line ends, as the SMTP client sent it."""
        return b"".join(line + b"\r\n" for line in self.body_lines)


class SmtpSink:
    """Postfix's smtp-sink on a loopback port, one dump file per message."""

    def __init__(self, resources, root, port):
        self.port = port
        self.directory = os.path.join(root, "sink")
        os.mkdir(self.directory)
        # smtp-sink must drop root; nobody writes the dumps.
        shutil.chown(self.directory, user="nobody")
        self.log = open(os.path.join(root, "sink.log"), "wb")
        resources.callback(self.log.close)
        self.process = subprocess.Popen(
            ["smtp-sink", "-4", "-u", "nobody", "-h", SINK_HOSTNAME,
             "-d", os.path.join(self.directory, "%Y%m%d%H%M%S."),
             "%s:%d" % (LOOPBACK, port), "256"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        resources.callback(stop_process, self.process, "smtp-sink")
        wait_for(lambda: self.process.poll() is None and can_connect((LOOPBACK, port)),
                 DEFAULT_TIMEOUT, "smtp-sink to listen")
        self.cache = {}
        self.by_queue_id = {}

    def messages(self):
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            if path in self.cache:
                continue
            with open(path, "rb") as f:
                data = f.read()
            try:
                message = DeliveredMessage(path, data)
            except (AssertionError, ValueError, IndexError):
                continue  # still being written
            self.cache[path] = message
            if message.queue_id:
                self.by_queue_id.setdefault(message.queue_id, []).append(message)
        return list(self.cache.values())

    def find(self, queue_id):
        self.messages()
        return self.by_queue_id.get(queue_id, [])

    def containing(self, needle):
        return [m for m in self.messages() if needle in m.raw]


# ---- the private Postfix instance -----------------------------------------

MASTER_CF_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PrivatePostfix:
    """A Postfix instance of its own: config, queue and data directories
    under root, smtpd only on loopback ports, relaying everything to the
    sink. The machine's /etc/postfix is neither read nor written.

    services: {name: (port, {parameter: value})}, one smtpd each; the
    parameters (smtpd_milters, milter_content_timeout, ...) are passed with
    -o, so each port can use other milters and timeouts."""

    def __init__(self, resources, root, sink_port, services, main_cf=None):
        self.root = root
        self.config_directory = os.path.join(root, "etc")
        self.queue_directory = os.path.join(root, "spool")
        self.data_directory = os.path.join(root, "data")
        self.maillog = os.path.join(root, "maillog")
        self.ports = {name: port for name, (port, _) in services.items()}
        os.mkdir(self.config_directory)
        # The postfix command chdir()s into the queue directory before its
        # script creates the rest, so this one must exist: root-owned, not
        # group/world writable, like every root-owned Postfix directory.
        # The subdirectories (owned by postfix; public/ and maildrop/ also
        # by the postdrop group) and data_directory are made by
        # "post-install create-missing", which "postfix check" and "postfix
        # start" run. "postfix set-permissions" is not needed, and with a
        # config directory that the default main.cf does not list in
        # multi_instance_directories it would chown the shared files under
        # /usr and /etc/postfix too.
        os.mkdir(self.queue_directory, 0o755)
        parameters = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue_directory,
            "data_directory": self.data_directory,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": POSTFIX_HOSTNAME,
            "mydomain": "milter-interop.test",
            "myorigin": "$myhostname",
            # Nothing is local: every recipient goes to the sink.
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:local delivery is disabled",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": "[%s]:%d" % (LOOPBACK, sink_port),
            # Loopback only, no DNS.
            "inet_interfaces": LOOPBACK,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "smtp_host_lookup": "native",
            # Keep the clients' headers as they are (no added Date:,
            # Message-ID:, no address rewriting).
            "local_header_rewrite_clients": "",
            "disable_mime_output_conversion": "yes",
            "header_size_limit": "262144",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "milter_default_action": "tempfail",
            # Our own log file, through postlogd: no syslog needed.
            "maillog_file": self.maillog,
            "maillog_file_prefixes": root,
            "syslog_name": "postfix-interop",
            # A failed delivery is retried soon, not in minutes.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "biff": "no",
        }
        parameters.update(main_cf or {})
        with open(os.path.join(self.config_directory, "main.cf"), "w") as f:
            for name, value in parameters.items():
                f.write("%s = %s\n" % (name, value))
        with open(os.path.join(self.config_directory, "master.cf"), "w") as f:
            # Column 5 (chroot) is "n" everywhere: a chroot would need
            # copies of /etc files inside the private queue directory.
            for name, (port, overrides) in services.items():
                f.write("%s:%d inet n - n - - smtpd\n" % (LOOPBACK, port))
                f.write("  -o syslog_name=postfix-interop/%s\n" % name)
                for key, value in overrides.items():
                    f.write("  -o %s=%s\n" % (key, value))
            f.write(MASTER_CF_SERVICES)
        self.postfix("check")
        resources.callback(self.stop)
        self.postfix("start")
        for name, port in self.ports.items():
            wait_for(lambda: can_connect((LOOPBACK, port)), DEFAULT_TIMEOUT,
                     "Postfix to listen on port %d (%s)" % (port, name))

    def run(self, argv, timeout=60, check_status=True):
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=timeout)
        if check_status and result.returncode != 0:
            raise AssertionError("%s failed (%d):\n%s%s" % (
                " ".join(argv), result.returncode, result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace")))
        return result

    def postfix(self, command):
        return self.run(["postfix", "-c", self.config_directory, command])

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_directory, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        pid = self.master_pid()
        try:
            # Waits up to 5 s, then kills the master's process group.
            self.run(["postfix", "-c", self.config_directory, "stop"], timeout=30,
                     check_status=False)
        except subprocess.TimeoutExpired:
            pass
        if pid is not None and process_alive(pid):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    # -- the log

    def log(self, start=0):
        try:
            with open(self.maillog, "rb") as f:
                f.seek(start)
                return f.read().decode("latin-1")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.maillog)
        except FileNotFoundError:
            return 0

    def wait_log(self, pattern, start=0, timeout=DEFAULT_TIMEOUT):
        """The first log line after offset start matching the regex."""
        regex = re.compile(pattern)

        def find():
            for line in self.log(start).splitlines():
                if regex.search(line):
                    return line
            return None
        return wait_for(find, timeout, "a Postfix log line matching %r" % pattern)

    def wait_removed(self, queue_id, timeout=DEFAULT_TIMEOUT):
        """Postfix is done with the message: every recipient delivered."""
        self.wait_log(r"\b%s: removed\b" % re.escape(queue_id), timeout=timeout)
        lines = [l for l in self.log().splitlines() if " %s: " % queue_id in l]
        bad = [l for l in lines if "status=" in l and "status=sent" not in l]
        check(not bad, "not every recipient of %s was sent" % queue_id, *bad)

    def wait_all_removed(self, queue_ids, timeout=DEFAULT_TIMEOUT):
        pending = set(queue_ids)

        def done():
            for match in re.finditer(r" ([0-9A-F]+): removed$", self.log(), re.M):
                pending.discard(match.group(1))
            return not pending
        wait_for(done, timeout, "Postfix to finish %d messages" % len(pending), interval=0.5)
        bad = [l for l in self.log().splitlines() if "status=" in l and "status=sent" not in l]
        check(not bad, "not every recipient was sent", *bad[:10])

    # -- the queue

    def wait_queue_empty(self, timeout=DEFAULT_TIMEOUT):
        """Nothing left to deliver (held messages stay)."""
        wait_for(lambda: not [m for m in self.queue() if m["queue_name"] != "hold"], timeout,
                 "the queue to drain", interval=0.2)

    def queue(self):
        """postqueue -j: one dict per queued message."""
        output = self.run(["postqueue", "-c", self.config_directory, "-j"]).stdout
        return [json.loads(line) for line in output.decode().splitlines() if line.strip()]

    def postcat(self, queue_id):
        return self.run(["postcat", "-c", self.config_directory, "-q", queue_id]).stdout


def process_alive(pid):
    """True unless pid is gone or a zombie (PID 1 here may never reap the
    daemonised master)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ---- a private Sendmail --------------------------------------------------------

# Debian's sendmail-bin conflicts with postfix (both provide
# mail-transport-agent), so it is never installed: its packages are
# unpacked into a private tree, with what it needs that install-deps.sh
# does not install (m4 for the .cf, libwrap for the binary).
SENDMAIL_PACKAGES = ["sendmail-bin", "sendmail-cf", "m4", "libwrap0", "liblockfile1"]


def unpack_sendmail(tree):
    """Returns the unpacked tree, downloading the packages the first time
    (apt-get download: the Debian mirror must be reachable then). Raises
    SkipCase when that is impossible."""
    binary = os.path.join(tree, "usr/libexec/sendmail/sendmail")
    if os.path.exists(binary):
        return tree
    debs = tree + ".debs"
    os.makedirs(debs, exist_ok=True)
    # The sandbox user _apt could not write into a root-only directory.
    result = subprocess.run(["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download"]
                            + SENDMAIL_PACKAGES, cwd=debs, capture_output=True, timeout=300)
    if result.returncode != 0:
        raise SkipCase("cannot download %s: %s" % (" ".join(SENDMAIL_PACKAGES),
                                                   result.stderr.decode(errors="replace").strip()))
    staging = tree + ".tmp"
    shutil.rmtree(staging, ignore_errors=True)
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        subprocess.run(["dpkg-deb", "-x", deb, staging], check=True, timeout=120)
    # The binary is set-group-ID (mail): the dynamic linker would ignore
    # LD_LIBRARY_PATH, which finds the unpacked libwrap. We run it as root.
    os.chmod(os.path.join(staging, "usr/libexec/sendmail/sendmail"), 0o755)
    os.rename(staging, tree)
    return tree


class PrivateSendmail:
    """Sendmail from the unpacked tree with a .cf of its own (m4 and
    INPUT_MAIL_FILTER), its own queue directory, listening on one loopback
    port, relaying everything to the sink. Runs in the foreground (-bD) as
    our child, so it is stopped like the filters."""

    def __init__(self, resources, root, tree, sink_port, port, milter_socket):
        self.root = root
        self.tree = tree
        self.port = port
        self.queue_directory = os.path.join(root, "sendmail-queue")
        os.mkdir(self.queue_directory, 0o700)
        self.env = dict(os.environ)
        libraries = [os.path.dirname(path) for name in ("libwrap.so.0", "liblockfile.so.1")
                     for path in glob.glob(os.path.join(tree, "**", name), recursive=True)]
        self.env["LD_LIBRARY_PATH"] = ":".join(libraries + [self.env.get("LD_LIBRARY_PATH", "")])
        self.binary = os.path.join(tree, "usr/libexec/sendmail/sendmail")
        missing = subprocess.run(["ldd", self.binary], env=self.env, capture_output=True).stdout
        if b"not found" in missing:
            raise SkipCase("sendmail lacks libraries: %s" % missing.decode(errors="replace"))
        with open(os.path.join(root, "service.switch"), "w") as f:
            f.write("hosts files\naliases files\n")
        open(os.path.join(root, "aliases"), "w").close()
        cf_dir = os.path.join(tree, "usr/share/sendmail/cf")
        mc = """\
divert(-1)
divert(0)dnl
include(`{cf_dir}/m4/cf.m4')dnl
VERSIONID(`milter-glib interop')dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `{hostname}')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`QUEUE_DIR', `{queue}')dnl
define(`confPID_FILE', `{root}/sendmail.pid')dnl
define(`STATUS_FILE', `{root}/sendmail.st')dnl
define(`ALIAS_FILE', `{root}/aliases')dnl
define(`confCW_FILE', `-o {root}/local-host-names')dnl
define(`confSERVICE_SWITCH_FILE', `{root}/service.switch')dnl
define(`confHOST_STATUS_DIRECTORY', `')dnl
define(`confDEF_USER_ID', `daemon:daemon')dnl
dnl The temporary directory is under /tmp (world-writable, sticky).
define(`confDONT_BLAME_SENDMAIL', `GroupWritableDirPathSafe,TrustStickyBit')dnl
define(`confTO_IDENT', `0s')dnl
define(`SMART_HOST', `relay:[{loopback}]')dnl
define(`RELAY_MAILER_ARGS', `TCP $h {sink_port}')dnl
define(`ESMTP_MAILER_ARGS', `TCP $h {sink_port}')dnl
FEATURE(`nocanonify')dnl
dnl Loopback only, and everything goes to the sink.
FEATURE(`promiscuous_relay')dnl
FEATURE(`accept_unresolvable_domains')dnl
DAEMON_OPTIONS(`Port={port}, Addr={loopback}, Name=MTA')dnl
dnl F=T: tempfail when the filter fails, as milter_default_action in Postfix.
INPUT_MAIL_FILTER(`interop', `S=unix:{socket}, F=T, T=C:10s;S:10s;R:10s;E:1m')dnl
MAILER(`smtp')dnl
""".format(cf_dir=cf_dir, hostname=SENDMAIL_HOSTNAME, queue=self.queue_directory, root=root,
           loopback=LOOPBACK, sink_port=sink_port, port=port, socket=milter_socket)
        self.cf = os.path.join(root, "sendmail.cf")
        m4 = os.path.join(tree, "usr/bin/m4")
        with open(self.cf, "wb") as f:
            subprocess.run([m4, "-"], input=mc.encode(), stdout=f, check=True, timeout=60)
        self.log = open(os.path.join(root, "sendmail.log"), "wb")
        resources.callback(self.log.close)
        self.process = subprocess.Popen(self.command("-bD"), stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=self.log, env=self.env,
                                        start_new_session=True)
        resources.callback(self.stop)
        wait_for(lambda: self._ready(), 150, "Sendmail to listen on port %d" % port)

    def command(self, *args):
        """Sendmail sleeps 60 s at start-up when the host name has no
        domain and none can be found (here /etc/hosts says "vm"). A UTS
        namespace gives it a qualified name without touching the host's."""
        argv = [self.binary, "-C", self.cf] + list(args)
        if self.uts_namespace():
            return ["unshare", "--uts", "sh", "-c", 'hostname %s && exec "$@"' % SENDMAIL_HOSTNAME,
                    "sh"] + argv
        return argv

    _uts = None

    @classmethod
    def uts_namespace(cls):
        if cls._uts is None:
            result = subprocess.run(["unshare", "--uts", "true"], capture_output=True)
            cls._uts = result.returncode == 0
        return cls._uts

    def _ready(self):
        if self.process.poll() is not None:
            with open(self.log.name, "rb") as f:
                raise AssertionError("sendmail exited with %s:\n%s" % (
                    self.process.returncode, f.read().decode(errors="replace")))
        return can_connect((LOOPBACK, self.port))

    def stop(self):
        """The daemon and the children it forked for sessions and
        deliveries: all in its process group."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def quarantined(self):
        """mailq for the quarantined messages (-qQ)."""
        result = subprocess.run(self.command("-bp", "-qQ"), env=self.env, capture_output=True,
                                timeout=120)
        return result.stdout.decode("latin-1")


# ---- the SMTP client --------------------------------------------------------

class SmtpSession:
    """One SMTP session with replies returned, not raised."""

    def __init__(self, port, helo, source=None, timeout=60):
        self.smtp = smtplib.SMTP(timeout=timeout,
                                 source_address=(source, 0) if source else None)
        self.greeting = self.smtp.connect(LOOPBACK, port)
        self.helo = helo
        self.ehlo_reply = None

    def ehlo(self):
        self.ehlo_reply = self.smtp.ehlo(self.helo)
        return self.ehlo_reply

    def send(self, mail_from, recipients, message, mail_options=(), rcpt_options=()):
        """Returns the reply to the end of DATA (or to the command that
        failed first) as (code, text), plus all replies."""
        replies = []
        code, text = self.smtp.mail(mail_from, list(mail_options))
        replies.append(("MAIL", code, text))
        if code != 250:
            return (code, text.decode("latin-1")), replies
        for recipient in recipients:
            code, text = self.smtp.rcpt(recipient, list(rcpt_options))
            replies.append(("RCPT", code, text))
        try:
            code, text = self.smtp.data(message)
        except smtplib.SMTPDataError as error:
            code, text = error.smtp_code, error.smtp_error
        replies.append(("DATA", code, text))
        return (code, text.decode("latin-1")), replies

    def rset(self):
        return self.smtp.rset()

    def quit(self):
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.smtp.quit()
        self.smtp.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.quit()


def queue_id_of(reply):
    """The queue ID in "250 2.0.0 Ok: queued as ID"."""
    code, text = reply
    check(code == 250, "message not accepted", reply)
    match = re.search(r"queued as ([0-9A-F]+)", text)
    check(match, "no queue ID in the reply", reply)
    return match.group(1)


def build_message(test_case=None, test_id="", headers=(), body=b"Hello.\r\n",
                  sender="sender@example.test", recipients=("rcpt@example.test",),
                  subject=None, top_headers=()):
    """A complete RFC 5322 message as bytes with CRLF line ends. headers
    are (name, value) pairs of str or bytes, added after the usual ones;
    top_headers come first (a Received: from an earlier hop)."""
    lines = list(top_headers) + [
        ("From", "<%s>" % sender),
        ("To", ", ".join("<%s>" % r for r in recipients)),
        ("Subject", subject or "interop %s %s" % (test_case or "message", test_id)),
        ("Date", "Thu, 01 Jan 2026 00:00:00 +0000"),
        ("Message-ID", "<%s@client.example.test>" % (test_id or "id")),
        ("X-Test-Id", test_id),
    ]
    if test_case:
        lines.append(("X-Test-Case", test_case))
    lines.extend(headers)
    out = b""
    for name, value in lines:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode("latin-1") if isinstance(value, str) else value
        out += name + b": " + value + b"\r\n"
    return out + b"\r\n" + body
