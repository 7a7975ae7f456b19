"""What every artifact folder carries for ``edgeport.runtime``: the model's tokenizer as
``tokenizer.json`` (truncation at the artifact's longest sequence, no padding: the runtime pads
each micro-batch itself) and the request path recorded in the manifest (``RequestPath``).
``Target.build`` calls :func:`write_request_files` after the target's own build."""

from __future__ import annotations

from pathlib import Path

from edgeport.artifact import Built, RequestPath
from edgeport.calibration.feeds import DEFAULT_MAX_LENGTH
from edgeport.errors import InputError

TOKENIZER_FILE = "tokenizer.json"
OUTPUTS = {"feature-extraction": "embeddings: pooled and L2-normalised in the graph",
           "text-classification": "logits"}


def write_request_files(runtime: str, task: str | None, tokenizer, built: Built, out: Path
                        ) -> tuple[RequestPath, tuple[str, ...]]:
    """Write the tokenizer into ``out``; return the request path and the files written.

    ``tokenizer`` is the run's Hugging Face tokenizer; only a fast one (backed by the
    `tokenizers` library) can be served without transformers."""
    from edgeport.runtime.backends import SETTINGS

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise InputError(f"the model's tokenizer ({type(tokenizer).__name__}) is not a fast tokenizer, so "
                         f"edgeport.runtime cannot serve its artifacts without transformers",
                         hint="save the model with a tokenizer.json (AutoTokenizer(..., use_fast=True))")
    from tokenizers import Tokenizer

    buckets = (built.signature or {}).get("buckets")
    max_length = min(DEFAULT_MAX_LENGTH, max(buckets) if buckets else
                     (built.fixed_shape[1] if built.fixed_shape else DEFAULT_MAX_LENGTH))
    copy = Tokenizer.from_str(backend.to_str())  # the live one carries a caller's last padding
    copy.no_padding()
    copy.enable_truncation(max_length=max_length, direction=getattr(tokenizer, "truncation_side", "right"))
    copy.save(str(out / TOKENIZER_FILE))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    request = RequestPath(
        tokenizer=TOKENIZER_FILE, max_length=max_length, pad_id=int(pad_id),
        shapes="buckets" if buckets or built.fixed_shape else "dynamic",
        buckets=list(buckets) if buckets else ([built.fixed_shape[1]] if built.fixed_shape else None),
        batch=built.fixed_shape[0] if built.fixed_shape else None,
        output=OUTPUTS.get(task or "feature-extraction", "the graph's first output"),
        runtime=dict(SETTINGS.get(runtime, {})),
    )
    return request, (TOKENIZER_FILE,)
