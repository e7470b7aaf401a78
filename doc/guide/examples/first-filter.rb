#!/usr/bin/env ruby
# SPDX-License-Identifier: LGPL-2.1-or-later
# guide-check: filter => result["status"] == "pass" and headers == [("X-Filtered", "yes")]
# guide-check: refuses --usr=nobody => first-filter: unknown argument --usr=nobody
# first-filter.rb: adds "X-Filtered: yes" to every message.

require "gobject-introspection"

module Milter; end
GObjectIntrospection::Loader.load("Milter", Milter, version: "1.0")

client = Milter::Client.new
client.signal_connect("connection-established") do |_client, context|
  # One context per MTA connection: connect its handlers here.
  context.signal_connect("end-of-message-bytes") do |ctx, _chunk|
    # Modifications are only allowed at end-of-message.
    ctx.add_header("X-Filtered", "yes")
    # A status block must end with a status (see below).
    Milter::Status::CONTINUE
  end
end
begin
  _valid, rest = client.parse_command_line([$PROGRAM_NAME, *ARGV]) # -s SPEC, --timeout, --user…
  abort("first-filter: unknown argument #{rest[1]}") if rest.size > 1
  client.run
rescue GLib::ErrorInfo => error
  warn("first-filter: #{error.message}")
  exit(1)
end
