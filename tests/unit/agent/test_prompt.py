from collections.abc import Callable

import pytest

from streams.agent.prompt import PromptTemplates, compile_template, render_prompt
from streams.core.domain import RequestEvent
from streams.core.errors import PromptRenderError


def _templates(user: str, system: str = "You triage tickets.") -> PromptTemplates:
    return PromptTemplates(compile_template(system), compile_template(user))


def test_renders_event_fields_and_payload_paths(make_event: Callable[..., RequestEvent]) -> None:
    templates = _templates("{{tenant}}: {{ payload.customer.name }} <{{payload.attachments}}> {{ payload.subject }}")
    prompt = render_prompt(templates, make_event())
    assert prompt.messages[0].role == "system" and prompt.messages[0].content == "You triage tickets."
    assert prompt.messages[1].content == "acme-retail: Zoë Example <[]> Charged twice"


def test_optional_placeholders_render_empty(make_event: Callable[..., RequestEvent]) -> None:
    prompt = render_prompt(_templates("[{{ payload.nothing? }}][{{ payload.customer.phone? }}]"), make_event())
    assert prompt.messages[1].content == "[][]"


def test_missing_required_field_names_the_path(make_event: Callable[..., RequestEvent]) -> None:
    with pytest.raises(PromptRenderError, match=r"needs payload\.customer\.phone"):
        render_prompt(_templates("{{ payload.customer.phone }}"), make_event())


def test_hash_follows_the_rendered_text_and_version_the_templates(make_event: Callable[..., RequestEvent]) -> None:
    templates = _templates("{{ payload.subject }}")
    a = render_prompt(templates, make_event())
    b = render_prompt(templates, make_event(event_id="other"))
    c = render_prompt(templates, make_event(payload={"subject": "different"}))
    assert a.hash == b.hash != c.hash
    assert templates.version == _templates("{{ payload.subject }}").version != _templates("{{ payload.body }}").version
