#!/usr/bin/env ruby
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: run --help
# reject-pattern: rejects messages whose Subject or body matches a regular
# expression, with a custom SMTP reply.
#
#   reject-pattern.rb -s unix:/run/reject.sock --pattern '(?i)lottery|viagra'

require "optparse"
require "gobject-introspection"

module Milter; end
GObjectIntrospection::Loader.load("Milter", Milter, version: "1.0")

# The body kept per message is capped: the pattern is looked for in the
# first MAX_BODY bytes only.
MAX_BODY = 1024 * 1024

# The state of one MTA connection. Header values and the body are bytes
# that need not be UTF-8, so everything is matched as binary strings.
class Connection
  def initialize(pattern)
    @pattern = pattern
    reset
  end

  def reset
    @body = String.new(encoding: Encoding::BINARY)
    @matched = false
  end

  def header(name, value)
    @matched ||= name.b.casecmp?("subject") && @pattern.match?(value.b)
  end

  # Returns whether the rest of the body can be skipped.
  def add_body(chunk)
    @body << chunk.to_s.byteslice(0, MAX_BODY - @body.bytesize)
    @body.bytesize >= MAX_BODY
  end

  def matched?
    @matched || @pattern.match?(@body)
  end
end

pattern = nil
parser = OptionParser.new("Usage: #{File.basename($PROGRAM_NAME)} [OPTION]... --pattern REGEX")
parser.on("-p", "--pattern=REGEX",
          "A regular expression looked for in the Subject and the body") do |source|
  pattern = Regexp.new(source.b)
end

client = Milter::Client.new
begin
  # The options every filter has (-s, --timeout, --user…); the program's
  # own ones stay. ruby-gnome returns [valid, rest of argv].
  _valid, argv = client.parse_command_line([$PROGRAM_NAME, *ARGV])
  parser.parse!(argv.drop(1))
  raise OptionParser::MissingArgument, "--pattern" unless pattern
rescue OptionParser::ParseError, RegexpError, GLib::ErrorInfo => error
  warn("#{parser.program_name}: #{error.message}")
  exit(2)
end

# Blocks for status signals end with a status: an exception or nil would
# end the whole program (ruby-gnome's GLib.exit_application).
client.signal_connect("connection-established") do |_client, context|
  connection = Connection.new(pattern)
  context.signal_connect("envelope-from") do
    connection.reset # a new message
    Milter::Status::CONTINUE
  end
  context.signal_connect("header") do |_context, name, value|
    connection.header(name, value)
    Milter::Status::CONTINUE
  end
  context.signal_connect("body-bytes") do |_context, chunk|
    # Nothing more to learn: ask the MTA to skip the rest of the body.
    connection.add_body(chunk) ? Milter::Status::SKIP : Milter::Status::CONTINUE
  end
  context.signal_connect("end-of-message-bytes") do |ctx, _chunk|
    if connection.matched?
      # Used by the REJECT (its class matches).
      ctx.set_reply(550, "5.7.1", "Message rejected: it matches a blocked pattern")
      Milter::Status::REJECT
    else
      Milter::Status::CONTINUE
    end
  end
end
begin
  client.run
rescue GLib::ErrorInfo => error
  warn("reject-pattern: #{error.message}")
  exit(1)
end
