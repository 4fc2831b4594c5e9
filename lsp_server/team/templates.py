"""FIM templates in a prompt sent without a suffix: clients configured for an autoregressive FIM model put
prefix and suffix into one prompt between its special tokens (Continue's openai provider with the legacy
completions endpoint, llama.vscode's `openai_prompt_template`, minuet's llama.cpp recipe). This server fills
a canvas between a prefix and a suffix itself, so it takes them back out."""

from __future__ import annotations

# (prefix marker, suffix marker, middle marker), prefix-suffix-middle order: Qwen2.5-Coder / CodeGemma,
# StarCoder / stable-code (Continue's default template), CodeLlama (its spaces are the template's), DeepSeek
PSM = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<PRE> ", " <SUF>", " <MID>"),
    ("<\uff5cfim\u2581begin\uff5c>", "<\uff5cfim\u2581hole\uff5c>", "<\uff5cfim\u2581end\uff5c>"),
)
# suffix first: Codestral's [SUFFIX]{suffix}[PREFIX]{prefix}
SPM = (("[SUFFIX]", "[PREFIX]"),)


def split(prompt: str) -> tuple[str, str] | None:
    """(prefix, suffix) from a templated prompt, None when it has no template. Whatever precedes the prefix
    marker (repository headers, other files) is dropped; text after the middle marker is the start of the
    middle, so it extends the prefix."""
    for pre, suf, mid in PSM:
        i = prompt.find(pre)
        j = prompt.find(suf, i + len(pre)) if i >= 0 else -1
        k = prompt.find(mid, j + len(suf)) if j >= 0 else -1
        if k >= 0:
            return prompt[i + len(pre) : j] + prompt[k + len(mid) :], prompt[j + len(suf) : k]
    for suf, pre in SPM:
        i = prompt.find(suf)
        j = prompt.find(pre, i + len(suf)) if i >= 0 else -1
        if j >= 0:
            return prompt[j + len(pre) :], prompt[i + len(suf) : j]
    return None
