#!/usr/bin/env bash
# Real network shaping: P0 and P1 run as separate processes in two network namespaces joined by
# a veth pair shaped with tc netem (LAN: 5 Gbps, 0.2 ms each way = 0.4 ms RTT; WAN: 400 Mbps,
# 20 ms each way = 40 ms RTT, the Ditto / PUMA settings); the dealer and the client sit in a third
# namespace with unshaped links to both parties. Prints each profile's measured online time
# (the parties' own count, weight setup excluded) beside `ditto bench`'s modeled one.
# On a kernel without sch_netem (this development machine's has none) the P0 <-> P1 connection
# runs through `ditto shape` instead, a userspace relay in P1's namespace with the same rate and
# one-way delay per direction (set DITTO_SHAPER=relay to force it).
#
# Usage (root: ip netns and tc): bench/netem.sh [ARCH] [SEQ] [PROFILES]
#   bench/netem.sh bert-tiny 16            # quick
#   bench/netem.sh bert-base 128 "lan wan"
# Only the project's own namespaces (ditto-hub, ditto-p0, ditto-p1, removed on exit) and their
# private 10.77.0.0/16 addresses are used; the host's interfaces are never touched.
set -euo pipefail

ARCH=${1:-bert-tiny}
SEQ=${2:-16}
PROFILES=${3:-"lan wan"}
QUANT=${DITTO_QUANT:-ditto}
cd "$(dirname "$0")/.."
BIN=${DITTO_BIN:-${CARGO_TARGET_DIR:-target}/release/ditto}
[ -x "$BIN" ] || cargo build --release -p ditto-cli
[ "$(id -u)" = 0 ] || { echo "netem.sh: needs root (ip netns, tc)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/ditto-netem.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for n in ditto-hub ditto-p0 ditto-p1; do
        ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$n" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

hub() { ip netns exec ditto-hub "$@"; }
in0() { ip netns exec ditto-p0 "$@"; }
in1() { ip netns exec ditto-p1 "$@"; }

# Topology: hub <-> p0 (10.77.1.0/24), hub <-> p1 (10.77.2.0/24), p0 <-> p1 (10.77.0.0/24, shaped).
for n in ditto-hub ditto-p0 ditto-p1; do
    ip netns del "$n" 2>/dev/null || true
    ip netns add "$n"
    ip -n "$n" link set lo up
done
link() { # ns_a dev_a addr_a ns_b dev_b addr_b
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
    ip -n "$1" addr add "$3/24" dev "$2"
    ip -n "$4" addr add "$6/24" dev "$5"
    ip -n "$1" link set "$2" up
    ip -n "$4" link set "$5" up
}
link ditto-hub h0 10.77.1.1 ditto-p0 p0h 10.77.1.2
link ditto-hub h1 10.77.2.1 ditto-p1 p1h 10.77.2.2
link ditto-p0 l0 10.77.0.1 ditto-p1 l1 10.77.0.2

NETEM=1
if [ "${DITTO_SHAPER:-}" = relay ] || ! tc -n ditto-p0 qdisc add dev l0 root netem delay 1ms 2>/dev/null; then
    NETEM=0
fi
tc -n ditto-p0 qdisc del dev l0 root 2>/dev/null || true

shape() { # none | lan | wan (kernel netem; the relay is started per session)
    [ "$NETEM" = 1 ] || return 0
    for spec in "ditto-p0 l0" "ditto-p1 l1"; do
        set -- $spec
        ip -n "$1" link set "$2" mtu 65000 2>/dev/null || true
        tc -n "$1" qdisc del dev "$2" root 2>/dev/null || true
        case "$PROFILE" in
            lan) tc -n "$1" qdisc add dev "$2" root netem rate 5gbit delay 0.2ms limit 1000000 ;;
            wan) tc -n "$1" qdisc add dev "$2" root netem rate 400mbit delay 20ms limit 1000000 ;;
            *) ;;
        esac
    done
}

