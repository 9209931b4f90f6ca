"""Tokenizer folders and chat templates from local files: where each comes from, and their errors."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("jinja2")

from tritonlite.frontends.openai.errors import OpenAIError  # noqa: E402
from tritonlite.frontends.openai.text_tokenizer import TokenizerCatalog, load_folder  # noqa: E402
from tritonlite.models.model import ModelVersion  # noqa: E402
from tritonlite.protocol import model_config_pb2 as mc  # noqa: E402

EXAMPLE_TOKENIZER = Path(__file__).resolve().parents[3] / "examples" / "llm_repository" / "tiny_llm" / "tokenizer"
MESSAGES = [{"role": "user", "content": "the sea"}]


def folder_with(tmp_path: Path, config: dict | None = None, template: str | None = None) -> Path:
    folder = tmp_path / "tok"
    folder.mkdir()
    shutil.copy(EXAMPLE_TOKENIZER / "tokenizer.json", folder / "tokenizer.json")
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    if template is not None:
        (folder / "chat_template.jinja").write_text(template)
    return folder


def test_counts_without_special_tokens():
    tokenizer = load_folder(EXAMPLE_TOKENIZER)
    assert tokenizer.count("The keeper, the sea.") == 6
    assert tokenizer.count("unknownword") == 1  # [UNK]
    assert tokenizer.chat_template is None  # the example's template is named by the model, not the folder


def test_template_from_tokenizer_config_with_special_tokens(tmp_path):
    template = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{% endfor %}"
    folder = folder_with(tmp_path, {"bos_token": {"content": "<s>"}, "chat_template": template})
    assert load_folder(folder).chat_prompt("m", MESSAGES) == "<s>[user] the sea"


def test_named_templates_and_the_jinja_file(tmp_path):
    named = [
        {"name": "tool_use", "template": "tools"},
        {"name": "default", "template": "default {{ messages|length }}"},
    ]
    folder = folder_with(tmp_path, {"chat_template": named})
    assert load_folder(folder).chat_prompt("m", MESSAGES) == "default 1"
    other = tmp_path / "other"
    other.mkdir()
    folder2 = folder_with(other, None, "file {{ add_generation_prompt }}")
    assert load_folder(folder2).chat_prompt("m", MESSAGES) == "file True"


def test_template_errors_are_bad_requests(tmp_path):
    folder = folder_with(tmp_path, {"chat_template": "{{ raise_exception('only user messages') }}"})
    with pytest.raises(OpenAIError) as refused:
        load_folder(folder).chat_prompt("m", MESSAGES)
    assert refused.value.status == 400 and "only user messages" in refused.value.message
    with pytest.raises(OpenAIError) as missing:
        load_folder(tmp_path)  # no tokenizer.json
    assert missing.value.status == 500 and "holds no tokenizer.json" in missing.value.message


def test_no_template_refuses_chat():
    with pytest.raises(OpenAIError) as refused:
        load_folder(EXAMPLE_TOKENIZER).chat_prompt("m", MESSAGES)
    assert refused.value.status == 400 and "has no chat template" in refused.value.message


def version(path: Path, parameters: dict[str, str]) -> ModelVersion:
    config = mc.ModelConfig(name="m", backend="python")
    for key, value in parameters.items():
        config.parameters[key].string_value = value
    return ModelVersion("m", 1, config, path)


def test_catalog_reads_model_parameters_then_the_server_default(tmp_path):
    model_folder = tmp_path / "m"
    shutil.copytree(EXAMPLE_TOKENIZER, model_folder / "tok")
    (model_folder / "chat.jinja").write_text("model template")
    default = folder_with(tmp_path, {"chat_template": "server template"})
    catalog = TokenizerCatalog(default)

    async def main():
        named = await catalog.get(version(model_folder, {"tokenizer": "tok", "chat_template": "chat.jinja"}))
        unnamed = await catalog.get(version(model_folder, {}))
        broken = version(model_folder, {"tokenizer": "missing"})
        errors = []
        for _ in range(2):  # the failure is kept: the same answer each time
            try:
                await catalog.get(broken)
            except OpenAIError as exc:
                errors.append(exc.message)
        return named, unnamed, errors

    named, unnamed, errors = asyncio.run(main())
    assert named.chat_prompt("m", MESSAGES) == "model template"
    assert unnamed.chat_prompt("m", MESSAGES) == "server template"
    assert len(errors) == 2 and errors[0] == errors[1] and "missing" in errors[0]
    assert TokenizerCatalog(None)._load(version(model_folder, {})).count("x") is None
