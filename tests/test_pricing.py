"""Price table lookups, cost arithmetic, user price files and the `assay prices` table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from assay.cli.prices import prices_json, prices_table
from assay.errors import UserInputError
from assay.pricing import LOCAL_PRICE, PriceTable, cost_usd, load_price_table
from assay.providers.specs import PROVIDERS, resolve_model
from assay.records import Price

P = Price(input_per_mtok=0.15, output_per_mtok=0.60, source="test", as_of="2026-11-01")


@pytest.fixture
def table() -> PriceTable:
    return PriceTable(
        {
            "openai/gpt-4o-mini": P,
            "openai/gpt-4o": Price(input_per_mtok=2.5, output_per_mtok=10.0),
            "openai/gpt-4o-2024-05-13": Price(input_per_mtok=5.0, output_per_mtok=15.0),
            "anthropic/claude-3-7-sonnet": Price(input_per_mtok=3.0, output_per_mtok=15.0),
            "together/Qwen/Qwen2.5-7B-Instruct-Turbo": Price(
                input_per_mtok=0.3, output_per_mtok=0.3
            ),
        }
    )


# --- lookups -------------------------------------------------------------------------------


def test_exact_match(table: PriceTable) -> None:
    assert table.lookup(resolve_model("openai/gpt-4o-mini")) == P


@pytest.mark.parametrize(
    "spec", ["openai/gpt-4o-mini-2024-07-18", "anthropic/claude-3-7-sonnet-20250219"]
)
def test_dated_suffix_falls_back_to_undated_entry(table: PriceTable, spec: str) -> None:
    assert table.lookup(resolve_model(spec)) is not None


def test_dated_entry_wins_over_undated_fallback(table: PriceTable) -> None:
    # gpt-4o's first snapshot had its own, higher price.
    price = table.lookup(resolve_model("openai/gpt-4o-2024-05-13"))
    assert price is not None and price.input_per_mtok == 5.0
    price = table.lookup(resolve_model("openai/gpt-4o-2024-08-06"))
    assert price is not None and price.input_per_mtok == 2.5


def test_latest_alias_and_case_insensitive(table: PriceTable) -> None:
    assert table.lookup(resolve_model("anthropic/claude-3-7-sonnet-latest")) is not None
    assert table.lookup(resolve_model("together/qwen/qwen2.5-7b-instruct-turbo")) is not None


def test_per_model_price_beats_table(table: PriceTable) -> None:
    mine = Price(input_per_mtok=9.0, output_per_mtok=9.0, source="models.yaml")
    assert table.lookup(resolve_model("openai/gpt-4o-mini", price=mine)) == mine


def test_local_model_costs_zero_with_a_reason(table: PriceTable) -> None:
    price = table.lookup(resolve_model("local/smollm2"))
    assert price == LOCAL_PRICE
    assert price.input_per_mtok == 0 and price.output_per_mtok == 0
    assert "local" in price.source


def test_local_model_with_explicit_price_uses_it(table: PriceTable) -> None:
    hourly = Price(input_per_mtok=0.01, output_per_mtok=0.02, source="self-hosting estimate")
    assert table.lookup(resolve_model("local/smollm2", price=hourly)) == hourly


@pytest.mark.parametrize(
    "spec",
    [
        "openai/gpt-unknown",
        "openai/gpt-4o-mini-turbo",  # a suffix that is not a date
        "ollama/llama3.1:8b",
        "openrouter/meta-llama/llama-3.1-8b-instruct",  # not in this small table
    ],
)
def test_unknown_model_is_none_never_zero(table: PriceTable, spec: str) -> None:
    assert table.lookup(resolve_model(spec)) is None


def test_openrouter_free_variant_is_zero_with_source() -> None:
    price = PriceTable().lookup(resolve_model("openrouter/qwen/qwen3-8b:free"))
    assert price is not None and price.input_per_mtok == 0 and price.output_per_mtok == 0
    assert "openrouter.ai/qwen/qwen3-8b:free" in price.source


def test_get_by_spec_and_contains(table: PriceTable) -> None:
    assert table.get(" openai/gpt-4o-mini ") == P
    assert "OPENAI/gpt-4o-mini" in table
    assert "openai/nope" not in table


# --- cost arithmetic -----------------------------------------------------------------------


def test_cost_exact_value() -> None:
    # 1,234 x 0.15 + 567 x 0.60 = 185.1 + 340.2 = 525.3 dollars per million calls' worth
    assert cost_usd(P, 1234, 567) == pytest.approx(0.0005253, rel=1e-12)


def test_cost_zero_tokens_is_zero_not_unknown() -> None:
    assert cost_usd(P, 0, 0) == 0.0


@pytest.mark.parametrize(("price", "i", "o"), [(None, 10, 10), (P, None, 10), (P, 10, None)])
def test_cost_unknown_when_price_or_usage_unknown(
    price: Price | None, i: int | None, o: int | None
) -> None:
    assert cost_usd(price, i, o) is None


def test_cost_of_local_model_is_zero() -> None:
    assert cost_usd(LOCAL_PRICE, 5000, 5000) == 0.0


def test_negative_tokens_are_a_bug() -> None:
    with pytest.raises(ValueError):
        cost_usd(P, -1, 0)


# --- override files ------------------------------------------------------------------------

OVERRIDES = {
    "json": json.dumps(
        {
            "prices": {
                "openai/gpt-4o-mini": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                "compat/my-model": {
                    "input_per_mtok": 1,
                    "output_per_mtok": 2,
                    "source": "contract",
                    "as_of": "2026-10-01",
                },
            }
        }
    ),
    "yaml": """
