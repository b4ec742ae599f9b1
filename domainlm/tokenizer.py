"""Tokenizers: train a byte-level BPE on a corpus, and give any tokenizer the tokens we rely on.

Three tokens matter:
- ``<|endoftext|>`` ends every record, so the model learns to stop;
- ``<|pad|>`` is distinct from it, so padding can be masked without masking the real end-of-text;
- ``<|SEP|>`` separates title, keywords and body. It is added as an ordinary (not "special") token,
  so it stays one token and stays visible in ``pipeline('text-generation')`` output, which decodes
  with ``skip_special_tokens=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from domainlm.errors import UserError
from domainlm.template import EOS_TOKEN, PAD_TOKEN, SEP_TOKEN

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

# A folder ``from_pretrained`` can load holds one of these.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")
SENTENCE_MODEL_FILES = ("modules.json", "config.json")
# The smallest byte-level BPE: the 256 byte symbols, <|endoftext|> and <|pad|> (<|SEP|> is added on top).
MIN_VOCAB_SIZE = 256 + 2


def looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else (``/x``, ``./x``, ``../x``, ``~/x``, ``a/b/c``)
    can only be a local path."""
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..") or name.count("/") > 1


def check_pretrained_name(
    name: str, flag: str, what: str, files: tuple[str, ...], hint: str, local_only: bool = False
) -> None:
    """A UserError, before anything is loaded, for a ``from_pretrained`` name that cannot work: a file,
    a folder without any of ``files``, or a path (``local_only``: any name) where nothing is.

    Hub ids are left to the loader. ``hint`` says how to get a good folder.
    """
    path = Path(name).expanduser()
    if path.is_file():
        raise UserError(f"{flag} {name} is a file; give the folder that holds it ({path.parent})")
    if path.is_dir():
        if not any((path / f).is_file() for f in files):
            raise UserError(f"{flag} {name}: this folder holds no {what} (none of {', '.join(files)}); {hint}")
    elif local_only or looks_like_path(name):
        raise UserError(f"{flag} {name}: no such folder; {hint}")


def check_bpe_arguments(vocab_size: int, min_frequency: int = 2, model_max_length: int = 1024) -> None:
    """A UserError, before any work, for settings no byte-level BPE can have (the flags of create_tokenizer.py)."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(
            f"--vocab_size {vocab_size}: must be at least {MIN_VOCAB_SIZE} (the 256 byte symbols, "
            f"{EOS_TOKEN} and {PAD_TOKEN}; {SEP_TOKEN} is added on top)"
        )
    if min_frequency < 0:
        raise UserError(f"--min_frequency {min_frequency}: must be 0 or more (0 and 1 learn every merge)")
    if model_max_length < 1:
        raise UserError(f"--model_max_length {model_max_length}: must be at least 1 (tokens per sequence)")


def train_bpe_tokenizer(
    texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2, model_max_length: int = 1024
) -> PreTrainedTokenizerBase:
    """A GPT-2 style byte-level BPE tokenizer trained on ``texts``.

    ``<|endoftext|>`` gets id 0 and ``<|pad|>`` id 1; the 256 byte symbols follow, so any text can
    be encoded. ``<|SEP|>`` is added last as a non-special token (the backend would skip a special
    one when decoding): ``vocab_size`` tokens from the BPE (fewer when the corpus has no more merges
    seen ``min_frequency`` times), plus ``<|SEP|>``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    check_bpe_arguments(vocab_size, min_frequency, model_max_length)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_nonempty(texts), trainer=trainer)
    fast = GPT2TokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
    )
    ensure_special_tokens(fast)
    return fast


def _nonempty(texts: Iterable[str]) -> Iterator[str]:
    for t in texts:
        if t:
            yield t


class SpecialSeparatorError(ValueError):
    """The tokenizer has ``<|SEP|>`` as a special token (``load_tokenizer`` names the flag that gave it)."""


