-- SPDX-License-Identifier: LGPL-2.1-or-later
-- OpenDKIM's miltertest (software we did not write) drives our
-- milter-test-client: verdicts, a reply code and a header modification.
local client = os.getenv("MILTER_TEST_CLIENT")
local dir = os.getenv("MILTER_TEST_DIR")

local function fail(what)
  error("miltertest: " .. what)
end

local function expect(conn, expected, what)
  if mt.getreply(conn) ~= expected then
    fail(what .. ": unexpected reply " .. string.format("%q", mt.getreply(conn)))
  end
end

local function start(name, ...)
  local spec = "unix:" .. dir .. "/" .. name .. ".sock"
  mt.startfilter(client, "-q", "-s", spec, ...)
  local conn = mt.connect(spec, 50, 0.1)
  if conn == nil then fail("cannot connect to " .. spec) end
  if mt.negotiate(conn, nil, nil, nil) ~= nil then fail("negotiation with " .. name) end
  return conn
end

local function envelope(conn)
  if mt.conninfo(conn, "client.example", "192.0.2.1") ~= nil then fail("conninfo") end
  expect(conn, SMFIR_CONTINUE, "connect")
  if mt.helo(conn, "client.example") ~= nil then fail("helo") end
  expect(conn, SMFIR_CONTINUE, "helo")
  if mt.mailfrom(conn, "<sender@example.org>") ~= nil then fail("mailfrom") end
  expect(conn, SMFIR_CONTINUE, "mailfrom")
end

-- 1. A header added at end-of-message.
local conn = start("add", "--add-header", "X-Test: yes")
envelope(conn)
if mt.rcptto(conn, "<rcpt@example.net>") ~= nil then fail("rcptto") end
expect(conn, SMFIR_CONTINUE, "rcptto")
if mt.data(conn) ~= nil then fail("data") end
expect(conn, SMFIR_CONTINUE, "data")
if mt.header(conn, "Subject", "hello") ~= nil then fail("header") end
expect(conn, SMFIR_CONTINUE, "header")
if mt.eoh(conn) ~= nil then fail("eoh") end
expect(conn, SMFIR_CONTINUE, "eoh")
if mt.bodystring(conn, "Hello.\r\n") ~= nil then fail("body") end
expect(conn, SMFIR_CONTINUE, "body")
if mt.eom(conn) ~= nil then fail("eom") end
expect(conn, SMFIR_CONTINUE, "eom")
if not mt.eom_check(conn, MT_HDRADD, "X-Test", "yes") then fail("X-Test not added") end
if mt.getheader(conn, "X-Test", 0) ~= "yes" then fail("X-Test value") end
mt.disconnect(conn)

-- 2. A reject at end-of-message with our reply code.
conn = start("reject", "--reply", "end-of-message=reject", "--reply-code", "554 5.7.1 Go away")
envelope(conn)
if mt.rcptto(conn, "<rcpt@example.net>") ~= nil then fail("rcptto") end
expect(conn, SMFIR_CONTINUE, "rcptto")
if mt.eom(conn) ~= nil then fail("eom") end
expect(conn, SMFIR_REPLYCODE, "eom")
if not mt.eom_check(conn, MT_SMTPREPLY, "554", "5.7.1", "Go away") then fail("reply code") end
mt.disconnect(conn)

-- 3. A recipient refused with a temporary failure.
conn = start("tempfail", "--reply", "envelope-recipient=temporary-failure")
envelope(conn)
if mt.rcptto(conn, "<rcpt@example.net>") ~= nil then fail("rcptto") end
expect(conn, SMFIR_TEMPFAIL, "rcptto")
mt.disconnect(conn)

mt.echo("miltertest: all checks passed")