openai/gpt-4o-mini: {input_per_mtok: 0.1, output_per_mtok: 0.2}
compat/my-model:
  input_per_mtok: 1
  output_per_mtok: 2
  source: contract
  as_of: 2026-10-01
""",
    "toml": """
note = "our negotiated rates"
[prices."openai/gpt-4o-mini"]
input_per_mtok = 0.1
output_per_mtok = 0.2

[prices."compat/my-model"]
input_per_mtok = 1
output_per_mtok = 2
source = "contract"
as_of = 2026-10-01
""",
}


@pytest.mark.parametrize("kind", sorted(OVERRIDES))
def test_override_file_formats(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"prices.{kind}"
    path.write_text(OVERRIDES[kind], encoding="utf-8")
    loaded = PriceTable.load(path)
    mini = loaded.get("openai/gpt-4o-mini")
    assert mini == Price(input_per_mtok=0.1, output_per_mtok=0.2, source=str(path), as_of="")
    mine = loaded.get("compat/my-model")
    assert mine == Price(input_per_mtok=1, output_per_mtok=2, source="contract", as_of="2026-10-01")


def test_yml_suffix_and_top_level_mapping(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("groq/x: {input_per_mtok: 0, output_per_mtok: 0}\n", encoding="utf-8")
    assert PriceTable.load(path).get("groq/x") is not None


def test_merged_overrides_win(table: PriceTable) -> None:
    cheap = Price(input_per_mtok=0.01, output_per_mtok=0.02, source="mine")
    merged = table.merged(PriceTable({"OpenAI/GPT-4o-mini": cheap, "groq/new": cheap}))
    assert merged.lookup(resolve_model("openai/gpt-4o-mini")) == cheap
    assert merged.get("openai/gpt-4o") == table.get("openai/gpt-4o")
    assert merged.get("groq/new") == cheap
    assert table.get("openai/gpt-4o-mini") == P  # the original is untouched
    assert [s for s, _ in merged.entries()].count("OpenAI/GPT-4o-mini") == 1


def test_load_price_table_with_override(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(OVERRIDES["json"], encoding="utf-8")
    price = load_price_table(path).lookup(resolve_model("openai/gpt-4o-mini"))
    assert price is not None and price.input_per_mtok == 0.1
    assert load_price_table(None).get("openai/gpt-4o-mini") is not None


BAD_FILES = [
    ("neg.json", '{"openai/x": {"input_per_mtok": -1, "output_per_mtok": 1}}', "openai/x"),
    ("missing.json", '{"openai/x": {"input_per_mtok": 1}}', "output_per_mtok"),
    ("text.json", '{"openai/x": {"input_per_mtok": "1", "output_per_mtok": 1}}', "number"),
    ("bool.yaml", "openai/x: {input_per_mtok: true, output_per_mtok: 1}\n", "number"),
    ("nan.yaml", "openai/x: {input_per_mtok: .nan, output_per_mtok: 1}\n", "openai/x"),
    ("typo.yaml", "openai/x: {input_per_mtok: 1, output_per_mtoks: 1}\n", "output_per_mtoks"),
    ("scalar.yaml", "openai/x: 0.15\n", "not a mapping"),
    ("nokey.yaml", "gpt-4o: {input_per_mtok: 1, output_per_mtok: 1}\n", "gpt-4o"),
    ("badprov.yaml", "acme/x: {input_per_mtok: 1, output_per_mtok: 1}\n", "acme/x"),
    ("list.yaml", "- 1\n- 2\n", "mapping"),
    ("broken.json", '{"openai/x": ', "not valid JSON"),
    ("broken.yaml", "openai/x: [unclosed\n", "not valid YAML"),
    ("broken.toml", "[prices\n", "not valid TOML"),
    ("prices.csv", "a,b\n", ".csv"),
    ("prices-list.json", '{"prices": [1, 2]}', "mapping"),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES)
def test_bad_price_file_is_a_one_line_user_error(
    tmp_path: Path, name: str, content: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserInputError) as info:
        PriceTable.load(path)
    message = str(info.value)
    assert name in message and expected in message
    assert "\n" not in message


def test_missing_price_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        PriceTable.load(tmp_path / "nope.json")


# --- the bundled table ---------------------------------------------------------------------


def test_bundled_entries_are_complete() -> None:
    entries = list(PriceTable.bundled().entries())
    assert len(entries) > 50
    for spec, price in entries:
        provider, _, model = spec.partition("/")
        assert provider in PROVIDERS and model, spec
        assert price.input_per_mtok >= 0 and price.output_per_mtok >= 0, spec
        assert price.source.startswith("https://"), spec
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.as_of), spec


def test_bundled_file_states_where_figures_come_from() -> None:
    raw = Path(__file__).parents[1] / "src/assay/prices.json"
    note = json.loads(raw.read_text(encoding="utf-8"))["note"]
    assert "--prices" in note
    assert PriceTable.bundled().note == note


@pytest.mark.parametrize(
    "spec",
    [
        "openai/gpt-4o-mini",
        "openai/gpt-4o-mini-2024-07-18",
        "openai/gpt-5-nano",
        "anthropic/claude-3-5-haiku-20241022",
        "anthropic/claude-sonnet-4-5-20250929",
        "gemini/gemini-2.5-flash",
        "mistral/mistral-small-latest",
        "deepseek/deepseek-chat",
        "groq/llama-3.1-8b-instant",
        "openrouter/meta-llama/llama-3.1-8b-instruct",
        "openrouter/qwen/qwen3-8b",
        "openrouter/mistralai/mistral-small-3.1-24b-instruct",
    ],
)
def test_bundled_covers_common_models(spec: str) -> None:
    price = PriceTable.bundled().lookup(resolve_model(spec))
    assert price is not None and price.input_per_mtok > 0


def test_bundled_reference_price() -> None:
    price = PriceTable.bundled().get("openai/gpt-4o-mini")
    assert price is not None
    assert (price.input_per_mtok, price.output_per_mtok) == (0.15, 0.6)


# --- `assay prices` ------------------------------------------------------------------------


def _render(table: PriceTable, pattern: str | None) -> str:
    console = Console(record=True, width=240, color_system=None)
    console.print(prices_table(table, pattern))
    return console.export_text()


def test_prices_table_renders_and_filters(table: PriceTable) -> None:
    text = _render(table, "GPT-4O")
    assert "openai/gpt-4o-mini" in text and "0.15" in text and "0.60" in text
    assert "claude" not in text
    assert "input $/Mtok" in text and "as of" in text


def test_prices_table_no_match_says_so(table: PriceTable) -> None:
    assert "No model matches 'zzz'" in _render(table, "zzz")


def test_bundled_table_renders() -> None:
    text = _render(PriceTable.bundled(), None)
    assert "openrouter/qwen/qwen3-8b" in text and "2026-11-01" in text


def test_prices_json(table: PriceTable) -> None:
    rows = prices_json(table, "mini")
    assert rows == [
        {
            "model": "openai/gpt-4o-mini",
            "input_per_mtok": 0.15,
            "output_per_mtok": 0.6,
            "source": "test",
            "as_of": "2026-11-01",
        }
    ]
    json.dumps(prices_json(PriceTable.bundled(), None))  # serializable as is
