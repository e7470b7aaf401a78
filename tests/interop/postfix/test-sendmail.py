#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The filter behind a real, private Sendmail: Debian's sendmail-bin cannot
be installed next to Postfix (both are the mail-transport-agent), so its
packages are unpacked into the build directory on the first run (see
interop_mta.unpack_sendmail) and it runs from there with a .cf of its own.

Environment (set by meson): INTEROP_FILTER, INTEROP_BUILDDIR. Needs root.
Output is TAP."""

import sys

sys.dont_write_bytecode = True

import hashlib
import os
import re
import time
import traceback
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from interop_mta import (CHANGED_RECEIVED, CLIENT_RECEIVED, SENDMAIL_HOSTNAME,  # noqa: E402
                         Filter, PrivateSendmail, Resources, SkipCase, SmtpSession, SmtpSink,
                         Tap, build_message, check, check_equal, free_ports, make_temp_root,
                         unpack_sendmail, wait_for)


class Env:
    def __init__(self, resources, tap, root):
        self.tap = tap
        self.root = root
        tree = unpack_sendmail(os.path.join(os.environ["INTEROP_BUILDDIR"], "sendmail-root"))
        sink_port, self.port = free_ports(2)
        self.sink = SmtpSink(resources, self.root, sink_port)
        socket_path = os.path.join(self.root, "filter.sock")
        events = os.path.join(self.root, "filter.events")
        # Sendmail talks to milters as root: the default socket mode does.
        self.filter = Filter(resources, "interop-filter",
                             [os.environ["INTEROP_FILTER"], "--events", events,
                              "-s", "unix:" + socket_path],
                             events, os.path.join(self.root, "filter.stderr"),
                             sockets=[socket_path])
        start = time.monotonic()
        self.sendmail = PrivateSendmail(resources, self.root, tree, sink_port, self.port,
                                        socket_path)
        tap.diag("Sendmail listening on %d after %.1fs%s" % (
            self.port, time.monotonic() - start,
            "" if PrivateSendmail.uts_namespace() else " (no UTS namespace: it slept 60 s)"))
        # The readiness probe was an SMTP session too.
        self.filter.mark()

    def delivered(self, test_id, timeout=30):
        needle = ("X-Test-Id: %s\n" % test_id).encode()
        messages = wait_for(lambda: self.sink.containing(needle), timeout,
                            "smtp-sink's dump of %s" % test_id)
        check_equal(len(messages), 1, "deliveries of %s" % test_id)
        return messages[0]


def send_one(env, test_case, recipients=("rcpt@example.test",), headers=(), body=b"Hello.\r\n",
             top_headers=(), mail_options=()):
    test_id = uuid.uuid4().hex[:12]
    helo = "%s-%s.client.test" % (test_case, test_id)
    env.filter.mark()
    with SmtpSession(env.port, helo) as smtp:
        check_equal(smtp.ehlo()[0], 250, "EHLO")
        reply, _ = smtp.send("sender@example.test", recipients,
                             build_message(test_case, test_id, headers, body, recipients=recipients,
                                           top_headers=top_headers),
                             mail_options)
    session = env.filter.wait_session(lambda s: ["helo", helo] in s.events)
    check(not session.named("modification-error"), "the filter failed to modify",
          session.named("modification-error"))
    return reply, session, test_id


def queue_id_of(reply):
    code, text = reply
    check_equal(code, 250, "reply to DATA", text)
    match = re.match(r"2\.0\.0 (\w+) Message accepted for delivery", text)
    check(match, "no queue ID in the reply", text)
    return match.group(1)


def case_add_header(env):
    reply, session, test_id = send_one(env, "add-header",
                                       recipients=("bob@example.test", "carol@example.test"))
    queue_id = queue_id_of(reply)
    message = env.delivered(test_id)
    check_equal(message.header("X-Interop-Queue-Id"), queue_id, "added header ({i} macro)")
    check_equal(message.queue_id, queue_id, "Sendmail's Received: id")
    check_equal(message.mail_from, "<sender@example.test>", "envelope sender")
    check_equal(sorted(message.recipients), ["<bob@example.test>", "<carol@example.test>"],
                "recipients")
    names = [n for n in session.names() if n not in ("header", "body")]
    # Unlike Postfix, Sendmail sends no abort after a message.
    check_equal(names, ["negotiate", "connect", "helo", "envelope-from", "envelope-recipient",
                        "envelope-recipient", "data", "end-of-header", "end-of-message",
                        "finished"], "event order")


def case_reject(env):
    reply, session, test_id = send_one(env, "reject")
    check_equal(reply, (554, "5.7.1 interop: rejected with a custom reply"), "reply to DATA")


def case_tempfail(env):
    reply, session, test_id = send_one(env, "tempfail")
    check_equal(reply, (451, "4.7.1 interop: try again later"), "reply to DATA")


def case_replace_body(env):
    reply, session, test_id = send_one(env, "replace-body", body=b"The original body.\r\n")
    queue_id_of(reply)
    message = env.delivered(test_id)
    check_equal(message.body, b"This body was replaced by interop-filter.\r\n"
                b"Second line, then a dot alone:\r\n.\r\nEnd.\r\n", "body")


def case_headers(env):
    headers = [("X-Multi", "one"), ("X-Multi", "two"), ("X-Multi", "three"),
               ("X-Change-Me", "old value"), ("X-Delete-Me", "doomed")]
    reply, session, test_id = send_one(env, "headers", headers=headers,
                                       top_headers=[CLIENT_RECEIVED])
    queue_id_of(reply)
    message = env.delivered(test_id)
    names = [n for n, v in message.headers]
    check_equal(names[:4], ["X-Inserted-Zero", "Received", "X-Inserted-One", "Received"],
                "top headers")
    check(SENDMAIL_HOSTNAME in message.headers[1][1], "Sendmail's Received: second",
          message.headers[1])
    check_equal(message.headers[3][1], CHANGED_RECEIVED, "the client's Received:, changed")
    # protocol.md §8.4: Sendmail only marks a deleted header, so the
    # indexes after it do not shift (in Postfix "three" is changed).
    check_equal(message.header_values("X-Multi"), ["changed after delete", "three"], "X-Multi")
    check_equal(message.header_values("X-Change-Me"), ["new value"], "X-Change-Me")
    check_equal(message.header_values("X-Delete-Me"), [], "X-Delete-Me")
    check_equal(message.headers[-1], ("X-Added-Last", "at the bottom"), "last header")


def case_envelope(env):
    reply, session, test_id = send_one(env, "change-from")
    message = env.delivered(test_id)
    check_equal(message.mail_from, "<changed-sender@example.test>", "envelope sender")
    check("RET=HDRS" in message.envelope["X-Mail-Args"].split(), "RET=HDRS", message.envelope)
    reply, session, test_id = send_one(env, "add-recipients")
    message = env.delivered(test_id)
    check_equal(sorted(message.rcpt_args), ["<added-never@example.test> NOTIFY=NEVER",
                                            "<added-plain@example.test>", "<rcpt@example.test>"],
                "RCPT TO")
    reply, session, test_id = send_one(env, "delete-recipient",
                                       recipients=("keep@example.test", "drop@example.test"))
    message = env.delivered(test_id)
    check_equal(message.recipients, ["<keep@example.test>"], "recipients")


def case_quarantine(env):
    reply, session, test_id = send_one(env, "quarantine")
    queue_id = queue_id_of(reply)
    # Sendmail keeps the reason (Postfix does not).
    def listed():
        text = env.sendmail.quarantined()
        return text if queue_id in text else None
    listing = wait_for(listed, 30, "%s in the quarantine" % queue_id)
    check(re.search(r"%s .*\n\s*QUARANTINE: interop: held for inspection" % queue_id, listing),
          "quarantine reason", listing)
    time.sleep(1)
    check(not env.sink.containing(("X-Test-Id: %s\n" % test_id).encode()),
          "quarantined but delivered")


def case_eight_bit(env):
    latin1 = b"caf\xe9 na\xefve \xa9 \xff"
    body = b"UTF-8: gr\xc3\xbc\xc3\x9fe \xe2\x82\xac\r\nLatin-1: \xe0\xe9\xee\xf5\xfc\r\n"
    reply, session, test_id = send_one(env, "body-digest", headers=[("X-Latin1", latin1)],
                                       body=body, mail_options=("BODY=8BITMIME",))
    message = env.delivered(test_id)
    check_equal(message.body, body, "body")
    check_equal(message.header("X-Interop-Body-SHA256"), hashlib.sha256(body).hexdigest(), "digest")
    as_text = latin1.decode("latin-1")
    check(["header", "X-Latin1", as_text] in session.events, "the filter got the bytes")
    check_equal(message.header("X-Interop-Latin1-Echo"), as_text, "header added back")


def check_filter_log(env):
    check(env.filter.process.poll() is None, "the filter exited")
    bad = [l for l in env.filter.stderr().splitlines() if re.search(r"CRITICAL|WARNING|ERROR", l)]
    check(not bad, "the filter logged problems", env.filter.stderr())


CASES = [
    ("add a header", case_add_header),
    ("reject with a custom reply", case_reject),
    ("tempfail with a custom reply", case_tempfail),
    ("replace the body", case_replace_body),
    ("change, insert and delete headers (no index shift)", case_headers),
    ("change the sender, add and delete recipients", case_envelope),
    ("quarantine", case_quarantine),
    ("8-bit body and Latin-1 header", case_eight_bit),
    ("the filter logged no warnings", check_filter_log),
]


def main():
    if os.geteuid() != 0:
        print("1..0 # SKIP the Sendmail interop tests need root")
        return 0
    tap = Tap()
    resources = Resources()
    try:
        root, keep = make_temp_root(resources, "milter-sendmail-")
        tap.diag("private instance under %s" % root)
        try:
            env = Env(resources, tap, root)
        except SkipCase as skip:
            print("1..0 # SKIP %s" % skip)
            return 0
        except Exception:
            tap.result(False, "start a private Sendmail", traceback.format_exc())
        else:
            tap.result(True, "start a private Sendmail")
            for name, function in CASES:
                tap.run(name, function, env)
        # What is left is for looking into the failure.
        keep["keep"] = keep["keep"] or tap.failed > 0
    except SystemExit as interrupted:  # a signal, see Resources
        print("Bail out! %s" % interrupted, flush=True)
        raise
    finally:
        resources.close()
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main())
