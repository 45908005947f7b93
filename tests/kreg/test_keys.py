"""KernelKey: the canonical text round-trips, identity ignores param order, and every
rejection says what was wrong by quoting it."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from kreg.keys import ANY_MODEL, MAX_KEY_LENGTH, MAX_PARAMS, PLATFORMS, KernelKey, OperatorSpec

# Real generations first, then anything the exact-generation grammar allows.
_REAL_ARCHS = {
    "nvidia": ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_100a", "sm_120", "sm_121"],
    "amd": ["gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1201"],
    "mtia": ["mtia_v1", "mtia_v2", "mtia_v2i"],
    "cpu": ["x86_64", "aarch64", "riscv64", "ppc64le", "s390x"],
}
_ARCH_GRAMMAR = {
    "nvidia": r"sm_[1-9][0-9]{1,2}[af]?",
    "amd": r"gfx[0-9][0-9a-f]{2,3}",
    "mtia": r"mtia_v[0-9]{1,2}[a-z]?",
    "cpu": r"x86_64|aarch64|riscv64|ppc64le|s390x",
}

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"


def _word(first: str, rest: str, max_rest: int, min_rest: int = 0) -> st.SearchStrategy[str]:
    """Text whose first character is from `first` and the rest from `rest` (cheaper than from_regex)."""
    return st.builds(
        str.__add__, st.sampled_from(first), st.text(alphabet=rest, min_size=min_rest, max_size=max_rest)
    )


models = st.one_of(
    st.just(ANY_MODEL),
    st.sampled_from(["dlrm-v2", "hstu-ranker", "llama3.1-8b", "gpt_oss"]),
    _word(_LOWER + _DIGITS, _LOWER + _DIGITS + "._-", 63),
)
op_names = _word(_LOWER, _LOWER + _DIGITS + "_", 63)
versions = st.integers(min_value=1, max_value=1_000_000)
_PARAM_VALUE_CHARS = _LOWER + _LOWER.upper() + _DIGITS + "_.+-"
params = st.dictionaries(
    keys=_word(_LOWER + _LOWER.upper() + "_", _LOWER + _LOWER.upper() + _DIGITS + "_", 11),
    values=st.text(alphabet=_PARAM_VALUE_CHARS, min_size=1, max_size=16),
    max_size=MAX_PARAMS,
)


@st.composite
def archs(draw: st.DrawFn, platform: str) -> str:
    return draw(
        st.one_of(
            st.sampled_from(_REAL_ARCHS[platform]), st.from_regex(_ARCH_GRAMMAR[platform], fullmatch=True)
        )
    )


@st.composite
def keys(draw: st.DrawFn) -> KernelKey:
    platform = draw(st.sampled_from(PLATFORMS))
    arch = draw(archs(platform))
    op = OperatorSpec(draw(op_names), draw(versions), draw(params))
    model = draw(models)
    assume(len(f"{platform}/{arch}/{model}/{op}") <= MAX_KEY_LENGTH)
    return KernelKey(platform, arch, model, op)


def _error(text: str) -> str:
    with pytest.raises(ValueError) as excinfo:
        KernelKey.parse(text)
    return str(excinfo.value)


# ------------------------------------------------------------------ round trip


@given(keys())
@example(KernelKey.parse("nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}"))
@example(KernelKey.parse("cpu/x86_64/*/relu@3"))
def test_parse_of_canonical_text_gives_back_the_key(key: KernelKey) -> None:
    text = str(key)
    parsed = KernelKey.parse(text)
    assert parsed == key
    assert hash(parsed) == hash(key)
    assert str(parsed) == text
    assert parsed.key_id == key.key_id


@given(keys())
def test_key_id_is_sha256_hex_of_the_canonical_text(key: KernelKey) -> None:
    assert len(key.key_id) == 64 and int(key.key_id, 16) >= 0
    assert key.key_id == KernelKey.parse(str(key)).key_id


@given(keys(), st.randoms(use_true_random=False))
def test_params_order_does_not_change_identity(key: KernelKey, rnd: random.Random) -> None:
    items = list(key.operator.params.items())
    rnd.shuffle(items)
    shuffled = KernelKey(
        key.platform, key.arch, key.model, OperatorSpec(key.operator.name, key.operator.version, dict(items))
    )
    assert shuffled == key
    assert hash(shuffled) == hash(key)
    assert str(shuffled) == str(key)
    assert shuffled.key_id == key.key_id
    # ... and neither does the order in the text: any permutation parses to the canonical key.
    if items:
        body = ",".join(f"{k}={v}" for k, v in items)
        text = f"{key.platform}/{key.arch}/{key.model}/{key.operator.name}@{key.operator.version}{{{body}}}"
        assert KernelKey.parse(text) == key


def test_canonical_text_sorts_params_and_omits_empty_braces() -> None:
    key = KernelKey(
        "nvidia", "sm_90", "dlrm-v2", OperatorSpec("jagged_sum", 1, {"dtype": "bf16", "D": "128"})
    )
    assert str(key) == "nvidia/sm_90/dlrm-v2/jagged_sum@1{D=128,dtype=bf16}"
    assert str(key.with_model("*")) == "nvidia/sm_90/*/jagged_sum@1{D=128,dtype=bf16}"
    assert str(KernelKey("cpu", "aarch64", "m", OperatorSpec("relu", 2))) == "cpu/aarch64/m/relu@2"


def test_params_of_a_key_cannot_be_mutated_after_construction() -> None:
    raw = {"D": "128"}
    op = OperatorSpec("jagged_sum", 1, raw)
    raw["D"] = "64"
    assert op.params["D"] == "128"
    with pytest.raises(TypeError):
        op.params["D"] = "64"  # type: ignore[index]


def test_a_key_of_exactly_the_maximum_length_round_trips() -> None:
    prefix = "nvidia/sm_90/m/op@1{"
    items: list[str] = []
    remaining = MAX_KEY_LENGTH - len(prefix) - 1
    while remaining > 0:  # p0=vvv...,p1=vvv... until the text is exactly the limit
        head = ("," if items else "") + f"p{len(items)}="
        items.append(head + "v" * min(64, remaining - len(head)))
        remaining -= len(items[-1])
    text = prefix + "".join(items) + "}"
    assert len(text) == MAX_KEY_LENGTH
    assert str(KernelKey.parse(text)) == text


# ------------------------------------------------------------------ rejections


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), max_size=20
    ).filter(lambda p: p not in PLATFORMS)
)
@example("NVIDIA")
@example("cuda")
@example("rocm")
@example("")
def test_unknown_platform_is_rejected_and_quoted(platform: str) -> None:
    message = _error(f"{platform}/sm_90/m/op@1")
    assert repr(platform) in message


_FAMILIES = st.one_of(
    st.sampled_from(
        [
            "hopper",
            "ampere",
            "blackwell",
            "sm_9x",
            "sm_8x",
            "sm_10x",
            "sm90",
            "sm_9",
            "SM_90",
            "gfx9",
            "gfx94",
            "gfx9xx",
            "cdna3",
            "rdna3",
        ]
    ),
    st.from_regex(r"sm_[1-9][0-9]?x|gfx[0-9]{1,2}|gfx[0-9][0-9]?x+|[a-z]{3,10}", fullmatch=True),
)


@given(st.sampled_from(["nvidia", "amd"]), _FAMILIES)
def test_arch_families_are_not_archs(platform: str, arch: str) -> None:
    message = _error(f"{platform}/{arch}/m/op@1")
    assert repr(arch) in message


@pytest.mark.parametrize(
    "platform,arch",
    [
        ("nvidia", "gfx942"),
        ("amd", "sm_90"),
        ("cpu", "sm_90"),
        ("mtia", "x86_64"),
        ("cpu", "x86-64"),
        ("cpu", "arm64"),
    ],
)
def test_an_arch_of_another_platform_is_rejected(platform: str, arch: str) -> None:
    message = _error(f"{platform}/{arch}/m/op@1")
    assert repr(arch) in message and repr(platform) in message


# Characters outside every field's alphabet that do not change how the text splits.
_BAD_CHARS = st.sampled_from(
    [" ", "\t", "\n", "!", "#", "$", "%", "*", ":", ";", "?", "~", "é", "\u00a0", "\u0661", "\x00"]
)


@given(keys(), _BAD_CHARS, st.sampled_from(["model", "name", "param_value"]), st.integers(min_value=0))
def test_a_bad_character_is_rejected_and_the_field_quoted(
    key: KernelKey, bad: str, field: str, where: int
) -> None:
    op = key.operator

    def insert(text: str) -> str:
        i = where % (len(text) + 1)
        return text[:i] + bad + text[i:]

    model, name, op_params = key.model, op.name, dict(op.params)
    if field == "model":
        assume(key.model != ANY_MODEL)  # '*' is the one model that may contain '*'
        model = quoted = insert(model)
    elif field == "name":
        name = quoted = insert(name)
    else:
        assume(op_params)
        pname = sorted(op_params)[where % len(op_params)]
        op_params[pname] = quoted = insert(op_params[pname])
    body = "{" + ",".join(f"{k}={v}" for k, v in sorted(op_params.items())) + "}" if op_params else ""
    text = f"{key.platform}/{key.arch}/{model}/{name}@{op.version}{body}"
    assume(len(text) <= MAX_KEY_LENGTH)
    assert repr(quoted) in _error(text)


@pytest.mark.parametrize(
    "text,quoted",
    [
        ("nvidia/sm_90/Dlrm/op@1", "Dlrm"),  # upper case
        ("nvidia/sm_90/-dlrm/op@1", "-dlrm"),  # must start alphanumeric
        ("nvidia/sm_90/m/Op@1", "Op"),
        ("nvidia/sm_90/m/1op@1", "1op"),
        ("nvidia/sm_90/m/op@1{1D=2}", "1D"),
        ("nvidia/sm_90/m/op@1{D=}", ""),
        ("nvidia/sm_90/m/op@1{D}", "D"),
        ("nvidia/sm_90/m/op@1{D=1,}", ""),
        ("nvidia/sm_90/m/op@1{D=a=b}", "a=b"),
        ("nvidia/sm_90/m/op@1{D=a/b}", "a/b"),
        ("nvidia/sm_90/m/op", "op"),
        ("nvidia/sm_90/m/op@1@2", "op@1@2"),
        ("nvidia/sm_90/m/op@1{D=1}{E=2}", "op@1{D=1}{E=2}"),
        ("nvidia/sm_90/op@1", "nvidia/sm_90/op@1"),
        ("nvidia/sm_90/m/", ""),
    ],
)
def test_malformed_parts_are_rejected_and_quoted(text: str, quoted: str) -> None:
    assert repr(quoted) in _error(text)


@given(st.integers(min_value=MAX_KEY_LENGTH + 1, max_value=4 * MAX_KEY_LENGTH))
def test_over_long_keys_are_rejected_quoting_their_start(length: int) -> None:
    text = "nvidia/sm_90/m/op@1{D=" + "x" * length + "}"
    message = _error(text)
    assert str(MAX_KEY_LENGTH) in message
    assert repr(text[:64]) in message


@pytest.mark.parametrize(
    "text,quoted",
    [
        ("nvidia/sm_90/" + "m" * 65 + "/op@1", "m" * 65),
        ("nvidia/sm_90/m/" + "o" * 65 + "@1", "o" * 65),
        ("nvidia/sm_90/m/op@1{" + "P" * 33 + "=1}", "P" * 33),
        ("nvidia/sm_90/m/op@1{D=" + "v" * 65 + "}", "v" * 65),
    ],
)
def test_over_long_fields_are_rejected_and_quoted(text: str, quoted: str) -> None:
    assert repr(quoted) in _error(text)


def test_too_many_params_are_rejected() -> None:
    body = ",".join(f"p{i}=1" for i in range(MAX_PARAMS + 1))
    assert f"{MAX_PARAMS + 1} > {MAX_PARAMS}" in _error(f"nvidia/sm_90/m/op@1{{{body}}}")


@given(keys())
def test_empty_braces_are_rejected(key: KernelKey) -> None:
    op_text = f"{key.operator.name}@{key.operator.version}{{}}"
    text = f"{key.platform}/{key.arch}/{key.model}/{op_text}"
    assume(len(text) <= MAX_KEY_LENGTH)
    message = _error(text)
    assert repr(op_text) in message and "empty braces" in message


@given(keys(), st.data())
def test_duplicate_params_are_rejected_and_quoted(key: KernelKey, data: st.DataObject) -> None:
    assume(key.operator.params)
    items = list(key.operator.params.items())
    name, _ = data.draw(st.sampled_from(items))
    other = data.draw(st.text(alphabet=_PARAM_VALUE_CHARS, min_size=1, max_size=8))
    body = ",".join(f"{k}={v}" for k, v in items + [(name, other)])
    text = f"{key.platform}/{key.arch}/{key.model}/{key.operator.name}@{key.operator.version}{{{body}}}"
    assume(len(text) <= MAX_KEY_LENGTH)
    message = _error(text)
    assert "duplicate" in message and repr(name) in message


@given(st.one_of(st.just("0"), st.from_regex(r"0[0-9]{1,6}", fullmatch=True)))
@example("01")
@example("00")
def test_version_zero_or_with_a_leading_zero_is_rejected_and_quoted(version: str) -> None:
    assert repr(version) in _error(f"nvidia/sm_90/m/op@{version}")


@pytest.mark.parametrize(
    "version", ["", "v1", "-1", "+1", "1.0", " 1", "1 ", "1_000", "0x1", "1e3", "1000001"]
)
def test_versions_that_are_not_small_positive_decimals_are_rejected(version: str) -> None:
    quoted = int(version) if version == "1000001" else version
    assert repr(quoted) in _error(f"nvidia/sm_90/m/op@{version}")


@pytest.mark.parametrize("version", ["\u0661", "\uff11", "\u00b2"])
def test_non_ascii_digits_are_not_versions(version: str) -> None:
    message = _error(f"nvidia/sm_90/m/op@{version}")
    assert message.startswith("invalid operator version") and repr(version) in message


def test_a_bool_is_not_a_version() -> None:
    with pytest.raises(ValueError):
        OperatorSpec("op", True)  # would render as 'op@True', which does not parse


@settings(max_examples=50)
@given(keys())
def test_keys_differing_in_any_part_have_different_ids(key: KernelKey) -> None:
    op = key.operator
    bumped = OperatorSpec(op.name, op.version % 1_000_000 + 1, op.params)
    other_model = "other" if key.model != "other" else "another"
    variants = {
        key,
        KernelKey(key.platform, key.arch, key.model, bumped),
        key.with_model(other_model),
    }
    assert len({k.key_id for k in variants}) == 3
