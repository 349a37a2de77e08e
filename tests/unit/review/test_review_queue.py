import time

from review_samples import decision_with, plain_item

from streams.core.review_item import Decision
from streams.review.queue import ReviewQueue


def decision(item_id: str, *, decision_id: str = "d1", action: str = "approve") -> Decision:
    return decision_with(decision_id=decision_id, item_id=item_id, action=action)


def ids(page) -> list[str]:
    return [item.item_id for item in page.items]


def test_pending_is_oldest_first_whatever_the_arrival_order() -> None:
    queue = ReviewQueue()
    for item_id, created in (("c", 30), ("a", 10), ("b", 20), ("a2", 10)):
        assert queue.add(plain_item(item_id, created_at_ms=created))
    page = queue.pending(now_ms=100)
    assert ids(page) == ["a", "a2", "b", "c"] and page.total == 4


def test_a_re_emitted_item_keeps_its_first_place() -> None:
    queue = ReviewQueue()
    queue.add(plain_item("a", created_at_ms=10))
    assert not queue.add(plain_item("a", created_at_ms=99))
    assert queue.pending(now_ms=100).total == 1 and queue.get("a").item.created_at_ms == 10  # type: ignore[union-attr]


def test_filter_by_agent_and_age_with_pages() -> None:
    queue = ReviewQueue()
    for n in range(10):
        queue.add(plain_item(f"s{n}", agent="support_triage", created_at_ms=n * 1000))
        queue.add(plain_item(f"i{n}", agent="invoice_extraction", created_at_ms=n * 1000 + 500))
    only_invoices = queue.pending(agents=["invoice_extraction"], now_ms=10_000, limit=3, offset=2)
    assert ids(only_invoices) == ["i2", "i3", "i4"] and only_invoices.total == 10
    both = queue.pending(agents=None, min_age_s=5, now_ms=10_000, limit=4, offset=1)
    assert ids(both) == ["i0", "s1", "i1", "s2"]  # created at or before 5,000 ms: s0..s5, i0..i4
    assert both.total == 11
    assert queue.pending(agents=["nobody"], now_ms=10_000).total == 0
    assert ids(queue.pending(agents=["support_triage"], now_ms=10_000, offset=9)) == ["s9"]
    assert ids(queue.pending(agents=["support_triage"], now_ms=10_000, offset=50)) == []


def test_the_first_decision_wins_and_leaves_the_queue() -> None:
    queue = ReviewQueue()
    queue.add(plain_item("a", created_at_ms=1))
    queue.add(plain_item("b", created_at_ms=2))
    assert queue.record(decision("a"), offset=7) == "applied"
    assert queue.record(decision("a", decision_id="d2", action="reject"), offset=8) == "refused"
    assert queue.record(decision("a"), offset=9) == "duplicate"  # a physical copy of the first
    state = queue.get("a")
    assert state is not None and state.decision is not None and state.decision.decision_id == "d1"
    assert queue.first_offset("a") == 7
    assert ids(queue.pending(now_ms=10)) == ["b"] and queue.depths() == {"support_triage": 1}


def test_a_decision_read_before_its_item_keeps_the_item_out_of_the_queue() -> None:
    queue = ReviewQueue()
    assert queue.record(decision("late"), offset=0) == "applied"
    queue.add(plain_item("late"))
    assert queue.pending(now_ms=10).total == 0
    assert queue.get("late").decision is not None  # type: ignore[union-attr]
    assert queue.get("nothing") is None


def test_ten_thousand_items_page_fast() -> None:
    queue = ReviewQueue()
    agents = ["support_triage", "invoice_extraction", "third"]
    for n in range(12_000):  # arrival order is not creation order
        queue.add(plain_item(f"it-{n}", agent=agents[n % 3], created_at_ms=(n * 7919) % 12_000))
    for n in range(0, 12_000, 3):
        queue.record(decision(f"it-{n}", decision_id=f"d{n}"), offset=n)
    started = time.perf_counter()
    for page_number in range(1_000):  # a sort of the 8,000 pending items per request would take seconds
        page = queue.pending(agents=None, min_age_s=1, offset=page_number % 10 * 50, limit=50, now_ms=11_000)
        one_agent = queue.pending(agents=["invoice_extraction"], offset=3_000, limit=50, now_ms=20_000)
    elapsed_s = time.perf_counter() - started
    assert page.total == sum(1 for n in range(12_000) if n % 3 and (n * 7919) % 12_000 <= 10_000)
    created = [item.created_at_ms for item in page.items]
    assert created == sorted(created) and len(created) == 50
    assert len(one_agent.items) == 50 and one_agent.total == 4_000
    assert elapsed_s < 0.6, f"2,000 pages over 8,000 pending items took {elapsed_s:.2f} s"
