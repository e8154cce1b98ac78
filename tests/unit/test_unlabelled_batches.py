"""The rules `batchd recover` matches lost parts with batches that carry nothing of ours by
(ops/unlabelled_batches.py): request count, creation time, and the ended batches' custom_ids."""

from __future__ import annotations

from collections.abc import Mapping

from daemon.ops.unlabelled_batches import LostPart, Verdict, match_parts, partial_holders
from daemon.service.batch_info import BatchInfo, RequestCounts
from daemon.service.batch_search import CLOCK_SKEW

CLAIMED = 1_700_000_000.0


def part(job: str, ids: set[str], claimed: float = CLAIMED) -> LostPart:
    return LostPart((job, 0, 0), len(ids), frozenset(ids), claimed)


def batch(batch_id: str, count: int, ended: bool = True, created: float = CLAIMED + 5) -> BatchInfo:
    status = "completed" if ended else "in_progress"
    return BatchInfo(batch_id, status, int(created), request_counts=RequestCounts(0, 0, count))


class Results:
    """The custom_ids each ended batch's results name (None: gone), and which batches were asked about."""

    def __init__(self, by_batch: Mapping[str, set[str] | None]) -> None:
        self.by_batch = by_batch
        self.asked: list[str] = []

    def __call__(self, found: BatchInfo) -> frozenset[str] | None:
        self.asked.append(found.id)
        ids = self.by_batch[found.id]
        return None if ids is None else frozenset(ids)


def verdicts(parts: list[LostPart], batches: list[BatchInfo], ids: Mapping[str, set[str] | None]) -> dict[str, Verdict]:
    return {key[0]: found.verdict for key, found in match_parts(parts, batches, Results(ids)).items()}


def test_an_ended_batch_naming_exactly_the_parts_ids_is_adopted_and_anothers_is_not() -> None:
    a, b = part("a", {"a-0", "a-1"}), part("b", {"b-0", "b-1"})
    found = match_parts([a, b], [batch("B2", 2), batch("B1", 2)], Results({"B1": {"a-0", "a-1"}, "B2": {"b-0", "b-1"}}))
    assert (found[a.key].verdict, found[a.key].batch) == (Verdict.ADOPTED, batch("B1", 2))
    assert (found[b.key].verdict, found[b.key].batch) == (Verdict.ADOPTED, batch("B2", 2))


def test_two_parts_with_the_same_ids_and_count_are_held_never_guessed() -> None:
    same = {"q-0", "q-1"}
    found = verdicts([part("a", same), part("b", same)], [batch("B1", 2), batch("B2", 2)], {"B1": same, "B2": same})
    assert found == {"a": Verdict.HELD, "b": Verdict.HELD}


def test_a_batch_made_before_a_twin_was_claimed_is_only_the_earlier_ones() -> None:
    same = {"q-0", "q-1"}
    later = CLAIMED + CLOCK_SKEW + 100
    found = verdicts([part("a", same), part("b", same, claimed=later)], [batch("B1", 2)], {"B1": same})
    assert found == {"a": Verdict.ADOPTED, "b": Verdict.UNSENT}


def test_a_running_batch_of_the_count_is_awaited_unless_a_twin_shares_it() -> None:
    assert verdicts([part("a", {"a-0"})], [batch("R", 1, ended=False)], {}) == {"a": Verdict.AWAITS}
    different = verdicts([part("a", {"a-0"}), part("b", {"b-0"})], [batch("R", 1, ended=False)], {})
    assert different == {"a": Verdict.AWAITS, "b": Verdict.AWAITS}, "its results will tell them apart"
    twins = verdicts([part("a", {"q-0"}), part("b", {"q-0"})], [batch("R", 1, ended=False)], {})
    assert twins == {"a": Verdict.HELD, "b": Verdict.HELD}, "even its results could not tell them apart"


def test_results_naming_some_of_the_ids_or_gone_hold_the_part() -> None:
    assert verdicts([part("a", {"a-0", "a-1"})], [batch("B", 2)], {"B": {"a-0", "x"}}) == {"a": Verdict.HELD}
    assert verdicts([part("a", {"a-0", "a-1"})], [batch("B", 2)], {"B": None}) == {"a": Verdict.HELD}


def test_another_count_an_older_batch_or_foreign_ids_leave_the_part_unsent() -> None:
    older = batch("Old", 2, created=CLAIMED - CLOCK_SKEW - 1)
    batches = [batch("Three", 3), older, batch("Foreign", 2)]
    ids = {"Three": {"a-0", "a-1", "x"}, "Old": {"a-0", "a-1"}, "Foreign": {"x-0", "x-1"}}
    ids_of = Results(ids)
    found = match_parts([part("a", {"a-0", "a-1"})], batches, ids_of)
    assert found[("a", 0, 0)].verdict is Verdict.UNSENT
    assert ids_of.asked == ["Foreign"], "only a candidate's results are read"


def test_a_part_with_its_ended_batch_is_adopted_beside_a_running_one() -> None:
    found = verdicts([part("a", {"a-0"})], [batch("E", 1), batch("R", 1, ended=False)], {"E": {"a-0"}})
    assert found == {"a": Verdict.ADOPTED}


def test_smaller_batches_that_may_hold_some_of_an_unsplit_inputs_requests() -> None:
    whole = part("a", {"a-0", "a-1", "a-2"})
    batches = [
        batch("Running", 2, ended=False),
        batch("Mine", 1),
        batch("Foreign", 1),
        batch("Gone", 2),
        batch("Same", 3, ended=False),  # as many: matched as the whole input's, not here
        batch("Before", 1, ended=False, created=CLAIMED - CLOCK_SKEW - 1),
    ]
    ids = {"Mine": {"a-2"}, "Foreign": {"x-0"}, "Gone": None}
    assert partial_holders(whole, batches, Results(ids)) == ["Running", "Mine", "Gone"]
