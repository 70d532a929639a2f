#!/usr/bin/env bash
# Generate the speech-recognition fixtures: espeak-ng speech (several voices and rates) through a
# telephone chain (300–3400 Hz band-pass, 8 kHz, μ-law; some clips with noise) plus a manifest
# with the reference transcript, answer type, choices, the question asked and the expected value.
#
# Usage: scripts/gen-asr-fixtures.sh [OUT_DIR]     (default fixtures/asr)
# Needs: espeak-ng, sox. Output is deterministic (sox -R), so regenerating changes nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/fixtures/asr}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

VOICES=(en-us en-gb+m3 en-us+f3 en-gb-scotland en-029 en-gb-x-rp+f2)
RATES=(150 165 140 175 155 160)
MANIFEST="$OUT/manifest.tsv"
printf 'file\tanswer_type\tchoices\tquestion\treference\tvalue\n' >"$MANIFEST"
n="${VOICE_OFFSET:-0}"  # rotates voices and rates (held-out sets for experiments)

# clip NAME TYPE CHOICES QUESTION REFERENCE VALUE [noise]
clip() {
    local name="$1" type="$2" choices="$3" question="$4" text="$5" value="$6" noise="${7:-}"
    local voice="${VOICES[$((n % ${#VOICES[@]}))]}" rate="${RATES[$((n % ${#RATES[@]}))]}"
    n=$((n + 1))
    espeak-ng -v "$voice" -s "$rate" -w "$TMP/raw.wav" "$text"
    # Band-limit as a telephone line does, then resample and companding to 8 kHz μ-law.
    sox -R "$TMP/raw.wav" "$TMP/band.wav" sinc 300-3400 gain -n -3
    if [[ -n "$noise" ]]; then
        local dur
        dur="$(soxi -D "$TMP/band.wav")"
        sox -R -n -r "$(soxi -r "$TMP/band.wav")" -c 1 "$TMP/noise.wav" synth "$dur" pinknoise sinc 300-3400
        sox -R -m "$TMP/band.wav" -v "$noise" "$TMP/noise.wav" "$TMP/mixed.wav"
        mv "$TMP/mixed.wav" "$TMP/band.wav"
    fi
    sox -R "$TMP/band.wav" -r 8000 -e u-law -b 8 -c 1 "$OUT/$name.wav"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name.wav" "$type" "$choices" "$question" "$text" "$value" >>"$MANIFEST"
}

# Free-form utterances, the kind callers say to a support line.
free() { clip "free_$1" free "" "How can I help you today?" "$2" "" "${3:-}"; }
free 01 "I would like to change the address on my account."
free 02 "My internet has been down since yesterday morning."
free 03 "Can you tell me when my next bill is due?"
free 04 "I want to cancel my subscription at the end of the month."
free 05 "The package was delivered to the wrong house."
free 06 "Please send me a copy of the invoice by email."
free 07 "I was charged twice for the same order." 0.05
free 08 "Could I speak to someone in the sales department?"
free 09 "My card expired and I need to update it."
free 10 "The technician never showed up for the appointment." 0.05
free 11 "I need to book a table for four people on Friday evening."
free 12 "Is the store open on Sunday afternoon?"
free 13 "I forgot my password and cannot log in."
free 14 "We are moving to a new apartment next week." 0.05
free 15 "The phone keeps dropping calls in the kitchen."
free 16 "Can you reschedule my delivery for Tuesday?"
free 17 "I would like to upgrade to the premium plan."
free 18 "There is a problem with the heating in my flat." 0.05
free 19 "Thank you very much for your help today."
free 20 "Please call me back after five o'clock."

YN_Q="Shall I book the appointment for you?"
yn() { clip "yes_no_$1" yes_no "" "$YN_Q" "$2" "$3" "${4:-}"; }
yn 01 "Yes." true
yn 02 "No." false
yn 03 "Yes, please." true
yn 04 "No, thank you." false
yn 05 "Yeah, that's fine." true 0.05
yn 06 "No, not right now." false
yn 07 "Sure, go ahead." true
yn 08 "Nope." false 0.05
yn 09 "Yes, that is correct." true
yn 10 "No, I don't think so." false
yn 11 "Yep." true
yn 12 "Absolutely not." false

