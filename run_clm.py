#!/usr/bin/env python
"""Fine-tune a GPT-2 or GPT-Neo model on a csv/json/txt corpus, with or without DeepSpeed.

From a pretrained model, on GPUs (the GPT2-XL guide's command, 4.x flags accepted):

    deepspeed --num_gpus=1 run_clm.py --deepspeed ds_config.json --model_name_or_path gpt2-xl \
        --train_file train.csv --validation_file validation.csv --do_train --do_eval --fp16 \
        --overwrite_cache --evaluation_strategy="steps" --output_dir finetuned --eval_steps 200 \
        --num_train_epochs 1 --gradient_accumulation_steps 2 --per_device_train_batch_size 8

From scratch, on CPU (what launch.sh does):

    python create_tokenizer.py --train_file train.csv --output_dir tokenizer
    deepspeed --num_gpus=1 run_clm.py --deepspeed ds_config.json --model_type gpt2 \
        --config_overrides n_layer=4,n_embd=256,n_head=4,n_positions=512 --tokenizer_name tokenizer \
        --train_file train.csv --validation_file validation.csv --do_train --do_eval --output_dir finetuned

On a dataset, as upstream run_clm (a hub name, a local folder of data files, or a save_to_disk folder):

    python run_clm.py --model_name_or_path gpt2 --dataset_name wikitext --dataset_config_name wikitext-2-raw-v1 \
        --do_train --do_eval --output_dir finetuned

Or all options in one JSON file: ``python run_clm.py options.json``. ``--help`` lists every flag, the
accepted 4.x ones at its end.
The output folder loads with ``pipeline('text-generation', model='finetuned')``.
"""

import sys

from domainlm.errors import run_cli
from domainlm.train import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
