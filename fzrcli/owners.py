"""Adding owners in the CRM, one outcome per (request, customer, new owner) item.

Whether XBB's distribution appends an owner or replaces the owners is unconfirmed, so
every write is followed by reading the owners back: an item is ``assigned`` only if the
new owner is there and nobody who owned the customer before has vanished. If someone
vanished, all CRM writes stop until a human has looked (``fzr sync --resume-writes``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from fzrcli.errors import Failure, ServiceError, WritesHalted
from fzrcli.forms import name_key
from fzrcli.store import (
    ALREADY_OWNER,
    AMBIGUOUS,
    ASSIGNED,
    FAILED,
    NOT_FOUND,
    PENDING,
    UNVERIFIED,
    WRITING,
    Item,
    Store,
)
from fzrcli.timeutil import utc_iso
from fzrcli.xbb import Customer, Xbb

log = logging.getLogger(__name__)

GROUP_SIZE = 100  # customers per distribution call; XBB's cap is unknown
MAX_ATTEMPTS = 5
HALT_KEY = "writes_halted"
APPENDS_KEY = "distribution_appends"  # seen adding an owner while keeping the others


@dataclass
class PlannedWrite:
    item: Item
    customer: Customer


@dataclass
class OwnerResult:
    planned: list[PlannedWrite] = field(default_factory=list)
    decided: Counter = field(default_factory=Counter)  # dry run: outcomes not recorded
    error: ServiceError | None = None


class OwnerWork:
    def __init__(self, store: Store, xbb: Xbb, *, dry_run: bool = False):
        self.store = store
        self.xbb = xbb
        self.dry_run = dry_run
        self.result = OwnerResult()

    def run(
        self,
        items: list[Item],
        claims: dict[str, set[str]] | None,
        resolved: dict[str, list[Customer]] | None = None,
    ) -> OwnerResult:
        """Resolve, check and write every item; ``claims`` None skips the ownership
        check (manual assignment by an admin), ``resolved`` skips the name lookup."""
        if not items:
            return self.result
        try:
            items = self._drop_inactive_owners(items)
            customers = (
                resolved
                if resolved is not None
                else self.xbb.find_customers(sorted({i.customer for i in items}))
            )
            planned = [p for i in items if (p := self._decide(i, customers, claims))]
            planned, repeats = _split_repeats(planned)
            self._write_all(planned)
            self._settle_repeats(repeats)
        except ServiceError as error:
            if error.kind is Failure.FATAL:
                raise
            log.warning("CRM work stopped for this pass: %s", error)
            self.result.error = error
        return self.result

    # -- checks before writing ------------------------------------------------------

    def _drop_inactive_owners(self, items: list[Item]) -> list[Item]:
        """A new owner who left or is not set up in the CRM fails the whole request:
        nothing of it is assigned partially."""
        active = self.xbb.active_users(sorted({i.new_owner_id for i in items}))
        bad_requests: dict[str, str] = {}
        for item in items:
            if item.new_owner_id not in active:
                bad_requests.setdefault(item.instance_id, item.new_owner_id)
        for item in items:
            if item.instance_id in bad_requests and item.status == PENDING:
                who = bad_requests[item.instance_id]
                reason = (
                    f"new owner {who} is not an active CRM user "
                    "(resigned or not set up)"
                )
                self._finish(item, FAILED, reason)
        return [
            i for i in items if i.instance_id not in bad_requests or i.status == WRITING
        ]

    def _decide(
        self,
        item: Item,
        customers: dict[str, list[Customer]],
        claims: dict[str, set[str]] | None,
    ) -> PlannedWrite | None:
        matches = customers.get(name_key(item.customer), [])
        if item.status == WRITING:
            return None if self.dry_run else self._recover(item, matches)
        if not matches:
            return self._not_found(item)
        if len(matches) > 1:
            return self._ambiguous(item, matches)
        customer = matches[0]
        if item.new_owner_id in customer.owners:
            self._finish(item, ALREADY_OWNER, "already an owner", customer)
            return None
        if claims is not None and not claims.get(item.instance_id, set()) & set(
            customer.owners
        ):
            self._finish(item, UNVERIFIED, _unverified_reason(customer), customer)
            return None
        return PlannedWrite(item, customer)

    def _recover(self, item: Item, matches: list[Customer]) -> PlannedWrite | None:
        """An item left ``writing`` by a killed pass: the CRM decides what happened."""
        customer = next((c for c in matches if c.data_id == item.data_id), None)
        if customer is None:
            customer = self.xbb.customer_detail(item.data_id)
        if item.new_owner_id in customer.owners:
            halts = self._judge_write(item, customer, None)
            if halts:
                halt_writes(self.store, halts[0])
                raise WritesHalted(f"CRM writes halted: {halts[0]}")
            return None
        return PlannedWrite(item, customer)

    def _not_found(self, item: Item) -> None:
        suggestions = self.xbb.suggest(item.customer)
        self._finish(
            item,
            NOT_FOUND,
            "no CRM customer has this name",
            suggestion=json.dumps(suggestions, ensure_ascii=False),
        )

    def _ambiguous(self, item: Item, matches: list[Customer]) -> None:
        candidates = [{"dataId": c.data_id, "name": c.name} for c in matches]
        ids = ", ".join(str(c.data_id) for c in matches)
        self._finish(
            item,
            AMBIGUOUS,
            f"{len(matches)} CRM customers have this name (dataId {ids})",
            suggestion=json.dumps(candidates, ensure_ascii=False),
        )

    def _finish(
        self,
        item: Item,
        status: str,
        reason: str,
        customer: Customer | None = None,
        suggestion: str | None = None,
    ):
        if self.dry_run:
            # A dry run shows what a pass would decide and records none of it.
            self.result.decided[status] += 1
            return
        with self.store.transaction():
            self.store.finish_item(
                item,
                status,
                reason,
                suggestion=suggestion,
                data_id=customer.data_id if customer else None,
                owners_after=list(customer.owners) if customer else None,
            )
        log.info("%s: %s → %s (%s)", item.instance_id, item.customer, status, reason)

    # -- writing --------------------------------------------------------------------

    def _write_all(self, planned: list[PlannedWrite]) -> None:
        if self.dry_run:
            self.result.planned = planned
            return
        groups: dict[tuple[str, int], list[PlannedWrite]] = defaultdict(list)
        for write in planned:
            key = (write.item.new_owner_id, write.customer.sub_business_type)
            groups[key].append(write)
        for (owner, sub_type), writes in groups.items():
            while writes:
                size = GROUP_SIZE if self.store.get_state(APPENDS_KEY) else 1
                self._write_group(owner, sub_type, writes[:size])
                writes = writes[size:]

    def _settle_repeats(self, repeats: list[PlannedWrite]) -> None:
        """Items asking for an owner another item of this pass has just written: read
        back, never written twice. A repeat whose write did not land stays pending."""
        if self.dry_run or not repeats:
            return
        fresh = self.xbb.customers_by_id([r.customer for r in repeats])
        for repeat in repeats:
            after = fresh.get(repeat.customer.data_id)
            if after and repeat.item.new_owner_id in after.owners:
                self._finish(repeat.item, ALREADY_OWNER, "already an owner", after)

    def _write_group(self, owner: str, sub_type: int, writes: list[PlannedWrite]):
        """Write one group and judge every customer in it. Until this tenant has been
        seen to append owners, groups hold one customer, so if distribution replaces
        owners the safety stop fires after a single customer, not fifty."""
        ensure_writes_allowed(self.store)
        with self.store.transaction():
            for write in writes:
                self.store.start_write(
                    write.item, write.customer.data_id, list(write.customer.owners)
                )
        error = None
        try:
            self.xbb.distribute([w.customer.data_id for w in writes], owner, sub_type)
        except ServiceError as exc:
            if exc.kind is Failure.FATAL:
                raise
            error = exc
            log.warning(
                "distribution to %s for %d customer(s) failed: %s",
                owner,
                len(writes),
                exc,
            )
        fresh = self.xbb.customers_by_id([w.customer for w in writes])
        retry_alone, halts = [], []
        for write in writes:
            after = fresh.get(write.customer.data_id)
            item = _written(write.item, write.customer)
            if (
                error
                and error.kind is Failure.PERMANENT
                and len(writes) > 1
                and (after is None or owner not in after.owners)
            ):
                retry_alone.append(PlannedWrite(item, after or write.customer))
                continue
            halts.extend(self._judge_write(item, after, error))
        if halts:
            halt_writes(self.store, halts[0])
            raise WritesHalted(
                f"CRM writes halted: {halts[0]}. Restore the owners, "
                "then run fzr sync --resume-writes"
            )
        for write in retry_alone:
            self._write_group(owner, sub_type, [write])

    def _judge_write(
        self, item: Item, after: Customer | None, error: ServiceError | None
    ) -> list[str]:
        """Record the outcome of a write from the owners read back; returns the
        reason to halt all writes when earlier owners vanished."""
        before = set(item.owners_before or [])
        if after is None:
            self._finish(item, FAILED, "customer vanished from the CRM after the write")
            return []
        vanished = sorted(before - set(after.owners))
        if vanished:
            reason = (
                f"owners were replaced, not added: {', '.join(vanished)} no longer "
                f"own{'s' if len(vanished) == 1 else ''} this customer"
            )
            self._finish(item, FAILED, reason, after)
            return [f"{reason} ({item.customer}, dataId {after.data_id})"]
        if item.new_owner_id in after.owners:
            self._finish(item, ASSIGNED, f"added {item.new_owner_id}", after)
            if before and not self.store.get_state(APPENDS_KEY):
                with self.store.transaction():
                    self.store.set_state(APPENDS_KEY, utc_iso())
        elif error is None:
            self._finish(
                item,
                FAILED,
                f"the CRM accepted the write but {item.new_owner_id} is not an owner",
                after,
            )
        elif error.kind is Failure.PERMANENT:
            self._finish(item, FAILED, f"CRM refused: {error.detail}", after)
        else:
            self._retry_later(item, error)
        return []

    def _retry_later(self, item: Item, error: ServiceError) -> None:
        self.result.error = error  # the pass must not look finished
        if item.attempts >= MAX_ATTEMPTS:
            self._finish(
                item, FAILED, f"gave up after {item.attempts} attempts: {error.detail}"
            )
            return
        with self.store.transaction():
            self.store.finish_item(item, PENDING, f"will retry: {error.detail}")


def _split_repeats(planned: list[PlannedWrite]):
    """The first write of each (customer, new owner), and the items repeating one:
    two requests may ask for the same owner on the same customer."""
    firsts: dict[tuple[int, str], PlannedWrite] = {}
    repeats = []
    for write in planned:
        key = (write.customer.data_id, write.item.new_owner_id)
        if key in firsts:
            repeats.append(write)
        else:
            firsts[key] = write
    return list(firsts.values()), repeats


def _written(item: Item, customer: Customer) -> Item:
    item.status = WRITING
    item.data_id = customer.data_id
    item.owners_before = (
        list(customer.owners) if item.owners_before is None else (item.owners_before)
    )
    item.attempts += 1
    return item


def _unverified_reason(customer: Customer) -> str:
    if customer.pool:
        return "customer is in the public pool (no owner), so the claim cannot hold"
    return "none of the named current owners owns this customer"


def halt_writes(store: Store, reason: str) -> None:
    with store.transaction():
        store.set_state(HALT_KEY, {"at": utc_iso(), "reason": reason})


def ensure_writes_allowed(store: Store) -> None:
    halted = store.get_state(HALT_KEY)
    if halted:
        raise WritesHalted(
            f"CRM writes are halted since {halted['at']}: {halted['reason']}. Check "
            "that customer's owners, then run: fzr sync --resume-writes"
        )


def resume_writes(store: Store) -> bool:
    if store.get_state(HALT_KEY) is None:
        return False
    with store.transaction():
        store.delete_state(HALT_KEY)
    return True
