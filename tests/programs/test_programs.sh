#!/usr/bin/env bash
# test_programs.sh BUILD_DIR: the command-line programs, as a user runs them. Prints one line per check
# and a doctest-style summary line, so tools/test.sh counts the checks with the rest.
set -u
build="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
check() {  # check NAME EXPECTED ACTUAL
    if [[ "$2" == "$3" ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: $1: expected '$2', got '$3'"
    fi
}

printf 'a red circle\na blue square\na red square\nthe red circle\n' > "$tmp/captions.txt"
"$build/aclip_bpe_train" --out "$tmp/merges.txt.gz" --merges 100 < "$tmp/captions.txt" 2> "$tmp/train.log"
check "aclip_bpe_train exit status" 0 $?
check "aclip_bpe_train writes gzip" "#version: 0.2" "$(zcat "$tmp/merges.txt.gz" | head -1)"
"$build/aclip_bpe_train" --out "$tmp/none.txt" < /dev/null 2> "$tmp/err.log"
check "aclip_bpe_train without captions fails, writing nothing" "1 no" \
    "$(grep -c 'no captions on stdin' "$tmp/err.log") $([[ -e "$tmp/none.txt" ]] && echo yes || echo no)"
out=$(printf '"a red circle"\n"red"\n' | "$build/aclip_tokenize" --merges "$tmp/merges.txt.gz")
check "aclip_tokenize: one line per input" 2 "$(echo "$out" | wc -l)"
sot=$(echo "$out" | head -1 | cut -d' ' -f1)
check "aclip_tokenize: starts with SOT" "$sot" "$(echo "$out" | tail -1 | cut -d' ' -f1)"
check "aclip_tokenize: 'red' is one token" 3 "$(echo "$out" | tail -1 | wc -w)"
padded=$(echo '"a red circle"' | "$build/aclip_tokenize" --merges "$tmp/merges.txt.gz" --context 8 --truncate slip)
check "aclip_tokenize --context pads with zeros" 8 "$(echo "$padded" | wc -w)"
check "aclip_tokenize --context pads with zeros (last)" 0 "$(echo "$padded" | awk '{print $8}')"
echo '"x"' | "$build/aclip_tokenize" 2> "$tmp/err.log" > /dev/null
check "aclip_tokenize without --merges fails" 1 $?
check "aclip_tokenize names the missing flag" 1 "$(grep -c -- '--merges is required' "$tmp/err.log")"
echo 'not json' | "$build/aclip_tokenize" --merges "$tmp/merges.txt.gz" 2> "$tmp/err.log" > /dev/null
check "aclip_tokenize rejects bad JSON with the line" 1 "$(grep -c 'stdin line 1' "$tmp/err.log")"
"$build/aclip_tokenize" --nope 2> /dev/null
check "unknown option exits 2" 2 $?
"$build/aclip_tokenize" --merges "$tmp/merges.txt.gz" --context -1 < /dev/null 2> "$tmp/err.log"
check "a number below its least exits 2" 2 $?
check "and names the option and its least" 1 "$(grep -c -- '--context must be at least 0, got -1' "$tmp/err.log")"
"$build/aclip_tokenize" --merges --context 8 < /dev/null 2> "$tmp/err.log"
check "an option given another option as its value exits 2" 2 $?
check "and says so" 1 "$(grep -c -- '--merges needs a value, not the option --context' "$tmp/err.log")"
check "--help names an option's least" 1 "$("$build/aclip_make_synthetic" --help | grep -c 'default: 64; at least 16')"
check "--help exits 0" 0 "$("$build/aclip_tokenize" --help > /dev/null; echo $?)"

"$build/aclip_make_synthetic" --out "$tmp/syn" --train 30 --val 10 --zeroshot 12 --retrieval 5 --shard-size 20 \
    --size 32 2> "$tmp/syn.log"
check "aclip_make_synthetic exit status" 0 $?
check "synthetic train shards" '{"00000.tar": 20, "00001.tar": 10}' "$(cat "$tmp/syn/train/sizes.json")"
check "synthetic zero-shot classes" 1 "$(grep -c '"red circle"' "$tmp/syn/zeroshot/classes.json")"
check "synthetic sample files" 4 "$(tar -tf "$tmp/syn/train/00000.tar" | grep -c '^00000003\.')"
check "synthetic merges file" "#version: 0.2" "$(zcat "$tmp/syn/bpe.txt.gz" | head -1)"
caption=$(tar -xOf "$tmp/syn/train/00000.tar" 00000003.txt)
ids=$(printf '"%s"\n' "$caption" | "$build/aclip_tokenize" --merges "$tmp/syn/bpe.txt.gz" | wc -w)
words=$(echo "$caption" | wc -w)
check "a synthetic caption tokenizes to one token per word (+ SOT, EOT)" $((words + 2)) "$ids"

cat > "$tmp/run.ini" <<INI
[model]
preset = tiny
[data]
train = $tmp/syn/train/{00000..00001}.tar
workers = 1
shuffle_buffer = 8
[tokenizer]
merges = $tmp/syn/bpe.txt.gz
context = 24
[train]
steps = 2
batch_size = 4
[eval]
zeroshot = $tmp/syn/zeroshot/00000.tar
classes = $tmp/syn/zeroshot/classes.json
templates = $tmp/syn/zeroshot/templates.json
retrieval = $tmp/syn/retrieval/00000.tar
[checkpoint]
dir = $tmp/run
INI
"$build/aclip_train" "$tmp/run.ini" > "$tmp/train.log" 2>&1
check "aclip_train exit status" 0 $?
check "aclip_train evaluates online and EMA at the end" 2 "$(grep -c '^eval step 2' "$tmp/train.log")"
"$build/aclip_eval" --checkpoint "$tmp/run/step_00000002.model.safetensors" > "$tmp/eval.log" 2>&1
check "aclip_eval exit status" 0 $?
check "aclip_eval reports online and EMA" 2 "$(grep -c 'zero-shot top-1' "$tmp/eval.log")"
"$build/aclip_eval" --checkpoint "$tmp/run" > "$tmp/eval_dir.log" 2> "$tmp/err.log"
check "aclip_eval --checkpoint DIR evaluates the newest checkpoint there" "$(grep 'zero-shot' "$tmp/eval.log")" \
    "$(grep 'zero-shot' "$tmp/eval_dir.log")"
check "... and says which" 1 "$(grep -c "checkpoint: $tmp/run/step_00000002.model.safetensors (the newest" "$tmp/err.log")"
"$build/aclip_eval" --checkpoint "$tmp/run/step_00000002.state.safetensors" > /dev/null 2> "$tmp/err.log"
check "aclip_eval given a state file points to its model file" 1 \
    "$(grep -c "pass its model file, $tmp/run/step_00000002.model.safetensors" "$tmp/err.log")"
ckpt="$tmp/run/step_00000002.model.safetensors"
if command -v mpirun > /dev/null 2>&1; then  # two ranks share the sets; rank 0 prints the same figures
    mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np 2 \
        "$build/aclip_eval" --checkpoint "$ckpt" > "$tmp/eval2.log" 2> "$tmp/eval2.err"
    if ! grep -q "this build has no MPI" "$tmp/eval2.err"; then
        check "mpirun -np 2 aclip_eval gives one process's figures" "$(cat "$tmp/eval.log")" "$(cat "$tmp/eval2.log")"
        # Only rank 0 makes the checkpoint folder: its error must end rank 1 too, which would otherwise
        # wait in its first collective for ever (and rank 0's MPI_Finalize for it)
        touch "$tmp/a_file"
        timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np 2 \
            "$build/aclip_train" "$tmp/run.ini" checkpoint.dir="$tmp/a_file/run" > "$tmp/mpi_fail.log" 2>&1
        status=$?
        check "one rank's error ends every rank of mpirun (not a hang)" 1 "$((status != 0 && status != 124))"
        check "that rank's error is shown" 1 "$(grep -c "cannot create directory '$tmp/a_file/run'" "$tmp/mpi_fail.log")"
        # SIGUSR1 to mpirun (which forwards it; SLURM's --signal=USR1@SECONDS sends it before a time limit):
        # every rank stops after the same step, and rank 0 writes the checkpoint (SIGINT and SIGTERM, mpirun
        # turns into a kill within a second)
        timeout 120 mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np 2 \
            "$build/aclip_train" "$tmp/run.ini" train.steps=100000 train.log_every=1 eval.zeroshot= \
            eval.retrieval= checkpoint.dir="$tmp/usr1" > "$tmp/usr1.log" 2>&1 &
        mpirun_pid=$!
        for _ in $(seq 600); do
            [[ $(cat "$tmp/usr1/metrics.jsonl" 2> /dev/null | wc -l) -ge 2 ]] && break
            sleep 0.1
        done
        kill -USR1 "$(pgrep -P "$mpirun_pid" mpirun || echo "$mpirun_pid")"
        wait "$mpirun_pid"
        check "SIGUSR1 to mpirun: a checkpoint, then the end (not a timeout)" 1 \
            "$(grep -c '^signal 10: checkpoint written at step' "$tmp/usr1.log")"
        check "... the checkpoint there" 1 "$(ls "$tmp/usr1" | grep -c 'model.safetensors$')"
    fi
fi
tar -xf "$tmp/syn/train/00000.tar" -C "$tmp" 00000003.jpg 00000004.jpg
printf 'a red circle\na blue square\n\n' > "$tmp/texts.txt"
"$build/aclip_embed" --checkpoint "$ckpt" --images "$tmp/00000003.jpg" "$tmp/00000004.jpg" --texts "$tmp/texts.txt" \
    --out "$tmp/emb.safetensors" --npy > "$tmp/embed.log" 2>&1
check "aclip_embed exit status" 0 $?
check "aclip_embed counts" 1 "$(grep -c '2 image and 3 text embeddings' "$tmp/embed.log")"
check "aclip_embed writes .npy" "NUMPY" "$(head -c 6 "$tmp/emb.image_embeds.npy" | tail -c 5)"
check "aclip_embed .npy shape" 1 "$(head -c 128 "$tmp/emb.text_embeds.npy" | grep -ac "'shape': (3, ")"
"$build/aclip_embed" --checkpoint "$ckpt" --weights ema --images "$tmp/00000003.jpg" --out "$tmp/ema.safetensors" \
    > /dev/null 2>&1
check "aclip_embed --weights ema" 0 $?
"$build/aclip_embed" --checkpoint "$ckpt" --images "$tmp/missing.jpg" --out "$tmp/x.safetensors" 2> "$tmp/err.log"
check "aclip_embed names a missing image" 1 "$(grep -c 'missing.jpg' "$tmp/err.log")"
head -c 300 "$tmp/00000003.jpg" > "$tmp/cut.jpg"
"$build/aclip_embed" --checkpoint "$ckpt" --images "$tmp/00000003.jpg" "$tmp/cut.jpg" --out "$tmp/x.safetensors" \
    2> "$tmp/err.log"
check "aclip_embed names a bad image by its file" 1 "$(grep -c "$tmp/cut.jpg: jpeg: " "$tmp/err.log")"
"$build/aclip_embed" --checkpoint "$ckpt" --texts "$tmp/texts.txt" --out "$tmp/no/such/e.safetensors" 2> "$tmp/err.log"
check "aclip_embed refuses an output folder that does not exist, before the work" 1 \
    "$(grep -c "the folder '$tmp/no/such' does not exist" "$tmp/err.log")"
check "... (the checkpoint was never loaded)" 0 "$(grep -c '^checkpoint' "$tmp/err.log")"
"$build/aclip_predict" --checkpoint "$ckpt" --image "$tmp/00000003.jpg" --labels "red circle, blue square,green star" \
    > "$tmp/predict.log" 2>&1
check "aclip_predict exit status" 0 $?
check "aclip_predict prints a row per label" 4 "$(wc -l < "$tmp/predict.log")"
check "aclip_predict probabilities sum to 100%" 1 \
    "$(awk 'NR > 1 {s += $NF} END {print (s > 99.9 && s < 100.1) ? 1 : 0}' "$tmp/predict.log")"
check "aclip_predict sorts by probability" 1 \
    "$(awk 'NR > 1 {v = $NF + 0; if (NR > 2 && v > prev) bad = 1; prev = v} END {print bad ? 0 : 1}' "$tmp/predict.log")"
if ! nvidia-smi > /dev/null 2>&1; then
    "$build/aclip_eval" --checkpoint "$ckpt" train.device=cuda > /dev/null 2> "$tmp/err.log"
    check "aclip_eval train.device=cuda without a GPU is a clear error" 1 "$(grep -c 'CUDA' "$tmp/err.log")"
fi
"$build/aclip_predict" --checkpoint "$ckpt" --image "$tmp/00000003.jpg" --labels "cat" 2> "$tmp/err.log"
check "aclip_predict needs two labels" 1 "$(grep -c 'at least two labels' "$tmp/err.log")"
"$build/aclip_mask_viz" --checkpoint "$ckpt" --out "$tmp/masks" --n 3 > "$tmp/viz.log" 2>&1
check "aclip_mask_viz exit status" 0 $?
check "aclip_mask_viz writes one PNG per sample" 3 "$(ls "$tmp/masks" | grep -c '^mask_00[0-2].png$')"
check "aclip_mask_viz PNG" "PNG" "$(head -c 4 "$tmp/masks/mask_000.png" | tail -c 3)"
check "aclip_mask_viz reports the precision on synthetic masks" 1 \
    "$(grep -cE 'attentive mask [0-9.]+%, random mask [0-9.]+%; objects cover [0-9.]+%' "$tmp/viz.log")"
"$build/aclip_mask_viz" --checkpoint "$ckpt" --out "$tmp/masks" --shards "$tmp/none.tar" 2> "$tmp/err.log"
check "aclip_mask_viz names a missing shard" 1 "$(grep -c 'none.tar' "$tmp/err.log")"
plot=$(dirname "$0")/../../tools/plot_metrics.py
/usr/bin/python3 "$plot" "$tmp/run/metrics.jsonl" --out "$tmp/metrics.png" > "$tmp/plot.log" 2>&1
check "plot_metrics exit status" 0 $?
check "plot_metrics writes a PNG" "PNG" "$(head -c 4 "$tmp/metrics.png" | tail -c 3)"
echo 'not json' > "$tmp/bad.jsonl"
/usr/bin/python3 "$plot" "$tmp/bad.jsonl" 2> "$tmp/err.log"
check "plot_metrics names a bad line" 1 "$(grep -c 'bad.jsonl:1: not JSON' "$tmp/err.log")"
"$build/aclip_train" "$tmp/run.ini" train.steps=3 eval.every=1 checkpoint.every=1 checkpoint.keep=2 \
    checkpoint.dir="$tmp/every" > "$tmp/every.log" 2>&1
check "eval.every = 1 evaluates online and EMA after steps 1 and 2, and at the end" 6 \
    "$(grep -cE '^eval step [123] (online|ema)' "$tmp/every.log")"
check "checkpoint.keep = 2 keeps the newest two of three" "step_00000002 step_00000003" \
    "$(ls "$tmp/every" | grep -o '^step_[0-9]*' | sort -u | tr '\n' ' ' | sed 's/ $//')"
check "... each with its state file" 2 "$(ls "$tmp/every" | grep -c 'state.safetensors$')"
"$build/aclip_train" "$tmp/run.ini" train.steps=3 --resume latest > /dev/null 2> "$tmp/err.log"
check "a resume with another train.steps is refused" 1 "$(grep -c 'pass --force-schedule' "$tmp/err.log")"
"$build/aclip_train" "$tmp/run.ini" train.steps=3 eval.zeroshot= eval.retrieval= --resume latest --force-schedule \
    > "$tmp/resume.log" 2>&1
check "aclip_train --resume latest --force-schedule continues" 1 \
    "$(grep -c "resumed from $tmp/run/step_00000002.model.safetensors at step 2" "$tmp/resume.log")"
check "... to the new end" 1 "$(grep -c '^done: 3 steps' "$tmp/resume.log")"
check "... saying what changed since the checkpoint" 1 "$(grep -c '^  train.steps 2 -> 3$' "$tmp/resume.log")"
"$build/aclip_train" "$tmp/run.ini" train.steps=many > /dev/null 2> "$tmp/err.log"
check "a bad override is refused" 1 "$(grep -c "train.steps = 'many' is not a count of steps" "$tmp/err.log")"
check "aclip_train --help lists every section" 8 "$("$build/aclip_train" --help | grep -c '^\[')"

echo "[doctest] test cases: $((passed + failed)) | $passed passed | $failed failed |"
[[ $failed -eq 0 ]]
