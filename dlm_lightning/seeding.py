"""One rule for every derived random stream: a seed from (run seed, purpose, indices).

A stream is keyed by what it is for and by the indices it depends on (optimizer step, rank, sample
index), never by how much randomness was drawn before it. So a resumed run or another sharding of
the same samples reproduces it, and adding a stream never shifts another. The global torch RNG is
left alone (Lightning's seed_everything sets it once; only dropout, off by default, reads it).
"""

from __future__ import annotations

import hashlib

import torch


def derived_seed(seed: int, purpose: str, *indices: int) -> int:
    """A 63-bit seed from the run seed, the stream's purpose and its indices (a hash: no collisions in
    practice between streams or neighbouring indices)."""
    key = "/".join([str(int(seed)), purpose, *(str(int(i)) for i in indices)])
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1


def derived_generator(seed: int, purpose: str, *indices: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``derived_seed(seed, purpose, *indices)``."""
    return torch.Generator(device=device).manual_seed(derived_seed(seed, purpose, *indices))
