"""Tiny random Hugging Face checkpoints of several architectures, built in the test session with
transformers' own config classes (2 layers, d_model 64, 4 heads, vocabulary 1000; seconds each),
each saved with a word-level tokenizer of its vocabulary.

Why: the generic measurements (mechcheck.metrics) must run on any architecture TransformerLens'
TransformerBridge boots, not only GPT-Neo (the TinyStories models) and the native organisms; the
weights of real checkpoints cannot be downloaded here.
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 1000
BOS = 0  # "<s>", also EOS


def configs() -> dict:
    """{architecture: transformers config} of the tiny checkpoints."""
    from transformers import (GemmaConfig, GPT2Config, GPTJConfig, GPTNeoConfig, GPTNeoXConfig, LlamaConfig,
                              MistralConfig, OPTConfig, Qwen2Config)

    common = dict(vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=BOS)
    llama_like = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, max_position_embeddings=128, **common)
    return {
        "gpt_neo": GPTNeoConfig(num_layers=2, hidden_size=64, num_heads=4, attention_types=[[["global", "local"], 1]],
                                window_size=32, max_position_embeddings=128, **common),
        "gpt2": GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, **common),
        "gpt_neox": GPTNeoXConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=256,
                                  max_position_embeddings=128, **common),
        "llama": LlamaConfig(**llama_like),
        "qwen2": Qwen2Config(**llama_like),
        "mistral": MistralConfig(**llama_like),
        "gemma": GemmaConfig(head_dim=16, **llama_like),
        "opt": OPTConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, ffn_dim=256,
                         word_embed_proj_dim=64, max_position_embeddings=128, pad_token_id=1, **common),
        "gptj": GPTJConfig(n_layer=2, n_embd=64, n_head=4, rotary_dim=8, n_positions=128, **common),
    }


def tokenizer():
    """A word-level tokenizer of the tiny vocabulary ("<s>", "<unk>", "w2" ... "w999")."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<unk>": 1, **{f"w{i}": i for i in range(2, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<s>", unk_token="<unk>")


def save(arch: str, directory: Path, dtype: torch.dtype = torch.float32, seed: int = 0, config=None) -> Path:
    """A random-weight checkpoint of `arch` (seeded) in `directory`, its weights stored in `dtype`."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config or configs()[arch])
    model.to(dtype).save_pretrained(directory)
    tokenizer().save_pretrained(directory)
    return Path(directory)
