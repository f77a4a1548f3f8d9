"""Symbol history: message shapes, release sources, the per-release index, and real breaks.

The real-break tests read real transformers wheels, fetched once through `release_source`
into the shared cache (`$MATRIX_CACHE` or the repo's `.cache/`), so reruns and CI reuse
them; without network or cache they skip, saying why. Synthetic releases (a few files in a
temporary cache) pin down what the sources of real releases cannot show on demand: a
rename, a signature change, an unavailable release.
"""

from __future__ import annotations

import ast
import threading
import types
from pathlib import Path

import pytest

from matrix.diagnosis.failure import Symbol, parse_message, read_failure
from matrix.diagnosis.symbols import api_index
from matrix.diagnosis.symbols.api_index import INDEX_FORMAT
from matrix.diagnosis.symbols.api_lookup import Release
from matrix.diagnosis.symbols.history import symbol_history
from matrix.diagnosis.symbols.sources import SourceShelf, release_source
from tests.helpers import fake_release

# Final releases as PyPI lists them (4.46.0 and 4.52.0 have no installable files).
LINE_4_43_TO_4_45 = ["4.43.4", "4.44.0", "4.44.1", "4.44.2", "4.45.0", "4.45.1", "4.45.2"]
LINE_4_45_TO_4_47 = ["4.45.2", "4.46.1", "4.46.2", "4.46.3", "4.47.0", "4.47.1"]


