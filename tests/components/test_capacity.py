"""Tests for the GPU capacity planner and its model and GPU catalogs, against hand-computed figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic.alias_generators import to_snake

from sovstack.components import capacity
from sovstack.components.capacity import (
    ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN,
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    RUNTIME_RESERVE_BYTES,
    custom_model,
    format_plan,
    get_gpu,
    get_model,
    kv_bytes_per_token,
    load_gpus,
    load_models,
    plan_capacity,
    tensor_parallel_is_valid,
    weight_bytes,
)
from sovstack.components.kube import is_dns_label

GIB = 2**30
MISTRAL_7B = "mistral-7b-instruct-v0-3"
SMALL_31 = "mistral-small-3-1-24b-instruct-2503"
MIXTRAL_8X22B = "mixtral-8x22b-instruct-v0-1"
LARGE_2411 = "mistral-large-instruct-2411"


def budget(memory_gb: float, utilisation: float = 0.9) -> int:
    return math.floor(memory_gb * 10**9 * utilisation)


def activation(hidden: int) -> int:
    return DEFAULT_MAX_NUM_BATCHED_TOKENS * hidden * ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN


# --- catalogs -------------------------------------------------------------------------------------------

REQUIRED_MODELS = {
    "mistral-7b-instruct-v0-3": "mistralai/Mistral-7B-Instruct-v0.3",
    "ministral-8b-instruct-2410": "mistralai/Ministral-8B-Instruct-2410",
    "mistral-nemo-instruct-2407": "mistralai/Mistral-Nemo-Instruct-2407",
    "pixtral-12b-2409": "mistralai/Pixtral-12B-2409",
    "mistral-small-3-1-24b-instruct-2503": "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
    "codestral-22b-v0-1": "mistralai/Codestral-22B-v0.1",
    "devstral-small-2505": "mistralai/Devstral-Small-2505",
    "magistral-small-2506": "mistralai/Magistral-Small-2506",
    "mixtral-8x7b-instruct-v0-1": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mixtral-8x22b-instruct-v0-1": "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "mistral-large-instruct-2411": "mistralai/Mistral-Large-Instruct-2411",
}


def test_catalog_has_every_required_model_with_its_hugging_face_repo() -> None:
    models = load_models()
    assert {key: models[key].hugging_face_repo for key in REQUIRED_MODELS} == REQUIRED_MODELS


def test_model_ids_are_dns_labels_matching_their_keys_and_every_model_has_a_source() -> None:
    for key, model in load_models().items():
        assert model.id == key
        assert is_dns_label(key), key
        assert model.source.strip(), key
        assert model.kv_heads <= model.attention_heads
        assert model.max_context >= 4096


def test_moe_models_have_active_at_most_total_and_dense_models_have_none() -> None:
    models = load_models()
    moe = {key for key, model in models.items() if model.is_moe}
    assert moe == {"mixtral-8x7b-instruct-v0-1", "mixtral-8x22b-instruct-v0-1"}
    for key in moe:
        active = models[key].parameters_active
        assert active is not None and active <= models[key].parameters_total
    assert models[MIXTRAL_8X22B].parameters_total == 140_620_634_112
    assert models[MIXTRAL_8X22B].parameters_active == 39_152_031_744


def test_derived_facts_carry_the_warning_sign_in_notes() -> None:
    models = load_models()
    derived = [
        "ministral-8b-instruct-2410",
        "mistral-nemo-instruct-2407",
        "codestral-22b-v0-1",
        "devstral-small-2505",
        "magistral-small-2506",
        "mixtral-8x22b-instruct-v0-1",
        "mistral-large-instruct-2411",
    ]
    for key in derived:
        assert "⚠" in (models[key].notes or ""), key
    assert "⚠" not in (models[MISTRAL_7B].notes or "")
    assert models["magistral-small-2506"].recommended_max_model_len == 40960


def test_gpu_catalog_ids_memory_and_fp8_support() -> None:
    gpus = load_gpus()
    assert {key: gpu.memory_gb for key, gpu in gpus.items()} == {
        "H100": 80,
        "H100-SXM": 80,
        "H200": 141,
        "L4": 24,
        "L40S": 48,
        "A100": 80,
        "B300": 288,
    }
    for key, gpu in gpus.items():
        assert gpu.id == key
        assert gpu.source.strip(), key
        assert gpu.fp8 == (gpu.architecture in {"Hopper", "Ada Lovelace", "Blackwell"}), key
    assert gpus["H100-SXM"].nvlink and not gpus["H100"].nvlink
    assert gpus["H100"].interconnect == "PCIe Gen5"
    assert not gpus["A100"].fp8


def test_duplicate_catalog_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models.yaml").write_text("models:\n  a:\n    layers: 1\n  a:\n    layers: 2\n")
    monkeypatch.setattr(capacity, "DATA_DIR", tmp_path)
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        capacity._read_catalog("models.yaml", "models")


def test_get_model_and_get_gpu_name_the_known_ids() -> None:
    assert get_model(MISTRAL_7B).layers == 32
    assert get_gpu("L4").memory_gb == 24
    with pytest.raises(KeyError) as model_error:
        get_model("gpt-4")
    assert model_error.value.args[0] == (
        "unknown model 'gpt-4'; known models: " + ", ".join(sorted(REQUIRED_MODELS))
    )
    # Ids are case-insensitive, as in every command.
    assert get_gpu("h100-sxm").id == "H100-SXM"
    assert get_model(MISTRAL_7B.upper()).id == MISTRAL_7B
    with pytest.raises(KeyError) as gpu_error:
        get_gpu("TPU")
    assert gpu_error.value.args[0] == (
        "unknown GPU type 'TPU'; known GPU types: A100, B300, H100, H100-SXM, H200, L4, L40S"
    )
    with pytest.raises(KeyError) as close_error:
        get_gpu("H10")
    assert close_error.value.args[0].startswith("unknown GPU type 'H10'; did you mean 'H100'?; known GPU")


def test_load_models_returns_a_copy_the_caller_may_change() -> None:
    load_models().clear()
    assert MISTRAL_7B in load_models()


CUSTOM_FIELDS = {
    "huggingFaceRepo": "acme/tiny-7b",
    "parametersTotal": 7_000_000_000,
    "layers": 32,
    "attentionHeads": 32,
    "kvHeads": 4,
    "headDim": 128,
    "hiddenSize": 4096,
    "vocabSize": 32000,
    "maxContext": 8192,
    "licence": "Apache-2.0",
    "source": "acme model card",
}


def test_custom_model_uses_the_catalog_fields() -> None:
    model = custom_model("acme-tiny-7b", CUSTOM_FIELDS)
    assert model.id == "acme-tiny-7b"
    assert model.kv_heads == 4
    assert not model.is_moe
    snake = custom_model("acme-tiny-7b", {to_snake(key): value for key, value in CUSTOM_FIELDS.items()})
    assert snake == model


def test_custom_model_refuses_bad_ids_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match=r"model id 'Acme\.7b' is not a DNS-1123 label"):
        custom_model("Acme.7b", CUSTOM_FIELDS)
    with pytest.raises(ValidationError, match="extra_forbidden"):
        custom_model("acme", {**CUSTOM_FIELDS, "layerz": 3})
    with pytest.raises(ValidationError, match="experts and parameters_active must be given together"):
        custom_model("acme", {**CUSTOM_FIELDS, "parametersActive": 1_000_000_000})
    with pytest.raises(ValidationError, match="kv_heads 64 exceeds attention_heads 32"):
        custom_model("acme", {**CUSTOM_FIELDS, "kvHeads": 64})


# --- arithmetic -----------------------------------------------------------------------------------------


def test_kv_per_token_for_mistral_7b_is_exactly_131072_bytes() -> None:
    model = get_model(MISTRAL_7B)
    assert kv_bytes_per_token(model) == 2 * 32 * 8 * 128 * 2 == 131072
    assert kv_bytes_per_token(model, "fp8") == 65536
    assert kv_bytes_per_token(model, "auto", tensor_parallel_size=4) == 131072 // 4


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    model = custom_model("acme", CUSTOM_FIELDS)  # 4 KV heads
    assert kv_bytes_per_token(model, "auto", 8) == 2 * 32 * 1 * 128 * 2
    assert tensor_parallel_is_valid(model, 8)
    assert not tensor_parallel_is_valid(custom_model("acme", {**CUSTOM_FIELDS, "attentionHeads": 20}), 8)


def test_weight_bytes_per_dtype() -> None:
    model = get_model(MISTRAL_7B)
    embeddings = 2 * 32768 * 4096
    assert weight_bytes(model, "bf16") == weight_bytes(model, "fp16") == 7_300_000_000 * 2
    assert weight_bytes(model, "fp8") == (7_300_000_000 - embeddings) + embeddings * 2
    int4 = math.ceil((7_300_000_000 - embeddings) * 0.5 * 1.04 + embeddings * 2)
    assert weight_bytes(model, "int4-awq") == weight_bytes(model, "int4-gptq") == int4


@pytest.mark.parametrize("model_id", [MISTRAL_7B, SMALL_31, LARGE_2411])
def test_int4_reduces_weight_memory_to_about_a_quarter(model_id: str) -> None:
    model = get_model(model_id)
    ratio = weight_bytes(model, "int4-awq") / weight_bytes(model, "bf16")
    # 0.52 / 2 = 0.26 for quantised layers; the bf16 embedding and LM head push it up a little.
    assert 0.26 < ratio < 0.31


def test_mistral_7b_bf16_fits_one_l4_at_4096() -> None:
    plan = plan_capacity(get_model(MISTRAL_7B), get_gpu("L4"), max_model_len=4096, concurrency=1)
    weights = 7_300_000_000 * 2
    kv = 131072 * 4096
    need = weights + kv + RUNTIME_RESERVE_BYTES + activation(4096)
    assert RUNTIME_RESERVE_BYTES == 1.5 * GIB
    assert plan.fits
    assert plan.tensor_parallel_size == plan.evaluated_tensor_parallel_size == 1
    assert plan.total_need_per_gpu_bytes == need
    assert plan.budget_per_gpu_bytes == budget(24) == 21_600_000_000
    assert plan.weights_per_gpu_gib == pytest.approx(weights / GIB, abs=1e-3)
    assert plan.kv_cache_per_gpu_gib == 0.5
    assert plan.reserve_per_gpu_gib == 1.5
    assert plan.activation_per_gpu_gib == 1.0
    assert plan.total_need_per_gpu_gib == pytest.approx(need / GIB, abs=1e-3)
    assert plan.shortfall_per_gpu_gib is None
    assert (
        plan.max_concurrency == (budget(24) - weights - RUNTIME_RESERVE_BYTES - activation(4096)) // kv == 8
    )
    assert plan.kv_bytes_per_token == 131072
    assert plan.explanation[1] == (
        "KV cache per token: 2 x 32 layers x 8 KV heads x 128 head_dim x 2 B (auto) = 131,072 B"
    )
    assert plan.warnings == []


def test_mistral_small_31_needs_more_than_one_l4_but_fits_one_h100() -> None:
    model = get_model(SMALL_31)
    weights = 24_000_000_000 * 2
    assert weights > budget(24)
    one_l4 = plan_capacity(model, get_gpu("L4"), max_model_len=8192, concurrency=4, tensor_parallel_size=1)
    assert not one_l4.fits
    assert one_l4.tensor_parallel_size is None
    assert one_l4.max_concurrency == 0
    kv = 2 * 40 * 8 * 128 * 2 * 8192 * 4
    need = weights + kv + RUNTIME_RESERVE_BYTES + activation(5120)
    assert one_l4.shortfall_per_gpu_gib == pytest.approx((need - budget(24)) / GIB, abs=1e-3)
    auto_l4 = plan_capacity(model, get_gpu("L4"), max_model_len=8192, concurrency=4)
    assert auto_l4.fits and auto_l4.tensor_parallel_size is not None and auto_l4.tensor_parallel_size > 1
    h100 = plan_capacity(model, get_gpu("H100"), max_model_len=8192, concurrency=4)
    assert h100.fits
    assert h100.tensor_parallel_size == 1
    assert h100.total_need_per_gpu_bytes == need <= budget(80)


def test_mixtral_8x22b_does_not_fit_eight_l4() -> None:
    plan = plan_capacity(get_model(MIXTRAL_8X22B), get_gpu("L4"), gpus_per_node=8)
    assert not plan.fits
    assert plan.tensor_parallel_size is None
    assert plan.evaluated_tensor_parallel_size == 8
    weights_per_gpu = math.ceil(140_620_634_112 * 2 / 8)
    kv_per_gpu = 2 * 56 * 1 * 128 * 2 * 65536
    need = weights_per_gpu + kv_per_gpu + RUNTIME_RESERVE_BYTES + activation(6144)
    assert plan.total_need_per_gpu_bytes == need
    assert plan.shortfall_per_gpu_gib == pytest.approx((need - budget(24)) / GIB, abs=1e-3)
    assert plan.explanation[-1].startswith("does not fit: at TP 8 each GPU is short by 17.37 GiB")


def test_mixtral_8x22b_does_not_fit_two_h100_but_fits_one_eight_gpu_node() -> None:
    model, h100 = get_model(MIXTRAL_8X22B), get_gpu("H100")
    two = plan_capacity(model, h100, tensor_parallel_size=2)
    assert not two.fits and two.evaluated_tensor_parallel_size == 2
    assert two.explanation[-2].startswith("TP 2:")  # only the forced TP was evaluated
    assert not any(line.startswith("TP 1:") for line in two.explanation)
    node = plan_capacity(model, h100, gpus_per_node=8)
    weights = 140_620_634_112 * 2
    kv_full = 2 * 56 * 8 * 128 * 2 * 65536
    tp4_need = math.ceil(weights / 4) + kv_full // 4 + RUNTIME_RESERVE_BYTES + activation(6144)
    assert tp4_need > budget(80)
    assert node.fits and node.tensor_parallel_size == 8
    assert node.warnings[0] == (
        "mixture of experts: all 8 experts are resident (140,620,634,112 parameters) "
        "although 39,152,031,744 are active per token"
    )


def test_mistral_large_2411_on_h100_needs_at_least_tp4() -> None:
    plan = plan_capacity(get_model(LARGE_2411), get_gpu("H100"))
    assert plan.fits
    assert plan.tensor_parallel_size is not None and plan.tensor_parallel_size >= 4
    assert budget(80) < 123_000_000_000 * 2 / 2  # TP 2 cannot even hold the weights


def test_fp8_is_refused_on_a100_and_planned_on_h100() -> None:
    model = get_model(MISTRAL_7B)
    refused = plan_capacity(model, get_gpu("A100"), dtype="fp8", max_model_len=4096)
    assert not refused.fits
    assert refused.tensor_parallel_size is None and refused.evaluated_tensor_parallel_size is None
    assert refused.total_need_per_gpu_gib is None and refused.shortfall_per_gpu_gib is None
    assert refused.explanation[-1] == (
        "fp8 weights not fittable: A100 (Ampere) has no native fp8 support; "
        "use bf16/fp16 or int4-awq/int4-gptq on this GPU"
    )
    kv_refused = plan_capacity(model, get_gpu("A100"), kv_cache_dtype="fp8", max_model_len=4096)
    assert not kv_refused.fits
    assert kv_refused.explanation[-1].startswith("fp8 KV cache not fittable: A100 (Ampere)")
    h100 = plan_capacity(model, get_gpu("H100"), dtype="fp8", max_model_len=4096)
    assert h100.fits and h100.weight_bytes_total == weight_bytes(model, "fp8")


def test_tensor_parallel_over_pcie_is_warned() -> None:
    plan = plan_capacity(get_model(SMALL_31), get_gpu("L4"), max_model_len=8192, concurrency=4)
    assert plan.warnings == [
        f"tensor parallelism across {plan.tensor_parallel_size} GPUs without NVLink (PCIe 4.0 x16): "
        "expect lower throughput than on NVLink GPUs; the memory figures are unaffected"
    ]
    sxm = plan_capacity(get_model(SMALL_31), get_gpu("H100-SXM"), tensor_parallel_size=2)
    assert sxm.warnings == []


def test_gpus_per_node_limits_the_candidates() -> None:
    plan = plan_capacity(get_model(LARGE_2411), get_gpu("H100"), gpus_per_node=4)
    assert not plan.fits and plan.evaluated_tensor_parallel_size == 4


def test_to_dict_is_json_and_format_plan_is_readable() -> None:
    plan = plan_capacity(get_model(MISTRAL_7B), get_gpu("L4"), max_model_len=4096)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["fits"] is True and data["tensor_parallel_size"] == 1 and data["kv_bytes_per_token"] == 131072
    text = format_plan(plan)
    assert (
        text.splitlines()[0]
        == "mistral-7b-instruct-v0-3 (bf16, KV cache auto) on L4: fits on 1 x L4 (tensor parallel 1)"
    )
    assert "    total need           16.60 GiB" in text
    refused = format_plan(plan_capacity(get_model(MISTRAL_7B), get_gpu("A100"), dtype="fp8"))
    assert "does not fit on up to 8 x A100" in refused and "per GPU at TP" not in refused


# --- input errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"max_model_len": 40000},
            "max_model_len 40000 exceeds the maximum context of mistral-7b-instruct-v0-3 (32768 tokens)",
        ),
        ({"max_model_len": 0}, "max_model_len must be at least 1, got 0"),
        ({"concurrency": 0}, "concurrency must be at least 1, got 0"),
        ({"gpu_memory_utilization": 0.0}, "gpu_memory_utilization must be in (0, 1], got 0.0"),
        ({"gpu_memory_utilization": 1.2}, "gpu_memory_utilization must be in (0, 1], got 1.2"),
        ({"dtype": "int8"}, "unknown dtype 'int8': expected one of bf16, fp16, fp8, int4-awq, int4-gptq"),
        (
            {"kv_cache_dtype": "int8"},
            "unknown kv_cache_dtype 'int8': expected one of auto, bf16, fp16, fp8, fp8_e4m3, fp8_e5m2",
        ),
        ({"gpus_per_node": 0}, "gpus_per_node must be at least 1, got 0"),
        (
            {"tensor_parallel_size": 16},
            "tensor_parallel_size 16 exceeds gpus_per_node 8: "
            "this planner plans tensor parallelism within one node",
        ),
        (
            {"tensor_parallel_size": 3},
            "tensor_parallel_size 3 is not valid for mistral-7b-instruct-v0-3: "
            "vLLM needs its 32 attention heads divisible by 3, "
            "and its 8 KV heads divisible by 3 or 3 divisible by them",
        ),
    ],
)
def test_bad_inputs_raise_exact_messages(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as error:
        plan_capacity(get_model(MISTRAL_7B), get_gpu("L4"), **kwargs)  # type: ignore[arg-type]
    assert str(error.value) == message


# --- properties -----------------------------------------------------------------------------------------

MODEL_IDS = sorted(REQUIRED_MODELS)
GPU_IDS = ["H100", "H100-SXM", "H200", "L4", "L40S", "A100", "B300"]
DTYPES = ["bf16", "fp16", "int4-awq"]


@settings(max_examples=60, deadline=None)
@given(
    model_id=st.sampled_from(MODEL_IDS),
    gpu_id=st.sampled_from(GPU_IDS),
    dtype=st.sampled_from(DTYPES),
    tp=st.sampled_from([1, 2, 4, 8]),
    length=st.integers(1, 32768),
    extra_length=st.integers(0, 32768),
    concurrency=st.integers(1, 64),
    extra_concurrency=st.integers(0, 64),
)
def test_need_never_decreases_with_concurrency_or_length(
    model_id: str,
    gpu_id: str,
    dtype: str,
    tp: int,
    length: int,
    extra_length: int,
    concurrency: int,
    extra_concurrency: int,
) -> None:
    model, gpu = get_model(model_id), get_gpu(gpu_id)
    longer = min(length + extra_length, model.max_context)

    def plan(max_model_len: int, sequences: int, forced: int | None = tp) -> capacity.CapacityPlan:
        return plan_capacity(
            model,
            gpu,
            dtype=dtype,
            max_model_len=max_model_len,
            concurrency=sequences,
            tensor_parallel_size=forced,
        )

    base = plan(length, concurrency)
    for bigger in (plan(longer, concurrency), plan(length, concurrency + extra_concurrency)):
        assert bigger.total_need_per_gpu_bytes is not None and base.total_need_per_gpu_bytes is not None
        assert bigger.total_need_per_gpu_bytes >= base.total_need_per_gpu_bytes
        assert not (bigger.fits and not base.fits)
    auto_base, auto_bigger = (
        plan(length, concurrency, None),
        plan(longer, concurrency + extra_concurrency, None),
    )
    if auto_bigger.fits:
        assert auto_base.fits
        assert auto_base.tensor_parallel_size is not None and auto_bigger.tensor_parallel_size is not None
        assert auto_base.tensor_parallel_size <= auto_bigger.tensor_parallel_size


@settings(max_examples=60, deadline=None)
@given(
    model_id=st.sampled_from(MODEL_IDS),
    gpu_id=st.sampled_from(GPU_IDS),
    low=st.floats(0.05, 1.0),
    high=st.floats(0.05, 1.0),
    length=st.integers(1024, 32768),
)
def test_fits_is_monotone_in_memory_utilisation(
    model_id: str, gpu_id: str, low: float, high: float, length: int
) -> None:
    low, high = sorted((low, high))
    model, gpu = get_model(model_id), get_gpu(gpu_id)
    at_low = plan_capacity(model, gpu, max_model_len=length, gpu_memory_utilization=low)
    at_high = plan_capacity(model, gpu, max_model_len=length, gpu_memory_utilization=high)
    if at_low.fits:
        assert at_high.fits
        assert at_high.tensor_parallel_size is not None and at_low.tensor_parallel_size is not None
        assert at_high.tensor_parallel_size <= at_low.tensor_parallel_size
        if at_high.tensor_parallel_size == at_low.tensor_parallel_size:
            assert at_high.max_concurrency is not None and at_low.max_concurrency is not None
            assert at_high.max_concurrency >= at_low.max_concurrency


# --- headroom and what can be bought ---------------------------------------------------------------------


def test_thin_headroom_is_warned() -> None:
    model, gpu = capacity.get_model(MISTRAL_7B), capacity.get_gpu("L4")
    thin = capacity.plan_capacity(model, gpu, max_model_len=32768, gpus_per_node=1)
    assert (thin.fits, thin.tensor_parallel_size, thin.headroom_fraction) == (True, 1, 0.001)
    assert thin.headroom_fraction == round(1 - thin.total_need_per_gpu_bytes / thin.budget_per_gpu_bytes, 4)
    assert thin.warnings[-1].startswith("headroom 0.1% of the per-GPU budget, under 5%: ")
    roomy = capacity.plan_capacity(model, gpu, max_model_len=8192, gpus_per_node=1)
    assert roomy.headroom_fraction is not None and roomy.headroom_fraction > 0.05
    assert not any(w.startswith("headroom") for w in roomy.warnings)
    short = capacity.plan_capacity(capacity.get_model("mistral-large-instruct-2411"), gpu, gpus_per_node=1)
    assert (short.fits, short.headroom_fraction) == (False, None)


def test_node_offers_come_from_the_catalog() -> None:
    from sovstack.components.catalog import load_catalog

    catalog = load_catalog()
    offers = capacity.node_offers(catalog, provider="scaleway", gpu="H100-SXM")
    assert [(o.region, o.node_type, o.gpus, o.zones) for o in offers] == [
        ("fr-par", "H100-SXM-2-80G", 2, ("fr-par-2",)),
        ("fr-par", "H100-SXM-4-80G", 4, ("fr-par-2",)),
        ("fr-par", "H100-SXM-8-80G", 8, ("fr-par-2",)),
    ]
    # pl-waw sells H100 PCIe, not SXM; regions without the GPU get no offer.
    assert {o.region for o in capacity.node_offers(catalog, provider="scaleway", gpu="H100")} == {
        "fr-par",
        "pl-waw",
    }
    # Every provider node type with a GPU is offered wherever its GPU is.
    for offer in capacity.node_offers(catalog):
        if offer.node_type is not None:
            assert catalog.node_type(offer.provider, offer.node_type) is not None
            assert all(
                offer.gpu in catalog.region(offer.provider, offer.region).zone(z).gpus for z in offer.zones
            )  # type: ignore[union-attr]
    # The operator's sites have no node types: the GPUs per node are assumed.
    sites = capacity.node_offers(catalog, provider="operator", site_gpus_per_node=4)
    assert [(o.region, o.node_type, o.gpu, o.gpus) for o in sites] == [
        ("fr-par-dc1", None, "H100-SXM", 4),
        ("fr-par-dc1", None, "L40S", 4),
        ("se-sto-dc1", None, "H100-SXM", 4),
        ("se-sto-dc1", None, "L40S", 4),
    ]


def test_plan_offers_gives_tensor_parallelism_and_replicas_per_node() -> None:
    from sovstack.components.catalog import load_catalog

    offers = capacity.node_offers(load_catalog(), provider="ovh", gpu="L4")
    rows = capacity.plan_offers(capacity.get_model("mistral-small-3-1-24b-instruct-2503"), offers)
    assert [(r["nodeType"], r["fits"], r["tensorParallelSize"], r["replicasPerNode"]) for r in rows] == [
        ("l4-90", False, None, 0),
        ("l4-180", False, None, 0),
        ("l4-360", True, 4, 1),
    ]
    text = capacity.format_offers("m", rows).splitlines()
    assert text[0] == "m: 1 of 3 node types fit"
    assert text[2].split() == ["ovh", "GRA11", "l4-360", "4", "x", "L4", "yes", "4", "1", "5.9%"]