CH_CHOICES="billing,technical support,sales,cancellations"
CH_Q="Which department do you need: billing, technical support, sales or cancellations?"
ch() { clip "choice_$1" choice "$CH_CHOICES" "$CH_Q" "$2" "$3" "${4:-}"; }
ch 01 "Billing." billing
ch 02 "Technical support." "technical support"
ch 03 "Sales, please." sales
ch 04 "Cancellations." cancellations
ch 05 "I need technical support." "technical support" 0.05
ch 06 "Billing, please." billing
ch 07 "Sales." sales 0.05
ch 08 "I want cancellations." cancellations

dg() { clip "digits_$1" digits "" "What is your account number?" "$2" "$3" "${4:-}"; }
dg 01 "Four seven one nine." 4719
dg 02 "Two five five, eight three zero." 255830
dg 03 "Nine oh six one two." 90612
dg 04 "One two three four five six." 123456
dg 05 "Eight eight four two." 8842 0.05
dg 06 "Three zero seven seven one." 30771

dt() { clip "date_$1" date "" "What date would you like the appointment?" "$2" "$3" "${4:-}"; }
dt 01 "March fifth, twenty twenty six." 2026-03-05
dt 02 "The twelfth of June." --06-12
dt 03 "July fourth." --07-04
dt 04 "December first, twenty twenty five." 2025-12-01

tm() { clip "time_$1" time "" "What time works for you?" "$2" "$3" "${4:-}"; }
tm 01 "Three thirty in the afternoon." 15:30
tm 02 "Ten a.m." 10:00
tm 03 "Half past nine in the morning." 09:30
tm 04 "Four fifteen p.m." 16:15

am() { clip "amount_$1" amount "" "How much would you like to pay?" "$2" "$3" "${4:-}"; }
am 01 "Fifty dollars." 50.00
am 02 "One hundred and twenty dollars." 120.00
am 03 "Twenty five dollars and fifty cents." 25.50
am 04 "Three hundred dollars." 300.00

sp() { clip "spelling_$1" spelling "" "Please spell your last name." "$2" "$3" "${4:-}"; }
sp 01 "S M I T H." SMITH
sp 02 "J O N E S." JONES
sp 03 "B R O W N." BROWN
sp 04 "K I N G." KING

# More free-form sentences, appended last so the clips above keep their voices and rates.
free 21 "I have a question about my last payment."
free 22 "The screen on my new laptop is cracked." 0.05
free 23 "Can I change the date of my flight?"
free 24 "My neighbour's dog has been barking all night."
free 25 "I would like to report a lost credit card."
free 26 "How long will the repair take?" 0.05
free 27 "The water pressure in the shower is very low."
free 28 "Please remove my number from your mailing list."
free 29 "I ordered a blue jacket but received a red one."
free 30 "When does the new season start?" 0.05
free 31 "My daughter needs a doctor's appointment this week."
free 32 "The meeting has been moved to Thursday morning."
free 33 "Can you confirm my booking for tonight?"
free 34 "The train was forty minutes late again." 0.05
free 35 "I cannot hear you very well, the line is bad."
free 36 "We need two rooms for three nights."
free 37 "Is breakfast included in the price?"
free 38 "My parcel says delivered but nothing arrived." 0.05
free 39 "I would like to speak to a manager, please."
free 40 "Could you spell the name of the street for me?"

# Container variants for the WAV reader: the same sentence as 8 kHz A-law and 16 kHz PCM16.
espeak-ng -v en-us -s 150 -w "$TMP/raw.wav" "Please send me a copy of the invoice by email."
sox -R "$TMP/raw.wav" -r 8000 -e a-law -b 8 "$OUT/format_alaw_8k.wav" sinc 300-3400
sox -R "$TMP/raw.wav" -r 16000 -e signed -b 16 "$OUT/format_pcm16_16k.wav"
sox -R "$TMP/raw.wav" -r 22050 -c 2 -e signed -b 16 "$OUT/format_stereo_22k.wav" trim 0 0.5

echo "gen-asr-fixtures: $n clips + 3 format variants in $OUT ($(du -sh "$OUT" | cut -f1))"
