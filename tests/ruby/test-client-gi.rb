#!/usr/bin/env ruby
# SPDX-License-Identifier: LGPL-2.1-or-later
# Milter::Client and Milter::ClientContext from Ruby: each test serves a
# filter on a unix socket in a temporary directory from this process's
# GLib main loop, and milter-test-server (once Milter::ServerContext)
# plays the MTA.

require_relative "helper"

class TestClientGI < Test::Unit::TestCase
  include MilterTestHelper

  def setup
    @handlers = {}
    @dir = Dir.mktmpdir("milter-gi-")
    @spec = "unix:#{File.join(@dir, "milter.sock")}"
    @client = Milter::Client.new
    @client.set_connection_spec(@spec)
    @client.signal_connect("connection-established") do |_client, context|
      @handlers.each { |name, handler| context.signal_connect(name, &handler) }
    end
    @client.listen
  end

  def teardown
    wait_for("the sessions to end") { @client.n_processing_sessions.zero? }
  ensure
    @client.shutdown
    FileUtils.rm_rf(@dir)
  end

  def test_signals_arrive
    events = []
    record = lambda do |name|
      lambda do |_context, *args|
        events << [name, *args]
        Milter::Status::CONTINUE # a status-returning block ends with a value
      end
    end
    @handlers = {
      "connect" => lambda do |context, host, address|
        events << ["connect", host, address.gtype.name, address.port,
                   context.get_macro("j")]
        Milter::Status::CONTINUE
      end,
      "helo" => record.call("helo"),
      "envelope-from" => record.call("envelope-from"),
      "envelope-recipient" => record.call("envelope-recipient"),
      "data" => record.call("data"),
      "header" => record.call("header"),
      "end-of-header" => record.call("end-of-header"),
      "body-bytes" => lambda do |_context, chunk|
        events << ["body-bytes", chunk.class, chunk.to_s]
        Milter::Status::CONTINUE
      end,
      "end-of-message-bytes" => lambda do |context, chunk|
        events << ["end-of-message-bytes", chunk, context.macros.class,
                   context.get_command_macros(Milter::Command::ENVELOPE_FROM)["{mail_addr}"]]
        Milter::Status::CONTINUE
      end,
      "finished" => lambda { |_context| events << ["finished"] },
    }
    result = drive_in_loop(@spec, "--connect-macro", "j:mx.example", "-h", "Subject:hi",
                           "-b", "line one")
    assert_equal(["pass", 0], [result["status"], result["exit"]])
    wait_for("finished") { events.last == ["finished"] }
    assert_equal([
                   ["connect", "client.example.com", "GInetSocketAddress", 50443, "mx.example"],
                   ["helo", "client.example.com"],
                   ["envelope-from", "<sender@example.com>"],
                   ["envelope-recipient", "<recipient@example.org>"],
                   ["data"],
                   ["header", "Subject", "hi"],
                   ["end-of-header"],
                   ["body-bytes", GLib::Bytes, "line one"],
                   ["end-of-message-bytes", nil, Hash, "sender@example.com"],
                   ["finished"],
                 ],
                 events)
  end

  # Typed as flags, they once read as garbage here.
  def test_mask_constants
    assert_equal([0x1FF, 0x1FFFFF, 0x37F, 0xFF080, 0x30000000],
                 [Milter::ACTION_ALL, Milter::STEP_ALL, Milter::STEP_NO_EVENT_MASK,
                  Milter::STEP_NO_REPLY_MASK, Milter::STEP_MAX_DATA_SIZE_MASK])
  end

  def test_reject_with_reply_code
    @handlers = {
      "envelope-recipient" => lambda do |context, recipient|
        next Milter::Status::CONTINUE unless recipient == "<nobody@example.org>"
        context.set_reply(550, "5.1.1", "No such user")
        Milter::Status::REJECT
      end,
    }
    result = drive_in_loop(@spec, "-r", "<nobody@example.org>")
    assert_equal(["reject", "envelope-recipient", "550 5.1.1 No such user", 2],
                 result.values_at("status", "stage", "reply", "exit"))
  end

  def test_add_header
    @handlers = {
      "end-of-message-bytes" => lambda do |context, _chunk|
        context.add_header("X-Ruby", "yes")
        :continue # a nick works as well as Milter::Status::CONTINUE
      end,
    }
    result = drive_in_loop(@spec)
    assert_equal(["pass", 0], result.values_at("status", "exit"))
    assert_equal([["X-Ruby", "yes"]], header_modifications(result))
  end

  def test_progress_with_deferred_reply
    @handlers = {
      "helo" => lambda do |context, fqdn|
        GLib::Timeout.add(200) do
          verdict = fqdn.end_with?(".invalid") ? Milter::Status::REJECT : Milter::Status::CONTINUE
          context.reply(verdict)
          GLib::Source::REMOVE
        end
        Milter::Status::PROGRESS
      end,
      "end-of-message-bytes" => lambda do |context, _chunk|
        GLib::Timeout.add(100) do
          # Still end-of-message: keep-alive and modifications are allowed
          # until the reply.
          context.progress
          context.add_header("X-Deferred", "yes")
          context.reply(Milter::Status::CONTINUE)
          GLib::Source::REMOVE
        end
        Milter::Status::PROGRESS
      end,
    }
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    rejected = drive_in_loop(@spec, "--helo-fqdn", "nowhere.invalid")
    assert_operator(Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :>=, 0.2)
    assert_equal(["reject", "helo", 2], rejected.values_at("status", "stage", "exit"))
    passed = drive_in_loop(@spec, "--helo-fqdn", "client.example")
    assert_equal(["pass", 0], passed.values_at("status", "exit"))
    assert_equal([["X-Deferred", "yes"]], header_modifications(passed))
  end

  # Runs one Milter::ServerContext command on this main loop.
  def call(mta, name, *args)
    async_result = nil
    mta.send("#{name}_async", *args, nil) { |_source, result| async_result = result }
    wait_for(name) { async_result }
    mta.send("#{name}_finish", async_result)
  end

  def test_driven_by_server_context
    chunks = []
    @handlers = {
      "body-bytes" => lambda do |_context, chunk|
        chunks << chunk.to_s
        Milter::Status::CONTINUE
      end,
      "envelope-recipient" => lambda do |context, recipient|
        next Milter::Status::CONTINUE unless recipient == "<nobody@example.org>"
        context.set_reply(550, "5.1.1", "No such user")
        Milter::Status::REJECT
      end,
      "end-of-message-bytes" => lambda do |context, _chunk|
        context.add_header("X-Ruby", "yes")
        Milter::Status::CONTINUE
      end,
    }
    mta = Milter::ServerContext.new
    mta.set_connection_spec(@spec)
    added = []
    # get_modifications returns a GPtrArray, which ruby-gnome 3.4 cannot
    # convert: get_modification(i) and the signals tell the same.
    mta.signal_connect("add-header") { |_mta, name, value| added << [name, value] }
    assert_true(call(mta, "establish_connection"))
    assert_true(call(mta, "negotiate", nil))
    assert_equal(Milter::Status::CONTINUE, call(mta, "connect", "client.example", nil))
    assert_equal(Milter::Status::CONTINUE, call(mta, "helo", "client.example"))
    assert_equal(Milter::Status::CONTINUE, call(mta, "envelope_from", "<a@example.com>", nil))
    assert_equal(Milter::Status::REJECT,
                 call(mta, "envelope_recipient", "<nobody@example.org>", nil))
    assert_equal("550 5.1.1 No such user", mta.reply_text)
    assert_equal(Milter::Status::CONTINUE, call(mta, "envelope_recipient", "<b@example.org>", nil))
    assert_equal(Milter::Status::CONTINUE, call(mta, "data"))
    assert_equal(Milter::Status::CONTINUE, call(mta, "end_of_header"))
    assert_equal(Milter::Status::CONTINUE, call(mta, "body", GLib::Bytes.new("one\0two")))
    assert_equal(Milter::Status::CONTINUE, call(mta, "end_of_message"))
    assert_equal(["one\0two"], chunks)
    assert_equal([["X-Ruby", "yes"]], added)
    assert_equal(1, mta.n_modifications)
    assert_equal("add-header: X-Ruby: yes", mta.get_modification(0).to_s)
    assert_equal("X-Ruby", mta.get_modification(0).name)
    assert_nil(mta.get_modification(1))
    assert_true(call(mta, "quit"))
  end

  def test_command_line_options
    client = Milter::Client.new
    # ruby-gnome 3.4 ignores (skip) on the boolean result: it comes first.
    valid, argv = client.parse_command_line(["filter", "--timeout=9", "-s", "inet:10026", "--verbose"])
    assert_true(valid)
    assert_equal(["filter", "--verbose"], argv)
    assert_equal("inet:10026", client.connection_spec)
    assert_equal(9, client.timeout)
    error = assert_raise(Milter::ConnectionSpecError::EmptyPath) do
      client.parse_command_line(["filter", "-s", "unix:"])
    end
    assert_match(/unix:/, error.message)
  end
end
