"""vLLM's per-token logprobs (``[{token_id: {logprob, rank, decoded_token}}, ...]``) in OpenAI's two shapes."""

from __future__ import annotations

from typing import Any


def _ranked(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidates of one token, the chosen one (lowest rank) first."""
    candidates = [c for c in entry.values() if isinstance(c, dict)]
    return sorted(candidates, key=lambda c: c.get("rank") or 1 << 30)


def _token(candidate: dict[str, Any]) -> dict[str, Any]:
    text = str(candidate.get("decoded_token", ""))
    return {"token": text, "logprob": float(candidate.get("logprob", 0.0)), "bytes": list(text.encode("utf-8"))}


def chat_logprobs(entries: list[dict], top: int) -> list[dict[str, Any]]:
    """``choices[].logprobs.content`` of a chat completion."""
    content = []
    for entry in entries:
        ranked = _ranked(entry)
        if not ranked:
            continue
        content.append({**_token(ranked[0]), "top_logprobs": [_token(c) for c in ranked[:top]]})
    return content


def completion_logprobs(entries: list[dict], top: int, offset: int) -> dict[str, Any]:
    """``choices[].logprobs`` of a completion; ``offset``: where this text starts in the choice's text."""
    tokens, token_logprobs, tops, offsets = [], [], [], []
    for entry in entries:
        ranked = _ranked(entry)
        if not ranked:
            continue
        chosen = _token(ranked[0])
        tokens.append(chosen["token"])
        token_logprobs.append(chosen["logprob"])
        tops.append({c["token"]: c["logprob"] for c in map(_token, ranked[:top])})
        offsets.append(offset)
        offset += len(chosen["token"])
    return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}
