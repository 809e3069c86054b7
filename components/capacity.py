"""GPU capacity planner: does a model fit on a GPU type, at which tensor parallelism, for how many sequences.

Pure Python (no Pulumi): the `sovstack capacity` CLI and spec validation both call `plan_capacity`.
Model and GPU facts live in `components/data/models.yaml` and `gpus.yaml`; the arithmetic is explained
in `docs/capacity.md` and, for each plan, line by line in `CapacityPlan.explanation`.

Units: bytes everywhere inside; figures are presented in GiB (2^30 bytes). GPU memory is marketed in
decimal GB (10^9 bytes) and converted, so an "80 GB" H100 has 74.5 GiB.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from sovstack.components.kube import is_dns_label
from sovstack.components.provenance import Sourced, load_data_file
from sovstack.components.suggest import did_you_mean, find_id

if TYPE_CHECKING:
    from sovstack.components.catalog import Catalog

DATA_DIR = Path(__file__).parent / "data"

GIB = 2**30
GB = 10**9

#: Per-GPU memory set aside for the CUDA context, NCCL buffers and captured CUDA graphs.
RUNTIME_RESERVE_BYTES = 3 * GIB // 2  # 1.5 GiB
#: Tokens vLLM batches into one forward pass (its `--max-num-batched-tokens` with chunked prefill).
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
#: Activation headroom per batched token, in bytes per unit of hidden size: room for 16 hidden-wide
#: bf16 tensors live at once (the MLP's gate/up projection alone is about 7 hidden widths wide).
ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN = 32
#: int4 group quantisation (group size 128) stores an fp16 scale and a 4-bit zero point per group:
#: 2.5 bytes per 64 bytes of packed weights, about 4 %.
INT4_QUANTISATION_OVERHEAD = Fraction(4, 100)
#: Below this share of the per-GPU budget left free, a fitting plan carries a warning.
HEADROOM_WARNING = 0.05
#: Tensor-parallel sizes tried, smallest first.
TENSOR_PARALLEL_CANDIDATES = (1, 2, 4, 8)

Dtype = Literal["bf16", "fp16", "fp8", "int4-awq", "int4-gptq"]
KvCacheDtype = Literal["auto", "bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2"]
DTYPES: tuple[str, ...] = get_args(Dtype)
KV_CACHE_DTYPES: tuple[str, ...] = get_args(KvCacheDtype)

#: Bytes per quantised parameter, scales and zero points included.
WEIGHT_BYTES_PER_PARAMETER: dict[str, Fraction] = {
    "bf16": Fraction(2),
    "fp16": Fraction(2),
    "fp8": Fraction(1),
    "int4-awq": Fraction(1, 2) * (1 + INT4_QUANTISATION_OVERHEAD),
    "int4-gptq": Fraction(1, 2) * (1 + INT4_QUANTISATION_OVERHEAD),
}
#: Embeddings and the LM head are never quantised by vLLM's fp8, AWQ or GPTQ paths: 2 bytes each.
UNQUANTISED_BYTES_PER_PARAMETER = 2


class _Catalog(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class ModelInfo(Sourced, _Catalog):
    """A model's size and attention shape: what weight and KV-cache memory depend on.

    Catalog entries come from `models.yaml` (camelCase keys); a stack may describe its own model with the
    same fields (see `custom_model`).
    """

    id: str = Field(description="Stable id, a DNS-1123 label (e.g. `mistral-7b-instruct-v0-3`). Required.")
    hugging_face_repo: str = Field(description="Official Hugging Face repository, `owner/name`. Required.")
    parameters_total: int = Field(gt=0, description="All parameters, every expert of a MoE. Required.")
    parameters_active: int | None = Field(
        default=None, gt=0, description="Parameters used per token; MoE models only (≤ total). Default none."
    )
    experts: int | None = Field(default=None, ge=2, description="Experts per MoE layer; none for dense.")
    experts_per_token: int | None = Field(default=None, ge=1, description="Experts routed per token (MoE).")
    vision_encoder_parameters: int | None = Field(
        default=None, gt=0, description="Parameters of a vision encoder, already in parameters_total."
    )
    layers: int = Field(gt=0, description="Transformer layers (`num_hidden_layers`). Required.")
    attention_heads: int = Field(gt=0, description="Query heads (`num_attention_heads`). Required.")
    kv_heads: int = Field(gt=0, description="Key/value heads (`num_key_value_heads`), ≤ heads. Required.")
    head_dim: int = Field(gt=0, description="Dimension of one head (`head_dim`, not always hidden/heads).")
    hidden_size: int = Field(gt=0, description="Hidden size (`hidden_size`). Required.")
    vocab_size: int = Field(gt=0, description="Vocabulary size (`vocab_size`). Required.")
    max_context: int = Field(gt=0, description="Largest `--max-model-len` the planner accepts, in tokens.")
    recommended_max_model_len: int | None = Field(
        default=None, gt=0, description="A smaller limit the model card recommends, if any (≤ max_context)."
    )
    licence: str = Field(description="Licence name as on the model card. Required.")
    source: str = Field(min_length=1, description="Where these figures were read. Required.")
    notes: str | None = Field(default=None, description="Caveats, e.g. ⚠ facts from a derived source.")

    @field_validator("id")
    @classmethod
    def _id_is_dns_label(cls, value: str) -> str:
        if not is_dns_label(value):
            raise ValueError(f"model id {value!r} is not a DNS-1123 label (lowercase letters, digits, '-')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelInfo:
        if self.kv_heads > self.attention_heads:
            raise ValueError(f"kv_heads {self.kv_heads} exceeds attention_heads {self.attention_heads}")
        if (self.experts is None) != (self.parameters_active is None):
            raise ValueError("experts and parameters_active must be given together (MoE models only)")
        if self.parameters_active is not None and self.parameters_active > self.parameters_total:
            raise ValueError("parameters_active exceeds parameters_total")
        if self.experts_per_token is not None and (
            self.experts is None or self.experts_per_token > self.experts
        ):
            raise ValueError("experts_per_token needs experts and must not exceed it")
        if self.recommended_max_model_len is not None and self.recommended_max_model_len > self.max_context:
            raise ValueError("recommended_max_model_len exceeds max_context")
        if self.parameters_total <= self.embedding_parameters:
            raise ValueError("parameters_total must exceed the embedding and LM head (2 x vocab x hidden)")
        return self

    @property
    def is_moe(self) -> bool:
        return self.experts is not None

    @property
    def embedding_parameters(self) -> int:
        """Input embedding plus LM head (untied in every catalog model): kept at 2 bytes when quantised."""
        return 2 * self.vocab_size * self.hidden_size


class GpuInfo(Sourced, _Catalog):
    """A GPU type: its memory (decimal GB as marketed) and what it supports."""

    id: str = Field(description="Id used by the region catalog, e.g. `H100-SXM`. Required.")
    name: str = Field(description="Marketing name. Required.")
    architecture: str = Field(description="NVIDIA architecture (Ampere, Ada Lovelace, Hopper, Blackwell).")
    memory_gb: float = Field(gt=0, description="Memory per GPU in decimal GB (10^9 bytes). Required.")
    memory_type: str = Field(description="HBM3, GDDR6, ...")
    memory_bandwidth_gb_per_s: float = Field(gt=0, description="Memory bandwidth in decimal GB/s.")
    interconnect: str = Field(description="GPU-to-GPU link as stated by the source.")
    nvlink: bool = Field(description="True when GPUs in a node talk over NVLink rather than PCIe.")
    fp8: bool = Field(description="Native FP8 tensor cores (Hopper, Ada, Blackwell yes; Ampere no).")
    source: str = Field(min_length=1, description="Where these figures were read. Required.")
    notes: str | None = Field(default=None, description="Caveats, e.g. ⚠ facts from a derived source.")

    @property
    def memory_bytes(self) -> int:
        return round(self.memory_gb * GB)


def _read_catalog(filename: str, top_key: str) -> dict[str, dict[str, Any]]:
    entries = load_data_file(DATA_DIR / filename, unique_keys=True)[top_key]
    return {key: {"id": key, **fields} for key, fields in entries.items()}


@functools.cache
def _models() -> Mapping[str, ModelInfo]:
    raw = _read_catalog("models.yaml", "models")
    return {key: ModelInfo.model_validate(fields) for key, fields in raw.items()}


@functools.cache
def _gpus() -> Mapping[str, GpuInfo]:
    raw = _read_catalog("gpus.yaml", "gpus")
    return {key: GpuInfo.model_validate(fields) for key, fields in raw.items()}


def load_models() -> dict[str, ModelInfo]:
    """The model catalog by id (read and validated once)."""
    return dict(_models())


def load_gpus() -> dict[str, GpuInfo]:
    """The GPU catalog by id (read and validated once)."""
    return dict(_gpus())


def get_model(model_id: str) -> ModelInfo:
    """A catalog model, its id matched ignoring case; KeyError listing the known ids (and the closest)."""
    found = find_id(model_id, _models())
    if found is None:
        raise KeyError(
            f"unknown model {model_id!r}{did_you_mean(model_id, _models())}; "
            f"known models: {', '.join(sorted(_models()))}"
        )
    return _models()[found]


def get_gpu(gpu_id: str) -> GpuInfo:
    """A catalog GPU type, its id matched ignoring case (`h100` is `H100`); KeyError listing the known ids."""
    found = find_id(gpu_id, _gpus())
    if found is None:
        raise KeyError(
            f"unknown GPU type {gpu_id!r}{did_you_mean(gpu_id, _gpus())}; "
            f"known GPU types: {', '.join(sorted(_gpus()))}"
        )
    return _gpus()[found]


def custom_model(model_id: str, fields: Mapping[str, Any]) -> ModelInfo:
    """A model a stack describes itself, with the catalog's fields (camelCase or snake_case keys).

    Raises pydantic.ValidationError naming the offending field.
    """
    return ModelInfo.model_validate({**fields, "id": model_id})


def _gib(value: int | float) -> float:
    return round(value / GIB, 3)


def _fmt_gib(value: int | float) -> str:
    return f"{value / GIB:,.2f} GiB"


def weight_bytes(model: ModelInfo, dtype: str) -> int:
    """Weight memory of the whole model, in bytes (rounded up).

    bf16/fp16: parameters x 2. fp8 and int4: the embedding and LM head (2 x vocab x hidden parameters)
    stay at 2 bytes; the other parameters take 1 byte (fp8) or 0.5 byte plus INT4_QUANTISATION_OVERHEAD.
    """
    per_parameter = WEIGHT_BYTES_PER_PARAMETER[dtype]
    if per_parameter == UNQUANTISED_BYTES_PER_PARAMETER:
        return model.parameters_total * UNQUANTISED_BYTES_PER_PARAMETER
    quantised = model.parameters_total - model.embedding_parameters
    exact = quantised * per_parameter + model.embedding_parameters * UNQUANTISED_BYTES_PER_PARAMETER
    return math.ceil(exact)


def kv_cache_element_bytes(kv_cache_dtype: str) -> int:
    """Bytes per cached key or value element: 1 for fp8 KV cache, else 2 (vLLM's `auto` is the bf16/fp16
    activation dtype, whatever the weight dtype)."""
    return 1 if kv_cache_dtype.startswith("fp8") else 2


def kv_heads_per_gpu(model: ModelInfo, tensor_parallel_size: int) -> int:
    """KV heads each GPU stores: split evenly, or replicated (one per GPU) when TP exceeds the KV heads."""
    return max(model.kv_heads // tensor_parallel_size, 1)


def kv_bytes_per_token(model: ModelInfo, kv_cache_dtype: str = "auto", tensor_parallel_size: int = 1) -> int:
    """KV cache per token on one GPU: 2 (key and value) x layers x KV heads per GPU x head_dim x bytes."""
    heads = kv_heads_per_gpu(model, tensor_parallel_size)
    return 2 * model.layers * heads * model.head_dim * kv_cache_element_bytes(kv_cache_dtype)


def activation_bytes(model: ModelInfo, max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS) -> int:
    """Activation headroom per GPU: batched tokens x hidden size x ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN.

    Not divided by TP, so it over-estimates for tensor-parallel plans (conservative).
    """
    return max_num_batched_tokens * model.hidden_size * ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN


def tensor_parallel_is_valid(model: ModelInfo, tensor_parallel_size: int) -> bool:
    """vLLM's rule: heads divisible by TP, and KV heads divisible by TP or TP by KV heads."""
    tp = tensor_parallel_size
    if model.attention_heads % tp:
        return False
    return model.kv_heads % tp == 0 if tp <= model.kv_heads else tp % model.kv_heads == 0


