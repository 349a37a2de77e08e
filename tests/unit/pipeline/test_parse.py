import pytest

from streams.core.errors import OutputNotJson, OutputSchemaViolation, OutputTruncated
from streams.pipeline.parse import parse_json_object, validate_output

SCHEMA = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}


@pytest.mark.parametrize("text", ['{"a": 1}', '```json\n{"a": 1}\n```', '```\n{"a": 1}```', '  {"a": 1}\n'])
def test_json_object_with_or_without_fences(text: str) -> None:
    assert parse_json_object(text, finish_reason="stop") == {"a": 1}


def test_prose_is_not_json() -> None:
    with pytest.raises(OutputNotJson, match="Sure! Here is"):
        parse_json_object("Sure! Here is the JSON: {", finish_reason="stop")


def test_array_is_not_an_object() -> None:
    with pytest.raises(OutputNotJson, match="not an object"):
        parse_json_object("[1]", finish_reason="stop")


def test_cut_off_answer_is_truncated() -> None:
    with pytest.raises(OutputTruncated, match="token limit"):
        parse_json_object('{"a": 1, "b": "som', finish_reason="length")


def test_validation_keeps_the_answer_as_json() -> None:
    validated = validate_output(SCHEMA, {"a": 5, "extra": True})
    assert validated.value == {"a": 5}
    assert validated.json == '{"a":5,"extra":true}'
    assert validated.warnings == ("$.extra: unexpected field ignored",)


def test_schema_violation_lists_problems() -> None:
    with pytest.raises(OutputSchemaViolation) as info:
        validate_output(SCHEMA, {"a": "five"})
    assert info.value.problems == ["$.a: expected int, got a string 'five'"]
