"""Model code: our own GPT-2 (weights, tokenizer, classifier) in :mod:`sentibench.models.gpt2`."""
