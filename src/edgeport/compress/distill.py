"""Knowledge distillation: a (compressed) student learns from its teacher.

Loss = alpha·CE(labels) + (1 - alpha)·T²·KL(teacher || student) on temperature-softened
logits, plus ``hidden_weight``·MSE between mapped hidden states (through a learned
projection when widths differ). Without labels it is pure distillation; for embedding
models the output term is 1 - cosine of the pooled embeddings. AdamW with linear warm-up
and decay, batches grouped by length, evaluation on a held-out share of the training data
each epoch, the best epoch's weights kept, early stopping. ``augment`` adds word-replaced
copies of the training sentences (``augment.py``); they carry no label, so only the teacher's
terms train on them.
"""

from __future__ import annotations

import copy
import random

import numpy as np
import torch
import torch.nn.functional as F

from edgeport.compress import augment
from edgeport.compress.evaluate import encode, label_ids, probe_from
from edgeport.errors import DistillationAbandonedError
from edgeport.model.load import LoadedModel
from edgeport.model.wrappers import pooled
from edgeport.recipe import DistillStep as DistillSettings
from edgeport.ui import UI

IGNORED = -100  # the label of a row without one (an augmented copy): no cross-entropy term
NEIGHBOURS = 15  # replacement candidates per word (TinyBERT's K)


def layer_map(student_layers: int, teacher_layers: int, origin: list[int] | None = None) -> list[tuple[int, int]]:
    """(student, teacher) hidden-state indices: embeddings to embeddings; student block i to
    the teacher block it was kept from (``origin``, after block dropping), else to the
    teacher block at the same relative depth."""
    if origin is not None and len(origin) == student_layers:
        return [(0, 0)] + [(i + 1, block + 1) for i, block in enumerate(origin)]
    return [(0, 0)] + [(i, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)]


def _batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length texts (little padding)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class _Objective(torch.nn.Module):
    def __init__(self, student: LoadedModel, teacher: LoadedModel, settings: DistillSettings,
                 origin: list[int] | None):
        super().__init__()
        self.student, self.teacher, self.s = student, teacher, settings
        self.classifier = student.task == "text-classification"
        s_cfg, t_cfg = student.model.config, teacher.model.config
        s_width, t_width = s_cfg.hidden_size, t_cfg.hidden_size
        self.project = torch.nn.Linear(s_width, t_width) if s_width != t_width else torch.nn.Identity()
        self.pairs = layer_map(s_cfg.num_hidden_layers, t_cfg.num_hidden_layers, origin)

    def forward(self, feeds: dict, labels: torch.Tensor | None) -> torch.Tensor:
        hidden = self.s.hidden_weight > 0
        with torch.no_grad():
            t_out = self.teacher.model(**feeds, output_hidden_states=hidden)
        s_out = self.student.model(**feeds, output_hidden_states=hidden)
        if self.classifier:
            temp = self.s.temperature
            kl = F.kl_div(F.log_softmax(s_out.logits / temp, -1), F.softmax(t_out.logits / temp, -1),
                          reduction="batchmean") * temp ** 2
            labelled = labels is not None and bool((labels != IGNORED).any())
            alpha = self.s.alpha if labelled else 0.0
            loss = (1 - alpha) * kl + (alpha * F.cross_entropy(s_out.logits, labels, ignore_index=IGNORED)
                                       if alpha else 0.0)
        else:
            mask = feeds["attention_mask"]
            s_emb = pooled(s_out.last_hidden_state, mask, self.student.pooling)
            t_emb = pooled(t_out.last_hidden_state, mask, self.teacher.pooling)
            loss = (1 - F.cosine_similarity(s_emb, t_emb, dim=-1)).mean()
        if hidden:
            mse = sum(F.mse_loss(self.project(s_out.hidden_states[i]), t_out.hidden_states[j]) for i, j in self.pairs)
            loss = loss + self.s.hidden_weight * mse / len(self.pairs)
        return loss