def caught(action) -> str:
    """The message Python itself produces for `action`'s exception."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - any exception's message is the point
        return str(exc)
    raise AssertionError("expected an exception")


def fail(message: str, traceback: str = "") -> object:
    return read_failure({"type": "Error", "message": message, "traceback": traceback})


# --- message shapes -----------------------------------------------------------------------


class Owner:
    def method(self, a, b, *, flag):
        return a


def function(a, b):
    return a


def test_python_attribute_and_import_messages_name_the_symbol():
    instance = caught(lambda: Owner().missing)
    on_class = caught(lambda: Owner.missing)
    module = caught(lambda: types.ModuleType("transformers.cache_utils").missing)
    imported = caught(lambda: exec("from os import not_there", {}))
    assert parse_message(instance) == Symbol("attribute", "missing", owner="Owner", owner_kind="object")
    assert parse_message(on_class) == Symbol("attribute", "missing", owner="Owner", owner_kind="type")
    assert parse_message(module) == Symbol(
        "attribute", "missing", owner="transformers.cache_utils", owner_kind="module"
    )
    assert parse_message(imported) == Symbol("import", "not_there", owner="os", owner_kind="module")


def test_python_call_messages_name_the_function_and_parameters():
    keyword = parse_message(caught(lambda: Owner().method(1, 2, flag=1, padding_side="left")))
    assert (keyword.kind, keyword.name, keyword.owner, keyword.function) == (
        "keyword",
        "padding_side",
        "Owner.method",
        "method",
    )
    assert keyword.owner_class == "Owner"
    missing = parse_message(caught(lambda: function()))
    assert (missing.kind, missing.names, missing.function, missing.owner_class) == (
        "positional",
        ("a", "b"),
        "function",
        None,
    )
    keyword_only = parse_message(caught(lambda: Owner().method(1, 2)))
    assert (keyword_only.kind, keyword_only.names) == ("positional", ("flag",))
    takes = parse_message(caught(lambda: function(1, 2, 3)))
    assert (takes.kind, takes.function, takes.detail) == (
        "arguments",
        "function",
        "takes 2 positional arguments but 3 were given",
    )


def test_modules_and_packages_transformers_modules_are_symbols_others_are_missing_packages():
    assert parse_message("No module named 'transformers.deepspeed'") == Symbol(
        "module", "transformers.deepspeed", owner_kind="module"
    )
    assert parse_message(caught(lambda: __import__("einops_absent.ops"))) == Symbol(
        "missing-package", "einops_absent", names=("einops_absent",)
    )
    required = (
        "This modeling file requires the following packages that were not found in your environment: "
        "einops, flash_attn. Run `pip install einops flash_attn`"
    )
    assert parse_message(required).names == ("einops", "flash_attn")
    protobuf = "LlamaTokenizer requires the protobuf library but it was not found in your environment."
    assert parse_message(protobuf) == Symbol("missing-package", "protobuf", names=("protobuf",))
    # transformers' lazy module words it without quotes
    assert parse_message("module transformers has no attribute Foo") == Symbol(
        "attribute", "Foo", owner="transformers", owner_kind="module"
    )
    assert parse_message("No module named 'transformers_modules.chatglm'") is None
    assert parse_message("shape mismatch: [2, 3] vs [3, 2]") is None


# --- release sources ----------------------------------------------------------------------


def test_a_bisect_env_of_the_same_release_is_read_in_place(tmp_path):
    site = tmp_path / "bisect" / "tf-9.8.7" / "lib" / "python3.11" / "site-packages"
    (site / "transformers").mkdir(parents=True)
    (site / "transformers" / "__init__.py").write_text("")
    (site / "transformers-9.8.7.dist-info").mkdir()
    assert release_source("9.8.7", tmp_path) == site / "transformers"


def test_an_unavailable_release_is_none_with_a_reason(tmp_path):
    site = tmp_path / "bisect" / "tf-0.0.1" / "lib" / "python3.11" / "site-packages"
    (site / "transformers").mkdir(parents=True)
    (site / "transformers" / "__init__.py").write_text("")
    (site / "transformers-0.0.2.dist-info").mkdir()  # another release: not used
    problems: dict[str, str] = {}
    assert release_source("0.0.1", tmp_path, problems) is None
    assert "transformers==0.0.1" in problems["0.0.1"]
    assert release_source("not a version", tmp_path, problems) is None
    assert "is not a version" in problems["not a version"]
    assert not list((tmp_path / "sources").glob(".transformers-*")), "a failed fetch leaves no staging folder"


def test_concurrent_fetches_of_one_release_leave_one_complete_folder(tmp_path, shelf):
    results: list[Path | None] = []
    threads = [threading.Thread(target=lambda: results.append(release_source("4.48.3", tmp_path))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    expected = tmp_path / "sources" / "transformers-4.48.3" / "transformers"
    assert results == [expected] * 3
    assert (expected / "cache_utils.py").is_file()
    assert sorted(p.name for p in (tmp_path / "sources").iterdir()) == ["transformers-4.48.3"]


# --- the index ----------------------------------------------------------------------------


def test_the_index_keeps_signatures_members_and_deprecation_messages(shelf):
    release = shelf.release("4.48.3")
    cache = release.module("transformers.cache_utils")
    get_max_length = cache["classes"]["Cache"]["members"]["get_max_length"]
    assert "get_max_cache_shape" in get_max_length["deprecated"][0]
    assert cache["classes"]["DynamicCache"]["bases"] == ["Cache"]
    assert cache["classes"]["DynamicCache"]["members"]["key_cache"]["kind"] == "attribute"  # self.key_cache = ...
    pad = shelf.release("4.45.2").member("transformers.tokenization_utils_base", "PreTrainedTokenizerBase", "_pad")
    assert "padding_side=" in pad.entry["params"]
    assert api_index.parameters_of(ast.parse("def f(a, /, b=1, *args, c, d=2, **kw): pass").body[0].args) == [
        "a",
        "/",
        "b=",
        "*args",
        "c",
        "d=",
        "**kw",
    ]


def test_a_second_question_reads_the_cached_index_and_parses_nothing(tmp_path, shelf, monkeypatch):
    (tmp_path / "sources").mkdir()
    for version in ("4.48.3", "4.49.0"):
        (tmp_path / "sources" / f"transformers-{version}").symlink_to(shelf.package(version).parent)
    failure = fail("'DynamicCache' object has no attribute 'get_max_length'")
    first = symbol_history(failure, "4.48.3", "4.49.0", SourceShelf(tmp_path), ["4.48.3", "4.49.0"])
    assert (tmp_path / "sources" / "index" / f"v{INDEX_FORMAT}" / "4.48.3" / "transformers.cache_utils.json").is_file()

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cached index should have answered")

    monkeypatch.setattr(api_index.ast, "parse", no_parsing)
    second = symbol_history(failure, "4.48.3", "4.49.0", SourceShelf(tmp_path), ["4.48.3", "4.49.0"])
    assert second == first is not None


# --- real breaks, from real wheels --------------------------------------------------------


def test_removed_method_with_its_deprecation_and_the_exact_first_release(shelf):
    releases = ["4.47.1", "4.48.0", "4.48.1", "4.48.2", "4.48.3", "4.49.0", "4.50.0"]
    found = symbol_history(
        fail("'DynamicCache' object has no attribute 'get_max_length'"), "4.47.1", "4.50.0", shelf, releases
    )
    assert (found.id, found.introduced_in, found.last_good, found.exact) == (
        "removed: Cache.get_max_length",
        "4.49.0",
        "4.48.3",
        True,
    )
    assert found.confidence == "high"
    assert found.symbol == "transformers.cache_utils.Cache.get_max_length"
    assert any("cache_utils.py:70" in line and "through DynamicCache" in line for line in found.evidence)
    assert any("deprecation" in line and "get_max_cache_shape" in line for line in found.evidence)
    assert "upstream: use get_max_cache_shape() (the replacement 4.48.3's deprecation names)" in found.fixes
    assert "pin transformers<4.49.0" in found.fixes


def test_a_model_class_reaches_a_removed_generation_method_through_its_base(shelf):
    message = "'ChatGLMForConditionalGeneration' object has no attribute '_extract_past_from_model_output'"
    found = symbol_history(fail(message), "4.48.3", "4.49.0", shelf, ["4.48.3", "4.49.0"])
    assert found.id == "removed: GenerationMixin._extract_past_from_model_output"
    assert found.exact and found.confidence == "medium"  # the base class was inferred
    assert "ChatGLMForConditionalGeneration gets it from PreTrainedModel" in found.cause


def test_a_vanished_keyword_is_found_in_the_signature_with_its_first_release(shelf):
    message = (
        "GenerationMixin._extract_past_from_model_output() got an unexpected keyword argument "
        "'standardize_cache_format'"
    )
    found = symbol_history(fail(message), "4.43.4", "4.45.2", shelf, LINE_4_43_TO_4_45)
    assert found.id == "removed parameter: standardize_cache_format of GenerationMixin._extract_past_from_model_output"
    assert (found.introduced_in, found.last_good, found.exact, found.confidence) == ("4.44.0", "4.43.4", True, "high")
    assert "4.43.4: _extract_past_from_model_output(self, outputs, standardize_cache_format=)" in found.evidence
    assert "upstream: stop passing `standardize_cache_format` to _extract_past_from_model_output" in found.fixes


def test_a_keyword_transformers_now_passes_to_the_models_override(shelf):
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/env/lib/python3.11/site-packages/transformers/tokenization_utils_base.py", line 3500, in pad\n'
        "    encoded_inputs = self._pad(\n"
    )
    message = "ChatGLMTokenizer._pad() got an unexpected keyword argument 'padding_side'"
    found = symbol_history(fail(message, traceback), "4.43.4", "4.45.2", shelf, LINE_4_43_TO_4_45)
    assert (found.id, found.introduced_in, found.exact) == (
        "new parameter: padding_side of PreTrainedTokenizerBase._pad",
        "4.45.0",
        True,
    )
    assert "PreTrainedTokenizerBase._pad gained the parameter `padding_side`" in found.cause
    assert "upstream: accept `padding_side` in ChatGLMTokenizer._pad" in found.fixes
    assert any(line.startswith("called from ") and "self._pad(" in line for line in found.evidence)


def test_a_moved_import_gives_the_new_import_path(shelf):
    message = "cannot import name 'VideoInput' from 'transformers.image_utils' (/env/transformers/image_utils.py)"
    found = symbol_history(fail(message), "4.51.3", "4.52.1", shelf, ["4.51.3", "4.52.1"])
    assert found.id == "moved: VideoInput -> transformers.video_utils"
    assert "upstream: from transformers.video_utils import VideoInput" in found.fixes
    assert found.exact and found.confidence == "high"


def test_a_removed_module_its_deprecation_and_where_its_names_went(shelf):
    found = symbol_history(
        fail("No module named 'transformers.deepspeed'"), "4.45.2", "4.47.1", shelf, LINE_4_45_TO_4_47
    )
    assert found.id == "moved: transformers.deepspeed -> transformers.integrations.deepspeed"
    assert (found.introduced_in, found.last_good, found.exact) == ("4.46.1", "4.45.2", True)
    assert any("deprecation" in line and "directly from transformers.integrations" in line for line in found.evidence)
    assert any(fix.startswith("upstream: import HfDeepSpeedConfig") for fix in found.fixes)


def test_without_a_release_list_the_first_bad_release_is_not_called_exact(shelf):
    found = symbol_history(fail("No module named 'transformers.pipelines.conversational'"), "4.41.2", "4.42.4", shelf)
    assert found.id == "removed module: transformers.pipelines.conversational"
    assert (found.exact, found.confidence, found.introduced_in) == (False, "medium", "4.42.4")


def test_a_method_that_stays_defined_but_is_no_longer_inherited(shelf):
    found = symbol_history(fail("'MyModel' object has no attribute 'generate'"), "4.51.3", "4.52.1", shelf, [])
    assert found.id == "no longer inherited: PreTrainedModel.generate"
    assert "upstream: add GenerationMixin to the bases of MyModel" in found.fixes


THROUGH_CACHE_AND_GENERATION = (
    "Traceback (most recent call last):\n"
    '  File "/env/lib/python3.11/site-packages/transformers/generation/utils.py", line 2000, in _sample\n'
    "    x = 1\n"
    '  File "/env/lib/python3.11/site-packages/transformers/cache_utils.py", line 100, in update\n'
    "    x = 2\n"
)


@pytest.mark.parametrize(
    "message",
    [
        "'ChatGLMModel' object has no attribute 'no_such_member_anywhere'",  # never in transformers
        # a value of the wrong kind, though a class in the traceback's modules has such a member
        "'NoneType' object has no attribute 'get_max_length'",
        "'DynamicCache' object has no attribute 'get_seq_length'",  # present on both sides
        # a transformers class that never had it, though another class in the traceback did
        "'DynamicCache' object has no attribute '_extract_past_from_model_output'",
    ],
)
def test_nothing_to_say_is_none(shelf, message):
    assert symbol_history(fail(message, THROUGH_CACHE_AND_GENERATION), "4.48.3", "4.49.0", shelf) is None


# --- synthetic releases: what real ones cannot show on demand -----------------------------


CACHE_V1 = """
class Cache:
    def old_length(self, layer_idx=0):
        if layer_idx >= len(self.key_cache):
            return 0
        return self.key_cache[layer_idx].shape[-2]

    def build(self, x):
        return x

    def run(self, x, y):
        return x
