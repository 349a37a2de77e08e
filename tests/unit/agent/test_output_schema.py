import datetime as dt
from decimal import Decimal

from streams.agent.definition import Agent
from streams.agent.output_schema import conform, to_json_schema

INVOICE = {
    "document_type": "invoice",
    "vendor": "Contoso Hosting GmbH",
    "invoice_number": "INV-2026-0042",
    "currency": "EUR",
    "total": 1234.5,
    "issue_date": "2026-10-01",
    "due_date": None,
    "line_items": [{"description": "VM hours", "quantity": 720, "unit_price": "1.7146", "amount": 1234.5}],
}


def test_json_schema_of_the_invoice_output(agents: dict[str, Agent]) -> None:
    schema = to_json_schema(agents["invoice_extraction"].output_schema.raw)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == set(INVOICE)
    assert schema["properties"]["document_type"]["enum"] == ["invoice", "credit_note", "not_an_invoice"]
    assert schema["properties"]["due_date"] == {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]}
    assert schema["properties"]["line_items"]["items"]["properties"]["quantity"] == {"type": "number"}


def test_a_valid_answer_becomes_avro_values(agents: dict[str, Agent]) -> None:
    value, errors, warnings = conform(agents["invoice_extraction"].output_schema.raw, INVOICE)
    assert errors == [] and warnings == []
    assert value["total"] == Decimal("1234.5000")
    assert value["issue_date"] == dt.date(2026, 10, 1)
    assert value["line_items"][0]["quantity"] == 720.0
    assert value["line_items"][0]["unit_price"] == Decimal("1.7146")


def test_every_problem_is_reported_with_its_path(agents: dict[str, Agent]) -> None:
    bad = dict(INVOICE, document_type="receipt", total="lots", issue_date="01/10/2026")
    del bad["vendor"]
    bad["line_items"] = [{"description": 3, "quantity": 1, "amount": 2}]
    _, errors, _ = conform(agents["invoice_extraction"].output_schema.raw, bad)
    assert errors == [
        "$.document_type: 'receipt' is not one of invoice, credit_note, not_an_invoice",
        "$.vendor: required field is missing",
        "$.total: expected a decimal number, got 'lots'",
        "$.issue_date: expected an ISO date (YYYY-MM-DD), got '01/10/2026'",
        "$.line_items[0].description: expected string, got int 3",
    ]


def test_lenient_where_meaning_is_unambiguous(agents: dict[str, Agent]) -> None:
    answer = {"category": " Billing", "priority": "high", "summary": "s", "suggested_reply": "r", "mood": "x"}
    value, errors, warnings = conform(agents["support_triage"].output_schema.raw, answer)
    assert errors == []
    assert value["category"] == "billing" and value["confidence"] is None
    assert "$.mood: unexpected field ignored" in warnings
    assert "$.category: ' Billing' normalised to 'billing'" in warnings


def test_decimal_precision_and_booleans() -> None:
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}
    assert conform(decimal, 12.345)[0] == Decimal("12.34") or conform(decimal, 12.345)[0] == Decimal("12.35")
    assert conform(decimal, 123.45)[1] == ["$: 123.45 does not fit decimal(4,2)"]
    assert conform(decimal, True)[1] == ["$: expected a decimal number, got True"]
    assert conform("long", True)[1] == ["$: expected long, got a boolean True"]
    assert conform("int", 2**40)[1] == [f"$: {2**40} is out of range for int"]
