#!/usr/bin/env bash
# Serving latency across processes: a dealer, two serving parties (`ditto party --serve`) and a
# client, each its own process on this machine (loopback, TLS with pinned identities, as
# deployed). N requests one after another; prints the client-observed latency (wall time of
# `ditto client`: process start, handshakes, sharing, the secure run, the answer), its p50 and
# p95, the parties' own online time and P1's time per request (plan, dealer stream, handshake,
# weight setup, online), for each mode:
#   warm   P1 keeps a pool (`--pool`) and each request is sent once the pool is full again and
#          its sessions are prepared at both parties (P1's products A_1 F beside the pooled
#          session, P0's A_0 F in P0's `--pool`; prepared once the first request has set the
#          weights up)
#   cold   the same pool, but P0 keeps no products and P1's are not waited for: the pooled
#          sessions' correlations are ready, the products A_i F are computed online
#   empty  no pool: the dealer creates each session while its request waits
# beside the in-process `ditto bench` online time of the same model, measured in the same run.
#
# Usage: bench/serve.sh [ARCH] [SEQ] [N] [MODES]
#   bench/serve.sh bert-tiny 16 10
#   bench/serve.sh bert-base 128 10 "warm cold empty"
#   DITTO_BATCH=8 bench/serve.sh minilm 32 5 warm     # throughput: 8 inputs per request
#   DITTO_SHAPE=wan bench/serve.sh minilm 32 5 warm    # P0 <-> P1 through bench/netem.sh's WAN
# SEQ must be a length bucket (16, 32, 64, 128, 256, 512) for BERT. DITTO_POOL_SESSIONS (default
# 2) sets the pool's size in sessions. DITTO_SHAPE=lan|wan puts P1's links to P0 (each request's,
# and the sessions handed ahead) through `ditto shape --serve` with bench/netem.sh's profile
# (LAN: 5 Gbit/s, 0.2 ms each way; WAN: 400 Mbit/s, 20 ms each way; each link shaped apart);
# the client's and the dealer's links stay unshaped, as in bench/netem.sh. The working directory (shares, pool) is removed on exit.
set -euo pipefail

ARCH=${1:-bert-tiny}
SEQ=${2:-16}
N=${3:-10}
MODES=${4:-"warm cold empty"}
QUANT=${DITTO_QUANT:-ditto}
POOL=${DITTO_POOL_SESSIONS:-2}
cd "$(dirname "$0")/.."
BIN=${DITTO_BIN:-${CARGO_TARGET_DIR:-target}/release/ditto}
[ -x "$BIN" ] || cargo build --release -p ditto-cli
case $ARCH in gpt2*) echo "serve.sh: BERT shapes only (GPT-2 prompts are not bucketed)" >&2; exit 2 ;; esac

