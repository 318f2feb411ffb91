#!/bin/sh
# Regenerates callgw's default prompts (media/prompts/*.opus, embedded in the
# binary) and the media test fixtures (media/testdata/*.opus).
# Needs espeak-ng and opus-tools (Debian: apt-get install espeak-ng opus-tools)
# and Go. Run from anywhere: sh media/prompts/make.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$root"
go build -o "$tmp/wavgen" ./media/prompts/internal/wavgen

# opusenc: 20 ms frames, 24 kb/s, fixed serial and no dates so the output is
# reproducible.
enc() { opusenc --quiet --framesize "${3:-20}" --bitrate "${4:-24}" --serial 1 "$1" "$2"; }

say() { # name text
	espeak-ng -v en-us -s 150 -w "$tmp/$1.wav" "$2"
	enc "$tmp/$1.wav" "$here/$1.opus"
}

say welcome "Welcome. Thank you for calling."
say queue "All our agents are busy at the moment. Please stay on the line, and we will be with you shortly."
say menu_example "For sales, press 1. For support, press 2. To hear these options again, press 9."
say transfer "Please hold while we transfer you."
say goodbye "Thank you for calling. Goodbye."
say consent_notice "This call may be recorded for quality and training purposes."
say consent_explicit "This call may be recorded. To agree to the recording, press 1. Otherwise, press 2."
say unavailable "Sorry, nobody can take your call right now. We will call you back as soon as possible."

"$tmp/wavgen" -melody -o "$tmp/hold.wav"
enc "$tmp/hold.wav" "$here/hold.opus" 20 20

# Test fixtures: known tones, several frame sizes.
td="$root/media/testdata"
mkdir -p "$td"
"$tmp/wavgen" -tone 700 -dur 1s -o "$tmp/tone-700.wav"
enc "$tmp/tone-700.wav" "$td/tone-700.opus"
enc "$tmp/tone-700.wav" "$td/tone-700-60ms.opus" 60
enc "$tmp/tone-700.wav" "$td/tone-700-10ms.opus" 10
"$tmp/wavgen" -tone 1500 -dur 2s -o "$tmp/tone-1500.wav"
enc "$tmp/tone-1500.wav" "$td/tone-1500.opus"
ls -l "$here"/*.opus "$td"/*.opus
