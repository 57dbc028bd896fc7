"""The models config file (YAML, JSON, TOML), on its own and through ``assay run --config``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from assay.data import demo_path
from assay.errors import MissingKeyError, UserInputError
from assay.providers.config_file import load_models_config
from assay.providers.specs import PROVIDERS, check_keys
from assay.records import Price
from assay.store.runstore import RunStore
from assay.testing import ScriptedServer
from tests.run_helpers import LabelZoo, assay

FULL_YAML = """\
models:
  - spec: compat/acc90
    label: careful
    base_url: http://127.0.0.1:8000/v1
    api_key_env: MY_GATEWAY_KEY
    params: {top_k: 3, provider: {sort: price}}
    price: {input_per_mtok: 2.5, output_per_mtok: 10, source: contract, as_of: "2026-01-31"}
  - spec: openai/gpt-4o-mini
"""

FULL_JSON = {
    "models": [
        {
            "spec": "compat/acc90",
            "label": "careful",
            "base_url": "http://127.0.0.1:8000/v1",
            "api_key_env": "MY_GATEWAY_KEY",
            "params": {"top_k": 3, "provider": {"sort": "price"}},
            "price": {
                "input_per_mtok": 2.5,
                "output_per_mtok": 10,
                "source": "contract",
                "as_of": "2026-01-31",
            },
        },
        {"spec": "openai/gpt-4o-mini"},
    ]
}

FULL_TOML = """\
[[models]]
spec = "compat/acc90"
label = "careful"
base_url = "http://127.0.0.1:8000/v1"
api_key_env = "MY_GATEWAY_KEY"
params = { top_k = 3, provider = { sort = "price" } }
price = { input_per_mtok = 2.5, output_per_mtok = 10, source = "contract", as_of = "2026-01-31" }

[[models]]
spec = "openai/gpt-4o-mini"
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("models.yaml", FULL_YAML),
        ("models.yml", FULL_YAML),
        ("models.json", json.dumps(FULL_JSON)),
        ("models.toml", FULL_TOML),
    ],
)
def test_every_format_gives_the_same_models(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    first, second = load_models_config(path)
    assert (first.spec, first.provider, first.model) == ("compat/acc90", "compat", "acc90")
    assert first.label == "careful"
    assert first.base_url == "http://127.0.0.1:8000/v1"
    assert first.api_key_env == "MY_GATEWAY_KEY"
    assert first.params == {"top_k": 3, "provider": {"sort": "price"}}
    assert first.price == Price(
        input_per_mtok=2.5, output_per_mtok=10.0, source="contract", as_of="2026-01-31"
    )
    # Defaults come from the provider table: label = spec, the provider's URL and key variable.
    info = PROVIDERS["openai"]
    assert (second.label, second.base_url, second.api_key_env) == (
        "openai/gpt-4o-mini",
        info.base_url,
        info.api_key_env,
    )
    assert second.price is None and second.params == {}


def test_a_top_level_list_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps([{"spec": "openai/gpt-4o-mini", "label": "mini"}]))
    assert [m.label for m in load_models_config(path)] == ["mini"]


def test_a_named_key_variable_is_required_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(FULL_YAML)
    careful = load_models_config(path)[0]
    monkeypatch.delenv("MY_GATEWAY_KEY", raising=False)
    with pytest.raises(MissingKeyError, match="MY_GATEWAY_KEY"):
        check_keys([careful])
    monkeypatch.setenv("MY_GATEWAY_KEY", "k")
    check_keys([careful])


