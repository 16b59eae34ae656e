"""--init-from: a DISFA model initialised from a BP4D checkpoint maps the right rows."""
import pytest
import torch
from torch import nn

from mgrr_pyg.facs import BP4D_AUS, DISFA_AUS
from mgrr_pyg.train.checkpoint import build_metadata, save_checkpoint
from mgrr_pyg.train.transfer import DISFA_FROM_BP4D, init_from_checkpoint, transfer_weights

# JAA-Net's mapping (docs/protocol.md), written out independently: DISFA AU -> BP4D AU
SPEC = {1: 1, 2: 2, 4: 4, 6: 6, 12: 12, 25: 23, 26: 17}


def test_mapping_is_the_spec():
    assert DISFA_FROM_BP4D == SPEC


class PerAUToy(nn.Module):
    def __init__(self, n, d=3, hidden=2):
        super().__init__()
        self.shared = nn.Linear(4, 4)
        self.heads = nn.Parameter(torch.randn(n, d))  # [n, d]
        self.adjacency = nn.Parameter(torch.randn(n, n))  # [n, n]
        self.integrated = nn.Linear(n * d + hidden, n)  # [n, n*d + hidden]
        self.register_buffer("prior", torch.rand(n, n))


def test_generic_remap_rows_columns_and_blocks():
    torch.manual_seed(0)
    src, tgt = PerAUToy(12), PerAUToy(8)
    fresh = {k: v.clone() for k, v in tgt.state_dict().items()}
    report = transfer_weights(tgt, src.state_dict(), BP4D_AUS, DISFA_AUS)
    s, t = src.state_dict(), tgt.state_dict()
    sidx = {au: BP4D_AUS.index(au) for au in BP4D_AUS}
    for i, au in enumerate(DISFA_AUS):
        if au == 9:
            assert torch.equal(t["heads"][i], fresh["heads"][i])
            assert torch.equal(t["adjacency"][i], fresh["adjacency"][i])
            assert torch.equal(t["adjacency"][:, i], fresh["adjacency"][:, i])
            assert torch.equal(t["integrated.weight"][:, 3 * i:3 * i + 3], fresh["integrated.weight"][:, 3 * i:3 * i + 3])
            continue
        j = sidx[SPEC[au]]
        assert torch.equal(t["heads"][i], s["heads"][j])
        assert torch.equal(t["integrated.bias"][i], s["integrated.bias"][j])
        for i2, au2 in enumerate(DISFA_AUS):
            if au2 != 9:
                assert t["adjacency"][i, i2] == s["adjacency"][j, sidx[SPEC[au2]]]
                j2 = sidx[SPEC[au2]]
                assert torch.equal(t["integrated.weight"][i, 3 * i2:3 * i2 + 3],
                                   s["integrated.weight"][j, 3 * j2:3 * j2 + 3])
    # the shared tail (alignment feature columns) and shared layers are copied
    for i, au in enumerate(DISFA_AUS):
        if au != 9:
            assert torch.equal(t["integrated.weight"][i, -2:], s["integrated.weight"][sidx[SPEC[au]], -2:])
    assert torch.equal(t["shared.weight"], s["shared.weight"])
    # the per-AU buffer (target fold's prior) is left alone
    assert torch.equal(t["prior"], fresh["prior"])
    assert "shared.weight" in report.copied and report.fresh_aus == [9]
    assert {k for k, _ in report.remapped} == {"heads", "adjacency", "integrated.weight", "integrated.bias"}


def test_real_tiny_model_from_bp4d_checkpoint(tmp_path):
    from mgrr_pyg.model import create_model

    torch.manual_seed(0)
    bp4d = create_model("tiny")
    torch.manual_seed(1)
    disfa = create_model("tiny", aus=DISFA_AUS)
    before = {k: v.clone() for k, v in disfa.state_dict().items()}
    path = save_checkpoint(tmp_path / "bp4d.pt", model=bp4d, epoch=1,
                           metadata=build_metadata(BP4D_AUS, "BP4D", 1))
    report = init_from_checkpoint(disfa, path)
    s, t = bp4d.state_dict(), disfa.state_dict()
    remapped = dict(report.remapped)
    assert not [k for k, why in report.kept if "not a per-AU layout" in why], report.summary()
    per_au = [k for k in t if t[k].shape != s[k].shape]
    assert per_au and set(per_au) <= set(remapped) | {k for k, _ in report.kept}
    i25, j23 = DISFA_AUS.index(25), BP4D_AUS.index(23)
    i9 = DISFA_AUS.index(9)
    for key in per_au:
        if key not in remapped:
            continue
        if t[key].shape[0] == 8 and s[key].shape[0] == 12:
            if t[key].shape[1:] == s[key].shape[1:]:  # per-AU rows: heads, queries, extractors
                assert torch.equal(t[key][i25], s[key][j23]), key
            elif t[key].shape == (8, 8):  # adjacency: rows and columns
                i26, j17 = DISFA_AUS.index(26), BP4D_AUS.index(17)
                assert t[key][i25, i26] == s[key][j23, j17], key
                assert torch.equal(t[key][:, i9], before[key][:, i9]), key
            assert torch.equal(t[key][i9], before[key][i9]), key
    shared = [k for k in t if t[k].shape == s[k].shape and t[k].is_floating_point()]
    for key in shared:
        if key != "prior":
            assert torch.equal(t[key], s[key]), key
    assert torch.equal(t["prior"], before["prior"])
    # another depth loads what matches and says how the architectures differ
    # (tests/train/test_transfer_options.py tests that in full)
    shallow = init_from_checkpoint(create_model("tiny", aus=DISFA_AUS, num_layers=1), path)
    assert shallow.architecture_differences == ["num_layers: 2 -> 1"]