class CapacityPlan(BaseModel):
    """Outcome of `plan_capacity`. Per-GPU figures are at `evaluated_tensor_parallel_size`: the chosen TP
    when the model fits, else the largest allowed TP; they are None only when the dtype is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str = Field(description="Model id.")
    gpu_id: str = Field(description="GPU type id.")
    dtype: Dtype = Field(description="Weight dtype.")
    kv_cache_dtype: KvCacheDtype = Field(
        description="KV cache dtype (`auto` means the 2-byte activation dtype)."
    )
    max_model_len: int = Field(description="Tokens per sequence (prompt plus output).")
    concurrency: int = Field(description="Sequences of max_model_len held in the KV cache at once.")
    gpus_per_node: int = Field(description="GPUs on one node: the largest TP tried.")
    gpu_memory_utilization: float = Field(description="Fraction of each GPU's memory vLLM may use.")
    fits: bool = Field(description="True when some allowed TP fits every GPU's need within its budget.")
    tensor_parallel_size: int | None = Field(
        default=None, description="Smallest TP that fits; None when nothing fits."
    )
    evaluated_tensor_parallel_size: int | None = Field(
        default=None, description="TP the per-GPU figures refer to."
    )
    weight_bytes_total: int = Field(description="Weight memory of the whole model, bytes.")
    kv_bytes_per_token: int = Field(description="KV cache per token for the whole model (all GPUs), bytes.")
    kv_bytes_per_sequence: int = Field(description="kv_bytes_per_token x max_model_len, bytes.")
    weights_per_gpu_gib: float | None = Field(default=None, description="Weights / TP, GiB.")
    kv_cache_per_gpu_gib: float | None = Field(
        default=None, description="KV cache of all sequences / TP, GiB."
    )
    reserve_per_gpu_gib: float | None = Field(default=None, description="RUNTIME_RESERVE_BYTES, GiB.")
    activation_per_gpu_gib: float | None = Field(default=None, description="Activation headroom, GiB.")
    total_need_per_gpu_gib: float | None = Field(default=None, description="Sum of the four above, GiB.")
    budget_per_gpu_gib: float = Field(description="GPU memory x gpu_memory_utilization, GiB.")
    total_need_per_gpu_bytes: int | None = Field(default=None, description="Exact need per GPU, bytes.")
    budget_per_gpu_bytes: int = Field(description="Exact budget per GPU, bytes.")
    shortfall_per_gpu_gib: float | None = Field(
        default=None, description="Need minus budget per GPU when nothing fits."
    )
    max_concurrency: int | None = Field(
        default=None,
        description="Most sequences of max_model_len that fit at the evaluated TP (0 when not even one).",
    )
    headroom_fraction: float | None = Field(
        default=None, description="(budget - need) / budget per GPU when the model fits; else None."
    )
    explanation: list[str] = Field(description="The arithmetic, one step per line.")
    warnings: list[str] = Field(description="Caveats the figures do not capture.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (snake_case keys)."""
        return self.model_dump(mode="json")


