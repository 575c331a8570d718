"""The paper configuration's networks on the CPU (issue 29): ResNet-50 images at 224 x 224 and a
ResNet-18 music branch on 193 x 87 features, built without pretrained weights (nothing is
downloaded), trained for one epoch of two steps on a handful of items, evaluated, and read back
from the checkpoint. This is the code path of params/paper.yaml and params/imemnet.yaml that
otherwise runs only on a GPU."""
import numpy as np
import pandas as pd
import pytest
import torch

from cdcml_lib.data.dataset import build_dataset, open_dataset
from cdcml_lib.runs.train import load_trained, train_run
from cdcml_lib.workflow.params import train_params


@pytest.fixture(scope="module")
def paper_sized_data(tmp_path_factory) -> str:
    """Twelve 224 x 224 images and a few 2 s clips of the embedded benchmark."""
    out = str(tmp_path_factory.mktemp("paper_data") / "tiny")
    build_dataset(corpus="embedded", out_dir=out, seed=0, n_songs=4, clips_per_song_min=2,
                  clips_per_song_max=3, n_images=12, image_size=224, label_noise=0.06,
                  split_train=0.5, split_val=0.25, split_test=0.25, n_random=1, n_top=1,
                  n_bottom=1, keep_fraction=0.5, feature_backend="fast", feature_device="cpu",
                  n_jobs=1)
    return out


def test_paper_models_train_evaluate_and_round_trip_on_the_cpu(paper_sized_data, tmp_path):
    params = train_params("paper", "cdcml", 0, str(tmp_path / "cdcml-s0"))
    assert (params["image_backbone"], params["music_backbone"], params["image_size"],
            params["embed_dim"]) == ("resnet50", "resnet18", 224, 512)
    params.update({"data_dir": paper_sized_data, "pretrained": False, "device": "cpu",
                   "epochs": 1, "batch_size": 4, "num_workers": 0, "num_threads": 2})
    ds = open_dataset(paper_sized_data)
    assert ds.array("images").shape[1:] == (224, 224, 3)
    assert ds.array("music_features").shape[1:] == (193, 87)

    metrics = train_run(params, progress=False)

    run_dir = tmp_path / "cdcml-s0"
    curves = pd.read_csv(run_dir / "curves.csv")
    losses = curves[[c for c in curves.columns if c.startswith("loss")]]
    assert len(losses.columns) >= 5 and np.isfinite(losses.to_numpy(float)).all(), curves.T
    # error metrics are finite; rank metrics may be NaN on a 3-item split (nothing to rank)
    errors = {k: v for k, v in curves.iloc[-1].items() if k.endswith(("_mse", "_mae"))}
    assert errors and all(np.isfinite(v) for v in errors.values()), errors
    assert metrics is not None and (run_dir / "metrics.json").is_file()
    trained = load_trained(run_dir)
    images = np.asarray(ds.array("images")[:3])
    music = np.asarray(ds.array("music_features")[:3])
    f_img, f_mus = trained.encode_images(images), trained.encode_music(music)
    assert f_img.shape == (3, 512) and f_mus.shape == (3, 512)
    assert np.isfinite(f_img).all() and np.isfinite(f_mus).all()
    va = trained.predict_va(f_img)
    assert va.shape == (3, 2) and np.isfinite(va).all()
    s_hat = np.asarray(trained.similarity(f_img, f_mus))
    assert s_hat.shape[0] == 3 and np.isfinite(s_hat).all()
    # the checkpoint round trip: the weights read back are the weights saved
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)["model"]
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(tensor.cpu(), state[name].cpu()), name
