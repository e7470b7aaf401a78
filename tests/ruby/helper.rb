# SPDX-License-Identifier: LGPL-2.1-or-later
# What the Ruby GI tests share: loading Milter from the typelib (exit 77,
# meson's "skipped", without the gobject-introspection gem), the GLib
# main loop with a deadline, and milter-test-server runs.

begin
  require "gobject-introspection"
rescue LoadError
  exit(77)
end
require "fileutils"
require "json"
require "tmpdir"
require "test/unit"

module Milter; end
GObjectIntrospection::Loader.load("Milter", Milter, version: "1.0")

module MilterTestHelper
  BUILD_ROOT = ENV.fetch("MILTER_BUILD_ROOT")
  TEST_SERVER = File.join(BUILD_ROOT, "tools", "milter-test-server")
  # Generous: sanitizer builds and a loaded CI machine are slow.
  TIMEOUT = 20

  module_function

  # Runs the default main context until the block is true; fails after
  # timeout seconds.
  def wait_for(what, timeout: TIMEOUT)
    context = GLib::MainContext.default
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    # A heartbeat, so that a blocking iteration returns to check the
    # deadline even when nothing else happens.
    heartbeat = GLib::Timeout.add(20) { GLib::Source::CONTINUE }
    until yield
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        raise Test::Unit::AssertionFailedError, "timed out waiting for #{what}"
      end
      context.iteration(true)
    end
  ensure
    GLib::Source.remove(heartbeat) if heartbeat
  end

  # Runs argv with its output in files; the block waits for the process
  # (it gets the pid and returns when the process has ended). Kills the
  # process if it is still running then. Returns [stdout, stderr, status].
  def run_process(argv)
    Dir.mktmpdir("milter-gi-run-") do |dir|
      out = File.join(dir, "out")
      err = File.join(dir, "err")
      pid = Process.spawn(*argv, out: out, err: err)
      status = nil
      begin
        status = yield(pid)
      ensure
        unless status
          Process.kill(:KILL, pid)
          Process.wait(pid)
        end
      end
      [File.binread(out), File.binread(err), status]
    end
  end

  # Runs milter-test-server --json against spec while this process's main
  # loop serves the filter. Returns the parsed result with "exit".
  def drive_in_loop(spec, *args)
    out, err, status = run_process([TEST_SERVER, "-s", spec, "--json", *args]) do |pid|
      result = nil
      wait_for("milter-test-server") { result = Process.wait2(pid, Process::WNOHANG) }
      result[1]
    end
    parse_result(out, err, status)
  end

  # Runs milter-test-server --json against a filter in another process.
  def drive(spec, *args)
    out, err, status = run_process([TEST_SERVER, "-s", spec, "--json", *args]) do |pid|
      wait_process(pid)
    end
    parse_result(out, err, status)
  end

  def wait_process(pid, timeout: TIMEOUT * 6)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      _, status = Process.wait2(pid, Process::WNOHANG)
      return status if status
      return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep(0.01)
    end
  end

  def parse_result(out, err, status)
    result = JSON.parse(out)
    result["exit"] = status.exitstatus
    result
  rescue JSON::ParserError
    raise Test::Unit::AssertionFailedError, "milter-test-server: #{out.inspect} #{err.inspect}"
  end

  def header_modifications(result, type = "add-header")
    result["modifications"].select { |m| m["type"] == type }.map { |m| [m["name"], m["value"]] }
  end

  # A filter program listening on a unix socket in a temporary
  # directory; #stop always ends it.
  class Filter
    attr_reader :spec

    def initialize(*argv)
      @dir = Dir.mktmpdir("milter-gi-")
      socket = File.join(@dir, "filter.sock")
      @spec = "unix:#{socket}"
      @output = File.join(@dir, "output")
      @pid = Process.spawn(*argv, "-s", @spec, out: @output, err: [:child, :out])
      @status = nil
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + TIMEOUT
      until File.socket?(socket)
        _, @status = Process.wait2(@pid, Process::WNOHANG)
        if @status || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          stop
          raise Test::Unit::AssertionFailedError, "the filter did not start: #{read_output}"
        end
        sleep(0.01)
      end
    end

    def read_output
      @final_output || File.read(@output)
    end

    # Stops the filter as a service manager does (SIGTERM); returns its
    # Process::Status. read_output still works afterwards.
    def stop
      unless @status
        Process.kill(:TERM, @pid)
        @status = MilterTestHelper.wait_process(@pid, timeout: TIMEOUT)
        unless @status
          Process.kill(:KILL, @pid)
          _, @status = Process.wait2(@pid)
        end
      end
      @final_output ||= read_output
      FileUtils.rm_rf(@dir)
      @status
    end

    def self.open(*argv)
      filter = new(*argv)
      begin
        yield(filter)
      ensure
        filter.stop
      end
    end
  end
end