def test_compat_needs_a_base_url(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("models:\n  - spec: compat/qwen\n")
    with pytest.raises(UserInputError, match="base_url"):
        load_models_config(path)
    path.write_text("models:\n  - spec: compat/qwen\n    base_url: http://127.0.0.1:9/v1\n")
    assert load_models_config(path)[0].base_url == "http://127.0.0.1:9/v1"


ONE_ENTRY = "models:\n  - spec: openai/gpt-4o-mini\n"
NAMES_FILE_AND_ENTRY = "file and entry are both named"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(
            "m.yaml", ONE_ENTRY + "    colour: red\n", ["model #1", "colour"], id="unknown-key"
        ),
        pytest.param("m.yaml", "models:\n  - label: x\n", ["model #1", "spec"], id="missing-spec"),
        pytest.param(
            "m.yaml",
            ONE_ENTRY + "  - spec: openai/gpt-4o\n    price: {input_per_mtok: cheap}\n",
            ["model #2", "input_per_mtok"],
            id="non-numeric-price",
        ),
        pytest.param(
            "m.yaml",
            ONE_ENTRY + "    price: {input_per_mtok: 1}\n",
            ["model #1", "output_per_mtok"],
            id="incomplete-price",
        ),
        pytest.param("m.yaml", "models: [\n", ["not valid yaml"], id="unparsable-yaml"),
        pytest.param("m.json", '{"models": [', ["not valid json"], id="unparsable-json"),
        pytest.param("m.toml", "[[models]\n", ["not valid toml"], id="unparsable-toml"),
        pytest.param("m.yaml", "models: []\n", ["no models"], id="empty-list"),
        pytest.param("m.yaml", "", ["no models"], id="empty-file"),
        pytest.param("m.toml", "models = 3\n", ["no models"], id="models-not-a-list"),
        pytest.param(
            "m.yaml",
            ONE_ENTRY + "  - spec: foo/bar\n",
            ["model #2", "foo"],
            id="unknown-provider",
        ),
        pytest.param(
            "m.yaml",
            "models:\n  - spec: compat/qwen\n",
            ["model #1", "base_url"],
            id="compat-without-base-url",
        ),
        pytest.param(
            "m.yaml",
            ONE_ENTRY + "    price: {input_per_mtok: -1, output_per_mtok: 1}\n",
            ["model #1", "price"],
            id="negative-price",
        ),
        pytest.param(
            "m.yaml",
            ONE_ENTRY + "    price: {input_per_mtok: 1, output_per_mtok: 1, currency: EUR}\n",
            ["model #1", "currency"],
            id="unknown-price-field",
        ),
    ],
)
def test_bad_configs_fail_with_one_line_naming_file_and_entry(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserInputError) as caught:
        load_models_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message, NAMES_FILE_AND_ENTRY
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "m.yaml",
            ONE_ENTRY + "    price: {input_per_mtok: 1, output_per_mtok: 2, as_of: 2026-01-31}\n",
        ),
        (
            "m.toml",
            '[[models]]\nspec = "openai/gpt-4o-mini"\n'
            "price = { input_per_mtok = 1, output_per_mtok = 2, as_of = 2026-01-31 }\n",
        ),
    ],
)
def test_a_bare_date_in_as_of_is_read_as_in_price_files(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    price = load_models_config(path)[0].price
    assert price is not None and price.as_of == "2026-01-31"


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(UserInputError, match=r"absent\.yaml"):
        load_models_config(path)


# ---- through the CLI: labels and price overrides reach the results

PRICED = {"careful": (2.5, 10.0), "quick": (0.25, 1.0)}


def test_run_with_config_uses_labels_prices_params_and_key_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo = LabelZoo(tokens=(40, 2))
    out = tmp_path / "results.json"
    monkeypatch.setenv("MY_GATEWAY_KEY", "gateway-secret-123")
    with ScriptedServer(zoo) as srv:
        config = tmp_path / "models.yaml"
        config.write_text(
            "models:\n"
            "  - spec: compat/acc90\n"
            "    label: careful\n"
            f"    base_url: {srv.base_url}\n"
            "    api_key_env: MY_GATEWAY_KEY\n"
            "    params: {top_k: 3}\n"
            "    price: {input_per_mtok: 2.5, output_per_mtok: 10}\n"
            "  - spec: compat/acc60\n"
            "    label: quick\n"
            f"    base_url: {srv.base_url}\n"
            "    price: {input_per_mtok: 0.25, output_per_mtok: 1.0}\n"
        )
        proc = assay(
            "run",
            str(demo_path("sentiment.jsonl")),
            str(demo_path("sentiment_prompt.md")),
            "--config",
            str(config),
            "--metric",
            "label",
            "--limit",
            "6",
            "-o",
            str(out),
            "--json",
        )
        requests = srv.requests
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    by = {v["variant"]: v for v in results["variants"]}
    assert set(by) == {"careful", "quick"}
    for label, (input_price, output_price) in PRICED.items():
        per_request = (40 * input_price + 2 * output_price) / 1e6
        assert by[label]["cost_per_1k_usd"] == pytest.approx(per_request * 1000)
        assert by[label]["score"]["n_scored"] == 6
    careful = [r for r in requests if r.model == "acc90"]
    quick = [r for r in requests if r.model == "acc60"]
    assert len(careful) == len(quick) == 6
    assert all(r.body.get("top_k") == 3 for r in careful)
    assert all("top_k" not in r.body for r in quick)
    assert {r.headers.get("authorization") for r in careful} == {"Bearer gateway-secret-123"}
    # The key is read at call time and never written anywhere.
    store_dir = Path(os.environ["ASSAY_STORE"])
    assert "gateway-secret-123" not in out.read_text()
    assert not any(b"gateway-secret-123" in f.read_bytes() for f in store_dir.rglob("*.sqlite*"))
    run = RunStore.open(store_dir).get_run(results["run_id"])
    assert "gateway-secret-123" not in run.config.model_dump_json()
