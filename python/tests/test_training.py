"""A morphed child keeps training in PyTorch, with the parent's optimizer state carried over."""

import pytest
import torch
from conftest import border_inputs, conv_net, train_a_little
from torch import nn

import netmorph
from netmorph.torch import PActivation, carry_optimizer_state

SHAPE = (2, 7, 7)


def loss_of(net, x, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(net(x), y).item()


@pytest.mark.parametrize("op", ["depth@3,cl=8,k1=3,k2=3,act=tanh", "width@3,to=9", "kernel@3,k=5"])
def test_child_trains_on_with_carried_momentum(op, dtype):
    parent = conv_net(dtype)
    opt, x, y = train_a_little(parent, SHAPE, dtype, steps=10)
    child, report = netmorph.from_torch(parent, SHAPE).morph(op, seed=1)
    net = child.to_torch()
    # A fifth of the parent's rate: right after a morph the new layers' gradients are large
    # (morphism notes, section 12).
    child_opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    carried = carry_optimizer_state(opt, parent, child_opt, net, report)
    assert carried == sum(e["parent"] is not None for e in report["carry"])
    # Parameters the morph left alone keep their momentum exactly.
    params = dict(parent.named_parameters())
    children = dict(net.named_parameters())
    for e in report["carry"]:
        if e["parent"] is not None and all(m is None for m in e["index"]):
            assert torch.equal(
                child_opt.state[children[e["child"]]]["momentum_buffer"],
                opt.state[params[e["parent"]]]["momentum_buffer"].reshape(e["shape"]),
            ), e["child"]
    before = loss_of(net, x, y)
    assert abs(before - loss_of(parent, x, y)) <= 1e-4 * max(1.0, before)
    for _ in range(20):
        child_opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        child_opt.step()
        for m in net.modules():
            if isinstance(m, PActivation):
                m.clamp_()
    assert loss_of(net, x, y) < before


def test_momentum_lands_where_the_parameters_went():
    parent = conv_net(torch.float64)
    opt, _, _ = train_a_little(parent, SHAPE, torch.float64, steps=3)
    child, report = netmorph.from_torch(parent, SHAPE).morph("width@3,to=9", seed=4)
    net = child.to_torch()
    child_opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    carry_optimizer_state(opt, parent, child_opt, net, report)
    params = dict(parent.named_parameters())
    children = dict(net.named_parameters())
    # The widened conv (source name 3.0 in the nested Sequential) kept its rows, shuffled.
    entry = next(e for e in report["carry"] if e["child"] == "3.weight")
    assert entry["parent"] == "3.0.weight"
    rows = entry["index"][0]
    buf = child_opt.state[children["3.weight"]]["momentum_buffer"]
    parent_buf = opt.state[params["3.0.weight"]]["momentum_buffer"]
    for c, p in enumerate(rows):
        if p is None:
            assert torch.all(buf[c] == 0)
        else:
            assert torch.equal(buf[c], parent_buf[p])
            assert torch.equal(children["3.weight"][c], params["3.0.weight"][p])
    # The single-parameter-per-channel PReLU's momentum follows its channels too.
    entry = next(e for e in report["carry"] if e["child"] == "4.a")
    assert entry["parent"] == "3.1.weight"


def test_adam_state_is_carried():
    parent = conv_net(torch.float32)
    torch.manual_seed(0)
    x = border_inputs(16, SHAPE, torch.float32, 0)
    y = torch.randint(0, 5, (16,))
    opt = torch.optim.Adam(parent.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(parent(x), y).backward()
        opt.step()
    child, report = netmorph.from_torch(parent, SHAPE).morph("kernel@0,k=5")
    net = child.to_torch()
    child_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    carry_optimizer_state(opt, parent, child_opt, net, report)
    state = child_opt.state[dict(net.named_parameters())["0.weight"]]
    parent_state = opt.state[dict(parent.named_parameters())["0.weight"]]
    assert torch.equal(state["step"], parent_state["step"])
    # The 3x3 taps sit in the middle of the 5x5 kernel; the ring around them is new.
    assert torch.equal(state["exp_avg"][:, :, 1:4, 1:4], parent_state["exp_avg"])
    assert state["exp_avg_sq"][:, :, 0, :].abs().sum() == 0
    child_opt.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    child_opt.step()


def test_a_single_parameter_prelu_broadcasts():
    parent = nn.Sequential(nn.Linear(6, 4), nn.PReLU(), nn.Linear(4, 5))
    opt, _, _ = train_a_little(parent, (6,), torch.float32)
    child, report = netmorph.from_torch(parent, (6,)).morph("width@0,to=6", seed=0)
    net = child.to_torch()
    child_opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    carry_optimizer_state(opt, parent, child_opt, net, report)
    a = child_opt.state[dict(net.named_parameters())["1.a"]]["momentum_buffer"]
    assert a.shape == (6,)
    assert (a != 0).sum() == 4


def test_state_follows_the_childs_dtype():
    """A float32 module converted to float64: the carried state is float64 too."""
    parent = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 5))
    x = border_inputs(16, (6,), torch.float32, 0)
    y = torch.randint(0, 5, (16,))
    opt = torch.optim.Adam(parent.parameters(), lr=1e-3)
    opt.zero_grad()
    nn.functional.cross_entropy(parent(x), y).backward()
    opt.step()
    child, report = netmorph.from_torch(parent, (6,), dtype="f64").morph("width@0,to=6")
    net = child.to_torch()
    child_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    carry_optimizer_state(opt, parent, child_opt, net, report)
    state = child_opt.state[dict(net.named_parameters())["0.weight"]]
    assert state["exp_avg"].dtype == torch.float64
    child_opt.zero_grad()
    nn.functional.cross_entropy(net(x.double()), y).backward()
    child_opt.step()