def _warnings(model: ModelInfo, gpu: GpuInfo, max_model_len: int, tp: int | None) -> list[str]:
    notes: list[str] = []
    if model.is_moe:
        notes.append(
            f"mixture of experts: all {model.experts} experts are resident ({model.parameters_total:,} "
            f"parameters) although {model.parameters_active:,} are active per token"
        )
    if model.vision_encoder_parameters:
        notes.append(
            f"vision encoder ({model.vision_encoder_parameters:,} parameters) counted in the weights; "
            "image-token activations are not modelled"
        )
    if model.recommended_max_model_len and max_model_len > model.recommended_max_model_len:
        notes.append(
            f"max_model_len {max_model_len} exceeds the {model.recommended_max_model_len} tokens "
            f"the model card of {model.id} recommends"
        )
    if tp is not None and tp > 1 and not gpu.nvlink:
        notes.append(
            f"tensor parallelism across {tp} GPUs without NVLink ({gpu.interconnect}): "
            "expect lower throughput than on NVLink GPUs; the memory figures are unaffected"
        )
    return notes


def plan_capacity(
    model: ModelInfo,
    gpu: GpuInfo,
    *,
    dtype: str = "bf16",
    max_model_len: int | None = None,
    concurrency: int = 1,
    gpus_per_node: int = 8,
    gpu_memory_utilization: float = 0.9,
    tensor_parallel_size: int | None = None,
    kv_cache_dtype: str | None = None,
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS,
) -> CapacityPlan:
    """Plan one vLLM replica of `model` on GPUs of type `gpu`, all on one node.

    Per GPU at tensor-parallel size TP:
      need   = weight_bytes / TP + KV bytes per GPU + RUNTIME_RESERVE_BYTES + activation_bytes
      budget = memory_gb x 10^9 x gpu_memory_utilization
    where KV bytes per GPU = 2 x layers x (KV heads per GPU) x head_dim x KV element bytes
    x max_model_len x concurrency. TP candidates are 1, 2, 4, 8 up to `gpus_per_node` that vLLM accepts
    for the model's heads (see `tensor_parallel_is_valid`); the smallest whose need fits is chosen.
    `tensor_parallel_size` evaluates only that TP. fp8 weights or KV cache on a GPU without native fp8
    support is refused (fits False, no figures).

    `max_model_len` defaults to the model's max_context; `kv_cache_dtype` to `auto` (2 bytes).
    Raises ValueError for inputs vLLM would refuse: unknown dtype, max_model_len above the model's
    context, concurrency < 1, utilisation outside (0, 1], an invalid forced TP.
    """
    kv_dtype = kv_cache_dtype or "auto"
    length = model.max_context if max_model_len is None else max_model_len
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    if kv_dtype not in KV_CACHE_DTYPES:
        raise ValueError(f"unknown kv_cache_dtype {kv_dtype!r}: expected one of {', '.join(KV_CACHE_DTYPES)}")
    if length < 1:
        raise ValueError(f"max_model_len must be at least 1, got {length}")
    if length > model.max_context:
        raise ValueError(
            f"max_model_len {length} exceeds the maximum context of {model.id} ({model.max_context} tokens)"
        )
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if gpus_per_node < 1:
        raise ValueError(f"gpus_per_node must be at least 1, got {gpus_per_node}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if max_num_batched_tokens < 1:
        raise ValueError(f"max_num_batched_tokens must be at least 1, got {max_num_batched_tokens}")
    if tensor_parallel_size is not None:
        tp = tensor_parallel_size
        if tp < 1:
            raise ValueError(f"tensor_parallel_size must be at least 1, got {tp}")
        if tp > gpus_per_node:
            raise ValueError(
                f"tensor_parallel_size {tp} exceeds gpus_per_node {gpus_per_node}: "
                "this planner plans tensor parallelism within one node"
            )
        if not tensor_parallel_is_valid(model, tp):
            raise ValueError(
                f"tensor_parallel_size {tp} is not valid for {model.id}: vLLM needs its "
                f"{model.attention_heads} attention heads divisible by {tp}, "
                f"and its {model.kv_heads} KV heads divisible by {tp} or {tp} divisible by them"
            )
    weights = weight_bytes(model, dtype)
    kv_token = kv_bytes_per_token(model, kv_dtype)
    kv_sequence = kv_token * length
    budget = math.floor(gpu.memory_bytes * gpu_memory_utilization)
    activation = activation_bytes(model, max_num_batched_tokens)
    per_param = WEIGHT_BYTES_PER_PARAMETER[dtype]
    lines = [
        f"weights: {model.parameters_total:,} parameters x {float(per_param):g} B ({dtype})"
        + (
            f", embedding and LM head ({model.embedding_parameters:,}) at 2 B"
            if per_param != UNQUANTISED_BYTES_PER_PARAMETER
            else ""
        )
        + f" = {weights:,} B = {_fmt_gib(weights)}",
        f"KV cache per token: 2 x {model.layers} layers x {model.kv_heads} KV heads"
        f" x {model.head_dim} head_dim x {kv_cache_element_bytes(kv_dtype)} B ({kv_dtype}) = {kv_token:,} B",
        f"KV cache per sequence: {kv_token:,} B x {length:,} tokens = {kv_sequence:,} B"
        f" = {_fmt_gib(kv_sequence)}",
        f"KV cache for {concurrency} sequence(s): {_fmt_gib(kv_sequence * concurrency)}",
        f"runtime reserve: {_fmt_gib(RUNTIME_RESERVE_BYTES)} per GPU"
        " (CUDA context, NCCL buffers, CUDA graphs)",
        f"activation headroom: {max_num_batched_tokens:,} batched tokens x {model.hidden_size:,} hidden x "
        f"{ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN} B = {_fmt_gib(activation)} per GPU",
        f"budget per GPU: {gpu.memory_gb:g} GB = {_fmt_gib(gpu.memory_bytes)} x {gpu_memory_utilization:g}"
        f" = {_fmt_gib(budget)}",
    ]
    common: dict[str, Any] = {
        "model_id": model.id,
        "gpu_id": gpu.id,
        "dtype": dtype,
        "kv_cache_dtype": kv_dtype,
        "max_model_len": length,
        "concurrency": concurrency,
        "gpus_per_node": gpus_per_node,
        "gpu_memory_utilization": gpu_memory_utilization,
        "weight_bytes_total": weights,
        "kv_bytes_per_token": kv_token,
        "kv_bytes_per_sequence": kv_sequence,
        "budget_per_gpu_gib": _gib(budget),
        "budget_per_gpu_bytes": budget,
    }
    refused = [
        f"{what} not fittable: {gpu.id} ({gpu.architecture}) has no native fp8 support; "
        "use bf16/fp16 or int4-awq/int4-gptq on this GPU"
        for what, wanted in (("fp8 weights", dtype == "fp8"), ("fp8 KV cache", kv_dtype.startswith("fp8")))
        if wanted and not gpu.fp8
    ]
    if refused:
        return CapacityPlan(
            **common,
            fits=False,
            explanation=[*lines[:1], *refused],
            warnings=_warnings(model, gpu, length, None),
        )

    if tensor_parallel_size is not None:
        candidates = [tensor_parallel_size]
    else:
        candidates = [
            tp
            for tp in TENSOR_PARALLEL_CANDIDATES
            if tp <= gpus_per_node and tensor_parallel_is_valid(model, tp)
        ]
    chosen: int | None = None
    for tp in candidates:
        need = _need(model, weights, kv_dtype, length, concurrency, activation, tp)
        verdict = "fits" if need <= budget else f"short by {_fmt_gib(need - budget)}"
        lines.append(
            f"TP {tp}: weights {_fmt_gib(math.ceil(weights / tp))} + KV "
            f"{_fmt_gib(kv_bytes_per_token(model, kv_dtype, tp) * length * concurrency)} "
            f"({kv_heads_per_gpu(model, tp)} of {model.kv_heads} KV heads per GPU) + reserve + activation"
            f" = {_fmt_gib(need)} per GPU vs budget {_fmt_gib(budget)}: {verdict}"
        )
        if need <= budget:
            chosen = tp
            break
    evaluated = chosen if chosen is not None else candidates[-1]
    weights_gpu = math.ceil(weights / evaluated)
    kv_seq_gpu = kv_bytes_per_token(model, kv_dtype, evaluated) * length
    need = weights_gpu + kv_seq_gpu * concurrency + RUNTIME_RESERVE_BYTES + activation
    free = budget - weights_gpu - RUNTIME_RESERVE_BYTES - activation
    max_concurrency = max(free // kv_seq_gpu, 0)
    if chosen is not None:
        lines.append(
            f"chosen: TP {chosen} ({chosen} x {gpu.id}); up to {max_concurrency} sequence(s) of "
            f"{length:,} tokens fit at TP {chosen}"
        )
    else:
        lines.append(
            f"does not fit: at TP {evaluated} each GPU is short by {_fmt_gib(need - budget)}; "
            f"{max_concurrency} sequence(s) of {length:,} tokens would fit at TP {evaluated}"
        )
    notes = _warnings(model, gpu, length, evaluated)
    headroom = (budget - need) / budget if chosen is not None else None
    if headroom is not None and headroom < HEADROOM_WARNING:
        notes.append(
            f"headroom {headroom:.1%} of the per-GPU budget, under {HEADROOM_WARNING:.0%}: a longer "
            "batch, a larger CUDA graph or a vLLM upgrade may not fit; lower concurrency or "
            "max_model_len, or take the next tensor-parallel size"
        )
    return CapacityPlan(
        **common,
        headroom_fraction=None if headroom is None else round(headroom, 4),
        fits=chosen is not None,
        tensor_parallel_size=chosen,
        evaluated_tensor_parallel_size=evaluated,
        weights_per_gpu_gib=_gib(weights_gpu),
        kv_cache_per_gpu_gib=_gib(kv_seq_gpu * concurrency),
        reserve_per_gpu_gib=_gib(RUNTIME_RESERVE_BYTES),
        activation_per_gpu_gib=_gib(activation),
        total_need_per_gpu_gib=_gib(need),
        total_need_per_gpu_bytes=need,
        shortfall_per_gpu_gib=None if chosen is not None else _gib(need - budget),
        max_concurrency=max_concurrency,
        explanation=lines,
        warnings=notes,
    )


def _need(
    model: ModelInfo, weights: int, kv_dtype: str, length: int, concurrency: int, activation: int, tp: int
) -> int:
    kv_gpu = kv_bytes_per_token(model, kv_dtype, tp) * length * concurrency
    return math.ceil(weights / tp) + kv_gpu + RUNTIME_RESERVE_BYTES + activation


def format_plan(plan: CapacityPlan) -> str:
    """Readable multi-line text of a plan, for the CLI."""
    verdict = (
        f"fits on {plan.tensor_parallel_size} x {plan.gpu_id} (tensor parallel {plan.tensor_parallel_size})"
        if plan.fits
        else f"does not fit on up to {plan.gpus_per_node} x {plan.gpu_id}"
    )
    out = [
        f"{plan.model_id} ({plan.dtype}, KV cache {plan.kv_cache_dtype}) on {plan.gpu_id}: {verdict}",
        f"  max_model_len {plan.max_model_len:,}, concurrency {plan.concurrency}, "
        f"gpu_memory_utilization {plan.gpu_memory_utilization:g}",
    ]
    if plan.evaluated_tensor_parallel_size is not None:
        out.append(f"  per GPU at TP {plan.evaluated_tensor_parallel_size}:")
        rows = [
            ("weights", plan.weights_per_gpu_gib),
            ("KV cache", plan.kv_cache_per_gpu_gib),
            ("runtime reserve", plan.reserve_per_gpu_gib),
            ("activations", plan.activation_per_gpu_gib),
            ("total need", plan.total_need_per_gpu_gib),
            ("budget", plan.budget_per_gpu_gib),
        ]
        out += [f"    {label:<16}{value:>10.2f} GiB" for label, value in rows if value is not None]
        if plan.shortfall_per_gpu_gib is not None:
            out.append(f"    {'shortfall':<16}{plan.shortfall_per_gpu_gib:>10.2f} GiB")
        if plan.headroom_fraction is not None:
            out.append(f"    {'headroom':<16}{plan.headroom_fraction:>10.1%}")
        out.append(f"  max concurrency at TP {plan.evaluated_tensor_parallel_size}: {plan.max_concurrency}")
    out.append("  arithmetic:")
    out += [f"    - {line}" for line in plan.explanation]
    if plan.warnings:
        out.append("  warnings:")
        out += [f"    - {line}" for line in plan.warnings]
    return "\n".join(out)


# ------------------------------------------------------------------------------------ what can be bought
@dataclass(frozen=True)
class NodeOffer:
    """A node one can order: a provider's node type in a region whose zones offer its GPU, or a GPU type
    at one of the operator's sites (no node types there: `gpus` is the assumed GPUs per node)."""

    provider: str
    region: str
    node_type: str | None
    gpu: str
    gpus: int
    zones: tuple[str, ...]


def node_offers(
    catalog: Catalog,
    *,
    provider: str | None = None,
    region: str | None = None,
    gpu: str | None = None,
    site_gpus_per_node: int = 8,
) -> list[NodeOffer]:
    """Every node type the catalog offers (per provider, region and GPU count), filtered; catalog order."""
    offers: list[NodeOffer] = []
    for place in catalog.regions:
        if (provider and place.provider != provider) or (region and place.code != region):
            continue
        candidates: list[tuple[str | None, str, int]]
        if place.is_site:
            kinds = sorted({g for z in place.zones for g in z.gpus})
            candidates = [(None, g, site_gpus_per_node) for g in kinds]
        else:
            node_types = catalog.providers[place.provider].node_types
            candidates = [(n.name, n.gpu, n.gpus) for n in node_types if n.gpu and n.gpus]
        for name, gpu_id, count in candidates:
            if gpu and gpu_id != gpu:
                continue
            zones = tuple(z.code for z in place.zones if gpu_id in z.gpus)
            if zones:
                offers.append(NodeOffer(place.provider, place.code, name, str(gpu_id), count, zones))
    return offers


def plan_offers(model: ModelInfo, offers: list[NodeOffer], **options: Any) -> list[dict[str, Any]]:
    """`plan_capacity` of `model` on each offer's node (TP within the node), as JSON-able rows."""
    rows: list[dict[str, Any]] = []
    for offer in offers:
        plan = plan_capacity(model, get_gpu(offer.gpu), gpus_per_node=offer.gpus, **options)
        tp = plan.tensor_parallel_size
        rows.append(
            {
                "provider": offer.provider,
                "region": offer.region,
                "zones": list(offer.zones),
                "nodeType": offer.node_type,
                "gpu": offer.gpu,
                "gpusPerNode": offer.gpus,
                "fits": plan.fits,
                "tensorParallelSize": tp,
                "replicasPerNode": offer.gpus // tp if tp else 0,
                "maxConcurrency": plan.max_concurrency,
                "headroomFraction": plan.headroom_fraction,
                "shortfallPerGpuGib": plan.shortfall_per_gpu_gib,
                "warnings": plan.warnings,
            }
        )
    return rows


def format_offers(model_id: str, rows: list[dict[str, Any]]) -> str:
    """The offers as a table: fitting node types first (fewest GPUs), then the others."""
    ordered = sorted(rows, key=lambda r: (not r["fits"], r["gpusPerNode"], r["provider"], r["region"]))
    out = [
        f"{model_id}: {sum(r['fits'] for r in rows)} of {len(rows)} node types fit",
        f"{'PROVIDER':<9} {'REGION':<13} {'NODE TYPE':<16} {'GPUS':<13} {'FITS':<5} {'TP':>2} "
        f"{'REPLICAS':>8} {'HEADROOM':>8}",
    ]
    for r in ordered:
        node = r["nodeType"] or "(site)"
        gpus = f"{r['gpusPerNode']} x {r['gpu']}"
        if r["fits"]:
            verdict, tp, replicas = "yes", str(r["tensorParallelSize"]), str(r["replicasPerNode"])
            headroom = f"{r['headroomFraction']:.1%}"
            if r["headroomFraction"] < HEADROOM_WARNING:
                headroom += " !"
        else:
            verdict, tp, replicas, headroom = "no", "-", "-", f"-{r['shortfallPerGpuGib']:.1f}GiB"
        out.append(
            f"{r['provider']:<9} {r['region']:<13} {node:<16} {gpus:<13} {verdict:<5} {tp:>2} "
            f"{replicas:>8} {headroom:>8}"
        )
    if any(r["fits"] and r["headroomFraction"] < HEADROOM_WARNING for r in rows):
        out.append(
            f"! headroom under {HEADROOM_WARNING:.0%} of the per-GPU budget: see --gpu for the arithmetic"
        )
    return "\n".join(out)
