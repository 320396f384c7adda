"""Shared by the sweep tests: the smallest main-job config that still trains, validates and decodes.

Answers of 16 tokens (no free sentences), one training batch of 32 per process, 16 validation and 16
test documents, no decoding during validation, no progress bar or model summary.
"""

FAST = ("model=tiny", "trainer.max_epochs=1", "data.max_free_sentences=0", "data.answer_length=16",
        "data.batch_size=32", "data.val_size=16", "data.test_size=16", "data.eval_batch_size=16",
        "module.eval_decode_batches=0", "callbacks.progress=null", "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false")
