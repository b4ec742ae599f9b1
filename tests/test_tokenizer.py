from domainlm.template import EOS_TOKEN, PAD_TOKEN, SEP_TOKEN
from domainlm.tokenizer import ensure_special_tokens, train_bpe_tokenizer

TEXTS = ["Data Scientist<|SEP|>python, sql<|SEP|>We need a café person.\nApply now!"] * 30 + ["plain text"] * 10


def test_trained_tokenizer_has_distinct_eos_pad_and_a_visible_sep(tmp_path):
    tok = train_bpe_tokenizer(TEXTS, vocab_size=300)
    assert (tok.eos_token, tok.pad_token) == (EOS_TOKEN, PAD_TOKEN)
    assert (tok.eos_token_id, tok.pad_token_id) == (0, 1)
    sep = tok.convert_tokens_to_ids(SEP_TOKEN)
    ids = tok.encode(TEXTS[0])
    assert ids.count(sep) == 2
    # what pipeline('text-generation') does: decode without special tokens; <|SEP|> must survive
    assert tok.decode([*ids, tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == TEXTS[0]
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.encode(TEXTS[0]) == ids and again.pad_token_id == 1


def test_ensure_special_tokens_adds_what_a_gpt2_style_tokenizer_lacks():
    # make it look like stock GPT-2: pad = eos, no <|SEP|> token
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "hello": 1, "<unk>": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    added = ensure_special_tokens(tok)
    assert added == [PAD_TOKEN, SEP_TOKEN]
    assert tok.pad_token_id == 3 and tok.eos_token_id == 0
    assert tok.convert_tokens_to_ids(SEP_TOKEN) == 4
    assert ensure_special_tokens(tok) == []
    assert tok.decode(tok.encode("hello <|SEP|> hello"), skip_special_tokens=True).count(SEP_TOKEN) == 1