def ensure_special_tokens(tokenizer: PreTrainedTokenizerBase, sep: bool = True) -> list[str]:
    """Add what is missing: an end-of-text, a pad distinct from it, and ``<|SEP|>``.

    Returns the tokens that were added (the model's embeddings must then be resized). A ``<|SEP|>`` that
    the tokenizer has as a special token raises ``SpecialSeparatorError``.
    """
    added: list[str] = []
    if tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": EOS_TOKEN})
        added.append(EOS_TOKEN)
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        added.append(PAD_TOKEN)
    if sep:
        sep_id = tokenizer.get_vocab().get(SEP_TOKEN)
        if sep_id is None or tokenizer.encode(SEP_TOKEN, add_special_tokens=False) != [sep_id]:
            tokenizer.add_tokens([SEP_TOKEN])  # not special: stays visible in decoded text
            added.append(SEP_TOKEN)
        elif tokenizer.decode([sep_id], skip_special_tokens=True) != SEP_TOKEN:
            # special: named among the special tokens, or added with add_tokens(..., special_tokens=True)
            raise SpecialSeparatorError(
                f"{SEP_TOKEN} is a special token of this tokenizer, so decoding that skips special tokens "
                "(pipeline output, generate.py) drops it and title, keywords and body cannot be told apart; "
                f"make the tokenizer with create_tokenizer.py, which adds {SEP_TOKEN} as an ordinary token"
            )
    if added:
        logger.info("added tokens %s; vocabulary is now %d", added, len(tokenizer))
    return added


def create_tokenizer(
    files: list[str] | None,
    output_dir: str | Path,
    text_column: str = "text",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    model_max_length: int = 1024,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
) -> PreTrainedTokenizerBase:
    """Train on the text of ``files`` (read with the training loader), or of the train split of
    ``dataset_name`` (as ``run_clm.py --dataset_name`` reads it), and save to ``output_dir``.

    Every flag and file is checked before any reading or training, and so is writing into ``output_dir``.
    The files are written into a hidden folder there and moved into place together. The summary line
    says when the corpus gave fewer tokens than ``vocab_size``.
    """
    from domainlm.args import TRAIN_SUFFIXES
    from domainlm.data import check_data_file, load_text_dataset, no_progress_bars
    from domainlm.tables import check_output_dir, staged_outputs

    if bool(files) == bool(dataset_name):
        raise UserError("give the text to learn from with --train_file FILE ... or with --dataset_name, one of them")
    check_bpe_arguments(vocab_size, min_frequency, model_max_length)
    check_output_dir(output_dir)
    for path in files or []:
        if Path(path).is_dir():
            raise UserError(f"--train_file {path} is a folder; give the csv/json/jsonl/txt files in it")
        if Path(path).suffix.lower() not in TRAIN_SUFFIXES:
            raise UserError(f"--train_file {path}: use a {', '.join(TRAIN_SUFFIXES)} file")
    with staged_outputs(output_dir) as staged:  # an output_dir that cannot be written is refused here
        datasets = [_dataset_train_texts(dataset_name, dataset_config_name, text_column)] if dataset_name else []
        for path in files or []:
            check_data_file(path, text_column, "--train_file")
            with no_progress_bars():
                datasets.append(load_text_dataset(path, text_column))
        texts = (t for ds in datasets for t in ds["text"])
        tokenizer = train_bpe_tokenizer(texts, vocab_size, min_frequency, model_max_length)
        tokenizer.save_pretrained(str(staged.folder))
        for saved in sorted(staged.folder.iterdir()):
            staged.file(saved.name)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (EOS_TOKEN, PAD_TOKEN, SEP_TOKEN)}
    print(
        f"tokenizer: {len(tokenizer)} tokens{short_note(tokenizer, vocab_size, min_frequency)}, {ids}, saved to {output_dir}"
    )
    return tokenizer


def _dataset_train_texts(name: str, config_name: str | None, text_column: str) -> Dataset:
    """The cleaned ``text`` rows of the train split of ``--dataset_name`` (a hub dataset, a folder of data
    files or a save_to_disk folder), as training reads them."""
    from domainlm.args import DataArguments
    from domainlm.data import dataset_text_split, load_named_dataset, no_progress_bars

    data_args = DataArguments(dataset_name=name, dataset_config_name=config_name, text_column=text_column)
    with no_progress_bars():
        loaded = load_named_dataset(name, config_name)
        if "train" not in loaded:
            raise UserError(
                f"--dataset_name {name}: no train split to learn from; it has {', '.join(loaded) or 'none'}"
            )
        return dataset_text_split(loaded["train"], data_args, "train")


def short_note(tokenizer: PreTrainedTokenizerBase, vocab_size: int, min_frequency: int) -> str:
    """`` (the corpus gave only N of the M requested ...)`` when the BPE learned fewer tokens than asked for."""
    learned = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=False)
    if learned >= vocab_size:
        return ""
    hint = "add text" + (" or lower --min_frequency" if min_frequency > 1 else "") + " for more"
    return f" (the corpus gave only {learned:,} of the {vocab_size:,} requested by --vocab_size; {hint})"
