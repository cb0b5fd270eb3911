"""Two-phase fine-tuning: exactly the head trains in phase 1, the chosen blocks in phase 2."""
from __future__ import annotations

import pytest
import torch

from brainmri.models import create_model
from brainmri.training.finetune import backbone_blocks, head_parameter_names, set_phase
from brainmri.training.schedule import two_phase_lr, warmup_cosine


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name,head", [("resnet18", "linear"), ("densenet121", "mlp"), ("seed003_cnn", "linear"), ("efficientnet_b0", "linear")])
def test_phase1_trains_exactly_the_head(name, head):
    model = create_model(name, 4, head=head)
    set_phase(model, 1, "all")
    expected = {n for n, _ in model.get_classifier().named_parameters(prefix="x")}
    assert trainable(model) == head_parameter_names(model)
    assert len(trainable(model)) == len(expected) > 0
    assert all(n.split(".")[0] in ("fc", "classifier", "head") for n in trainable(model))


def test_phase2_unfreezes_the_last_blocks_only():
    model = create_model("resnet18", 4)
    blocks = backbone_blocks(model)
    assert [b[0].split(".")[0] for b in blocks][-2:] == ["layer3", "layer4"]
    set_phase(model, 2, "1")
    names = trainable(model)
    assert names == head_parameter_names(model) | set(blocks[-1])
    assert not any(n.startswith("layer3") for n in names)
    set_phase(model, 2, "2")
    assert any(n.startswith("layer3") for n in trainable(model))
    set_phase(model, 2, "all")
    assert trainable(model) == {n for n, _ in model.named_parameters()}


def test_frozen_batchnorm_stays_in_eval_mode():
    model = create_model("resnet18", 4).train()
    set_phase(model, 1, "all")
    assert not model.bn1.training
    set_phase(model, 2, "all")
    assert model.bn1.training


def test_schedule_phases_and_warmup():
    # phase 1: backbone lr is 0 and head lr follows head_lr; phase 2: both at lr
    head, bb = two_phase_lr(0, 10, head_epochs=1, epochs=2, head_lr=1e-2, lr=1e-3, warmup_epochs=0, cosine=False)
    assert (head, bb) == (1e-2, 0.0)
    head, bb = two_phase_lr(10, 10, 1, 2, 1e-2, 1e-3, 0, False)
    assert head == bb == 1e-3
    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)
    assert warmup_cosine(100, 100, 10) == pytest.approx(0.0)
    assert warmup_cosine(55, 100, 10) == pytest.approx(0.5)


def test_phase1_step_leaves_backbone_weights_unchanged(tiny_run_config):
    from brainmri.training.module import ClassifierModule

    model = create_model("resnet18", 4)
    set_phase(model, 1, "all")
    cfg = tiny_run_config(head_epochs=1, epochs=1).train
    module = ClassifierModule(model, 4, cfg, steps_per_epoch=1)
    opt = module.configure_optimizers()["optimizer"]
    for g, lr in zip(opt.param_groups, two_phase_lr(0, 1, 1, 1, cfg.head_lr, cfg.lr, 0, True)):
        g["lr"] = lr
    before = model.layer1[0].conv1.weight.clone()
    head_before = model.fc.weight.clone()
    loss = module.training_step((torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])), 0)
    loss.backward()
    opt.step()
    assert torch.equal(model.layer1[0].conv1.weight, before)
    assert not torch.equal(model.fc.weight, head_before)


def test_more_blocks_than_the_model_has_are_refused_not_wrapped_around():
    from brainmri.errors import ConfigError
    from brainmri.training.finetune import check_unfreeze

    model = create_model("resnet18", 4)
    n = len(backbone_blocks(model))
    check_unfreeze(model, n, "resnet18")
    check_unfreeze(model, "all", "resnet18")
    with pytest.raises(ConfigError, match=rf"train\.unfreeze={n + 1}: resnet18 has {n} backbone blocks; give 0\.\.{n} or 'all'"):
        check_unfreeze(model, n + 1, "resnet18")
