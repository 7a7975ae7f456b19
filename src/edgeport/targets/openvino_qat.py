"""`openvino-int8-qat`: quantization-aware training through NNCF's PyTorch backend.

The PyTorch model gets NNCF's fake-quantizers (placed and initialised as post-training
quantization would: transformer preset, calibration texts), is fine-tuned to reproduce the
fp32 model's outputs on the calibration texts (distillation, MSE of logits or embeddings),
and is converted to an OpenVINO INT8 IR. Compare with `openvino-int8` (PTQ) in one run.
Options: ``steps`` (200), ``lr`` (1e-5), ``batch`` (8). The budget's layer fallback does not
apply here: fine-tuning is this target's way to recover accuracy.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgeport.artifact import Built
from edgeport.errors import UsageError
from edgeport.targets.base import BuildContext
from edgeport.targets.openvino_gather import gather_rows_first_in_ir
from edgeport.targets.openvino_ir import FILES, MODEL_XML, OpenVinoInt8, OpenVinoOptions, runtime_config


class QatOptions(OpenVinoOptions):
    steps: int = Field(200, gt=0, description="fine-tuning steps")
    lr: float = Field(1e-5, gt=0, description="learning rate (AdamW)")
    batch: int = Field(8, gt=0, description="texts per fine-tuning step")


def _torch_feeds(ctx: BuildContext, batch: int) -> list[dict]:
    import torch

    return [{k: torch.from_numpy(v) for k, v in f.items()} for f in ctx.calibration.feeds(batch_size=batch)]


def fine_tune(student, teacher, feeds: list[dict], steps: int, lr: float) -> dict:
    """Fit the fake-quantized student to the fp32 teacher's outputs; first and last losses."""
    import torch

    from edgeport.model.wrappers import stacked

    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr)
    student.train()
    losses = []
    for step in range(steps):
        feed = feeds[step % len(feeds)]
        with torch.no_grad():
            target = teacher(**feed)
        loss = torch.nn.functional.mse_loss(stacked(student(**feed)), stacked(target))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    student.eval()
    head, tail = losses[: max(1, steps // 10)], losses[-max(1, steps // 10):]
    return {"steps": steps, "lr": lr, "first_loss": sum(head) / len(head), "last_loss": sum(tail) / len(tail)}


class OpenVinoInt8Qat(OpenVinoInt8):
    name = "openvino-int8-qat"
    quantized = False  # no layer-fallback loop (see the module doc)
    Options = QatOptions

    def prepare(self, ctx: BuildContext):
        return None  # the IR is converted from the fine-tuned student, once per build

    def _build_impl(self, ctx: BuildContext, out: Path, prepared) -> Built:
        import copy
        import logging
        import os

        # NNCF compiles its torch extension on first use and gives up after 60 s by default,
        # which a busy 2-core machine exceeds; the build is long anyway, so wait for it
        os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")

        import nncf
        import openvino as ov

        from edgeport.model.load import model_from_path
        from edgeport.model.wrappers import task_module

        if ctx.model_dir is None:
            raise UsageError("openvino-int8-qat trains the PyTorch model; an ONNX file alone cannot be fine-tuned",
                             hint="export from the model folder instead of `edgeport build`")
        nncf.set_log_level(logging.ERROR)
        teacher = task_module(model_from_path(ctx.model_dir))
        steps, lr = ctx.options.steps, ctx.options.lr
        feeds = _torch_feeds(ctx, ctx.options.batch)
        singles = _torch_feeds(ctx, 1)
        student = nncf.quantize(copy.deepcopy(teacher), nncf.Dataset(singles), model_type=nncf.ModelType.TRANSFORMER,
                                subset_size=len(singles))
        training = fine_tune(student, teacher, feeds, steps, lr)
        shapes = [ov.PartialShape([-1, -1])] * len(ctx.input_names)
        model = ov.convert_model(student, example_input=singles[0], input=list(zip(ctx.input_names, shapes)))
        for output, name in zip(model.outputs, ctx.output_names):
            output.get_tensor().set_names({name})
        ov.save_model(model, str(out / MODEL_XML), compress_to_fp16=False)
        rows_first = gather_rows_first_in_ir(out / MODEL_XML)  # the weights are int8 once saved
        return Built(FILES, "nncf torch fake-quant fine-tuning (QAT) -> openvino int8 IR", {"default": "int8"},
                     runtime_config=runtime_config(ctx.options), calibration=ctx.calibration.summary(),
                     details={"qat": training, "int8_tables_gathered_as_int8": rows_first})
