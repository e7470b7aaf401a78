#!/usr/bin/env ruby
# SPDX-License-Identifier: LGPL-2.1-or-later
# add-header: the smallest useful milter. It adds one header to every
# message. Run it, then point the MTA at it:
#
#   add-header.rb -s unix:/run/add-header.sock
#   # Postfix main.cf:  smtpd_milters = unix:/run/add-header.sock

require "optparse"
require "gobject-introspection"

module Milter; end
GObjectIntrospection::Loader.load("Milter", Milter, version: "1.0")

client = Milter::Client.new
parser = OptionParser.new("Usage: #{File.basename($PROGRAM_NAME)} [OPTION]...")
begin
  # The options every filter has (-s/--connection-spec, --timeout, --user,
  # --daemon…; --help lists them). Without -s: systemd's sockets, or
  # inet:10025@127.0.0.1. ruby-gnome returns [valid, rest of argv].
  _valid, argv = client.parse_command_line([$PROGRAM_NAME, *ARGV])
  parser.parse!(argv.drop(1)) # this example has no option of its own
rescue OptionParser::ParseError, GLib::ErrorInfo => error
  warn("#{parser.program_name}: #{error.message}")
  exit(2)
end

client.signal_connect("connection-established") do |_client, context|
  # Only end-of-message has a handler, so the MTA is asked to leave out
  # every other event: no round trips for headers, body chunks…
  context.signal_connect("end-of-message-bytes") do |ctx, _chunk|
    # Modifications are only allowed here, at end-of-message.
    begin
      ctx.add_header("X-Milter-Glib", "add-header example")
    rescue GLib::ErrorInfo => error
      warn("add-header: cannot add the header: #{error.message}")
    end
    # A block for a status signal must end with a status: an exception or
    # nil here would end the whole program (ruby-gnome's
    # GLib.exit_application).
    Milter::Status::CONTINUE
  end
end
begin
  client.run # until SIGTERM or SIGINT
rescue GLib::ErrorInfo => error
  warn("add-header: #{error.message}")
  exit(1)
end
