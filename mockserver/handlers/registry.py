"""Handlers registered by operationId: the spec names the operation, this table names its code."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..call import Call
from ..messages import Outcome
from ..validation import Precheck


@dataclass(frozen=True)
class OperationHandler:
    """How one operation is answered, and the validation rules the docs state before its schema."""

    run: Callable[[Call], Outcome]
    precheck: Precheck | None = None  # documented refusals that win over a schema error
    code_for_param: Mapping[str, str] = field(default_factory=dict)  # schema errors with their own code


HANDLERS: dict[str, OperationHandler] = {}


def handles(
    *operation_ids: str, precheck: Precheck | None = None, code_for_param: Mapping[str, str] | None = None
) -> Callable[[Callable[[Call], Outcome]], Callable[[Call], Outcome]]:
    """Register the decorated function as the handler of ``operation_ids``."""

    def register(run: Callable[[Call], Outcome]) -> Callable[[Call], Outcome]:
        for operation_id in operation_ids:
            if operation_id in HANDLERS:
                raise ValueError(f"{operation_id} has two handlers")
            HANDLERS[operation_id] = OperationHandler(run, precheck, dict(code_for_param or {}))
        return run

    return register