def sparsity_masks(model: torch.nn.Module, at_least: float = 0.1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, nonzero mask) of every Linear weight that magnitude pruning left sparse:
    training re-applies them after each step, so pruned weights stay zero."""
    masks = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            nonzero = module.weight.detach() != 0
            if 1 - nonzero.float().mean() >= at_least:
                masks.append((module.weight, nonzero))
    return masks


def _metric(result: dict) -> float:
    return result.get("accuracy", result.get("agreement", result["mean_cosine"]))


def _points(result: dict) -> float:
    """The validation metric in points (accuracy is measured in percent already)."""
    return result["accuracy"] if "accuracy" in result else _metric(result) * 100


def _give_up(settings: DistillSettings, teacher: dict, student: dict) -> None:
    """After the first epoch: a student more than ``give_up_drop`` points below its teacher."""
    drop = _points(teacher) - _points(student)
    if settings.give_up_drop is not None and drop > settings.give_up_drop:
        raise DistillationAbandonedError(
            f"distillation abandoned after epoch 1: the student is {drop:.2f} points below its teacher on the "
            f"validation rows (give_up_drop {settings.give_up_drop})",
            hint="a lighter compression, or more epochs per trial, or a larger give_up_drop")


def _augmented(teacher: LoadedModel, texts: list[str], settings: DistillSettings, ui: UI) -> list[str]:
    """The word-replaced copies of the training texts that ``settings.augment`` asks for."""
    if not settings.augment:
        return []
    table = augment.neighbours(teacher, texts, NEIGHBOURS)
    copies = augment.word_replaced(texts, table, settings.augment, settings.augment_rate,
                                   settings.augment_min_words, settings.seed)
    message = (f"augmentation: {len(copies)} word-replaced copies of the training texts of at least "
               f"{settings.augment_min_words} words ({len(table)} words with neighbours)")
    (ui.info if copies else ui.warn)(message + ("" if copies else ": augment asked for copies, none were made"))
    return copies


def distill(student: LoadedModel, teacher: LoadedModel, texts: list[str], labels: list[str] | None,
            settings: DistillSettings, ui: UI, origin: list[int] | None = None) -> dict:
    """Train ``student`` in place; ``origin``: the teacher block each student block was kept from."""
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    index = list(range(len(texts)))
    rng.shuffle(index)
    n_val = max(1, int(len(index) * settings.validation_fraction))
    val_idx, train_idx = index[:n_val], index[n_val:]
    if settings.max_samples:
        train_idx = train_idx[:settings.max_samples]
    val_texts = [texts[i] for i in val_idx]
    val_labels = [labels[i] for i in val_idx] if labels is not None else None
    probe = probe_from(teacher, val_texts, val_labels)
    train_texts = [texts[i] for i in train_idx]
    train_labels = label_ids([labels[i] for i in train_idx], student.model.config) if labels is not None else None
    copies = _augmented(teacher, train_texts, settings, ui)
    train_texts += copies
    if train_labels is not None:  # the copies' rows are left out of the labels' cross-entropy
        train_labels = np.concatenate([train_labels, np.full(len(copies), IGNORED, dtype=train_labels.dtype)])

    objective = _Objective(student, teacher, settings, origin)
    masks = sparsity_masks(student.model)
    teacher.model.eval()
    params = [p for p in student.model.parameters()] + list(objective.project.parameters())
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.01)
    lengths = [len(t) for t in train_texts]
    steps = settings.epochs * -(-len(train_texts) // settings.batch_size)
    warm = max(1, int(steps * settings.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warm, max(0.0, (steps - step) / max(1, steps - warm))))

    start = probe.measure(student)
    teacher_result = probe.measure(teacher) if settings.give_up_drop is not None else None
    history = [{"epoch": 0, "loss": None, "validation": start}]
    best, best_state, stale = _metric(start), copy.deepcopy(student.model.state_dict()), 0
    for epoch in range(1, settings.epochs + 1):
        student.model.train()
        batches = _batches(lengths, settings.batch_size, rng)
        losses = []
        with ui.progress(f"distilling, epoch {epoch}/{settings.epochs}", len(batches)) as advance:
            for batch in batches:
                feeds = encode(student, [train_texts[i] for i in batch], settings.max_length)
                target = torch.as_tensor(train_labels[batch]) if train_labels is not None else None
                loss = objective(feeds, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                with torch.no_grad():
                    for weight, nonzero in masks:
                        weight.mul_(nonzero)
                losses.append(float(loss))
                advance(1, f"loss {np.mean(losses[-50:]):.4f}")
        student.model.eval()
        result = probe.measure(student)
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 5),
                        "first_loss": round(float(np.mean(losses[:20])), 5),
                        "last_loss": round(float(np.mean(losses[-20:])), 5), "validation": result})
        ui.info(f"epoch {epoch}: loss {np.mean(losses):.4f}, validation {result}")
        if epoch == 1 and teacher_result is not None:
            _give_up(settings, teacher_result, result)
        if _metric(result) > best:
            best, best_state, stale = _metric(result), copy.deepcopy(student.model.state_dict()), 0
        else:
            stale += 1
            if stale > settings.patience - 1 and epoch < settings.epochs:
                ui.info(f"early stop: no improvement for {stale} epoch(s)")
                break
    student.model.load_state_dict(best_state)
    student.model.eval()
    best_epoch = max(range(len(history)), key=lambda i: (_metric(history[i]["validation"]), -i))
    return {"train_samples": len(train_texts), "augmented": len(copies), "validation_samples": n_val,
            "layer_map": objective.pairs, "history": history, "best_epoch": history[best_epoch]["epoch"]}
