"""Standard list/create/get/update/delete endpoints over a plain store.

Each entity declares its models and store functions once; the same five endpoints, with the
same validation, pagination and problem responses, come out for every one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from persistence import ids, limits
from persistence.checks import INT32_MAX, INT32_MIN
from persistence.paging import DEFAULT_LIMIT, MAX_LIMIT, Page

from .api import Api, Call

Row = dict[str, Any]

# What the stores accept as an id (persistence.checks.check_id).
Id = Annotated[str, Field(pattern=ids.PATTERN, description=ids.DESCRIPTION)]


# Body fields take the JSON types the document names: pydantic alone would also turn true into
# 1, "5" into 5, "yes" into true and a number into a datetime.
def _json_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a JSON number")
    return value


def _json_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected a JSON string")
    return value


Integer = Annotated[int, BeforeValidator(_json_number)]
# Constraints before the validator, or pydantic writes them as `ge`/`le` into the JSON Schema.
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX), BeforeValidator(_json_number)]
Flag = Annotated[bool, Field(strict=True)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_json_string)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def unchanged(**constraints: Any) -> Any:
    """A PATCH field of a column that is never null: it may be left out, but not set to null."""
    return Field(None, json_schema_extra=_no_default, **constraints)


class Stored(BaseModel):
    """The columns every stored entity has."""

    id: str
    created_at: datetime
    updated_at: datetime


class Body(BaseModel):
    """A request body: unknown fields are refused, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page.")
    cursor: str | None = Field(
        None,
        min_length=1,
        max_length=limits.CURSOR_CHARS,
        description="`next_cursor` of the previous page.",
    )


def page_model(item: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{item.__name__}Page",
        items=(list[item], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, None),
    )


def page_of(model: type[BaseModel], result: Page) -> dict[str, Any]:
    """A store's Page as the response of a list endpoint, each row shaped by ``model``."""
    return {
        "items": [model.model_validate(row) for row in result.items],
        "next_cursor": result.next_cursor,
    }


@dataclass
class Resource:
    name: str  # singular, e.g. "agent" or "background_task"
    plural: str  # path segment, e.g. "agents" or "background-tasks"
    out: type[BaseModel]
    create_body: type[BaseModel]
    update_body: type[BaseModel]
    query: type[BaseModel]
    create: Callable[..., Row]
    get: Callable[[sa.Connection, str], Row]
    list: Callable[..., Page]
    update: Callable[..., Row]
    delete: Callable[[sa.Connection, str], Any]
    # Problems the list can answer besides 422: 404 when a filter names a row that is missing.
    list_errors: tuple[int, ...] = ()
    # Who may create, update and delete: "write" (editors) or "admin".
    write_access: str = "write"

    @classmethod
    def over(cls, store: ModuleType, *, list: Callable[..., Page], **options: Any) -> Resource:
        """A Resource over a store module's create, get, update and delete functions."""
        functions = {verb: getattr(store, verb) for verb in ("create", "get", "update", "delete")}
        return cls(list=list, **functions, **options)

    @property
    def words(self) -> str:
        return self.name.replace("_", " ")

    @property
    def item_path(self) -> str:
        return f"/api/{self.plural}/{{{self.name}_id}}"

    def item_id(self, call: Call) -> str:
        return call.path[f"{self.name}_id"]

    def register(self, api: Api, tag: str | None = None) -> None:
        tag = tag or self.plural
        collection = f"/api/{self.plural}"
        item = self.item_path
        page = page_model(self.out)
        resource, out = self, self.out

        async def list_items(call: Call) -> Any:
            query = call.query.model_dump(exclude_none=True)
            if resource.name == "workspace" and not call.principal.is_admin:
                # An editor or viewer sees the one workspace it belongs to.
                own = call.principal.workspace_id
                row = await call.read(lambda conn: resource.get(conn, own))
                return page_of(out, Page([row], None))
            result = await call.read(lambda conn: resource.list(conn, **query))
            return page_of(out, result)

        async def create_item(call: Call) -> Any:
            values = call.body.model_dump(exclude_unset=True)
            row = await call.write(lambda conn: resource.create(conn, **values))
            return out.model_validate(row)

        async def get_item(call: Call) -> Any:
            item_id = resource.item_id(call)
            return out.model_validate(await call.read(lambda conn: resource.get(conn, item_id)))

        async def update_item(call: Call) -> Any:
            item_id = resource.item_id(call)
            changes = call.body.model_dump(exclude_unset=True)
            row = await call.write(lambda conn: resource.update(conn, item_id, **changes))
            return out.model_validate(row)

        async def delete_item(call: Call) -> None:
            item_id = resource.item_id(call)
            await call.write(lambda conn: resource.delete(conn, item_id))

        names = {"list": self.plural.replace("-", "_")}
        for handler, verb in (
            (list_items, "list"),
            (create_item, "create"),
            (get_item, "get"),
            (update_item, "update"),
            (delete_item, "delete"),
        ):
            handler.__name__ = f"{verb}_{names.get(verb, self.name)}"

        article = "an" if self.name[0] in "aeiou" else "a"
        api.route(
            "GET",
            collection,
            summary=f"List {self.words}s",
            tag=tag,
            query=self.query,
            response=page,
            errors=self.list_errors,
        )(list_items)
        api.route(
            "POST",
            collection,
            summary=f"Create {article} {self.words}",
            tag=tag,
            body=self.create_body,
            response=self.out,
            status=201,
            errors=(404, 409),
            access=self.write_access,
        )(create_item)
        api.route(
            "GET",
            item,
            summary=f"Get {article} {self.words}",
            tag=tag,
            response=self.out,
        )(get_item)
        api.route(
            "PATCH",
            item,
            summary=f"Update {article} {self.words}",
            tag=tag,
            body=self.update_body,
            response=self.out,
            errors=(409,),
            access=self.write_access,
        )(update_item)
        api.route(
            "DELETE",
            item,
            summary=f"Delete {article} {self.words}",
            tag=tag,
            status=204,
            errors=(422,),
            access=self.write_access,
        )(delete_item)
