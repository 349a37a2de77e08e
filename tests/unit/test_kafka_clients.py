"""Every Kafka client the source tree creates takes its connection from a ``ClientConfig``
(streams/core/kafka_client.py), so that no client connects without the KEEL_KAFKA_* security settings:
aiokafka constructors spread ``<config>.kwargs()`` and set no connection keyword of their own, faust apps
get ``broker_credentials``, confluent-kafka clients take ``<config>.confluent()``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AIOKAFKA = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "create_conn"}
CONFLUENT = {"AdminClient", "Producer", "Consumer", "DeserializingConsumer", "SerializingProducer"}
CONNECTION_KEYWORDS = {
    "bootstrap_servers",
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_oauth_token_provider",
}


def _callee(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _calls_method(node: ast.AST, method: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method


def bypasses(source: str, filename: str = "<source>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name, where = _callee(node), f"{filename}:{getattr(node, 'lineno', '?')}"
        if name in AIOKAFKA:
            spread = [k.value for k in node.keywords if k.arg is None]
            explicit = {k.arg for k in node.keywords} & CONNECTION_KEYWORDS
            # create_conn (the start-up check) takes the kwargs less bootstrap_servers, by name
            ok = any(_calls_method(v, "kwargs") or (name == "create_conn" and isinstance(v, ast.Name)) for v in spread)
            if not ok or explicit:
                found.append(f"{where}: {name} without **<ClientConfig>.kwargs() (or with {sorted(explicit)})")
        elif name == "App" and isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "faust":
            if "broker_credentials" not in {k.arg for k in node.keywords}:
                found.append(f"{where}: faust.App without broker_credentials")
        elif name in CONFLUENT and not (node.args and _confluent_config(node.args[0])):
            found.append(f"{where}: {name} not given <ClientConfig>.confluent()")
    return found


def _confluent_config(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "confluent":
        return True
    return isinstance(node, ast.Dict) and any(
        key is None and _calls_method(value, "confluent") for key, value in zip(node.keys, node.values, strict=True)
    )


def test_the_check_finds_a_client_that_bypasses_the_config() -> None:
    assert bypasses("AIOKafkaConsumer(bootstrap_servers='b:1')")
    assert bypasses("AIOKafkaProducer(**kafka.kwargs(), bootstrap_servers='b:1')")
    assert bypasses("faust.App('x', broker='kafka://b:1')")
    assert bypasses("AdminClient({'bootstrap.servers': 'b:1'})")
    assert not bypasses("AIOKafkaAdminClient(**kafka.kwargs(), request_timeout_ms=1)")
    assert not bypasses("faust.App('x', broker=b, broker_credentials=c)")
    assert not bypasses("AdminClient({**kafka.confluent(), 'client.id': 'x'})")


def test_every_kafka_client_in_the_source_tree_takes_a_client_config() -> None:
    sources = [*sorted((REPO / "streams").rglob("*.py")), *sorted((REPO / "connectors").rglob("*.py"))]
    found = [hit for path in sources for hit in bypasses(path.read_text(), str(path.relative_to(REPO)))]
    assert not found, "\n".join(found)
    constructed = sum(
        _callee(n) in AIOKAFKA for p in sources for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Call)
    )
    assert constructed >= 8  # the check saw the clients it guards
