"""domainlm: fine-tune GPT-2 and GPT-Neo models on domain text (job postings, corpora, jokes)."""

__version__ = "0.1.0"
