"""Where `batchd recover` looks for the lost work of anthropic profiles, whose batches carry nothing of ours.

Each such profile's service is listed once (its batches no recorded part holds); the inputs in
state/inflight/ claimed for it (their names say the profile) and the packs whose members were are
taken out of the ordinary, metadata-based recovery as units (see unlabelled_jobs), and all lost
parts of one profile are matched with its batches together (see unlabelled_batches). Each ended
candidate's results are read once per run.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from daemon.errors import DaemonError
from daemon.intake.packer import MANIFEST
from daemon.ops.job_rebuilder import profile_of_inflight
from daemon.ops.part_rebuilder import RemoteView
from daemon.ops.unlabelled_batches import BatchIds, Finding, Key, match_parts, partial_holders
from daemon.ops.unlabelled_jobs import LostUnit, UnlabelledJobs
from daemon.providers import DEFAULT_PROFILE
from daemon.service.batch_info import BatchInfo
from daemon.service.batch_service import BatchService
from daemon.service.profile_services import ProfileServices

KIND = "anthropic"  # the provider kind whose batches carry no metadata and no input file


class UnlabelledSearch:
    def __init__(self, services: ProfileServices, view: RemoteView, jobs: UnlabelledJobs, scratch: Path) -> None:
        self.services = services
        self.view = view  # anthropic batches join it by id, for results handed over to an input
        self.jobs = jobs
        self.scratch = scratch  # results are read there, and deleted
        self.listed: dict[str, list[BatchInfo]] = {}  # per profile: its batches no recorded part holds
        self._ids: dict[str, BatchIds] = {}

    def searches(self, service: BatchService) -> bool:
        """Whether this search lists ``service`` (else the metadata-based one does, or none can)."""
        return service.profile.kind == KIND and service.profile.supports_list

    def read(self, name: str, service: BatchService, not_before: float, tracked: set[str]) -> None:
        self.listed[name] = [b for b in service.batches_since(not_before) if b.id not in tracked]
        for batch in self.listed[name]:
            self.view.by_id[batch.id], self.view.profile_of[batch.id] = batch, name

    def owns(self, profile: str) -> bool:
        return profile in self.services.names() and self.services.of(profile).profile.kind == KIND

    def take_units(self, inflight: dict[str, Path], packs: dict[str, Path]) -> list[LostUnit]:
        """The packs and inputs of such profiles, taken out of ``packs`` and ``inflight`` (a pack's
        members stay in ``inflight`` until the pack is settled)."""
        units: list[LostUnit] = []
        for pack_id, folder in sorted(packs.items()):
            members = orjson.loads((folder / MANIFEST).read_bytes())["members"]
            profile = members_profile(members, inflight)
            if profile is not None and self.owns(profile):
                del packs[pack_id]
                units.append(self.jobs.pack_unit(pack_id, folder, profile, members))
        in_packs = {m["job_id"] for u in units for m in u.members or []}
        for job_id, path in sorted(inflight.items()):
            profile = profile_of_inflight(path) or DEFAULT_PROFILE
            if job_id not in in_packs and self.owns(profile):
                del inflight[job_id]
                units.append(self._input_unit(job_id, path, profile))
        return units

    def _input_unit(self, job_id: str, path: Path, profile: str) -> LostUnit:
        try:
            return self.jobs.input_unit(job_id, path, profile)
        except (DaemonError, OSError, ValueError) as exc:  # unreadable: never matched, never sent
            return LostUnit(job_id, path, profile, {}, problem=f"its requests cannot be read: {exc}")

    def findings(self, profile: str, group: list[LostUnit]) -> dict[Key, Finding] | str:
        """Every part of ``group`` matched with the profile's batches; or why that failed."""
        if profile not in self.listed:
            return f"the service of profile {profile} cannot list batches (supports_list = false): no batch can be told"
        try:
            return match_parts([p for u in group for p in u.parts], self.listed[profile], self.batch_ids(profile))
        except (DaemonError, OSError) as exc:  # the service failed: the next run tries again
            return f"the results of its candidate batches could not be read: {exc}"

    def partly_sent(self, unit: LostUnit) -> str:
        """Why an input with no part files, none of whose requests a batch of its count holds, may
        still have some in smaller batches (split by other limits); "" if none can."""
        if unit.files or unit.members is not None:
            return ""
        try:
            found = partial_holders(unit.parts[0], self.listed[unit.profile], self.batch_ids(unit.profile))
        except (DaemonError, OSError) as exc:
            found = [f"(their results could not be read: {exc})"]
        if not found:
            return ""
        return (
            f"it has no part files, and batch(es) {', '.join(found)} hold fewer requests made since it was "
            "claimed and may hold some of its own (it may have been split by other limits): it is not sent "
            "again. Check those batches; drop it again only if none is its"
        )

    def batch_ids(self, profile: str) -> BatchIds:
        """The profile's ended batches' results' custom_ids, each batch's read once per run."""
        if profile not in self._ids:
            self._ids[profile] = BatchIds(lambda _: self.services.of(profile), self.scratch)
        return self._ids[profile]


def members_profile(members: list[dict[str, str]], inflight: dict[str, Path]) -> str | None:
    """The profile a pack's members were claimed for (one pack, one service); None if none is here."""
    for member in members:
        path = inflight.get(member["job_id"])
        if path is not None:
            return profile_of_inflight(path) or DEFAULT_PROFILE
    return None
