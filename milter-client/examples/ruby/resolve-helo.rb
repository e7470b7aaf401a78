#!/usr/bin/env ruby
# SPDX-License-Identifier: LGPL-2.1-or-later
# resolve-helo: an asynchronous milter. At HELO it looks the name up in
# DNS with Gio::Resolver; meanwhile the reply is deferred (PROGRESS) and
# the main loop serves the other connections. At end-of-message it records
# the result in a header.
#
#   resolve-helo.rb -s inet:10025@127.0.0.1

require "optparse"
require "gio2"
require "gobject-introspection"

module Milter; end
GObjectIntrospection::Loader.load("Milter", Milter, version: "1.0")

client = Milter::Client.new
parser = OptionParser.new("Usage: #{File.basename($PROGRAM_NAME)} [OPTION]...")
begin
  # The options every filter has (-s, --timeout, --user…). ruby-gnome
  # returns [valid, rest of argv].
  _valid, argv = client.parse_command_line([$PROGRAM_NAME, *ARGV])
  parser.parse!(argv.drop(1))
rescue OptionParser::ParseError, GLib::ErrorInfo => error
  warn("#{parser.program_name}: #{error.message}")
  exit(2)
end

# Blocks for status signals end with a status: an exception or nil would
# end the whole program (ruby-gnome's GLib.exit_application).
client.signal_connect("connection-established") do |_client, context|
  # What this connection learnt about its HELO name.
  helo = nil
  result = nil

  context.signal_connect("helo") do |ctx, fqdn|
    helo = fqdn
    Gio::Resolver.default.lookup_by_name_async(fqdn) do |resolver, async_result|
      result = begin
        resolver.lookup_by_name_finish(async_result).first.to_s
      rescue GLib::ErrorInfo
        "unresolved"
      end
      # Answer the deferred HELO now; if the MTA has gone meanwhile, this
      # does nothing.
      ctx.reply(Milter::Status::CONTINUE)
    end
    # Not known yet: the context reads nothing more from this MTA until
    # ctx.reply is called.
    Milter::Status::PROGRESS
  end

  context.signal_connect("end-of-message-bytes") do |ctx, _chunk|
    if helo # else no HELO was given
      begin
        ctx.add_header("X-HELO-Resolved", "#{helo}=#{result}")
      rescue GLib::ErrorInfo => error
        warn("resolve-helo: #{error.message}")
      end
    end
    Milter::Status::CONTINUE
  end
end
begin
  client.run
rescue GLib::ErrorInfo => error
  warn("resolve-helo: #{error.message}")
  exit(1)
end