WORK=$(mktemp -d /tmp/ditto-serve.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tls() { echo --identity "$WORK/tls/$1.identity" --trust "$WORK/tls/trust"; }
"$BIN" provision --out "$WORK/keys" >/dev/null
"$BIN" keygen --out "$WORK/tls" --name p0 --name p1 --name dealer --name client >/dev/null
"$BIN" share-model --model "arch:$ARCH" --quant "$QUANT" --out "$WORK/shares" >/dev/null
TEXT=$(head -c "$SEQ" /dev/zero | tr '\0' 'a')
# DITTO_BATCH=B: each request carries B inputs (`client --batch`), pooled as bucket SEQxB.
B=${DITTO_BATCH:-1}
for _ in $(seq 1 "$B"); do echo "$TEXT"; done >"$WORK/batch.txt"
BUCKET=$SEQ
[ "$B" = 1 ] || BUCKET=${SEQ}x$B
P1_BYTES=$("$BIN" plan --arch "$ARCH" --seq "$SEQ" --batch "$B" --quant "$QUANT" --json | sed -n 's/.*"dealer_bytes_p1": \([0-9]*\).*/\1/p')
AF_BYTES=$("$BIN" plan --arch "$ARCH" --seq "$SEQ" --batch "$B" --quant "$QUANT" --json | sed -n 's/.*"products_bytes_per_party": \([0-9]*\).*/\1/p')
# Corrections plus about 1.5% of frame headers and tags, and P1's products A_1 F.
BUDGET=$((POOL * (P1_BYTES * 103 / 100 + AF_BYTES + 65536)))

DEALER=127.0.0.1:$(free_port)
"$BIN" dealer --model "arch:$ARCH" --quant "$QUANT" --keys "$WORK/keys" --listen "$DEALER" \
    --state "$WORK/dealer" $(tls dealer) >"$WORK/dealer.log" 2>&1 &
PIDS+=($!)

# Quantiles by nearest rank of the numbers on stdin.
quantile() { sort -n | awk -v q="$1" '{ v[NR] = $1 } END { i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; print v[i] }'; }

# One mode: both parties serving, N requests; prints the latencies' p50 and p95 and the parties'.
run_mode() {
    local mode=$1 peer c0 c1 m1 pool=()
    peer=127.0.0.1:$(free_port) c0=127.0.0.1:$(free_port) c1=127.0.0.1:$(free_port) m1=127.0.0.1:$(free_port)
    local ahead=() via
    via=$peer
    case ${DITTO_SHAPE:-none} in
        none) ;;
        lan | wan)
            [ "$DITTO_SHAPE" = lan ] && set -- 5000 0.2 || set -- 400 20
            via=127.0.0.1:$(free_port)
            "$BIN" shape --serve --listen "$via" --connect "$peer" --rate-mbit "$1" --delay-ms "$2" \
                >"$WORK/shape.$mode.log" 2>&1 &
            PIDS+=($!)
            ;;
        *) echo "serve.sh: DITTO_SHAPE is lan or wan" >&2; exit 2 ;;
    esac
    case $mode in warm | cold) pool=(--pool "$BUDGET" --pool-buckets "$BUCKET") ;; esac
    [ "$mode" = warm ] && ahead=(--pool 8G)
    "$BIN" party --id 0 --share "$WORK/shares/p0.share" --key "$WORK/keys/p0.key" --listen "$peer" \
        --dealer "$DEALER" --client "$c0" --state "$WORK/s0" --serve --timeout 600 "${ahead[@]}" $(tls p0) \
        >"$WORK/p0.$mode.log" 2>&1 &
    local p0=$!
    "$BIN" party --id 1 --share "$WORK/shares/p1.share" --key "$WORK/keys/p1.key" --connect "$via" \
        --dealer "$DEALER" --client "$c1" --state "$WORK/s1" --serve --timeout 600 --metrics "$m1" "${pool[@]}" \
        $(tls p1) >"$WORK/p1.$mode.log" 2>&1 &
    local p1=$!
    PIDS+=("$p0" "$p1")
    for _ in $(seq 1 600); do
        grep -q "serving clients on" "$WORK/p0.$mode.log" && grep -q "serving clients on" "$WORK/p1.$mode.log" && break
        sleep 0.1
    done
    : >"$WORK/lat.$mode"
    for i in $(seq 0 "$N"); do
        if [ "$mode" != empty ]; then
            for _ in $(seq 1 6000); do
                depth=$( (curl -s "http://$m1/metrics" || true) | sed -n "s/^ditto_pool_sessions{party=\"1\",bucket=\"$BUCKET\"} //p")
                # Warm: every session taken so far and the pool's were prepared at both parties.
                local want=$((POOL + i - 1)) ready=1
                if [ "$mode" = warm ] && [ "$i" -ge 1 ]; then
                    [ "$(grep -c '^prepared party=1' "$WORK/p1.$mode.log")" -ge "$want" ] || ready=0
                    [ "$(grep -c '^prepared party=0' "$WORK/p0.$mode.log")" -ge "$want" ] || ready=0
                fi
                [ "${depth:-0}" -ge "$POOL" ] && [ "$ready" = 1 ] && break
                sleep 0.1
            done
        fi
        t0=$(date +%s.%N)
        "$BIN" client --model "arch:$ARCH" --batch "$WORK/batch.txt" --p0 "$c0" --p1 "$c1" $(tls client) \
            >"$WORK/client.log" 2>&1 || { cat "$WORK/client.log" "$WORK/p0.$mode.log" "$WORK/p1.$mode.log" >&2; exit 1; }
        t1=$(date +%s.%N)
        # Request 0 opens the weight masks once (the parties keep them): not counted.
        [ "$i" = 0 ] || echo "$t1 - $t0" | bc -l >>"$WORK/lat.$mode"
    done
    kill -TERM "$p0" "$p1"
    wait "$p0" "$p1" || true
    local online
    online=$(sed -n 's/^served party=0 .*online_s=\([0-9.]*\).*/\1/p' "$WORK/p0.$mode.log" | tail -n +2)
    local total
    total=$(sed -n 's/^served party=1 .*total_s=\([0-9.]*\).*/\1/p' "$WORK/p1.$mode.log" | tail -n +2)
    local sources
    sources=$(sed -n 's/^served party=1 .*source=\([a-z-]*\) prepared=\([01]\).*/\1,prepared=\2/p' "$WORK/p1.$mode.log" | tail -n +2 | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    local p50
    p50=$(quantile 0.5 <"$WORK/lat.$mode")
    printf 'serve  %-5s client p50 %7.3f s  p95 %7.3f s   online p50 %7.3f s   P1 request p50 %7.3f s   %6.2f inputs/s   sessions:%s\n' \
        "$mode" "$p50" "$(quantile 0.95 <"$WORK/lat.$mode")" \
        "$(echo "$online" | quantile 0.5)" "$(echo "$total" | quantile 0.5)" "$(echo "$B / $p50" | bc -l)" "$sources"
}

BENCH=$("$BIN" bench --arch "$ARCH" --seq "$SEQ" --quant "$QUANT" --json)
echo "serve  $ARCH seq $SEQ x $B inputs per request, P0 <-> P1 ${DITTO_SHAPE:-loopback}, quant $QUANT, $N requests per mode after one warm-up, pool of $POOL sessions ($BUDGET bytes)"
echo "serve  in-process ditto bench online $(echo "$BENCH" | sed -n 's/.*"online_s":\([0-9.e+-]*\).*/\1/p') s"
[ "${DITTO_SHAPE:-none}" = none ] || echo "serve  ditto bench's model of that online time on the ${DITTO_SHAPE} link: $(echo "$BENCH" | sed -n "s/.*\"${DITTO_SHAPE}_s\":\([0-9.e+-]*\).*/\1/p") s"
AHEAD=$("$BIN" bench --arch "$ARCH" --seq "$SEQ" --quant "$QUANT" --precompute --json)
echo "serve  in-process ditto bench --precompute online $(echo "$AHEAD" | sed -n 's/.*"online_s":\([0-9.e+-]*\).*/\1/p') s with products, $(echo "$AHEAD" | sed -n 's/.*"online_without_products_s":\([0-9.e+-]*\).*/\1/p') s without"
for m in $MODES; do run_mode "$m"; done
