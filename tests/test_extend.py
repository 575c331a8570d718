"""docs/ARCHITECTURE.md, "How to extend": a new loss term and a new corpus reader, added through
the public path (register_term, register_corpus) and run on the smoke configuration."""
import pandas as pd
import pytest
import torch

from cdcml_lib import losses
from cdcml_lib.data import dataset as D
from cdcml_lib.runs import folder as run_folder
from cdcml_lib.runs.train import check_train_params, train_run
from cdcml_lib.workflow import params as P


class EmbeddingSpreadTerm(losses.LossTerm):
    """A dummy term: the squared norm of each modality's mean embedding (pulls both clouds to 0)."""

    name, needs, equation = "spread", ("f_img", "f_mus"), "test only"

    def __init__(self, **_options):
        super().__init__()

    def parts(self, out, batch, view):
        return {"spread": out["f_img"].mean(0).pow(2).sum() + out["f_mus"].mean(0).pow(2).sum()}, {}


def flipped_source(p: dict, progress: bool = False) -> D.Source:
    """A dummy corpus: the embedded one with every valence mirrored (1 - v)."""
    source = D.embedded_source(p, progress)
    items = source.items.assign(valence=1.0 - source.items["valence"], source="flipped")
    return D.Source(items=items, images=source.images, clips=source.clips,
                    made_by={**source.made_by, "corpus": "flipped"}, corpus=source.corpus)


@pytest.fixture
def registered():
    losses.register_term(EmbeddingSpreadTerm)
    D.register_corpus("flipped")(flipped_source)
    yield
    losses.LOSS_TERMS.pop("spread")
    D.CORPUS_SOURCES.pop("flipped")


def test_a_variant_names_the_new_term_and_the_others_are_off(registered):
    weights = P.term_weights({"sim_mse": 1.0, "spread": 0.5}, "params/variants/new.yaml")
    assert weights == {"w_sim_mse": 1.0, "w_cfr": 0.0, "w_cfm": 0.0, "w_va_mse": 0.0, "w_sfr": 0.0,
                       "w_spread": 0.5}
    with pytest.raises(P.ParamError, match="unknown loss term 'sprad'.*spread"):
        P.term_weights({"sprad": 1.0}, "params/variants/new.yaml")
    loss = losses.CDCMLLoss(sigma=0.3, w_cfr=0, w_cfm=0, w_sfr=0, w_spread=0.5)
    assert list(loss.terms) == ["sim_mse", "va_mse", "spread"]


def test_a_new_corpus_and_a_new_term_run_on_the_smoke_configuration(registered, tmp_path):
    data = {**P.section("smoke", "dataset"), "corpus": "flipped", "out_dir": str(tmp_path / "data")}
    folder = D.build_dataset(draw_seeds=[0], **data)
    embedded = D.embedded_source({**data, "corpus": "embedded"}).items
    assert (folder.items.sort_values("id")["valence"].to_numpy()
            == pytest.approx(1.0 - embedded.sort_values("id")["valence"].to_numpy()))

    variant = {**P.variant_params("smoke", "sim_va"), **P.term_weights({"sim_mse": 1.0, "va_mse": 1.0,
                                                                         "spread": 0.5}, "test"),
               "data_dir": data["out_dir"], "epochs": 1, "num_threads": 1}
    params = check_train_params(P.seed_params(variant, 0, str(tmp_path / "runs" / "flipped-s0")))
    metrics = train_run(params)
    curves = run_folder.read_curves(tmp_path / "runs" / "flipped-s0")
    assert "loss_spread" in curves.columns and torch.isfinite(torch.tensor(curves["loss_spread"].to_numpy())).all()
    assert "sim_mse" in metrics["test"]
    assert isinstance(curves, pd.DataFrame)
