"""The one training loop (mdxfer.learn.training): early stopping, time limit, resumable checkpoints."""

import math

import pytest
import torch

from mdxfer.errors import DataError
from mdxfer.learn.training import Checkpoint, EarlyStopper, EpochResult, train_epochs, write_history


def _regression(init_seed: int = 0):
    """A tiny real regression (a linear layer on 64 noisy points) and its epoch function;
    ``init_seed`` draws the starting weights."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(64, generator=g)
    torch.manual_seed(init_seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def run_epoch(done: int) -> EpochResult:
        perm = torch.randperm(48, generator=torch.Generator().manual_seed(1000 + done))
        for s in range(0, 48, 16):
            idx = perm[s : s + 16]
            loss = torch.nn.functional.mse_loss(model(X[idx]).squeeze(-1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = float(torch.nn.functional.mse_loss(model(X[48:]).squeeze(-1), y[48:]))
        return EpochResult(val, {"val_loss": val})

    return model, opt, run_epoch


def test_early_stopper_stops_on_patience_and_keeps_the_best_weights():
    model = torch.nn.Linear(2, 1)
    st = EarlyStopper(patience=2)
    for loss in (3.0, 1.0, 2.0):
        assert st.stop_reason() is None
        with torch.no_grad():
            model.weight.fill_(loss)
        st.record_epoch(loss, model, 0.1)
    assert (st.epoch, st.best_epoch, st.bad_epochs) == (3, 2, 1)
    assert st.stop_reason() is None
    st.record_epoch(5.0, model, 0.1)
    assert st.stop_reason() == "early_stopping"
    st.restore(model)
    assert torch.all(model.weight == 1.0) and not model.training
    assert st.record("early_stopping") == {
        "best_epoch": 2,
        "epochs_run": 4,
        "stop_reason": "early_stopping",
        "train_wall_s": 0.4,
    }


def test_time_limit_counts_training_time_and_no_epoch_is_an_error():
    st = EarlyStopper(patience=None, time_limit_s=1.0)
    st.record_epoch(1.0, torch.nn.Linear(1, 1), 0.6)
    assert st.stop_reason() is None
    st.record_epoch(0.5, torch.nn.Linear(1, 1), 0.6)
    assert st.stop_reason() == "time_limit"
    with pytest.raises(DataError, match="No epoch was trained"):
        EarlyStopper().restore(torch.nn.Linear(1, 1))


def test_state_of_a_checkpoint_written_before_the_loop_was_shared_loads():
    # self-supervised checkpoints had no bad_epochs, pretraining ones no best_metrics
    old_selfsup = {
        "epoch": 2,
        "best_loss": 0.5,
        "best_epoch": 1,
        "train_s": 3.0,
        "history": [{"epoch": 1}],
        "best_state": None,
        "best_metrics": {"val_loss": 0.5},
    }
    st = EarlyStopper()
    st.load_state_dict(old_selfsup)
    assert (st.epoch, st.bad_epochs, st.best_metrics) == (2, 0, {"val_loss": 0.5})
    old_pretrain = {
        "epoch": 4,
        "best_loss": 0.2,
        "best_epoch": 3,
        "bad_epochs": 1,
        "train_s": 2.0,
        "history": [],
        "best_state": None,
    }
    st.load_state_dict(old_pretrain)
    assert (st.epoch, st.bad_epochs, st.best_metrics) == (4, 1, None)


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    model, opt, run_epoch = _regression()
    straight = EarlyStopper(patience=50)
    assert train_epochs(run_epoch, straight, 12, model) == "max_epochs"

    key = {"data": "tiny"}
    model, opt, run_epoch = _regression()
    st = EarlyStopper(patience=50)
    ck = Checkpoint(tmp_path / "checkpoint.pt", key, {"model": model, "optimizer": opt})
    assert train_epochs(run_epoch, st, 5, model, checkpoint=ck) == "max_epochs"

    model2, opt2, run_epoch2 = _regression(
        init_seed=7
    )  # other starting weights: the checkpoint wins
    st2 = EarlyStopper(patience=50)
    ck2 = Checkpoint(tmp_path / "checkpoint.pt", key, {"model": model2, "optimizer": opt2})
    assert ck2.resume(st2, "other data")
    assert st2.epoch == 5
    assert train_epochs(run_epoch2, st2, 12, model2, checkpoint=ck2) == "max_epochs"
    assert [h["val_loss"] for h in st2.history] == pytest.approx(
        [h["val_loss"] for h in straight.history]
    )
    assert st2.best_epoch == straight.best_epoch and math.isclose(st2.best_loss, straight.best_loss)

    with pytest.raises(DataError, match="different run"):
        Checkpoint(tmp_path / "checkpoint.pt", {"data": "other"}, {}).resume(
            EarlyStopper(), "other data"
        )


def test_a_stopped_run_trains_no_further_on_resume():
    model, opt, run_epoch = _regression()
    st = EarlyStopper(patience=1)
    st.record_epoch(0.1, model, 0.0)
    st.record_epoch(0.2, model, 0.0)
    calls = []
    assert (
        train_epochs(lambda e: calls.append(e) or EpochResult(0.0), st, 10, model)
        == "early_stopping"
    )
    assert calls == []


def test_history_csv(tmp_path):
    write_history(tmp_path / "h.csv", [{"epoch": 1, "loss": 0.5, "time_s": 1.25}])
    assert (tmp_path / "h.csv").read_text() == "epoch,loss,time_s\n1,0.5,1.25\n"
    write_history(tmp_path / "none.csv", [])
    assert not (tmp_path / "none.csv").exists()