"$BIN" provision --out "$WORK/keys" >/dev/null
"$BIN" keygen --out "$WORK/tls" --name p0 --name p1 --name dealer --name client >/dev/null
# Every link is TLS with pinned identities, as deployed.
tls() { echo --identity "$WORK/tls/$1.identity" --trust "$WORK/tls/trust"; }
"$BIN" share-model --model "arch:$ARCH" --quant "$QUANT" --out "$WORK/shares" >/dev/null
SESSIONS=$((1 + $(echo $PROFILES | wc -w)))
hub "$BIN" dealer --model "arch:$ARCH" --quant "$QUANT" --keys "$WORK/keys" --listen 0.0.0.0:7100 \
    --state "$WORK/dealer" --sessions "$SESSIONS" $(tls dealer) >"$WORK/dealer.log" 2>&1 &
PIDS+=($!)
TEXT=$(head -c "$SEQ" /dev/zero | tr '\0' 'a')
GEN=()
case $ARCH in gpt2*) GEN=(--gen "${DITTO_GEN:-1}") ;; esac

# One session: both parties, then the client (retried until the parties listen); prints P0's
# online time.
session() {
    in0 "$BIN" party --id 0 --share "$WORK/shares/p0.share" --key "$WORK/keys/p0.key" \
        --listen 10.77.0.1:7200 --dealer 10.77.1.1:7100 --client 10.77.1.2:7300 --state "$WORK/s0" \
        $(tls p0) >"$WORK/p0.log" 2>&1 &
    local p0=$!
    local peer=10.77.0.1:7200
    if [ "$NETEM" = 0 ] && [ "$PROFILE" != none ]; then
        case $PROFILE in lan) rate=5000 delay=0.2 ;; wan) rate=400 delay=20 ;; esac
        in1 "$BIN" shape --listen 127.0.0.1:7250 --connect 10.77.0.1:7200 --rate-mbit $rate --delay-ms $delay \
            >"$WORK/shape.log" 2>&1 &
        PIDS+=($!)
        peer=127.0.0.1:7250
        sleep 0.3
    fi
    in1 "$BIN" party --id 1 --share "$WORK/shares/p1.share" --key "$WORK/keys/p1.key" \
        --connect $peer --dealer 10.77.2.1:7100 --client 10.77.2.2:7301 --state "$WORK/s1" \
        $(tls p1) >"$WORK/p1.log" 2>&1 &
    local p1=$!
    PIDS+=("$p0" "$p1")
    for _ in $(seq 1 600); do
        if hub "$BIN" client --model "arch:$ARCH" --text "$TEXT" "${GEN[@]}" --p0 10.77.1.2:7300 --p1 10.77.2.2:7301 \
            $(tls client) >"$WORK/client.log" 2>&1; then
            break
        fi
        sleep 0.2
    done
    wait "$p0" "$p1" || { cat "$WORK/p0.log" "$WORK/p1.log" "$WORK/client.log" >&2; exit 1; }
    sed -n 's/.*online \([0-9.]*\) s.*/\1/p' "$WORK/p0.log" | tail -1
}

# Warm-up without shaping: the parties open F = W - B_W once and keep it (setup excluded below).
PROFILE=none
shape
session >/dev/null
MODEL=$("$BIN" bench --arch "$ARCH" --seq "$SEQ" "${GEN[@]}" --quant "$QUANT" --json)
field() { echo "$MODEL" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; }
[ "$NETEM" = 1 ] && SHAPER="tc netem" || SHAPER="ditto shape (no sch_netem in this kernel)"
echo "netem  shaper: $SHAPER"
echo "netem  $ARCH seq $SEQ, quant $QUANT (loopback online $(field online_s) s, $(field rounds) rounds, $(field bytes_p0) bytes per party)"
for PROFILE in $PROFILES; do
    shape
    measured=$(session)
    case $PROFILE in lan) modeled=$(field lan_s) ;; wan) modeled=$(field wan_s) ;; *) modeled=- ;; esac
    [ "$modeled" = - ] || modeled=$(printf %.3f "$modeled")
    printf 'netem  %-4s measured online %8.3f s   modeled %8s s\n' "$PROFILE" "$measured" "$modeled"
done
