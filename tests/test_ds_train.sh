#!/bin/sh
# test_ds_train.sh — `zoff train --config F` runs DeepSpeed configs written as DeepSpeed's docs
# and the Hugging Face integration write them (examples/configs/deepspeed/*.json: ZeRO-2 CPU
# offload, ZeRO-3 NVMe offload, the HF "auto" config, bf16 + a scheduler) to the end on a tiny
# model, with exactly EXPECT "accepted and ignored" warning lines, each key warned once, no
# error. Also: the CLI user's rough edges of issues #16/#11 (mode "cli"): `zoff bench` lists its
# kinds, `zoff plan --config` and `zoff train --config` agree on an empty file and on a missing
# nvme_path directory (both accept; train creates it), and `zoff train --resume DIR` takes the
# model shape from the checkpoint or names the option to pass; `zoff plan --config F` on every
# example DeepSpeed config exits 0 or 1 (fits / does not fit), never 2, and logs each "auto".
#   usage: test_ds_train.sh ZOFF SRCDIR config NAME EXPECT | cli
set -u
ZOFF=$1
SRC=$2
MODE=$3
T=$(mktemp -d "${ZOFF_TEST_TMP:-/tmp}/ds-train.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
TINY="--layers 1 --width 32 --heads 2 --seq-len 16 --steps 3 --eval-batches 1 --samples 0 --no-progress"
fail() { echo "FAIL: $*"; exit 1; }

if [ "$MODE" = config ]; then
    NAME=$4
    EXPECT=$5
    CFG="$SRC/examples/configs/deepspeed/$NAME.json"
    # shellcheck disable=SC2086
    "$ZOFF" train --config "$CFG" $TINY --ckpt-dir ckpt >out.txt 2>err.txt
    rc=$?
    cat err.txt
    tail -3 out.txt
    [ $rc -eq 0 ] || fail "zoff train --config $NAME exited $rc"
    n=$(grep -c "is accepted and ignored" err.txt)
    [ "$n" -eq "$EXPECT" ] || fail "$n ignored-key warnings, expected $EXPECT"
    dup=$(grep "accepted and ignored" err.txt | sort | uniq -d)
    [ -z "$dup" ] || fail "a key warned twice: $dup"
    grep -q "$CFG: " err.txt || [ "$n" -eq 0 ] || fail "warnings do not name the file"
    if grep -qi "error" err.txt; then fail "an error was printed"; fi
    grep -q "^done: 3 steps\|3 steps" out.txt || fail "did not run 3 steps"
    exit 0
fi

# ---- cli ----
"$ZOFF" bench --help >h.txt 2>&1 || fail "zoff bench --help exited $?"
for k in adam nvme step; do grep -q "^  $k " h.txt || fail "zoff bench --help lacks $k"; done
"$ZOFF" bench >h.txt 2>&1
[ $? -eq 2 ] || fail "bare zoff bench: expected exit 2"
grep -q "adam|nvme|step" h.txt || fail "bare zoff bench does not list the kinds"

: >empty.json
"$ZOFF" plan --config empty.json --params 1M >p.txt 2>&1 || fail "plan on an empty config: $(cat p.txt)"
# shellcheck disable=SC2086
"$ZOFF" train --config empty.json $TINY --offload cpu --ckpt-dir c0 >t.txt 2>&1 ||
    fail "train on an empty config: $(cat t.txt)"
printf '{"zero_optimization": {"offload_optimizer": {"device": "nvme", "nvme_path": "%s/new/swap"}}}\n' "$T" >nv.json
"$ZOFF" plan --config nv.json --params 1M >p.txt 2>&1 || fail "plan with a missing nvme_path: $(cat p.txt)"
[ ! -e new ] || fail "zoff plan created the nvme_path directory"
# shellcheck disable=SC2086
"$ZOFF" train --config nv.json $TINY --ckpt-dir c1 >t.txt 2>&1 || fail "train with a missing nvme_path: $(cat t.txt)"
[ -d new/swap ] || fail "zoff train did not create the nvme_path directory"

# shellcheck disable=SC2086
"$ZOFF" train $TINY --steps 4 --until 2 --offload cpu --ckpt-dir rck >t.txt 2>&1 || fail "first half: $(cat t.txt)"
"$ZOFF" train --steps 4 --eval-batches 1 --samples 0 --no-progress --offload cpu --resume rck >t.txt 2>&1 ||
    fail "resume without the shape options: $(cat t.txt)"
grep -q "model from the checkpoint: --layers 1, --width 32, --heads 2, --seq-len 16" t.txt ||
    fail "resume did not say which shape it took: $(cat t.txt)"
"$ZOFF" train --steps 4 --width 64 --eval-batches 1 --samples 0 --no-progress --offload cpu --resume rck >t.txt 2>&1
[ $? -eq 2 ] || fail "resume with a conflicting --width: expected exit 2"
grep -q "pass --width 32" t.txt || fail "resume does not name the option to pass: $(cat t.txt)"
# `zoff plan --config F` on every example DeepSpeed config: "fits" (0) or "does not fit" (1),
# never "bad input" (2), for a small and a large model; each "auto" value is resolved and logged.
for CFG in "$SRC"/examples/configs/deepspeed/*.json; do
    for P in 1M 100G; do
        "$ZOFF" plan --config "$CFG" --params $P >p.txt 2>pe.txt
        rc=$?
        [ $rc -eq 0 ] || [ $rc -eq 1 ] || fail "zoff plan --config $CFG --params $P exited $rc: $(cat pe.txt)"
    done
    nauto=$(grep -o '"auto"' "$CFG" | wc -l)
    nres=$(grep -c '= "auto" resolved to' pe.txt)
    [ "$nauto" -eq "$nres" ] || fail "zoff plan --config $CFG: $nauto \"auto\" values, $nres resolutions logged"
done
echo "cli: ok"
