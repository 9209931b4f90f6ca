"""Per-model tokenizers and chat templates, from local files only.

A model's config.pbtxt names them in its ``parameters``, relative to the model's folder::

    parameters { key: "tokenizer" value { string_value: "tokenizer" } }            # a folder
    parameters { key: "chat_template" value { string_value: "chat_template.jinja" } }  # a file

A tokenizer folder holds a Hugging Face ``tokenizer.json`` (read with the ``tokenizers`` library)
and optionally ``tokenizer_config.json`` (its ``chat_template``, ``bos_token``, ``eos_token``) or a
``chat_template.jinja``. A model that names no tokenizer uses the server's ``--tokenizer`` folder,
if any. Chat templates are Jinja, rendered in a sandbox as Hugging Face renders them.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tritonlite.frontends.openai.errors import OpenAIError, bad_request, server_error
from tritonlite.models.model import ModelVersion

TOKENIZER_KEY = "tokenizer"
LARGE_TEXT = 64 * 1024  # characters: longer texts are tokenized or rendered on a worker thread, off the event loop
CHAT_TEMPLATE_KEY = "chat_template"
LLM_EXTRA = 'install the llm extra: pip install "tritonlite[llm]"'


@dataclass
class TextTokenizer:
    """What the routes need of a model's tokenizer: token counts and the chat prompt."""

    tokenizer: Any = None  # tokenizers.Tokenizer, or None: no token counts
    chat_template: Any = None  # a jinja2 Template, or None: no chat
    special_tokens: dict[str, str] = field(default_factory=dict)  # bos_token, eos_token, ... for templates

    def count(self, text: str) -> int | None:
        """How many tokens ``text`` is, without special tokens; None without a tokenizer."""
        if self.tokenizer is None:
            return None
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    async def count_async(self, text: str) -> int | None:
        if self.tokenizer is None or len(text) < LARGE_TEXT:
            return self.count(text)
        return await asyncio.to_thread(self.count, text)

    async def count_all(self, texts: list[str]) -> int | None:
        """The tokens of all ``texts`` together; None without a tokenizer."""
        total = 0
        for text in texts:
            count = await self.count_async(text)
            if count is None:
                return None
            total += count
        return total

    async def chat_prompt_async(self, model_name: str, messages: list[dict[str, Any]]) -> str:
        if sum(len(str(m.get("content", ""))) for m in messages) < LARGE_TEXT:
            return self.chat_prompt(model_name, messages)
        return await asyncio.to_thread(self.chat_prompt, model_name, messages)

    def chat_prompt(self, model_name: str, messages: list[dict[str, Any]]) -> str:
        if self.chat_template is None:
            raise bad_request(
                f"model '{model_name}' has no chat template: name one in its config.pbtxt parameters "
                f"('{CHAT_TEMPLATE_KEY}', or a '{TOKENIZER_KEY}' folder whose tokenizer_config.json holds one), "
                "or start the server with --tokenizer=FOLDER; /v1/completions takes plain prompts",
                param="messages",
            )
        import jinja2  # noqa: PLC0415 - the llm extra; only chat needs it

        try:
            return self.chat_template.render(messages=messages, add_generation_prompt=True, **self.special_tokens)
        except jinja2.TemplateError as exc:  # raise_exception() in the template, or a bad template
            raise bad_request(f"the chat template of model '{model_name}' refused the messages: {exc}") from None


def _template(text: str) -> Any:
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415 - the llm extra
    except ImportError:
        raise server_error(f"chat templates need jinja2: {LLM_EXTRA}") from None

    def raise_exception(message: str) -> None:
        from jinja2 import TemplateError  # noqa: PLC0415

        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    return environment.from_string(text)


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def load_folder(folder: Path, template_file: Path | None = None) -> TextTokenizer:
    """The tokenizer of ``folder`` (None: no tokenizer) and the chat template, from ``template_file`` if given."""
    result = TextTokenizer()
    template_text = None
    if folder is not None:
        if not (folder / "tokenizer.json").is_file():
            raise server_error(f"tokenizer folder '{folder}' holds no tokenizer.json")
        try:
            from tokenizers import Tokenizer  # noqa: PLC0415 - the llm extra
        except ImportError:
            raise server_error(f"tokenizers need the 'tokenizers' package: {LLM_EXTRA}") from None
        try:
            result.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # the library's own error types, for a file it cannot read
            raise server_error(f"cannot read '{folder / 'tokenizer.json'}': {exc}") from None
        config_path = folder / "tokenizer_config.json"
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise server_error(f"cannot read '{config_path}': {exc}") from None
            for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
                token = _token_text(config.get(key))
                if token is not None:
                    result.special_tokens[key] = token
            template_text = config.get("chat_template")
            if isinstance(template_text, list):  # named templates: the default one
                named = {t.get("name"): t.get("template") for t in template_text if isinstance(t, dict)}
                template_text = named.get("default")
        if template_text is None and (folder / "chat_template.jinja").is_file():
            template_text = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if template_file is not None:
        try:
            template_text = template_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise server_error(f"cannot read chat template '{template_file}': {exc}") from None
    if isinstance(template_text, str):
        try:
            result.chat_template = _template(template_text)
        except OpenAIError:
            raise
        except Exception as exc:  # jinja2.TemplateSyntaxError
            raise server_error(f"chat template of '{folder or template_file}' does not compile: {exc}") from None
    return result


def _parameter(model: ModelVersion, key: str) -> str:
    if model.config is None or key not in model.config.parameters:
        return ""
    return model.config.parameters[key].string_value.strip()


class TokenizerCatalog:
    """Each model version's tokenizer, loaded on first use (off the event loop) and kept while it is loaded."""

    def __init__(self, default_folder: Path | None = None) -> None:
        self.default_folder = default_folder
        self._loaded: weakref.WeakKeyDictionary[ModelVersion, TextTokenizer | OpenAIError] = weakref.WeakKeyDictionary()

    async def get(self, model: ModelVersion) -> TextTokenizer:
        loaded = self._loaded.get(model)
        if loaded is None:
            try:
                loaded = await asyncio.to_thread(self._load, model)
            except OpenAIError as exc:  # kept: a broken folder fails each request alike, without rereading
                loaded = exc
            self._loaded[model] = loaded
        if isinstance(loaded, OpenAIError):
            raise loaded
        return loaded

    def _load(self, model: ModelVersion) -> TextTokenizer:
        folder_text = _parameter(model, TOKENIZER_KEY)
        template_text = _parameter(model, CHAT_TEMPLATE_KEY)
        folder = (model.model_path / folder_text) if folder_text else self.default_folder
        template = (model.model_path / template_text) if template_text else None
        return load_folder(folder, template)
