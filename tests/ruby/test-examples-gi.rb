#!/usr/bin/env ruby
# SPDX-License-Identifier: LGPL-2.1-or-later
# The Ruby examples in milter-client/examples/ruby, run as programs on a
# unix socket and driven by milter-test-server: the same results as the C
# examples (tests/test-examples.py).

require_relative "helper"
require "rbconfig"

class TestExamplesGI < Test::Unit::TestCase
  include MilterTestHelper

  EXAMPLES = File.expand_path("../../milter-client/examples/ruby", __dir__)
  RUBY = RbConfig.ruby

  def example(name, *args, &block)
    Filter.open(RUBY, File.join(EXAMPLES, "#{name}.rb"), *args, &block)
  end

  # SIGTERM is a clean shutdown for a milter: exit status 0.
  def assert_stops(filter)
    status = filter.stop
    assert_equal(0, status.exitstatus, filter.read_output)
  end

  def test_add_header
    result = example("add-header") do |filter|
      drive(filter.spec).tap { assert_stops(filter) }
    end
    assert_equal(0, result["exit"])
    assert_equal([["X-Milter-Glib", "add-header example"]], header_modifications(result))
    # Only end-of-message has a handler: everything else is left out.
    assert_equal(0x37f, result["negotiated"]["step"] & 0x37f)
  end

  def test_reject_pattern
    results = example("reject-pattern", "--pattern", "(?i)lottery") do |filter|
      [
        drive(filter.spec, "-h", "Subject:hello", "-b", "nothing to see"),
        drive(filter.spec, "-h", "Subject:You won the LOTTERY"),
        drive(filter.spec, "-h", "Subject:hi", "-b", "first chunk\n", "-b", "play the lottery\n"),
      ].tap { assert_stops(filter) }
    end
    clean, *rejected = results
    assert_equal(["pass", 0], clean.values_at("status", "exit"))
    rejected.each do |result|
      assert_equal(["reject", 2, "550 5.7.1 Message rejected: it matches a blocked pattern"],
                   result.values_at("status", "exit", "reply"))
    end
  end

  def test_reject_pattern_latin1
    # Header values and the body need not be UTF-8.
    Dir.mktmpdir("milter-gi-") do |dir|
      mails = ["caf\xE9", "caf\xE9 LOTTERY"].each_with_index.map do |subject, i|
        File.join(dir, "#{i}.eml").tap do |path|
          File.binwrite(path, "Subject: #{subject}\r\n\r\nd\xE9j\xE0 vu\r\n".b)
        end
      end
      results = example("reject-pattern", "--pattern", "(?i)lottery") do |filter|
        mails.map { |mail| drive(filter.spec, "--mail-file", mail) }.tap { assert_stops(filter) }
      end
      assert_equal(["pass", "reject"], results.map { |result| result["status"] })
    end
  end

  def test_reject_pattern_needs_a_pattern
    out, err, status = run_process([RUBY, File.join(EXAMPLES, "reject-pattern.rb")]) do |pid|
      wait_process(pid)
    end
    assert_equal(2, status.exitstatus, out + err)
    assert_match(/--pattern/, err)
  end

  def test_resolve_helo
    known, unknown = example("resolve-helo") do |filter|
      [
        drive(filter.spec, "--helo-fqdn", "localhost"),
        drive(filter.spec, "--helo-fqdn", "no-such-host.invalid"),
      ].tap { assert_stops(filter) }
    end
    assert_equal([0, 0], [known["exit"], unknown["exit"]])
    # GLib answers localhost itself, with either loopback address first.
    assert_include(["localhost=127.0.0.1", "localhost=::1"], header_modifications(known)[0][1])
    assert_equal([["X-HELO-Resolved", "no-such-host.invalid=unresolved"]],
                 header_modifications(unknown))
  end

  def test_resolve_helo_concurrent
    # The lookups are deferred replies: many sessions at once still work.
    out, err, status = example("resolve-helo") do |filter|
      run_process([TEST_SERVER, "-s", filter.spec, "--helo-fqdn", "localhost",
                   "--n-messages", "200", "--concurrency", "32"]) do |pid|
        wait_process(pid)
      end
    end
    assert_equal(0, status.exitstatus, out + err)
    assert_match(/^errors: 0$/, out)
  end

  def test_options
    require "open3"
    script = File.join(EXAMPLES, "reject-pattern.rb")
    out, _err, status = Open3.capture3(RUBY, script, "--help")
    assert_equal(0, status.exitstatus)
    ["--connection-spec", "--timeout", "--n-workers", "--user"].each { |option| assert_match(option, out) }
    _out, err, status = Open3.capture3(RUBY, script, "-s", "nowhere:1", "-p", "x")
    assert_equal(2, status.exitstatus, err)
    assert_match("Invalid connection spec “nowhere:1”", err)
    _out, err, status = Open3.capture3(RUBY, script, "--timeout=3", "--nonsense")
    assert_equal(2, status.exitstatus, err)
    assert_match("invalid option: --nonsense", err)
  end
end
