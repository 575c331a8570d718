"""Networks: output shapes of every model, the baselines' defining properties, clear errors."""
import pytest
import torch

from cdcml_lib.nets import (MODELS, ACPNet, TinyCNN, build_model, eq1_similarity, make_backbone,
                            music_input)

B, S, D = 4, 32, 16
SIGMA = 0.4


def tiny(model: str, **over) -> dict:
    return {"model": model, "image_backbone": "tiny_cnn", "music_backbone": "tiny_cnn",
            "embed_dim": D, "pretrained": False, **over}


def inputs(model: str):
    torch.manual_seed(0)
    rows = 257 if music_input(model) == "log_spectrogram" else 193
    return torch.randn(B, 3, S, S), torch.randn(B, rows, 87)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_gives_the_interface_shapes(model):
    net = build_model(tiny(model), sigma=SIGMA).eval()
    images, music = inputs(model)
    out = net(images, music)
    assert out["s_hat"].shape == (B,)
    assert ((out["s_hat"] >= 0) & (out["s_hat"] <= 1)).all()
    for key in ("f_img", "f_mus"):
        assert out[key].shape == (B, D)
    for key in ("va_img", "va_mus"):
        assert out[key].shape == (B, 2)
        assert ((out[key] >= 0) & (out[key] <= 1)).all()
    assert net.embed_image(images).shape == (B, D)
    assert net.embed_music(music).shape == (B, D)
    f_img, f_mus = net.embed_image(images), net.embed_music(music)
    assert torch.allclose(net.similarity(f_img, f_mus), out["s_hat"])


def test_torchvision_backbones_lose_their_classifier():
    net = build_model(tiny("cdcml", image_backbone="resnet18", music_backbone="mobilenet_v3_small"))
    images, music = inputs("cdcml")
    out = net.eval()(images, music)
    assert out["f_img"].shape == (B, D) and out["f_mus"].shape == (B, D)
    backbone, width = make_backbone("resnet18")
    assert width == 512 and backbone(torch.randn(2, 3, S, S)).shape == (2, 512)


def test_tiny_cnn_reads_images_and_music_matrices():
    net = TinyCNN()
    assert net(torch.randn(2, 3, 48, 48)).shape == (2, net.out_features)
    assert net(torch.randn(2, 3, 193, 87)).shape == (2, net.out_features)


def test_cdcml_shares_one_va_predictor_between_modalities():
    net = build_model(tiny("cdcml")).eval()
    f = torch.randn(B, D)
    assert torch.equal(net.predict_va(f, "image"), net.predict_va(f, "music"))


def test_sp_net_scores_pairs_by_eq1_on_its_predicted_va():
    net = build_model(tiny("sp_net"), sigma=SIGMA).eval()
    images, music = inputs("sp_net")
    out = net(images, music)
    dist = (out["va_img"] - out["va_mus"]).norm(dim=1)
    assert torch.allclose(out["s_hat"], torch.exp(-dist / SIGMA), atol=1e-6)
    assert torch.allclose(eq1_similarity(torch.zeros(1, 2), torch.ones(1, 2), 1.0),
                          torch.exp(-torch.tensor([2.0]).sqrt()))
    with pytest.raises(ValueError, match="sigma"):
        build_model(tiny("sp_net"), sigma=None)


@pytest.mark.parametrize("model", ["l3_net", "acp_net", "contrastive"])
def test_va_predictor_learns_from_detached_features(model):
    net = build_model(tiny(model), sigma=SIGMA)
    images, music = inputs(model)
    out = net(images, music)
    (out["va_img"].sum() + out["va_mus"].sum()).backward()
    branch = [p for n, p in net.named_parameters() if n.startswith(("image_", "music_", "audio_"))]
    assert branch and all(p.grad is None or p.grad.abs().sum() == 0 for p in branch)
    heads = [p for n, p in net.named_parameters() if n.startswith("va_")]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)


def test_acp_net_image_features_stay_frozen():
    net = build_model(tiny("acp_net"), sigma=SIGMA)
    assert isinstance(net, ACPNet) and "random-init" in net.notes["acp_image_features"]
    before = {n: p.clone() for n, p in net.image_features.state_dict().items()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    images, music = inputs("acp_net")
    net.train()
    net(images, music)["s_hat"].sum().backward()
    opt.step()
    after = net.image_features.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)  # weights and BN statistics


def test_contrastive_score_is_a_calibrated_cosine():
    net = build_model(tiny("contrastive"), sigma=SIGMA).eval()
    f = torch.randn(B, D)
    same = net.similarity(f, f)
    expected = torch.sigmoid(net.scale * 1.0 + net.bias)
    assert torch.allclose(same, expected.expand(B), atol=1e-5)
    assert (net.similarity(f, -f) < same).all()


def test_unknown_names_and_missing_weights_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown model 'cdcm'"):
        build_model(tiny("cdcm"))
    with pytest.raises(ValueError, match="unknown backbone 'resnet5'"):
        build_model(tiny("cdcml", image_backbone="resnet5"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_model(tiny("cdcml", image_backbone="resnet18", pretrained=True))
    message = str(err.value)
    assert "weights='DEFAULT'" in message and str(tmp_path) in message


def test_a_va_probe_reads_detached_embeddings_so_eq7_trains_the_predictor_only():
    net = build_model({**tiny("cdcml"), "va_probe": True})
    f = torch.randn(B, D, requires_grad=True)
    net.predict_va(f, "image").sum().backward()
    assert f.grad is None and net.va_predictor.net[0].weight.grad is not None
    plain = build_model(tiny("cdcml"))
    g = torch.randn(B, D, requires_grad=True)
    plain.predict_va(g, "image").sum().backward()
    assert g.grad is not None
