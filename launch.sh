#!/usr/bin/env bash
# The whole job, end to end: prepare data -> train a tokenizer -> fine-tune with DeepSpeed -> generate
# -> evaluate (keyword coverage with and without keywords, perplexity before and after, report.md).
#
#   bash launch.sh                       # offline default: a tiny GPT-2 from scratch on data/jobs_sample.csv, CPU
#   MODEL=gpt2-xl NUM_GPUS=8 DS_CONFIG=ds_config_zero3.json bash launch.sh   # the real thing
#
# Environment variables (default in brackets):
#   DATA        raw postings to prepare                       [data/jobs_sample.csv]
#   WORK_DIR    where prepared data, tokenizer and model go    [work]
#   MODEL       a model folder or hub name to fine-tune; empty trains a new GPT-2 from a config  []
#   MODEL_CONFIG  config of the new model (MODEL empty)        [n_layer=4,n_embd=256,n_head=4,n_positions=1024,...]
#   VOCAB_SIZE  size of the new tokenizer (MODEL empty)        [8000]
#   NUM_GPUS    processes (GPUs) for deepspeed on this machine [1]
#   HOSTFILE    DeepSpeed hostfile for several machines; its slots replace NUM_GPUS  []
#               (each machine starts its processes over ssh in a fresh shell: this script writes
#               WORK_DIR/deepspeed_node_env.sh, which they source first, with this virtual environment
#               and HF_HUB_OFFLINE, TOKENIZERS_PARALLELISM, HF_HOME, TORCH_EXTENSIONS_DIR as set here)
#   MASTER_PORT port the processes meet on                     [a free one on this machine; with HOSTFILE the
#               first host listens on it: run this there, or name a port open between the machines]
#   DS_CONFIG   ds_config.json (ZeRO-2, optimizer on CPU) or ds_config_zero3.json (ZeRO-3, all offloaded)
#               [ds_config.json]
#   BATCH_SIZE  sequences per GPU per step                     [8]
#   GRAD_ACCUM  gradient accumulation steps                    [1]
#   EPOCHS      passes over the data                           [4]
#   LR          peak learning rate                             [1e-3 new model, 5e-5 pretrained]
#   BLOCK_SIZE  longest sequence in tokens                     [1024]
#   MAX_WORDS   postings longer than this are dropped          [700]
#   KEYWORD_BACKEND  keywords for postings without them: tfidf, or sentence-transformers after
#               pip install -r requirements-keywords.txt   [tfidf]
#   PRECISION   extra precision flag: --fp16 or --bf16 on GPUs []
#   NUM_SAMPLES postings generated at the end                  [3]
#   EVAL_PROMPTS validation prompts the evaluation generates from, twice each; 0 skips it  [all]
#   PREPARE_ARGS  more flags for prepare_jobs.py, e.g. your CSV's columns:
#               "--title_column job_title --text_column description --keywords_column tags"  []
#   TRAIN_ARGS  more flags for run_clm.py, e.g. "--sequence_mode packed --loss_on body"  []
#   SAVE_STEPS  a checkpoint every N optimizer steps, or epoch, or no; the last one is kept while training
#               runs, so that the same command, run again after a crash or Ctrl-C, continues from it [epoch]
#   KEEP_CHECKPOINTS  1: keep the checkpoint after a finished run (GPT2-XL under ZeRO-2: ~25 GB) [0]
#   HF_HUB_OFFLINE  1: never reach the model hub           [1 when MODEL is empty, else 0]
#   PYTHON      interpreter that creates .venv (no venv active) [python3]
#   TORCH_CPU_VERSION  torch installed where no NVIDIA GPU is found [2.13.0]
#
# Effective batch = BATCH_SIZE x GRAD_ACCUM x NUM_GPUS sequences per optimizer step:
#   default:          8 x 1 x 1 =  8 postings/step (~3,700 tokens at ~460 tokens/posting)
#   8 GPUs, accum 2:  8 x 2 x 8 = 128 postings/step
#
# Relative paths in DATA, MODEL, DS_CONFIG and HOSTFILE are read from the folder you start this in when
# they are there (else from this repository: DS_CONFIG=ds_config_zero3.json works from anywhere), and a
# relative WORK_DIR is made there.
set -euo pipefail
CALLER_DIR=$PWD
for name in DATA MODEL DS_CONFIG HOSTFILE WORK_DIR; do
  value=${!name:-}
  if [[ -n "$value" && "$value" != /* ]] && { [[ "$name" == WORK_DIR ]] || [[ -e "$CALLER_DIR/$value" ]]; }; then
    printf -v "$name" '%s' "$CALLER_DIR/$value"
  fi
done
cd "$(dirname "${BASH_SOURCE[0]}")"
START=$SECONDS
source scripts/setup_env.sh
setup_requirements requirements.txt

DATA=${DATA:-data/jobs_sample.csv}
WORK_DIR=${WORK_DIR:-work}
MODEL=${MODEL:-}
MODEL_CONFIG=${MODEL_CONFIG:-n_layer=4,n_embd=256,n_head=4,n_positions=1024,resid_pdrop=0.0,embd_pdrop=0.0,attn_pdrop=0.0}
VOCAB_SIZE=${VOCAB_SIZE:-8000}
NUM_GPUS=${NUM_GPUS:-1}
HOSTFILE=${HOSTFILE:-}
DS_CONFIG=${DS_CONFIG:-ds_config.json}
BATCH_SIZE=${BATCH_SIZE:-8}
GRAD_ACCUM=${GRAD_ACCUM:-1}
EPOCHS=${EPOCHS:-4}
BLOCK_SIZE=${BLOCK_SIZE:-1024}
MAX_WORDS=${MAX_WORDS:-700}
KEYWORD_BACKEND=${KEYWORD_BACKEND:-tfidf}
PRECISION=${PRECISION:-}
NUM_SAMPLES=${NUM_SAMPLES:-3}
EVAL_PROMPTS=${EVAL_PROMPTS:-}
PREPARE_ARGS=${PREPARE_ARGS:-}
TRAIN_ARGS=${TRAIN_ARGS:-}
SAVE_STEPS=${SAVE_STEPS:-epoch}
KEEP_CHECKPOINTS=${KEEP_CHECKPOINTS:-0}
OUT="$WORK_DIR/finetuned"
case "$SAVE_STEPS" in
  epoch) SAVE_ARGS=(--save_strategy epoch --save_total_limit 1) ;;
  no | 0) SAVE_ARGS=(--save_strategy no) ;;
  "" | *[!0-9]*)
    echo "error: SAVE_STEPS=$SAVE_STEPS: give a number of steps, epoch or no" >&2
    exit 2
    ;;
  *) SAVE_ARGS=(--save_strategy steps --save_steps "$SAVE_STEPS" --save_total_limit 1) ;;
esac
# A checkpoint newer than the model in the output folder: an earlier run of this script stopped while
# training. It goes on from there, on the data and tokenizer it trained on (made again, they could differ).
# The checkpoint is the one run_clm.py continues from (complete, not marked diverged); one older than the
# model is one that KEEP_CHECKPOINTS=1 kept after a finished run.
RESUMING=
if compgen -G "$OUT/checkpoint-*" >/dev/null; then
  LAST_CHECKPOINT=$(python -c 'import sys; from domainlm.guards import last_complete_checkpoint as last
print(last(sys.argv[1], warn=False) or "")' "$OUT")
  if [[ -n "$LAST_CHECKPOINT" && ! "$OUT/model.safetensors" -nt "$LAST_CHECKPOINT/trainer_state.json" ]]; then
    RESUMING=1
  fi
fi
if [[ -n "$MODEL" && -e "$MODEL" && "$(realpath "$MODEL")" == "$(realpath -m "$OUT")" ]]; then
  echo "error: MODEL=$MODEL is the output folder $OUT: the run would replace the model it starts from; copy it" \
    "to another folder first, or set WORK_DIR to another folder" >&2
  exit 2
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-$([[ -z "$MODEL" ]] && echo 1 || echo 0)}
export TOKENIZERS_PARALLELISM=false

step() { echo; echo "=== [$((SECONDS - START))s] $*"; }
# Ctrl-C: each step's program prints one line (run_clm.py: how to go on) and the script stops with status 130
trap 'INTERRUPTED=1' INT

if [[ -n "$RESUMING" ]]; then
  step "1/5 keeping the prepared data in $WORK_DIR/data: the interrupted run in $OUT trained on it"
else
  step "1/5 preparing $DATA -> $WORK_DIR/data"
  # PREPARE_ARGS and TRAIN_ARGS are split into flags at spaces
  python prepare_jobs.py --input "$DATA" --output_dir "$WORK_DIR/data" --length_unit words --max_tokens "$MAX_WORDS" \
    --keyword_backend "$KEYWORD_BACKEND" $PREPARE_ARGS
fi

if [[ -z "$MODEL" ]]; then
  if [[ -n "$RESUMING" ]]; then
    step "2/5 keeping the tokenizer in $WORK_DIR/tokenizer: the interrupted run trained with it"
  else
    step "2/5 training a byte-level BPE tokenizer ($VOCAB_SIZE tokens) on the training split"
    python create_tokenizer.py --train_file "$WORK_DIR/data/train.csv" --output_dir "$WORK_DIR/tokenizer" \
      --vocab_size "$VOCAB_SIZE" --model_max_length "$BLOCK_SIZE"
  fi
  MODEL_ARGS=(--model_type gpt2 --config_overrides "$MODEL_CONFIG" --tokenizer_name "$WORK_DIR/tokenizer")
  LR=${LR:-1e-3}
  BASE_MODEL=init  # perplexity before fine-tuning: the same architecture, freshly initialised
else
  step "2/5 using the tokenizer of $MODEL (<|SEP|> and a pad token are added if missing)"
  MODEL_ARGS=(--model_name_or_path "$MODEL")
  LR=${LR:-5e-5}
  BASE_MODEL=$MODEL
fi

if [[ -n "$HOSTFILE" ]]; then
  step "3/5 fine-tuning with DeepSpeed ($DS_CONFIG, the slots of $HOSTFILE, batch $BATCH_SIZE x $GRAD_ACCUM x slots)"
else
  step "3/5 fine-tuning with DeepSpeed ($DS_CONFIG, $NUM_GPUS process(es), batch $BATCH_SIZE x $GRAD_ACCUM x $NUM_GPUS)"
fi
if [[ -n "$RESUMING" ]]; then
  FRESH=()  # run_clm.py continues from the last checkpoint in the output folder
  echo "continuing the interrupted run from the last checkpoint in $OUT (delete $OUT to start afresh)"
else
  FRESH=(--overwrite_output_dir)
  [[ -f "$OUT/model.safetensors" ]] && echo "replacing the model in $OUT (set WORK_DIR to keep it)"
fi
export DOMAINLM_RERUN="run the same command again"  # what run_clm.py's Ctrl-C line tells you to do
# a free port for the processes to meet on, unless MASTER_PORT says which
MASTER_PORT=${MASTER_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')}
LAUNCH=(deepspeed --num_gpus="$NUM_GPUS" --master_port "$MASTER_PORT")
if [[ -n "$HOSTFILE" ]]; then
  # DeepSpeed starts each machine's processes through pdsh and ssh, in a fresh shell that has neither this
  # virtual environment on PATH (DeepSpeed then finds no ninja to load its compiled ops) nor the variables
  # set here (only PYTHON* ones and .deepspeed_env files travel): each machine sources this file first.
  NODE_ENV="$(realpath -m "$WORK_DIR")/deepspeed_node_env.sh"
  mkdir -p "$(dirname "$NODE_ENV")"
  {
    printf 'export VIRTUAL_ENV=%q\nexport PATH=%q:"$PATH"\n' "$VIRTUAL_ENV" "$VIRTUAL_ENV/bin"
    for name in HF_HUB_OFFLINE TOKENIZERS_PARALLELISM HF_HOME TORCH_EXTENSIONS_DIR; do
      if [[ -n "${!name:-}" ]]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
    done
  } >"$NODE_ENV"
  LAUNCH=(deepspeed --hostfile "$HOSTFILE" --master_port "$MASTER_PORT" --venv_script "$NODE_ENV")
fi
# The deepspeed command itself ignores Ctrl-C (it would print a traceback): its launcher stops the ranks,
# and they print the line.
STATUS=0
(trap '' INT; exec "${LAUNCH[@]}" run_clm.py --deepspeed "$DS_CONFIG" "${MODEL_ARGS[@]}" \
  --train_file "$WORK_DIR/data/train.csv" --validation_file "$WORK_DIR/data/validation.csv" \
  --do_train --do_eval --eval_before_training --eval_strategy epoch "${SAVE_ARGS[@]}" --logging_steps 10 \
  --num_train_epochs "$EPOCHS" --per_device_train_batch_size "$BATCH_SIZE" --per_device_eval_batch_size "$BATCH_SIZE" \
  --gradient_accumulation_steps "$GRAD_ACCUM" --learning_rate "$LR" --warmup_steps 10 --weight_decay 0.01 \
  --block_size "$BLOCK_SIZE" --group_by_length --output_dir "$OUT" "${FRESH[@]}" \
  --report_to tensorboard --disable_tqdm true $PRECISION $TRAIN_ARGS) || STATUS=$?
if [[ "$STATUS" != 0 ]]; then
  [[ -n "${INTERRUPTED:-}" ]] && exit 130
  exit "$STATUS"
fi
# the model is saved: the checkpoint was only there to continue a run that stopped
[[ "$KEEP_CHECKPOINTS" == 1 ]] || rm -rf "$OUT"/checkpoint-*

step "4/5 generating $NUM_SAMPLES postings from validation titles and keywords with generate.py (the folder loads in pipeline('text-generation', model='$OUT') too)"
# no --max_new_tokens: each posting runs to the model's own end-of-text (or until the context is full)
python generate.py --model_dir "$OUT" --prompts_file "$WORK_DIR/data/validation.csv" --num_prompts "$NUM_SAMPLES" \
  --output "$WORK_DIR/samples.jsonl"

REPORT="report in $OUT/report.md"
if [[ "$EVAL_PROMPTS" != 0 ]]; then
  step "5/5 evaluating: keyword coverage with and without keywords, perplexity before and after -> $OUT/report.md"
  python evaluate_model.py --model_dir "$OUT" --validation_file "$WORK_DIR/data/validation.csv" \
    --base_model "$BASE_MODEL" --quiet ${EVAL_PROMPTS:+--num_prompts "$EVAL_PROMPTS"}
else
  REPORT="no report (EVAL_PROMPTS=0)"
fi

step "done in $((SECONDS - START))s: model in $OUT, $REPORT, samples in $WORK_DIR/samples.jsonl"