"""
CACHE_V2 = (
    CACHE_V1.replace("def old_length", "def seq_length")
    .replace("def build(self, x)", "def build(self, x, mask)")
    .replace("def run(self, x, y)", "def run(self, x)")
)


def test_a_rename_is_a_new_member_with_nearly_the_same_body(tmp_path):
    fake_release(tmp_path, "1.0.0", {"cache_utils.py": CACHE_V1})
    fake_release(tmp_path, "1.1.0", {"cache_utils.py": CACHE_V2})
    found = symbol_history(
        fail("'Cache' object has no attribute 'old_length'"), "1.0.0", "1.1.0", SourceShelf(tmp_path)
    )
    assert found.id == "renamed: Cache.old_length -> seq_length"
    assert "upstream: use seq_length instead of old_length" in found.fixes


def test_a_new_member_with_another_body_is_not_a_rename(tmp_path):
    fake_release(tmp_path, "1.0.0", {"cache_utils.py": CACHE_V1})
    old_method = CACHE_V1[CACHE_V1.index("    def old_length") : CACHE_V1.index("    def build")]
    new_method = (
        "    def seq_length(self):\n        total = sum(len(k) for k in self.key_cache)\n        return total // 2\n\n"
    )
    fake_release(tmp_path, "1.1.0", {"cache_utils.py": CACHE_V1.replace(old_method, new_method)})
    found = symbol_history(
        fail("'Cache' object has no attribute 'old_length'"), "1.0.0", "1.1.0", SourceShelf(tmp_path)
    )
    assert found.id == "removed: Cache.old_length"


def test_signature_changes_for_missing_and_surplus_positional_arguments(tmp_path):
    fake_release(tmp_path, "1.0.0", {"cache_utils.py": CACHE_V1})
    fake_release(tmp_path, "1.1.0", {"cache_utils.py": CACHE_V2})
    shelf = SourceShelf(tmp_path)
    missing = symbol_history(
        fail("Cache.build() missing 1 required positional argument: 'mask'"), "1.0.0", "1.1.0", shelf
    )
    assert missing.id == "new parameter: mask of Cache.build"
    assert "upstream: pass `mask` to build" in missing.fixes
    surplus = symbol_history(fail("Cache.run() takes 2 positional arguments but 3 were given"), "1.0.0", "1.1.0", shelf)
    assert surplus.id == "changed signature: run"
    assert "1.1.0: run(self, x) at transformers/cache_utils.py:11" in surplus.evidence


def test_a_name_that_moves_within_a_models_package_is_found_beside_it(tmp_path):
    helper = "def rotate_half(x):\n    return x\n"
    fake_release(
        tmp_path,
        "1.0.0",
        {"models/__init__.py": "", "models/foo/__init__.py": "", "models/foo/modeling_foo.py": helper},
    )
    fake_release(
        tmp_path,
        "1.1.0",
        {
            "models/__init__.py": "",
            "models/foo/__init__.py": "",
            "models/foo/modeling_foo.py": "",
            "models/foo/rope.py": helper,
        },
    )
    message = "cannot import name 'rotate_half' from 'transformers.models.foo.modeling_foo' (/env/x.py)"
    found = symbol_history(fail(message), "1.0.0", "1.1.0", SourceShelf(tmp_path))
    assert found.id == "moved: rotate_half -> transformers.models.foo.rope"


def test_a_keyword_no_signature_explains_is_found_in_the_transformers_caller(tmp_path):
    base = """
    class Base:
        def pad(self, x):
            return self._pad(x, length=2)

        def _pad(self, x, length=None):
            return x
    """
    fake_release(tmp_path, "1.0.0", {"tokenization.py": base})
    fake_release(tmp_path, "1.1.0", {"tokenization.py": base.replace("length=2)", "length=2, side='left')")})
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/env/lib/python3.11/site-packages/transformers/tokenization.py", line 4, in pad\n'
        "    return self._pad(x, length=2, side='left')\n"
    )
    message = "MyTok._pad() got an unexpected keyword argument 'side'"
    found = symbol_history(fail(message, traceback), "1.0.0", "1.1.0", SourceShelf(tmp_path))
    assert found.id == "now passes: side to _pad"
    assert "upstream: accept `side` in MyTok._pad" in found.fixes


def test_unavailable_sources_say_nothing_and_keep_the_reason(tmp_path):
    fake_release(tmp_path, "1.0.0", {"cache_utils.py": CACHE_V1})
    shelf = SourceShelf(tmp_path)
    assert symbol_history(fail("'Cache' object has no attribute 'old_length'"), "1.0.0", "0.0.1", shelf) is None
    assert "transformers==0.0.1" in shelf.unavailable["0.0.1"]


def test_a_release_that_cannot_be_had_is_skipped_and_the_bound_is_not_exact(tmp_path):
    fake_release(tmp_path, "1.0.0", {"cache_utils.py": CACHE_V1})
    fake_release(tmp_path, "1.2.0", {"cache_utils.py": CACHE_V2})
    shelf = SourceShelf(tmp_path)
    shelf.unavailable["1.1.0"] = "offline"  # as if its fetch had failed
    found = symbol_history(fail("'Cache' object has no attribute 'old_length'"), "1.0.0", "1.2.0", shelf, ["1.1.0"])
    assert (found.introduced_in, found.last_good, found.exact) == ("1.2.0", "1.0.0", False)


def test_release_lookups_follow_lazy_tables_star_imports_and_aliases(tmp_path):
    fake_release(
        tmp_path,
        "1.0.0",
        {
            "__init__.py": '_import_structure = {"configuration_utils": ["PretrainedConfig"]}\n',
            "configuration_utils.py": "class PreTrainedConfig:\n    def to_dict(self):\n        return {}\n"
            "PretrainedConfig = PreTrainedConfig\n",
            "models/__init__.py": "from .llama import *\n",
            "models/llama/__init__.py": "from .modeling_llama import *\n",
            "models/llama/modeling_llama.py": "__all__ = ['LlamaModel']\nclass LlamaModel:\n    pass\n",
        },
    )
    release = Release("1.0.0", tmp_path / "sources" / "transformers-1.0.0" / "transformers", tmp_path)
    assert release.exported("transformers", "PretrainedConfig").entry["kind"] == "lazy"
    assert release.exported("transformers.models", "LlamaModel").module == "transformers.models.llama.modeling_llama"
    assert release.exported("transformers.models", "Missing") is None
    assert release.find_member("transformers.configuration_utils", "PretrainedConfig", "to_dict").owner == (
        "PreTrainedConfig"
    )
