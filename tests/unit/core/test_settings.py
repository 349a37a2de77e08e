import pytest
from pydantic import ValidationError

from connectors.models.anthropic import AnthropicClient
from connectors.models.openai_compat import OpenAICompatClient
from streams.apps.wiring import model_client
from streams.core.settings import Settings


def test_environment_lays_over_builtin_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_PROVIDERS__LOCAL__BASE_URL", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("KEEL_PROVIDERS__OPENAI__BASE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("KEEL_PROVIDERS__OPENAI__API_KEY", "sk-secret")
    endpoints = Settings().provider_endpoints()
    assert endpoints["local"].base_url == "http://127.0.0.1:9999/v1"
    assert endpoints["local"].response_format == "json_object"  # kept from the built-in llama-cpp-python server
    assert endpoints["openai"].response_format == "json_schema"
    assert endpoints["openai"].api_key is not None and endpoints["openai"].api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(Settings())
    assert endpoints["sim"].base_url == "http://127.0.0.1:8090/v1"


def test_namespace_prefixes_topics_and_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_NAMESPACE", "staging")
    settings = Settings()
    assert settings.topic("keel.audit") == "staging.keel.audit"
    assert settings.app_id == "keel-staging"
    assert Settings(namespace="").topic("keel.audit") == "keel.audit"


def test_an_endpoint_s_protocol_picks_its_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_PROVIDERS__ANTHROPIC__BASE_URL", "https://api.anthropic.com/v1")
    monkeypatch.setenv("KEEL_PROVIDERS__ANTHROPIC__PROTOCOL", "anthropic")
    monkeypatch.setenv("KEEL_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-secret")
    endpoints = Settings().provider_endpoints()
    clients = {name: model_client(name, endpoints[name]) for name in ("anthropic", "sim_anthropic", "sim", "local")}
    assert [type(clients[name]) for name in clients] == [
        AnthropicClient,
        AnthropicClient,
        OpenAICompatClient,
        OpenAICompatClient,
    ]
    assert "sk-ant-secret" not in repr(clients["anthropic"])
    monkeypatch.setenv("KEEL_PROVIDERS__ANTHROPIC__PROTOCOL", "bedrock")
    with pytest.raises(ValidationError, match="protocol"):
        Settings()
