"""Decoded sequences as JSON-ready records, with the checker's verdict when the data has a checker."""

from __future__ import annotations

import torch

from dlm_lightning.data.info import DataInfo
from dlm_lightning.data.padding import canonical


def sample_records(info: DataInfo, tokens: torch.Tensor, index: torch.Tensor) -> tuple[list[dict], list | None]:
    tokenizer, records, checks = info.tokenizer, [], []
    tokens = canonical(tokens, info.pad_ids, info.eos_id)  # every pad variant reads as [EOS]
    for row, i in zip(tokens.tolist(), index.tolist()):
        prompt = [t for t in row[: info.prompt_length] if t != info.pad_id]
        answer = row[info.prompt_length:]
        # answer_ids: what a judge re-scores (dlm_lightning/judge), without a lossy decode-encode round trip
        record = {"index": i, "prompt": tokenizer.decode(prompt), "answer": tokenizer.decode(answer),
                  "answer_ids": answer}
        if info.checker is not None:
            check = info.checker(tokenizer.convert_ids_to_tokens(prompt + answer))
            record["valid"] = check.valid
            record["violations"] = [list(v) for v in check.violations]
            checks.append(check)
        records.append(record)
    return records, (checks if info.checker is not None else None)


def samples_markdown(records: list[dict]) -> str:
    """Records as Markdown lines for TensorBoard's text tab, with the checker's verdict when there is one."""
    def verdict(record: dict) -> str:
        if "valid" not in record:
            return ""
        return " (valid)" if record["valid"] else f" ({record['violations']})"
    return "\n\n".join(f"`{r['prompt']}` → `{r['answer']}`{verdict(r)}" for r in records)
